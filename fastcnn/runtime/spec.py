"""What an engine expects as input, and the cheap checks that enforce it at ``infer``.

The checks are shape and dtype comparisons only (no graph work), so they cost microseconds
on the hot path while turning a wrong input into an :class:`InputError` that names what was
expected and what came, instead of a shape error deep inside a backend.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fastcnn.errors import InputError
from fastcnn.ir import Graph, IRError, Shape, Value

_NCHW_AXES = ("batch size", "channel count", "height", "width")


@dataclass(frozen=True)
class InputSpec:
    """One graph input: its name, its shape (a str for a dynamic size, ``"N"`` = batch), its dtype."""

    name: str
    shape: Shape
    dtype: torch.dtype

    @classmethod
    def of(cls, value: Value, dtype: torch.dtype | None = None) -> "InputSpec":
        """The spec of graph input ``value``; ``dtype`` overrides a floating-point input's dtype."""
        own = torch_dtype(value.dtype)
        if dtype is not None and own.is_floating_point:
            own = dtype
        return cls(value.name, tuple(value.shape), own)

    def __repr__(self) -> str:
        return f"InputSpec({self.name!r}, shape={format_shape(self.shape)}, dtype={dtype_name(self.dtype)})"


def torch_dtype(numpy_name: str) -> torch.dtype:
    """The torch dtype of an IR dtype name such as ``"float32"``."""
    dtype = getattr(torch, numpy_name, None)
    if not isinstance(dtype, torch.dtype):
        raise InputError(f"dtype {numpy_name!r} has no torch equivalent")
    return dtype


# What ``dtype=`` accepts besides a torch.dtype: the names users write.
_DTYPE_NAMES = {"float32": torch.float32, "float": torch.float32, "fp32": torch.float32,
                "float16": torch.float16, "half": torch.float16, "fp16": torch.float16,
                "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64,
                "double": torch.float64, "fp64": torch.float64}


TF32_NAMES = ("tf32", "tensorfloat32")


def parse_precision(dtype: Any) -> tuple[torch.dtype | None, bool]:
    """``dtype=`` as (dtype, TF32 allowed): ``"tf32"`` is float32 storage computed on TF32 tensor
    cores; anything else goes through :func:`parse_dtype` with TF32 off."""
    if isinstance(dtype, str) and dtype.lower() in TF32_NAMES:
        return torch.float32, True
    return parse_dtype(dtype), False


