"""What a node costs at least: its arithmetic (FLOPs) and the bytes it must move.

Both are lower bounds from shapes alone, on a specialized (fully static) graph: a node reads
each distinct input once and writes each output once; weights count as read. A multiply-add
is two FLOPs. Nodes that move nothing are *views*: reshape, flatten, identity and dropout
(the same elements under another shape) and a concat whose inputs are already the slices of
its buffer (:func:`fastcnn.ir.storage.concat_is_view`). The planner skips views, and the
passes compare these numbers to decide whether a rewrite pays.
"""
from __future__ import annotations

import math

import numpy as np

from fastcnn.ir.core import Node, Value
from fastcnn.ir.dims import evaluate
from fastcnn.ir.storage import concat_is_view

VIEW_OPS = frozenset({"reshape", "flatten", "identity", "dropout"})


def is_view(node: Node) -> bool:
    """Whether ``node`` runs no kernel: its outputs are its input's elements, where they are.

    A reshape of a channel slice of a concat buffer is no view: the slice is strided, and
    the reshaped tensor is not, so that one copies.
    """
    if node.op in VIEW_OPS:
        return node.inputs[0] is not None and node.inputs[0].storage is None
    return concat_is_view(node)


def accumulated(node: Node) -> list[Value]:
    """Outputs a kernel accumulates in float32 with atomic adds, whatever the graph's dtype:
    a convolution's pooled sums for a squeeze-excite gate."""
    if node.op == "fused_conv2d" and node.attrs.get("pooled_output"):
        return [node.outputs[-1]]
    return []


def numel(value: Value, sizes: dict[str, int] | None = None) -> int:
    """Elements of ``value``; symbolic dims take their size from ``sizes`` (e.g. ``{"N": 1}``)."""
    try:
        return math.prod(evaluate(d, sizes or {}) for d in value.shape)
    except KeyError:
        raise ValueError(f"%{value.name} has a symbolic shape {value.shape}; specialize the graph "
                         "first or give the symbols' sizes") from None


def nbytes(value: Value, sizes: dict[str, int] | None = None) -> int:
    return numel(value, sizes) * np.dtype(value.dtype).itemsize


def node_bytes(node: Node, sizes: dict[str, int] | None = None) -> int:
    """Bytes ``node`` must move at least: every distinct input read once, every output written once."""
    if is_view(node):
        return 0
    inputs = {id(v): v for v in node.inputs if v is not None}
    sums = {id(v) for v in accumulated(node)}
    written = sum(numel(v, sizes) * 4 if id(v) in sums else nbytes(v, sizes) for v in node.outputs)
    return sum(nbytes(v, sizes) for v in inputs.values()) + written


def node_flops(node: Node) -> int:
    """Floating-point operations of ``node`` (a multiply-add is two)."""
    if is_view(node) or node.op == "concat":
        return 0
    fn = _FLOPS.get(node.op)
    return fn(node) if fn is not None else sum(numel(v) for v in node.outputs)


def _conv(node: Node) -> int:
    outputs = node.outputs[:-1] if node.attrs.get("pooled_output") else node.outputs
    per_output = 2 * math.prod(node.inputs[1].shape[1:])  # (C_in / groups) * kh * kw multiply-adds
    return sum(numel(v) for v in outputs) * per_output


def _gemm(node: Node) -> int:
    weight = node.inputs[1]
    return 2 * numel(node.outputs[0]) * (weight.shape[1] if node.attrs.get("trans_b") else weight.shape[0])


def _matmul(node: Node) -> int:
    return 2 * numel(node.outputs[0]) * node.inputs[0].shape[-1]


def _window(node: Node) -> int:
    x, out = node.inputs[0], node.outputs[0]
    if node.op == "fused_pool" and node.attrs["mode"].startswith("global") or node.op.startswith("global"):
        return numel(x)
    return numel(out) * math.prod(node.attrs["kernel"])


def _se_gate(node: Node) -> int:
    x, w1 = node.inputs[0], node.inputs[1]
    return numel(x) + 4 * x.shape[0] * math.prod(w1.shape)


_FLOPS = {"conv2d": _conv, "fused_conv2d": _conv, "gemm": _gemm, "fused_gemm": _gemm, "matmul": _matmul,
          "max_pool": _window, "avg_pool": _window, "global_avg_pool": _window, "global_max_pool": _window,
          "fused_pool": _window, "se_gate": _se_gate,
          "lrn": lambda n: numel(n.outputs[0]) * (2 * n.attrs["size"] + 3),
          "batch_norm": lambda n: 2 * numel(n.outputs[0])}
