"""Elementwise ops: arithmetic with broadcasting, activations, and the pass-throughs.

Identity and Dropout (inference) become the IR's ``identity`` and ``dropout``, which the
``drop_identity`` pass removes. Sum and Mean of several inputs become chains of two-input
adds, as the IR's arithmetic is binary.
"""
from __future__ import annotations

import numpy as np
import onnx

from fastcnn.errors import InvalidModelError
from fastcnn.frontend.context import Folded, ImportContext, Operand, Unsupported
from fastcnn.frontend.registry import Converter, table_decorator
from fastcnn.ir import Value

CONVERTERS: dict[str, Converter] = {}
converter = table_decorator(CONVERTERS)

_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


@converter("Add", "Sub", "Mul", "Div")
def binary(ctx: ImportContext, node: onnx.NodeProto, A: Operand, B: Operand) -> Value:
    return ctx.emit(_BINARY[node.op_type], [A, B], out_name=ctx.output_name())


@converter("Sum", "Mean")
def sum_or_mean(ctx: ImportContext, node: onnx.NodeProto, *data_0: Operand) -> Value | Operand:
    """A left-to-right chain of adds; Mean then divides by the count, as ONNX's spec does."""
    if not data_0:
        raise Unsupported("no inputs")
    total: Operand = data_0[0]
    for i, term in enumerate(data_0[1:], 1):
        last = i == len(data_0) - 1 and node.op_type == "Sum"
        total = ctx.emit("add", [total, term], suffix=f"add{i}",
                         out_name=ctx.output_name() if last else None)
    if node.op_type == "Mean" and len(data_0) > 1:
        dtype = ctx.runtime(total).dtype
        count = Folded(np.array(len(data_0), dtype=dtype), f"{node.name or 'mean'}_count")
        return ctx.emit("div", [total, count], out_name=ctx.output_name())
    return total


def _unary(op: str):
    def convert(ctx: ImportContext, node: onnx.NodeProto, X: Operand) -> Value:
        return ctx.emit(op, [X], out_name=ctx.output_name())

    convert.__name__ = op
    return convert


for _onnx, _ir in (("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh")):
    converter(_onnx)(_unary(_ir))


@converter("LeakyRelu")
def leaky_relu(ctx: ImportContext, node: onnx.NodeProto, X: Operand, *, alpha: float = 0.01) -> Value:
    return ctx.emit("leaky_relu", [X], {"alpha": float(alpha)}, out_name=ctx.output_name())


@converter("Neg")
def neg(ctx: ImportContext, node: onnx.NodeProto, X: Operand) -> Value:
    """``-x`` as ``x * -1``, which is exact."""
    x = ctx.runtime(X)
    minus_one = Folded(np.array(-1, dtype=x.dtype), f"{node.name or 'neg'}_minus_one")
    return ctx.emit("mul", [x, minus_one], out_name=ctx.output_name())


@converter("Clip")
def clip(ctx: ImportContext, node: onnx.NodeProto, input: Operand, min_value: Operand = None,
         max_value: Operand = None, *, min: float | None = None, max: float | None = None) -> Value:
    """Clip bounds are attributes before opset 11 and optional scalar inputs after.

    A bound computed at run time makes ``max(x, min)`` then ``min(., max)``, ONNX's definition
    (so a min above the max gives the max everywhere); known bounds stay one ``clip``.
    """
    if _runtime_bound(min_value) or _runtime_bound(max_value):
        return _clip_runtime(ctx, input, min_value, max_value)
    low = min if min_value is None else ctx.scalar(min_value, "min")
    high = max if max_value is None else ctx.scalar(max_value, "max")
    attrs = {"min": _bound(low, -1.0), "max": _bound(high, 1.0)}
    return ctx.emit("clip", [input], attrs, out_name=ctx.output_name())


def _runtime_bound(bound: Operand) -> bool:
    return isinstance(bound, Value)


def _clip_runtime(ctx: ImportContext, input: Operand, min_value: Operand, max_value: Operand) -> Value:
    y = ctx.runtime(input)
    steps = [(b, op, key) for b, op, key in ((min_value, "max", "min"), (max_value, "min", "max")) if b is not None]
    for i, (bound, op, key) in enumerate(steps):
        out = ctx.output_name() if i == len(steps) - 1 else None
        if tuple(ctx.shape(bound)) not in ((), (1,)):
            raise Unsupported(f"the {key} must be a single number, got shape {ctx.shape(bound)}")
        if isinstance(bound, Value):
            y = ctx.emit(op, [y, bound], suffix=op, out_name=out)
        else:
            limit = _bound(ctx.scalar(bound, key), -1.0 if key == "min" else 1.0)
            y = ctx.emit("clip", [y], {"min": None, "max": None, key: limit}, suffix="clip", out_name=out)
    return y


