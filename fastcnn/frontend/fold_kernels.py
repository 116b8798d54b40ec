"""The kernels constant folding runs: NumPy, one small function per ONNX op, each bounded.

Every kernel states the size of what it makes *before* making it (``call.claim(shape, dtype)``),
so :class:`~fastcnn.frontend.folding.FoldBudget` refuses a ``Range(0, 5e8)`` or a
``ConstantOfShape([1e6, 1e6])`` before a byte is allocated. Ops whose output is a view of
their input (Reshape, Squeeze, Identity...) claim nothing. Work is linear in the output's
size except for MatMul, whose multiply-adds are capped by :data:`MAX_FOLD_WORK`.

An op not in :data:`FOLD_KERNELS` is not folded: the importer converts it as a run-time op
on constant inputs, or refuses it. A kernel raises :class:`FoldRefused` for an input it does
not fold (an integer division by zero, a cast to bfloat16); any NumPy error means the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from fastcnn.errors import InvalidModelError
from fastcnn.frontend.tensors import PLAIN_DTYPES
from fastcnn.tables import registrar

MAX_FOLD_WORK = 1 << 30  # multiply-adds one MatMul fold may take (about a second of NumPy)


class FoldRefused(Exception):
    """This node is not folded (not a fault of the model): the importer converts it instead."""


@dataclass
class FoldCall:
    """One fold: the node, its known input arrays (``None`` for omitted ones), its attributes."""

    node: onnx.NodeProto
    arrays: list[np.ndarray | None]
    attrs: dict[str, Any]
    opset: int
    claim: Callable[[Sequence[int], Any], None]

    def input(self, index: int) -> np.ndarray | None:
        return self.arrays[index] if index < len(self.arrays) else None

    def ints(self, index: int) -> list[int] | None:
        array = self.input(index)
        return None if array is None else [int(v) for v in array.reshape(-1)]

    def out(self, shape: Sequence[int], dtype: Any) -> None:
        self.claim(tuple(int(d) for d in shape), np.dtype(dtype))


Kernel = Callable[[FoldCall], list[np.ndarray]]
FOLD_KERNELS: dict[str, Kernel] = {}
fold_kernel = registrar(FOLD_KERNELS, "fold kernel for")


def _index(node: onnx.NodeProto, value: int, size: int, what: str) -> int:
    """``value`` as an index into ``size`` entries, negative ones counted from the end."""
    if not -size <= value < size:
        raise InvalidModelError(f"node {node.name or node.op_type!r} ({node.op_type}): {what} {value} is out of "
                                f"range for a dimension of size {size}")
    return value + size if value < 0 else value


def _axis(call: FoldCall, axis: int, rank: int) -> int:
    return _index(call.node, int(axis), max(rank, 1), "axis")


# -- pass-throughs, casts, shapes ---------------------------------------------------------
@fold_kernel("Identity")
def _identity(call: FoldCall) -> list[np.ndarray]:
    return [call.arrays[0]]


def _np_dtype(onnx_type: int) -> np.dtype:
    name = PLAIN_DTYPES.get(int(onnx_type))
    if name is None:
        raise FoldRefused(f"a cast to {onnx_type}")
    return np.dtype(name)


def _cast(call: FoldCall, data: np.ndarray, dtype: np.dtype) -> list[np.ndarray]:
    call.out(data.shape, dtype)
    return [data.astype(dtype)]


@fold_kernel("Cast")
def _cast_op(call: FoldCall) -> list[np.ndarray]:
    return _cast(call, call.arrays[0], _np_dtype(call.attrs["to"]))


@fold_kernel("CastLike")
def _cast_like(call: FoldCall) -> list[np.ndarray]:
    return _cast(call, call.arrays[0], call.arrays[1].dtype)


@fold_kernel("Shape")
def _shape(call: FoldCall) -> list[np.ndarray]:
    dims = np.array(call.arrays[0].shape, dtype=np.int64)
    return [dims[call.attrs.get("start", 0):call.attrs.get("end")]]


@fold_kernel("Size")
def _size(call: FoldCall) -> list[np.ndarray]:
    return [np.array(call.arrays[0].size, dtype=np.int64)]


@fold_kernel("ConstantOfShape")
def _constant_of_shape(call: FoldCall) -> list[np.ndarray]:
    shape = call.ints(0)
    if any(d < 0 for d in shape):
        raise InvalidModelError(f"ConstantOfShape {call.node.name!r} has a negative dim in {shape}")
    value = call.attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else _attribute_tensor(value)
    call.out(shape, fill.dtype)
    return [np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)]


def _attribute_tensor(tensor: onnx.TensorProto) -> np.ndarray:
    from fastcnn.frontend.tensors import tensor_array

    array = tensor_array(tensor, "a fill value")
    if array.dtype.kind not in "biuf" or array.size == 0:
        raise FoldRefused("a fill value that is not a number")
    return array


@fold_kernel("Range")
def _range(call: FoldCall) -> list[np.ndarray]:
    start, limit, delta = (a.reshape(-1)[0] for a in call.arrays[:3])
    dtype = call.arrays[0].dtype
    if delta == 0:
        raise FoldRefused("Range with delta 0")
    count = max(math.ceil((float(limit) - float(start)) / float(delta)), 0) if dtype.kind == "f" else \
        max(-((int(start) - int(limit)) // int(delta)), 0)
    call.out((count,), dtype)
    return [(start + np.arange(count, dtype=np.float64 if dtype.kind == "f" else np.int64) * delta).astype(dtype)]


# -- elementwise -----------------------------------------------------------------------------
def _unary(fn: Callable[[np.ndarray], np.ndarray], floats_only: bool = False) -> Kernel:
    def kernel(call: FoldCall) -> list[np.ndarray]:
        x = call.arrays[0]
        if floats_only and x.dtype.kind != "f":
            raise FoldRefused("a float op on integers")
        call.out(x.shape, x.dtype)
        with np.errstate(all="ignore"):
            return [np.asarray(fn(x)).astype(x.dtype)]

    return kernel


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


for _op, _fn, _floats in (("Neg", np.negative, False), ("Abs", np.abs, False), ("Sign", np.sign, False),
                          ("Sqrt", np.sqrt, True), ("Reciprocal", np.reciprocal, True), ("Exp", np.exp, True),
                          ("Log", np.log, True), ("Floor", np.floor, True), ("Ceil", np.ceil, True),
                          ("Round", np.round, True), ("Relu", lambda x: np.maximum(x, 0), False),
                          ("Sigmoid", _sigmoid, True), ("Tanh", np.tanh, True),
                          ("Not", np.logical_not, False)):
    fold_kernel(_op)(_unary(_fn, _floats))


def _broadcast(call: FoldCall, arrays: Sequence[np.ndarray], dtype: Any) -> None:
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        raise FoldRefused("shapes that do not broadcast") from None
    call.out(shape, dtype)


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX integer Div truncates toward zero (NumPy's floor division does not)."""
    if np.any(b == 0):
        raise FoldRefused("integer division by zero")
    quotient = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -quotient, quotient)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _int_div(a, b) if a.dtype.kind in "iu" else a / b


