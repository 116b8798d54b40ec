"""Constant folding: a node whose inputs are all known at import time is evaluated there.

Plain arrays are evaluated by the NumPy kernels of :mod:`fastcnn.frontend.fold_kernels`, one
per op, each linear in its output (never by ``onnx.reference``, whose pure-Python kernels
can take minutes on one pooling node). An op without a kernel is not folded: the importer
converts it as a run-time op on constant inputs, or refuses it. Shape vectors that hold the
run-time batch (object arrays of ints and :class:`~fastcnn.frontend.symbolic.Sym`) are folded
here in NumPy, for the ops exporters use on shapes: Gather, Slice, Concat, Unsqueeze,
Squeeze, Reshape, Cast, Identity and integer arithmetic.

Budget. A file of a few hundred bytes can ask for gigabytes (``Range(0, 5e8)``,
``ConstantOfShape([1e5, 1e5])``), so every fold states the size of its output before it is
computed, and :class:`FoldBudget` refuses, with an :class:`UnsupportedModelError` naming the
node and the size, any folded tensor over ``max(4 x the model's weight bytes, 64 MiB)`` and
folds adding up to more than ``max(16 x the weight bytes, 256 MiB)`` in all (outputs that
are views of their input, such as a Reshape's, do not count). A weight legitimately
computed at import (int8 weights dequantized to float32, a transposed copy) stays far below
both.

A fold that fails otherwise returns ``None``; the importer then converts the node as a
run-time op if it can, so folding only ever widens what imports.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto

from fastcnn.errors import InvalidModelError, UnsupportedModelError
from fastcnn.frontend.fold_kernels import FOLD_KERNELS, FoldCall, FoldRefused
from fastcnn.frontend.registry import attributes
from fastcnn.frontend.symbolic import SymbolicValueError, SymbolTooLarge, simplify
from fastcnn.tables import registrar

# Never folded: random ops (a new value each run), control flow (converted instead), and LRN.
NO_FOLD = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                     "Multinomial", "Bernoulli", "If", "Loop", "Scan", "LRN"})

# Ops exporters apply to shape tensors. Downstream of an unconvertible node they would have
# folded had their input been known, so they are not reported as problems of their own.
SHAPE_ARITHMETIC = frozenset({"Shape", "Size", "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze",
                              "Reshape", "Cast", "Identity", "Equal", "Greater", "Less", "Not", "And",
                              "Or", "Where", "Range", "Expand", "ConstantOfShape", "NonZero", "If"})

Arrays = list[np.ndarray | None]
SymbolicFold = Callable[[onnx.NodeProto, Arrays, dict[str, Any], int], np.ndarray]
SYMBOLIC_FOLDS: dict[str, SymbolicFold] = {}


symbolic_fold = registrar(SYMBOLIC_FOLDS, "symbolic fold for")


MiB = 1 << 20
# The budget of a model with (almost) no weights. Some files make their weights at load time
# (ONNX's own "real" model stubs fill VGG-19's 411 MB first classifier layer with ConstantOfShape),
# so the floor holds the largest weight tensor of the zoo's families, and a hostile file stays
# bounded by it: Range(0, 5e8) (4 GB of int64) is still refused.
TENSOR_FLOOR = 512 * MiB
TOTAL_FLOOR = 2048 * MiB
SYMBOLIC_INPUT_LIMIT = 1024  # entries of a symbolic fold's inputs: shape vectors are short


def _node_label(node: onnx.NodeProto) -> str:
    return node.name or f"<unnamed {node.op_type} -> {node.output[0] if node.output else '?'}>"


def _size_text(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


class FoldBudget:
    """How many bytes import-time folding may make: per tensor and in all (see the module doc)."""

    def __init__(self, weight_bytes: int = 0) -> None:
        self.per_tensor = max(4 * weight_bytes, TENSOR_FLOOR)
        self.total = max(16 * weight_bytes, TOTAL_FLOOR)
        self.used = 0

    @staticmethod
    def for_model(model: onnx.ModelProto) -> "FoldBudget":
        """The budget of ``model``, from the bytes of its initializers (branches' included)."""
        from fastcnn.frontend.external_data import all_tensors
        from fastcnn.frontend.tensors import PLAIN_DTYPES

        total = 0
        for tensor in all_tensors(model.graph):
            name = PLAIN_DTYPES.get(tensor.data_type)
            total += math.prod(tensor.dims) * (np.dtype(name).itemsize if name else 1)
        return FoldBudget(total)

    def claim(self, node: onnx.NodeProto, shape: Sequence[int], dtype: Any) -> None:
        """Count a folded output of ``shape`` before it is made; refuse it over the budget."""
        count = math.prod(int(d) for d in shape)  # Python ints: no overflow on hostile dims
        nbytes = count * np.dtype(dtype).itemsize
        what = (f"node {_node_label(node)!r} ({node.op_type}) would fold at import time to a tensor of "
                f"shape {list(shape)} ({count} elements, {_size_text(nbytes)})")
        if nbytes > self.per_tensor:
            reason = f"{what}, over fastcnn's budget of {_size_text(self.per_tensor)} per folded tensor"
        elif self.used + nbytes > self.total:
            reason = (f"{what}, which takes import-time folding past its budget of "
                      f"{_size_text(self.total)} in all")
        else:
            self.used += nbytes
            return
        raise UnsupportedModelError(f"{reason} (the budget is 4x the model's weight bytes per tensor, "
                                    f"16x in all, at least {_size_text(TENSOR_FLOOR)} and "
                                    f"{_size_text(TOTAL_FLOOR)})", [(node.op_type, _node_label(node), reason)])


def fold(node: onnx.NodeProto, arrays: list[np.ndarray | None], opset: int,
         budget: FoldBudget | None = None) -> list[np.ndarray] | None:
    """The node's outputs computed from known inputs, or ``None`` when it cannot be folded.

    Raises:
        UnsupportedModelError: the outputs would exceed ``budget``, or a symbolic size
            expression grows past what fastcnn keeps.
        InvalidModelError: the node is malformed (an index out of range, a step of 0...).
    """
    if node.op_type in NO_FOLD or node.domain not in ("", "ai.onnx"):
        return None
    budget = budget if budget is not None else FoldBudget()
    if any(a is not None and a.dtype == object for a in arrays):
        return _fold_symbolic(node, arrays, opset, budget)
    kernel = FOLD_KERNELS.get(node.op_type)
    if kernel is None:
        return None
    try:
        attrs = attributes(node)
        call = FoldCall(node, list(arrays), attrs, opset, lambda shape, dtype: budget.claim(node, shape, dtype))
        results = kernel(call)
    except (FoldRefused, ValueError, TypeError, IndexError, KeyError, ArithmeticError):
        return None
    except Exception as exc:  # noqa: BLE001 - Unsupported from attributes() and the like
        if isinstance(exc, (UnsupportedModelError, InvalidModelError)):
            raise
        return None
    if len(results) < len([o for o in node.output if o]):
        return None
    return [np.asarray(r) for r in results]


def _fold_symbolic(node: onnx.NodeProto, arrays: list[np.ndarray | None], opset: int,
                   budget: FoldBudget) -> list[np.ndarray] | None:
    fn = SYMBOLIC_FOLDS.get(node.op_type)
    if fn is None or len(node.output) != 1:
        return None
    if any(a is not None and a.size > SYMBOLIC_INPUT_LIMIT for a in arrays):
        return None  # not a shape vector
    try:
        result = simplify(np.asarray(fn(node, arrays, attributes(node), opset)))
    except SymbolTooLarge as exc:
        reason = f"a size computed from the run-time batch grows too large to track: {exc}"
        raise UnsupportedModelError(f"node {_node_label(node)!r} ({node.op_type}): {reason}",
                                    [(node.op_type, _node_label(node), reason)]) from None
    except (SymbolicValueError, ValueError, IndexError, TypeError):
        return None
    budget.claim(node, result.shape, result.dtype)
    return [result]


# -- shape arithmetic with symbols ----------------------------------------------------------
def _axes(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int,
          since: int) -> list[int] | None:
    """An ``axes`` that moved from attribute to input in opset ``since``."""
    if opset < since:
        return attrs.get("axes")
    return None if len(arrays) < 2 or arrays[1] is None else [int(a) for a in arrays[1]]


@symbolic_fold("Identity")
def _identity(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int) -> np.ndarray:
    return arrays[0]


@symbolic_fold("Cast")
def _cast(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int) -> np.ndarray:
    if attrs["to"] not in (TensorProto.INT64, TensorProto.INT32):
        raise SymbolicValueError("a run-time size cast to a non-integer type")
    return arrays[0]


@symbolic_fold("Gather")
def _gather(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int) -> np.ndarray:
    data, indices = arrays
    axis = attrs.get("axis", 0)
    if not -data.ndim <= axis < data.ndim:
        raise InvalidModelError(f"Gather {_node_label(node)!r}: axis {axis} is out of range for rank {data.ndim}")
    size = data.shape[axis]
    if indices.dtype == object:
        raise SymbolicValueError("indices computed from the run-time batch")
    indices = indices.astype(np.int64)
    if indices.size and (indices.min() < -size or indices.max() >= size):
        bad = int(indices.min()) if indices.min() < -size else int(indices.max())
        raise InvalidModelError(f"Gather {_node_label(node)!r}: index {bad} is out of range for a "
                                f"dimension of size {size} (valid: {-size}..{size - 1})")
    indices = np.where(indices < 0, indices + size, indices)
    return np.take(data, indices, axis=axis)


@symbolic_fold("Slice")
def _slice(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int) -> np.ndarray:
    data = arrays[0]
    if opset < 10:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = arrays[1], arrays[2]
        axes = arrays[3] if len(arrays) > 3 and arrays[3] is not None else None
        steps = arrays[4] if len(arrays) > 4 and arrays[4] is not None else None
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))  # Python slices clamp as ONNX
    return data[tuple(index)]