def _bound(value: float | None, side: float) -> float | None:
    """``None`` for a missing bound, or one at or past the float32 limit on its own ``side``
    (opset 6's defaults are -FLT_MAX and FLT_MAX)."""
    if value is None or value * side >= np.finfo(np.float32).max:
        return None
    return float(value)


@converter("Identity")
def identity(ctx: ImportContext, node: onnx.NodeProto, input: Operand) -> Operand:
    """Kept as an IR ``identity`` (the ``drop_identity`` pass removes it), so the imported graph
    says what the file says."""
    return ctx.emit("identity", [input], out_name=ctx.output_name())


@converter("Dropout")
def dropout(ctx: ImportContext, node: onnx.NodeProto, data: Operand, ratio_input: Operand = None,
            training_mode: Operand = None, *, ratio: float = 0.5, is_test: int = 1,
            seed: int = 0, consumed_inputs: list[int] | None = None) -> Operand:
    """Inference dropout is the identity, its mask (opset 10+: bool) all true; training mode is refused."""
    if training_mode is not None and bool(ctx.scalar(training_mode, "training_mode")):
        raise Unsupported("training_mode=True (random dropout)")
    with_mask = len(node.output) > 1 and ctx.is_used(node.output[1])
    if with_mask and ctx.opset < 10:
        raise Unsupported("the mask output of opset < 10 (a float mask) is not supported")
    y = ctx.emit("dropout", [data], {"ratio": _dropout_ratio(ctx, ratio_input, ratio)},
                 out_name=ctx.output_name())
    if not with_mask:
        return y
    return [y, ctx.emit("dropout_mask", [data], suffix="mask", out_name=ctx.output_name(1))]


def _dropout_ratio(ctx: ImportContext, ratio_input: Operand, ratio: float) -> float:
    """The ratio from the input (opset 12+) or the attribute; only recorded, inference ignores it."""
    if isinstance(ratio_input, Folded) and not ratio_input.symbolic and ratio_input.array.size == 1:
        return float(ratio_input.array.reshape(-1)[0])
    return float(ratio)


converter("Exp")(_unary("exp"))


@converter("Max", "Min")
def max_or_min(ctx: ImportContext, node: onnx.NodeProto, *data_0: Operand) -> Value | Operand:
    """A left-to-right chain of two-input ``max``/``min`` (NaN spreads, as in ONNX Runtime)."""
    present = [x for x in data_0 if x is not None]
    if not present:
        raise Unsupported("no inputs")
    op = node.op_type.lower()
    if len(present) == 1:
        return ctx.emit("identity", [present[0]], out_name=ctx.output_name())
    total: Operand = present[0]
    for i, term in enumerate(present[1:], 1):
        last = i == len(present) - 1
        total = ctx.emit(op, [total, term], suffix=f"{op}{i}", out_name=ctx.output_name() if last else None)
    return total


@converter("Less")
def less(ctx: ImportContext, node: onnx.NodeProto, A: Operand, B: Operand) -> Value:
    for x in (A, B):
        if ctx.runtime(x).dtype not in ("float16", "float32", "float64"):
            raise Unsupported(f"comparison of {ctx.runtime(x).dtype} tensors")
    return ctx.emit("less", [A, B], out_name=ctx.output_name())


@converter("Where")
def where(ctx: ImportContext, node: onnx.NodeProto, condition: Operand, X: Operand, Y: Operand) -> Value:
    cond = ctx.runtime(condition, "condition")
    if cond.dtype != "bool":
        raise InvalidModelError(f"node {node.name!r} (Where): the condition is {cond.dtype}, not bool")
    if ctx.runtime(X).dtype != ctx.runtime(Y).dtype:
        raise InvalidModelError(f"node {node.name!r} (Where): X and Y have different types")
    if ctx.runtime(X).dtype not in ("float16", "float32", "float64"):
        raise Unsupported(f"selection between {ctx.runtime(X).dtype} tensors")
    return ctx.emit("where", [cond, X, Y], out_name=ctx.output_name())