def _mod(call: FoldCall) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.dtype.kind in "iu" and np.any(b == 0):
            raise FoldRefused("integer modulo by zero")
        return np.fmod(a, b) if call.attrs.get("fmod", 0) else np.mod(a, b)

    return mod


_ARITHMETIC: dict[str, Callable[..., Any]] = {
    "Add": lambda c: np.add, "Sub": lambda c: np.subtract, "Mul": lambda c: np.multiply,
    "Div": lambda c: _div, "Mod": _mod, "Pow": lambda c: np.power,
}
_LOGIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Equal": np.equal, "Less": np.less, "LessOrEqual": np.less_equal, "Greater": np.greater,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}


def _arithmetic(call: FoldCall) -> list[np.ndarray]:
    a, b = call.arrays[:2]
    if call.node.op_type == "Pow" and a.dtype.kind in "iu" and np.any(b < 0):
        raise FoldRefused("an integer to a negative power")
    _broadcast(call, (a, b), a.dtype)
    with np.errstate(all="ignore"):
        return [np.asarray(_ARITHMETIC[call.node.op_type](call)(a, b)).astype(a.dtype)]


def _logic(call: FoldCall) -> list[np.ndarray]:
    a, b = call.arrays[:2]
    _broadcast(call, (a, b), np.bool_)
    return [np.asarray(_LOGIC[call.node.op_type](a, b))]


