"""Ops whose results are known at import time: Constant, ConstantOfShape, Shape, Size, and If
on a known condition.

``Shape`` of a run-time value is known from the IR's shapes, with the batch as a symbol (see
:mod:`fastcnn.frontend.symbolic`); that is what lets exporters' shape arithmetic fold. An
``If`` whose condition folds is replaced by the branch it takes, converted inline.
"""
from __future__ import annotations

import numpy as np
import onnx

from fastcnn.frontend.context import Folded, ImportContext, Operand, Unsupported
from fastcnn.frontend.registry import Converter, table_decorator
from fastcnn.frontend.symbolic import shape_array
from fastcnn.frontend.tensors import tensor_array

CONVERTERS: dict[str, Converter] = {}
converter = table_decorator(CONVERTERS)


def numeric_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """A TensorProto's data as an array, refusing types the CNN path has no use for."""
    if tensor.data_type == onnx.TensorProto.STRING:
        raise Unsupported(f"{what} holds strings; string tensors are not supported")
    array = tensor_array(tensor, what)
    if array.dtype.kind not in "biuf":
        raise Unsupported(f"{what} has dtype {array.dtype}")
    return array


@converter("Constant")
def constant(ctx: ImportContext, node: onnx.NodeProto, *, value: onnx.TensorProto | None = None,
             value_float: float | None = None, value_floats: list[float] | None = None,
             value_int: int | None = None, value_ints: list[int] | None = None,
             value_string: str | None = None, value_strings: list[str] | None = None,
             sparse_value: object = None) -> np.ndarray:
    if value is not None:
        return numeric_array(value, "the constant")
    if value_float is not None:
        return np.array(value_float, dtype=np.float32)
    if value_floats is not None:
        return np.array(value_floats, dtype=np.float32)
    if value_int is not None:
        return np.array(value_int, dtype=np.int64)
    if value_ints is not None:
        return np.array(value_ints, dtype=np.int64)
    if sparse_value is not None:
        raise Unsupported("a sparse constant")
    raise Unsupported("a string constant")


@converter("ConstantOfShape")
def constant_of_shape(ctx: ImportContext, node: onnx.NodeProto, input: Operand, *,
                      value: onnx.TensorProto | None = None) -> np.ndarray:
    shape = ctx.ints(input, "shape")
    fill = np.zeros(1, np.float32) if value is None else numeric_array(value, "the fill value")
    return np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)


@converter("Shape")
def shape(ctx: ImportContext, node: onnx.NodeProto, data: Operand, *, start: int = 0,
          end: int | None = None) -> np.ndarray:
    dims = shape_array(ctx.shape(data))
    return dims[start:end]


@converter("Size")
def size(ctx: ImportContext, node: onnx.NodeProto, data: Operand) -> np.ndarray:
    total: object = 1
    for d in shape_array(ctx.shape(data)):
        total = total * d
    out = np.empty((), dtype=object if not isinstance(total, int) else np.int64)
    out[()] = total
    return out


@converter("If")
def if_(ctx: ImportContext, node: onnx.NodeProto, cond: Operand, *,
        then_branch: onnx.GraphProto | None = None, else_branch: onnx.GraphProto | None = None) -> list:
    """The branch a known condition selects, converted in place of the If."""
    if not isinstance(cond, Folded) or cond.symbolic:
        raise Unsupported("the condition is computed at run time (data-dependent control flow)")
    taken = then_branch if bool(cond.array.reshape(-1)[0]) else else_branch
    if taken is None or ctx.inline is None:
        raise Unsupported("a branch is missing")
    return ctx.inline(taken)
