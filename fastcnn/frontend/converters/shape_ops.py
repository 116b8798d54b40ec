"""Layout ops on run-time tensors: Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Pad, Cast.

Their shape-like inputs (targets, axes, pads) must be known at import time; by then constant
folding has turned exporters' ``Shape -> Gather -> Concat`` chains into arrays, whose batch
entries are symbols. Squeeze and Unsqueeze are reshapes in the IR.
"""
from __future__ import annotations

import onnx

from fastcnn.frontend.context import ImportContext, Operand, Unsupported
from fastcnn.frontend.converters.common import normalize_axis, reshape_target, reshape_to, solve_wildcard
from fastcnn.frontend.registry import Converter, table_decorator
from fastcnn.frontend.symbolic import Sym
from fastcnn.frontend.tensors import PLAIN_DTYPES
from fastcnn.ir import Dim, Value

CONVERTERS: dict[str, Converter] = {}
converter = table_decorator(CONVERTERS)


@converter("Flatten")
def flatten(ctx: ImportContext, node: onnx.NodeProto, input: Operand, *, axis: int = 1) -> Value:
    x = ctx.runtime(input)
    rank = len(x.shape)
    if not -rank <= axis <= rank:  # axis == rank is allowed: (prod, 1)
        raise Unsupported(f"axis {axis} is out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis
    return ctx.emit("flatten", [x], {"axis": axis}, out_name=ctx.output_name())


@converter("Reshape")
def reshape(ctx: ImportContext, node: onnx.NodeProto, data: Operand, shape: Operand, *,
            allowzero: int = 0) -> Value:
    x = ctx.runtime(data)
    target = ctx.folded(shape, "target shape").array.reshape(-1)
    if allowzero and any(not isinstance(d, Sym) and int(d) == 0 for d in target):
        return _reshape_allowzero(ctx, x, target)
    out: list[Dim] = []
    for i, d in enumerate(target):
        if isinstance(d, Sym):
            out.append(d.name)
        elif int(d) == 0:
            if i >= len(x.shape):
                raise Unsupported(f"target {target.tolist()} copies dim {i} of a rank-{len(x.shape)} input")
            out.append(x.shape[i])
        else:
            out.append(int(d))
    target = _target_with_wildcard(x.shape, out)
    return ctx.emit("reshape", [x], {"shape": target}, out_name=ctx.output_name())


def _reshape_allowzero(ctx: ImportContext, x: Value, target) -> Value:
    """Reshape with ``allowzero=1`` and a 0 in the target: that 0 is a dim of size 0 (an empty
    tensor), so the IR reshape keeps ``allowzero``; the target must be all numbers (a -1 as well
    is invalid ONNX, refused by the IR's shape inference)."""
    if any(isinstance(d, Sym) for d in target):
        raise Unsupported(f"allowzero=1 with a 0 in target {[str(d) for d in target]} that also has sizes "
                          "known only at run time")
    dims = tuple(int(d) for d in target)
    if any(d < -1 for d in dims):
        raise Unsupported(f"reshape target {list(dims)} has a negative dim")
    return ctx.emit("reshape", [x], {"shape": dims, "allowzero": 1}, out_name=ctx.output_name())


def _target_with_wildcard(in_shape: tuple, out: list[Dim]) -> tuple[int, ...]:
    """Like :func:`reshape_target`, keeping the ONNX target's own ``-1``."""
    if -1 not in out:
        return reshape_target(in_shape, out)
    if out.count(-1) > 1:
        raise Unsupported(f"reshape target {out} has more than one -1")
    where = out.index(-1)
    rest = reshape_target(in_shape, [1 if i == where else d for i, d in enumerate(out)], check_size=False)
    if -1 in rest:
        raise Unsupported(f"reshape of {in_shape} to {out} has more than one size known only at run time")
    return solve_wildcard(in_shape, tuple(-1 if i == where else d for i, d in enumerate(rest)))


def _axes(ctx: ImportContext, axes_input: Operand, axes: list[int] | None) -> list[int] | None:
    """``axes``: an attribute before opset 13, an optional input from then on."""
    if axes_input is not None:
        return list(ctx.ints(axes_input, "axes"))
    return None if axes is None else [int(a) for a in axes]


@converter("Squeeze")
def squeeze(ctx: ImportContext, node: onnx.NodeProto, data: Operand, axes_input: Operand = None, *,
            axes: list[int] | None = None) -> Value:
    x = ctx.runtime(data)
    chosen = _axes(ctx, axes_input, axes)
    rank = len(x.shape)
    if chosen is None:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        drop = {normalize_axis(a, rank, "axes") for a in chosen}
        if any(x.shape[i] != 1 for i in drop):
            raise Unsupported(f"squeezes axes {sorted(drop)} of shape {x.shape}, not all of size 1")
    out = [d for i, d in enumerate(x.shape) if i not in drop]
    return reshape_to(ctx, x, out, out_name=ctx.output_name())


@converter("Unsqueeze")
def unsqueeze(ctx: ImportContext, node: onnx.NodeProto, data: Operand, axes_input: Operand = None, *,
              axes: list[int] | None = None) -> Value:
    x = ctx.runtime(data)
    chosen = _axes(ctx, axes_input, axes)
    if not chosen:
        raise Unsupported("no axes")
    rank = len(x.shape) + len(chosen)
    inserted = {normalize_axis(a, rank, "axes") for a in chosen}
    dims = iter(x.shape)
    out = [1 if i in inserted else next(dims) for i in range(rank)]
    return reshape_to(ctx, x, out, out_name=ctx.output_name())


@converter("Transpose")
def transpose(ctx: ImportContext, node: onnx.NodeProto, data: Operand, *,
              perm: list[int] | None = None) -> Value:
    x = ctx.runtime(data)
    rank = len(x.shape)
    order = tuple(range(rank))[::-1] if perm is None else tuple(normalize_axis(p, rank, "perm") for p in perm)
    return ctx.emit("transpose", [x], {"perm": order}, out_name=ctx.output_name())


@converter("Concat")
def concat(ctx: ImportContext, node: onnx.NodeProto, *inputs: Operand, axis: int | None = None) -> Value:
    present = [x for x in inputs if x is not None]
    if axis is None or not present:
        raise Unsupported("Concat without an axis or inputs")
    axis = normalize_axis(axis, len(ctx.shape(present[0])))
    return ctx.emit("concat", present, {"axis": axis}, out_name=ctx.output_name())


@converter("Pad")
def pad(ctx: ImportContext, node: onnx.NodeProto, data: Operand, pads_input: Operand = None,
        constant_value: Operand = None, axes_input: Operand = None, *, mode: str = "constant",
        pads: list[int] | None = None, value: float = 0.0) -> Value:
    """Pads are attributes before opset 11, inputs after (with optional ``axes`` from 18)."""
    x = ctx.runtime(data)
    rank = len(x.shape)
    if mode not in ("constant", "reflect", "edge"):
        raise Unsupported(f"mode={mode!r}; fastcnn pads with constant, reflect or edge")
    widths = list(ctx.ints(pads_input, "pads")) if pads_input is not None else list(pads or [])
    if axes_input is not None:
        chosen = [normalize_axis(a, rank, "axes") for a in ctx.ints(axes_input, "axes")]
        full = [0] * (2 * rank)
        for j, axis in enumerate(chosen):
            full[axis], full[axis + rank] = widths[j], widths[j + len(chosen)]
        widths = full
    if len(widths) != 2 * rank:
        raise Unsupported(f"pads {widths} do not have {2 * rank} entries for rank {rank}")
    if isinstance(constant_value, Value) and mode == "constant":  # the fill, computed at run time
        attrs = {"pads": tuple(widths), "mode": mode, "value": 0.0}
        return ctx.emit("pad", [x, constant_value], attrs, out_name=ctx.output_name())
    fill = value if constant_value is None or mode != "constant" else ctx.scalar(constant_value, "constant_value")
    attrs = {"pads": tuple(widths), "mode": mode, "value": float(fill)}
    return ctx.emit("pad", [x], attrs, out_name=ctx.output_name())


@converter("Cast", "CastLike")
def cast(ctx: ImportContext, node: onnx.NodeProto, input: Operand, target_type: Operand = None, *,
         to: int | None = None, saturate: int = 1, round_mode: str = "up") -> Operand:
    """Only a cast to the value's own type (a no-op) runs; the IR has no conversions.

    ``to`` is compared through :data:`PLAIN_DTYPES`, never through onnx's NumPy mapping, which on
    older onnx releases turns bfloat16 and float8 into float32 and would make such casts vanish.
    """
    x = ctx.runtime(input)
    if target_type is not None:
        wanted = ctx.runtime(target_type).dtype
    else:
        wanted = PLAIN_DTYPES.get(to, _onnx_type_name(to))
    if wanted != x.dtype:
        raise Unsupported(f"a run-time cast from {x.dtype} to {wanted}")
    return x


def _onnx_type_name(data_type: int | None) -> str:
    try:
        return onnx.TensorProto.DataType.Name(data_type)
    except ValueError:
        return f"element type {data_type}"