for _op in _ARITHMETIC:
    fold_kernel(_op)(_arithmetic)
for _op in _LOGIC:
    fold_kernel(_op)(_logic)


@fold_kernel("Max", "Min", "Sum", "Mean")
def _variadic(call: FoldCall) -> list[np.ndarray]:
    arrays = [a for a in call.arrays if a is not None]
    if not arrays:
        raise FoldRefused("no inputs")
    dtype = arrays[0].dtype
    _broadcast(call, arrays, dtype)
    fn = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add, "Mean": np.add}[call.node.op_type]
    with np.errstate(all="ignore"):
        out = arrays[0]
        for a in arrays[1:]:
            out = fn(out, a)
        if call.node.op_type == "Mean":
            out = out / len(arrays)
        return [np.asarray(out).astype(dtype)]


@fold_kernel("Where")
def _where(call: FoldCall) -> list[np.ndarray]:
    cond, x, y = call.arrays[:3]
    _broadcast(call, (cond, x, y), x.dtype)
    return [np.where(cond.astype(bool), x, y).astype(x.dtype)]


@fold_kernel("Clip")
def _clip(call: FoldCall) -> list[np.ndarray]:
    x = call.arrays[0]
    if call.opset < 11:
        low, high = call.attrs.get("min"), call.attrs.get("max")
    else:
        low = None if call.input(1) is None else call.input(1).reshape(-1)[0]
        high = None if call.input(2) is None else call.input(2).reshape(-1)[0]
    call.out(x.shape, x.dtype)
    out = x if low is None else np.maximum(x, low)
    return [np.asarray(out if high is None else np.minimum(out, high)).astype(x.dtype)]


# -- moving data ------------------------------------------------------------------------------
@fold_kernel("Gather")
def _gather(call: FoldCall) -> list[np.ndarray]:
    data, indices = call.arrays[:2]
    axis = _axis(call, call.attrs.get("axis", 0), data.ndim)
    size = data.shape[axis]
    indices = indices.astype(np.int64)
    if indices.size and (indices.min() < -size or indices.max() >= size):
        bad = int(indices.min()) if indices.min() < -size else int(indices.max())
        _index(call.node, bad, size, "index")
    call.out(data.shape[:axis] + indices.shape + data.shape[axis + 1:], data.dtype)
    return [np.take(data, np.where(indices < 0, indices + size, indices), axis=axis)]


@fold_kernel("Slice")
def _slice(call: FoldCall) -> list[np.ndarray]:
    data = call.arrays[0]
    if call.opset < 10:
        starts, ends, axes, steps = call.attrs["starts"], call.attrs["ends"], call.attrs.get("axes"), None
    else:
        starts, ends, axes, steps = call.ints(1), call.ints(2), call.ints(3), call.ints(4)
    axes = list(range(len(starts))) if axes is None else [_axis(call, a, data.ndim) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if 0 in steps:
        raise InvalidModelError(f"Slice {call.node.name!r} has a step of 0")
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis] = slice(int(start), int(end), int(step))  # Python slices clamp as ONNX does
    out = data[tuple(index)]
    call.out(out.shape, data.dtype)
    return [out.copy()]


@fold_kernel("Concat")
def _concat(call: FoldCall) -> list[np.ndarray]:
    arrays = [a for a in call.arrays if a is not None]
    axis = _axis(call, call.attrs["axis"], arrays[0].ndim)
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] if a.ndim == len(shape) else 0 for a in arrays)
    call.out(shape, arrays[0].dtype)
    return [np.concatenate(arrays, axis=axis)]


