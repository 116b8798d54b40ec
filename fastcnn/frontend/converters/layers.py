"""Whole layers: fully connected (Gemm, MatMul), batch norm, LRN and softmax."""
from __future__ import annotations

import onnx

from fastcnn.frontend.context import ImportContext, Operand, Unsupported
from fastcnn.frontend.converters.common import normalize_axis, reshape_to
from fastcnn.frontend.registry import Converter, table_decorator
from fastcnn.ir import Value

CONVERTERS: dict[str, Converter] = {}
converter = table_decorator(CONVERTERS)


@converter("Gemm")
def gemm(ctx: ImportContext, node: onnx.NodeProto, A: Operand, B: Operand, C: Operand = None, *,
         alpha: float = 1.0, beta: float = 1.0, transA: int = 0, transB: int = 0,
         broadcast: int = 1) -> Value:
    # ``broadcast`` (opset < 7) only allowed what every later opset does anyway.
    attrs = {"alpha": float(alpha), "beta": float(beta), "trans_a": bool(transA), "trans_b": bool(transB)}
    inputs = [A, B] if C is None else [A, B, C]
    return ctx.emit("gemm", inputs, attrs, out_name=ctx.output_name())


@converter("MatMul")
def matmul(ctx: ImportContext, node: onnx.NodeProto, A: Operand, B: Operand) -> Value:
    return ctx.emit("matmul", [A, B], out_name=ctx.output_name())


@converter("BatchNormalization")
def batch_normalization(ctx: ImportContext, node: onnx.NodeProto, X: Operand, scale: Operand,
                        B: Operand, input_mean: Operand, input_var: Operand, *,
                        epsilon: float = 1e-5, momentum: float = 0.9, spatial: int = 1,
                        training_mode: int = 0, is_test: int = 1,
                        consumed_inputs: list[int] | None = None) -> Value:
    """The inference form: normalise with the stored statistics (``momentum`` is unused)."""
    if training_mode:
        raise Unsupported("training_mode=1 (batch statistics); fastcnn runs inference")
    if not spatial:
        raise Unsupported("spatial=0 (statistics per activation, not per channel)")
    if any(ctx.is_used(name) for name in node.output[1:]):
        raise Unsupported("the running-statistics outputs of training mode are not supported")
    x = ctx.runtime(X)
    if len(x.shape) < 2:
        raise Unsupported(f"input of rank {len(x.shape)}")
    return ctx.emit("batch_norm", [x, scale, B, input_mean, input_var], {"eps": float(epsilon)},
                    out_name=ctx.output_name())


@converter("LRN")
def lrn(ctx: ImportContext, node: onnx.NodeProto, X: Operand, *, alpha: float = 1e-4,
        beta: float = 0.75, bias: float = 1.0, size: int | None = None) -> Value:
    if size is None or size < 1:
        raise Unsupported(f"size={size}")
    attrs = {"size": int(size), "alpha": float(alpha), "beta": float(beta), "bias": float(bias)}
    return ctx.emit("lrn", [X], attrs, out_name=ctx.output_name())


@converter("Softmax")
def softmax(ctx: ImportContext, node: onnx.NodeProto, input: Operand, *, axis: int | None = None) -> Value:
    """Softmax along ``axis``; before opset 13 along all of ``axis:`` as one flattened row.

    The old form (``axis`` defaults to 1) is a softmax of ``input`` flattened to 2-D at
    ``axis``; it equals the new form when ``axis`` is the last one, and otherwise becomes
    flatten, softmax over the row, reshape back.
    """
    x = ctx.runtime(input)
    rank = len(x.shape)
    axis = normalize_axis((-1 if ctx.opset >= 13 else 1) if axis is None else axis, rank)
    if ctx.opset >= 13 or axis == rank - 1:
        return ctx.emit("softmax", [x], {"axis": axis}, out_name=ctx.output_name())
    flat = ctx.emit("flatten", [x], {"axis": axis}, "flatten")
    rows = ctx.emit("softmax", [flat], {"axis": 1}, "softmax")
    return reshape_to(ctx, rows, x.shape, out_name=ctx.output_name())
