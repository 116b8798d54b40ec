"""Constant folding: a node whose inputs are all known at import time is evaluated there.

Plain arrays are evaluated by ``onnx.reference`` on a one-node model: onnx's own
executable spec, so every op folds the way the standard says without fastcnn
re-implementing it. Shape vectors that hold the run-time batch (object arrays of ints and
:class:`~fastcnn.frontend.symbolic.Sym`) are folded here in NumPy, for the ops exporters
use on shapes: Gather, Slice, Concat, Unsqueeze, Squeeze, Reshape, Cast, Identity and
integer arithmetic.

A fold that fails returns ``None``; the importer then converts the node as a run-time op if
it can, so folding only ever widens what imports.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

from fastcnn.frontend.registry import attributes
from fastcnn.frontend.symbolic import SymbolicValueError, simplify
from fastcnn.tables import registrar

# Never folded: random ops (a new value each run), control flow (converted instead), and
# LRN, whose onnx.reference kernel in onnx 1.23 normalises over the wrong axis.
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


def fold(node: onnx.NodeProto, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    """The node's outputs computed from known inputs, or ``None`` when it cannot be folded."""
    if node.op_type in NO_FOLD or node.domain not in ("", "ai.onnx"):
        return None
    if any(a is not None and a.dtype == object for a in arrays):
        fn = SYMBOLIC_FOLDS.get(node.op_type)
        if fn is None or len(node.output) != 1:
            return None
        try:
            return [simplify(np.asarray(fn(node, arrays, attributes(node), opset)))]
        except (SymbolicValueError, ValueError, IndexError, TypeError):
            return None
    try:
        return _reference(node, arrays, opset)
    except Exception:  # noqa: BLE001 - any failure means "not foldable", never a crash
        return None


def _reference(node: onnx.NodeProto, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    """Evaluate one node with ``onnx.reference`` on a model made of just that node."""
    from onnx.reference import ReferenceEvaluator  # imported on first fold: it is slow to load

    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for name, a in zip(node.input, arrays) if name and a is not None]
    outputs = [helper.make_value_info(name, onnx.TypeProto()) for name in node.output if name]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {name: a for name, a in zip(node.input, arrays) if name and a is not None}
    results = ReferenceEvaluator(model).run(None, feeds)
    return [np.asarray(r) for r in results]


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
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    return np.take(data, indices.astype(np.int64), axis=axis)


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