def _axes(call: FoldCall, since: int) -> list[int] | None:
    """An ``axes`` that moved from attribute to second input in opset ``since``."""
    return call.attrs.get("axes") if call.opset < since else call.ints(1)


@fold_kernel("Unsqueeze")
def _unsqueeze(call: FoldCall) -> list[np.ndarray]:
    data, axes = call.arrays[0], _axes(call, 13)
    rank = data.ndim + len(axes or ())
    shape = list(data.shape)
    for axis in sorted(_axis(call, a, rank) for a in axes or ()):
        shape.insert(axis, 1)
    return [data.reshape(shape)]


@fold_kernel("Squeeze")
def _squeeze(call: FoldCall) -> list[np.ndarray]:
    data, axes = call.arrays[0], _axes(call, 13)
    if axes is None:
        return [np.squeeze(data)]
    return [np.squeeze(data, axis=tuple(_axis(call, a, data.ndim) for a in axes))]


@fold_kernel("Reshape")
def _reshape(call: FoldCall) -> list[np.ndarray]:
    data = call.arrays[0]
    target = call.ints(1) if call.opset >= 5 else list(call.attrs.get("shape", []))
    allowzero = call.attrs.get("allowzero", 0)
    dims = [data.shape[i] if d == 0 and not allowzero and i < data.ndim else d for i, d in enumerate(target)]
    return [data.reshape(dims)]


@fold_kernel("Flatten")
def _flatten(call: FoldCall) -> list[np.ndarray]:
    data = call.arrays[0]
    axis = call.attrs.get("axis", 1)
    axis = axis + data.ndim if axis < 0 else axis
    if not 0 <= axis <= data.ndim:
        raise InvalidModelError(f"Flatten {call.node.name!r}: axis {axis} for rank {data.ndim}")
    return [data.reshape(math.prod(data.shape[:axis]), math.prod(data.shape[axis:]))]


@fold_kernel("Transpose")
def _transpose(call: FoldCall) -> list[np.ndarray]:
    data = call.arrays[0]
    perm = call.attrs.get("perm") or list(range(data.ndim))[::-1]
    call.out(data.shape, data.dtype)
    return [np.ascontiguousarray(np.transpose(data, perm))]


@fold_kernel("Expand")
def _expand(call: FoldCall) -> list[np.ndarray]:
    data, shape = call.arrays[0], call.ints(1)
    if any(d < 0 for d in shape):
        raise InvalidModelError(f"Expand {call.node.name!r} has a negative dim in {shape}")
    try:
        out_shape = np.broadcast_shapes(data.shape, tuple(shape))
    except ValueError:
        raise FoldRefused("shapes that do not broadcast") from None
    call.out(out_shape, data.dtype)
    return [np.broadcast_to(data, out_shape).copy()]


@fold_kernel("Tile")
def _tile(call: FoldCall) -> list[np.ndarray]:
    data, repeats = call.arrays[0], call.ints(1)
    if len(repeats) != data.ndim or any(r < 0 for r in repeats):
        raise FoldRefused("repeats that do not fit the input")
    call.out([d * r for d, r in zip(data.shape, repeats)], data.dtype)
    return [np.tile(data, repeats)]


