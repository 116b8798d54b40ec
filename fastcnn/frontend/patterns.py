"""Recognising torch's exported ``local_response_norm`` and importing it as one IR ``lrn``.

``nn.LocalResponseNorm`` reaches ONNX from the TorchScript exporter not as ``LRN`` but as
the Python function's decomposition::

    x * x -> Reshape (N, 1, C, H, W') -> Pad (channels: size//2, (size-1)//2)
      -> AveragePool (kernel size x 1 x 1, count_include_pad) -> Squeeze/If -> Reshape (N, C, H, W)
      -> Mul alpha -> Add k -> Pow beta;   x / that

which is ONNX's ``LRN(alpha, beta, bias=k, size)`` when ``size`` is odd (for an even size
torch pads the other way round). fastcnn's IR has no 3-D pooling and no ``Pow``, so the
importer matches this chain at the ``Div`` and emits ``lrn``; the chain's own nodes are then
dead and vanish, problems included. Anything that differs from the chain (an even size,
other pads, other constants) is not matched and imports, or is refused, node by node.
"""
from __future__ import annotations

from typing import Callable

import onnx
from onnx import helper

from fastcnn.frontend.context import Folded, ImportContext
from fastcnn.frontend.symbolic import Sym
from fastcnn.ir import Value

_VALUE_PRESERVING = ("Reshape", "Squeeze", "Unsqueeze", "Identity")
Pattern = Callable[[ImportContext, onnx.NodeProto], "Value | None"]


class _NoMatch(Exception):
    pass


def match_torch_lrn(ctx: ImportContext, div: onnx.NodeProto) -> Value | None:
    """The IR ``lrn`` equal to ``div`` when it ends torch's LRN decomposition, else ``None``."""
    try:
        x = ctx.env.get(div.input[0])
        if not isinstance(x, Value) or len(x.shape) != 4:
            return None
        attrs = _match(ctx, div, x)
    except _NoMatch:
        return None
    return ctx.emit("lrn", [x], attrs, out_name=ctx.output_name())


def _match(ctx: ImportContext, div: onnx.NodeProto, x: Value) -> dict:
    power = _producer(ctx, div.input[1], "Pow")
    beta = _scalar(ctx, power.input[1])
    shift = _producer(ctx, power.input[0], "Add")
    k, scaled = _split_constant(ctx, shift)
    scale = _producer(ctx, scaled, "Mul")
    alpha, restored = _split_constant(ctx, scale)
    back = _producer(ctx, restored, "Reshape")
    _expect_target(ctx, back.input[1], x.shape)
    pool = _producer(ctx, _through_views(ctx, back.input[0]), "AveragePool")
    size = _pool_size(pool)
    padded = _producer(ctx, pool.input[0], "Pad")
    _expect_channel_pads(ctx, padded, size)
    split = _producer(ctx, padded.input[0], "Reshape")
    _expect_target(ctx, split.input[1], (x.shape[0], 1, x.shape[1]), prefix_only=True)
    square = _producer(ctx, split.input[0], "Mul")
    if list(square.input) != [div.input[0], div.input[0]]:
        raise _NoMatch
    return {"size": size, "alpha": alpha, "beta": beta, "bias": k}


def _producer(ctx: ImportContext, name: str, op_type: str) -> onnx.NodeProto:
    node = ctx.producers.get(name)
    if node is None or node.op_type != op_type or node.domain not in ("", "ai.onnx"):
        raise _NoMatch
    return node


def _scalar(ctx: ImportContext, name: str) -> float:
    folded = ctx.env.get(name)
    if not isinstance(folded, Folded) or folded.symbolic or folded.array.size != 1:
        raise _NoMatch
    return float(folded.array.reshape(-1)[0])


def _split_constant(ctx: ImportContext, node: onnx.NodeProto) -> tuple[float, str]:
    """(the scalar constant operand, the other operand's name) of a binary node."""
    for i in (1, 0):
        if isinstance(ctx.env.get(node.input[i]), Folded):
            return _scalar(ctx, node.input[i]), node.input[1 - i]
    raise _NoMatch


def _through_views(ctx: ImportContext, name: str) -> str:
    """Follow value-preserving ops (and If nodes whose branches are such ops) back to a source."""
    while True:
        node = ctx.producers.get(name)
        if node is None:
            return name
        if node.op_type in _VALUE_PRESERVING:
            name = node.input[0]
        elif node.op_type == "If":
            sources = {_branch_source(helper.get_attribute_value(a)) for a in node.attribute}
            if len(sources) != 1 or None in sources:
                raise _NoMatch
            name = sources.pop()
        else:
            return name


def _branch_source(branch: onnx.GraphProto) -> str | None:
    """The outer value a one-output branch passes through a single view op, or None."""
    made = {out: n for n in branch.node for out in n.output}
    if len(branch.output) != 1 or branch.output[0].name not in made:
        return None
    node = made[branch.output[0].name]
    if node.op_type not in _VALUE_PRESERVING or node.input[0] in made:
        return None
    return node.input[0]


def _pool_size(pool: onnx.NodeProto) -> int:
    """``size`` of an AveragePool that averages ``size`` channels (kernel size x 1 x 1), else no match."""
    attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
    kernel = list(attrs.get("kernel_shape", []))
    if len(kernel) != 3 or kernel[1:] != [1, 1] or kernel[0] % 2 == 0:
        raise _NoMatch
    if any(s != 1 for s in attrs.get("strides", [])) or any(attrs.get("pads", [])):
        raise _NoMatch
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or attrs.get("ceil_mode", 0):
        raise _NoMatch
    if not attrs.get("count_include_pad", 0) or any(d != 1 for d in attrs.get("dilations", [])):
        raise _NoMatch
    return int(kernel[0])


def _expect_channel_pads(ctx: ImportContext, pad: onnx.NodeProto, size: int) -> None:
    """Zero padding of (size - 1) / 2 channels on each side of a 5-D tensor, nothing else."""
    attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
    if attrs.get("mode", b"constant") not in (b"constant", "constant") or len(pad.input) < 2:
        raise _NoMatch
    if len(pad.input) > 2 and pad.input[2] and _scalar(ctx, pad.input[2]) != 0.0:
        raise _NoMatch
    if len(pad.input) > 3 and pad.input[3]:
        raise _NoMatch
    pads = ctx.env.get(pad.input[1])
    half = (size - 1) // 2
    if not isinstance(pads, Folded) or pads.symbolic or \
            [int(p) for p in pads.array.reshape(-1)] != [0, 0, half, 0, 0, 0, 0, half, 0, 0]:
        raise _NoMatch


def _expect_target(ctx: ImportContext, name: str, dims: tuple, prefix_only: bool = False) -> None:
    """A folded reshape target whose leading entries are ``dims`` (the batch as a symbol or 0)."""
    target = ctx.env.get(name)
    if not isinstance(target, Folded):
        raise _NoMatch
    entries = list(target.array.reshape(-1))
    if len(entries) < len(dims) or (not prefix_only and len(entries) != len(dims)):
        raise _NoMatch
    if prefix_only and len(entries) != 5:
        raise _NoMatch
    for i, (entry, dim) in enumerate(zip(entries, dims)):
        if isinstance(entry, Sym):
            ok = entry.name == dim
        else:  # 0 copies the batch from the reshaped input, which has it first
            ok = int(entry) == dim or (i == 0 and int(entry) == 0)
        if not ok:
            raise _NoMatch


# Tried before a node's own conversion, even when some of its inputs are blocked: the whole
# point is to replace a chain whose middle fastcnn cannot convert.
PATTERNS: dict[str, Pattern] = {"Div": match_torch_lrn}