@symbolic_fold("Concat")
def _concat(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int) -> np.ndarray:
    return np.concatenate([a.astype(object) for a in arrays if a is not None], axis=attrs["axis"])


@symbolic_fold("Unsqueeze")
def _unsqueeze(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int) -> np.ndarray:
    data = arrays[0]
    axes = _axes(node, arrays, attrs, opset, 13)
    rank = data.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        data = np.expand_dims(data, axis)
    return data


@symbolic_fold("Squeeze")
def _squeeze(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int) -> np.ndarray:
    data = arrays[0]
    axes = _axes(node, arrays, attrs, opset, 13)
    return np.squeeze(data) if axes is None else np.squeeze(data, axis=tuple(a % data.ndim for a in axes))


@symbolic_fold("Reshape")
def _reshape(node: onnx.NodeProto, arrays: Arrays, attrs: dict[str, Any], opset: int) -> np.ndarray:
    data, target = arrays
    if target.dtype == object:
        raise SymbolicValueError("a reshape of a shape vector to a run-time shape")
    dims = [data.shape[i] if d == 0 and not attrs.get("allowzero", 0) else int(d)
            for i, d in enumerate(target)]
    return data.reshape(dims)


def _elementwise(fn: Callable[[Any, Any], Any]) -> SymbolicFold:
    ufunc = np.frompyfunc(fn, 2, 1)
    return lambda node, arrays, attrs, opset: ufunc(arrays[0].astype(object), arrays[1].astype(object))


def _truncating_div(a: Any, b: Any) -> Any:
    """ONNX integer Div truncates toward zero; a symbol divided keeps its name."""
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        if b == 0:
            raise SymbolicValueError("integer division by zero")
        quotient = abs(int(a)) // abs(int(b))
        return quotient if (a >= 0) == (b > 0) else -quotient
    return a // b


SYMBOLIC_FOLDS["Add"] = _elementwise(lambda a, b: a + b)
SYMBOLIC_FOLDS["Sub"] = _elementwise(lambda a, b: a - b)
SYMBOLIC_FOLDS["Mul"] = _elementwise(lambda a, b: a * b)
SYMBOLIC_FOLDS["Div"] = _elementwise(_truncating_div)