@fold_kernel("Split")
def _split(call: FoldCall) -> list[np.ndarray]:
    data = call.arrays[0]
    axis = _axis(call, call.attrs.get("axis", 0), data.ndim)
    split = call.attrs.get("split") if call.opset < 13 else call.ints(1)
    outputs = len(call.node.output)
    if split is None:
        count = call.attrs.get("num_outputs", outputs)
        chunk = -(-data.shape[axis] // count)
        split = [min(chunk, max(data.shape[axis] - chunk * i, 0)) for i in range(count)]
    if sum(split) != data.shape[axis] or any(s < 0 for s in split):
        raise InvalidModelError(f"Split {call.node.name!r}: sizes {split} do not add up to {data.shape[axis]}")
    call.out(data.shape, data.dtype)
    return [part.copy() for part in np.split(data, np.cumsum(split)[:-1], axis=axis)]


@fold_kernel("NonZero")
def _nonzero(call: FoldCall) -> list[np.ndarray]:
    data = call.arrays[0]
    call.out((max(data.ndim, 1), data.size), np.int64)
    return [np.array(np.nonzero(data), dtype=np.int64).reshape(data.ndim, -1)]


# -- reductions and products -----------------------------------------------------------------
_REDUCE: dict[str, Callable[..., np.ndarray]] = {
    "ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max, "ReduceMin": np.min,
    "ReduceProd": np.prod, "ReduceSumSquare": lambda x, **kw: np.sum(x * x, **kw),
    "ReduceL1": lambda x, **kw: np.sum(np.abs(x), **kw),
    "ReduceL2": lambda x, **kw: np.sqrt(np.sum(x.astype(np.float64) ** 2, **kw)),
}


@fold_kernel(*_REDUCE)
def _reduce(call: FoldCall) -> list[np.ndarray]:
    data = call.arrays[0]
    since = 13 if call.node.op_type == "ReduceSum" else 18
    axes = _axes(call, since)
    if not axes:
        if call.attrs.get("noop_with_empty_axes", 0) and call.opset >= since:
            return [data]
        axes = list(range(data.ndim))
    axes = tuple(sorted({_axis(call, a, data.ndim) for a in axes}))
    if data.size == 0:
        raise FoldRefused("a reduction of an empty tensor")
    call.out(data.shape, data.dtype)
    with np.errstate(all="ignore"):
        out = _REDUCE[call.node.op_type](data, axis=axes, keepdims=bool(call.attrs.get("keepdims", 1)))
    return [np.asarray(out).astype(data.dtype)]


@fold_kernel("ArgMax", "ArgMin")
def _arg(call: FoldCall) -> list[np.ndarray]:
    data = call.arrays[0]
    axis = _axis(call, call.attrs.get("axis", 0), data.ndim)
    if data.size == 0:
        raise FoldRefused("an arg-reduction of an empty tensor")
    fn = np.argmax if call.node.op_type == "ArgMax" else np.argmin
    if call.attrs.get("select_last_index", 0):
        flipped = np.flip(data, axis)
        out = data.shape[axis] - 1 - fn(flipped, axis=axis)
    else:
        out = fn(data, axis=axis)
    if call.attrs.get("keepdims", 1):
        out = np.expand_dims(out, axis)
    return [np.asarray(out, dtype=np.int64)]


@fold_kernel("MatMul")
def _matmul(call: FoldCall) -> list[np.ndarray]:
    a, b = call.arrays[:2]
    if a.ndim == 0 or b.ndim == 0:
        raise FoldRefused("MatMul of a scalar")
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise FoldRefused("inner dims that differ")
    try:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise FoldRefused("batch dims that do not broadcast") from None
    rows, inner, cols = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    if math.prod(batch) * rows * inner * cols > MAX_FOLD_WORK:
        raise FoldRefused("a MatMul too big to fold at import time")
    call.out((*batch, rows, cols), a.dtype)
    return [np.matmul(a, b).astype(a.dtype)]


@fold_kernel("DequantizeLinear")
def _dequantize(call: FoldCall) -> list[np.ndarray]:
    x, scale, zero = call.arrays[0], call.arrays[1], call.input(2)
    if call.attrs.get("block_size", 0) or x.dtype.kind not in "iu" or scale.ndim > 1:
        raise FoldRefused("a blocked or non-integer dequantization")
    shape = [1] * x.ndim
    if scale.size > 1:
        shape[_axis(call, call.attrs.get("axis", 1), x.ndim)] = scale.size
    call.out(x.shape, scale.dtype)
    centred = x.astype(np.int64) - (0 if zero is None else zero.astype(np.int64).reshape(shape))
    return [(centred * scale.reshape(shape)).astype(scale.dtype)]