def parse_dtype(dtype: Any) -> torch.dtype | None:
    """``dtype=`` as a floating-point torch dtype: a torch.dtype, a NumPy dtype, or a name such
    as ``"float16"``, ``"fp16"``, ``"bf16"``, ``"torch.float32"``; ``None`` stays ``None``."""
    if dtype is None or (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        return dtype
    key = dtype.removeprefix("torch.").lower() if isinstance(dtype, str) else None
    if key is None and not isinstance(dtype, torch.dtype):
        try:
            key = np.dtype(dtype).name
        except TypeError:
            key = None
    if key in _DTYPE_NAMES:
        return _DTYPE_NAMES[key]
    raise InputError(f"dtype={dtype!r} is not a floating-point dtype fastcnn computes in; use torch.float32, "
                     "torch.float16 or torch.bfloat16 (or their names: 'float32', 'float16', 'bfloat16'; "
                     "'tf32' for float32 on TF32 tensor cores)")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def format_shape(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def as_tensor(batch: Any, spec: InputSpec) -> torch.Tensor:
    """``batch`` as a dense torch tensor holding its data, without casting, or :class:`InputError`.

    A NumPy array in non-native byte order is converted to native order (the same values);
    tensors with no data of their own (meta), sparse or opaque layouts are refused."""
    if isinstance(batch, torch.Tensor):
        return _dense(batch, spec)
    if isinstance(batch, np.ndarray):
        if not batch.dtype.isnative:
            batch = batch.astype(batch.dtype.newbyteorder("="))  # same values, this machine's byte order
        if not batch.flags.writeable or any(s < 0 for s in batch.strides):
            batch = batch.copy()  # torch.from_numpy refuses negative strides, warns on read-only
        try:
            return torch.from_numpy(batch)
        except (TypeError, ValueError) as exc:
            raise InputError(f"input {spec.name!r}: NumPy dtype {batch.dtype} is not supported; "
                             f"expected {dtype_name(spec.dtype)}") from exc
    raise InputError(f"input {spec.name!r}: expected a torch.Tensor or numpy.ndarray of shape "
                     f"{format_shape(spec.shape)}, got {type(batch).__name__}")


def _dense(tensor: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    if tensor.is_meta:
        raise InputError(f"input {spec.name!r} is a meta tensor: it has a shape but no data to run on")
    if tensor.layout != torch.strided:
        hint = "; call .to_dense() first" if tensor.is_sparse or tensor.layout == torch._mkldnn else ""
        raise InputError(f"input {spec.name!r} has layout {tensor.layout}; fastcnn takes dense tensors{hint}")
    return tensor


def check_input(tensor: torch.Tensor, spec: InputSpec, sizes: dict[str, int], from_numpy: bool = False) -> None:
    """Raise :class:`InputError` unless ``tensor`` fits ``spec``.

    ``sizes`` maps each dynamic dimension's symbol to the size already seen for it (shared
    across a multi-input call, so two inputs cannot disagree on the batch size); it is filled in.
    ``from_numpy``: the user passed a NumPy array, so hints are written in NumPy.
    A dim of size 0 (an empty batch, N=0) is no error here: the torch and onnxruntime backends
    return outputs of the right shape with 0 elements; the triton backend refuses it at run.
    """
    got = tuple(tensor.shape)
    expected = f"expected shape {format_shape(spec.shape)} {dtype_name(spec.dtype)}"
    came = f"got {format_shape(got)} {dtype_name(tensor.dtype)}"
    if tensor.dtype != spec.dtype:
        cast = f".astype(np.{dtype_name(spec.dtype)})" if from_numpy else f".to(torch.{dtype_name(spec.dtype)})"
        raise InputError(f"input {spec.name!r}: {expected}, {came}: wrong dtype; convert it "
                         f"explicitly (e.g. {cast}), fastcnn never casts silently")
    if len(got) != len(spec.shape):
        raise InputError(f"input {spec.name!r}: {expected}, {came}: rank {len(got)} instead of {len(spec.shape)}")
    axes = _NCHW_AXES if len(got) == 4 else ("batch size",) + tuple(f"size of axis {i}" for i in range(1, len(got)))
    for axis, (want, size) in enumerate(zip(spec.shape, got)):
        if isinstance(want, str):
            want = sizes.setdefault(want, size)
        if size != want:
            raise InputError(f"input {spec.name!r}: {expected}, {came}: {axes[axis]} {size} instead of {want}"
                             + _layout_hint(spec.shape, got, from_numpy))


class SizeCheck:
    """Shape inference redone at the sizes one call binds, before anything runs.

    A graph with symbolic input dims is checked at load for every size at once, as far as the
    symbolic algebra can tell; what depends on the numbers (a window larger than a small image,
    a reflect pad wider than the input, two symbols that must broadcast) is checked here, once
    per distinct set of sizes (the last :attr:`KEEP` are remembered), so a backend never meets an
    input it would fail on with its own error. A fully static graph costs nothing.
    """

    KEEP = 256

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.symbolic = any(isinstance(d, str) for value in graph.inputs for d in value.shape)
        self._passed: OrderedDict[tuple[tuple[str, int], ...], None] = OrderedDict()

    def __call__(self, sizes: dict[str, int]) -> None:
        """Raise :class:`InputError` unless every node's shapes work out at ``sizes``."""
        if not self.symbolic:
            return
        key = tuple(sorted(sizes.items()))
        if key in self._passed:
            self._passed.move_to_end(key)
            return
        try:
            self.graph.specialize(**sizes)
        except IRError as exc:
            bound = ", ".join(f"{k}={v}" for k, v in key)
            raise InputError(f"the model cannot run on inputs of these sizes ({bound}): {exc}") from None
        self._passed[key] = None
        if len(self._passed) > self.KEEP:
            self._passed.popitem(last=False)


def _layout_hint(want: Shape, got: tuple[int, ...], from_numpy: bool) -> str:
    """A hint when a 4-D input looks channels-last (N, H, W, C) for a model that takes NCHW."""
    if len(got) != 4 or len(want) != 4 or not isinstance(want[1], int):
        return ""
    channels_last = got[3] == want[1] and all(not isinstance(w, int) or w == g
                                              for w, g in zip(want[2:], got[1:3]))
    if not channels_last:
        return ""
    fix = "x.transpose(0, 3, 1, 2)" if from_numpy else "x.permute(0, 3, 1, 2)"
    return f"; this looks like channels-last (N, H, W, C) data: the model takes (N, C, H, W), e.g. {fix}"
