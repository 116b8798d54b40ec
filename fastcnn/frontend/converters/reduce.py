"""Reductions: ReduceMean, and ReduceSum as a mean times the (static) count."""
from __future__ import annotations

import math

import numpy as np
import onnx

from fastcnn.frontend.context import Folded, ImportContext, Operand, Unsupported
from fastcnn.frontend.converters.common import normalize_axis
from fastcnn.frontend.registry import Converter, table_decorator

CONVERTERS: dict[str, Converter] = {}
converter = table_decorator(CONVERTERS)


def _reduced_axes(ctx: ImportContext, rank: int, axes_input: Operand, axes: list[int] | None,
                  noop_with_empty_axes: int) -> tuple[int, ...] | None:
    """The axes to reduce (an attribute before opset 13/18, an input after), ``None`` for a no-op."""
    chosen = list(ctx.ints(axes_input, "axes")) if axes_input is not None else list(axes or [])
    if not chosen:
        return None if noop_with_empty_axes else tuple(range(rank))
    return tuple(sorted({normalize_axis(a, rank, "axes") for a in chosen}))


@converter("ReduceMean", "ReduceSum")
def reduce(ctx: ImportContext, node: onnx.NodeProto, data: Operand, axes_input: Operand = None, *,
           axes: list[int] | None = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Operand:
    """ReduceSum is ``mean * count``: one rounding more than a direct sum, well within 1e-6."""
    x = ctx.runtime(data)
    chosen = _reduced_axes(ctx, len(x.shape), axes_input, axes, noop_with_empty_axes)
    if chosen is None:
        return x
    attrs = {"axes": chosen, "keepdims": bool(keepdims)}
    if node.op_type == "ReduceMean":
        return ctx.emit("reduce_mean", [x], attrs, out_name=ctx.output_name())
    sizes = [x.shape[a] for a in chosen]
    if not all(isinstance(s, int) for s in sizes):
        raise Unsupported(f"sums over axes {chosen} whose sizes {sizes} are known only at run time")
    mean = ctx.emit("reduce_mean", [x], attrs, "mean")
    count = Folded(np.array(math.prod(sizes), dtype=x.dtype), f"{node.name or 'sum'}_count")
    return ctx.emit("mul", [mean, count], out_name=ctx.output_name())


@converter("ReduceMax")
def reduce_max(ctx: ImportContext, node: onnx.NodeProto, data: Operand, axes_input: Operand = None, *,
               axes: list[int] | None = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Operand:
    x = ctx.runtime(data)
    if x.dtype not in ("float16", "float32", "float64"):
        raise Unsupported(f"the maximum of a {x.dtype} tensor")
    chosen = _reduced_axes(ctx, len(x.shape), axes_input, axes, noop_with_empty_axes)
    if chosen is None:
        return x
    if any(x.shape[a] == 0 for a in chosen):
        raise Unsupported("the maximum over an empty axis")
    return ctx.emit("reduce_max", [x], {"axes": chosen, "keepdims": bool(keepdims)}, out_name=ctx.output_name())
