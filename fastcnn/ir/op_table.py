"""Every op the IR knows, plain and fused, and the check of a node against its schema."""
from __future__ import annotations

from typing import Any

from fastcnn.ir.core import Node
from fastcnn.ir.fused_ops import FUSED_OPS
from fastcnn.ir.ops import PLAIN_OPS
from fastcnn.ir.schema import REQUIRED, IRError, OpSchema, Spec

OPS: dict[str, OpSchema] = {**PLAIN_OPS, **FUSED_OPS}
assert len(OPS) == len(PLAIN_OPS) + len(FUSED_OPS), "a fused op reuses a plain op's name"


def with_defaults(op_name: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with every left-out attribute that has a default filled in."""
    schema = OPS.get(op_name)
    full = dict(attrs)
    if schema is not None:
        for key, spec in schema.attrs.items():
            if key not in full and spec.default is not REQUIRED:
                full[key] = spec.default
    return full


def infer(node: Node) -> list[Spec]:
    """Check ``node`` against its schema and return its outputs' (shape, dtype)."""
    schema = OPS.get(node.op)
    if schema is None:
        raise IRError(f"{node.name}: unknown op {node.op!r}")
    low, high = schema.num_inputs
    n = len(node.inputs)
    if n < low or (high >= 0 and n > high):
        raise IRError(f"{node.name}: {node.op} takes {low}..{high if high >= 0 else 'any'} inputs, got {n}")
    for key, spec in schema.attrs.items():
        if key not in node.attrs:
            raise IRError(f"{node.name}: {node.op} needs attribute {key!r}")
        spec.check(node, key)
    extra = set(node.attrs) - set(schema.attrs)
    if extra:
        raise IRError(f"{node.name}: {node.op} has unknown attributes {sorted(extra)}")
    specs = schema.infer(node)
    for shape, _ in specs:
        _check_size(node, shape)
    return specs


INT64_MAX = 2**63 - 1


def _check_size(node: Node, shape: tuple) -> None:
    """Refuse an output whose known dims, or their product, overflow int64 (what every runtime indexes with)."""
    known = 1
    for d in shape:
        if isinstance(d, int):
            known *= d
    if known > INT64_MAX:
        raise IRError(f"{node.name}: output shape {tuple(shape)} has more than 2**63 elements")
