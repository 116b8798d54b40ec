"""The reference executor: every IR node run by the matching torch op, in graph order.

It is the yardstick the other backends are measured against, so it is plain on purpose: the
op table (:data:`fastcnn.backends.torch_ops.TORCH_OPS`) follows ONNX semantics, constants
become tensors on the device once at build time, and each run walks a precomputed list of
steps over numbered slots, dropping every intermediate tensor right after its last use.

NaN and Inf follow PyTorch, not ONNX Runtime:

- ``max_pool`` and ``global_max_pool`` return NaN for every window that holds a NaN.
  ONNX Runtime's MaxPool compares in order, so a NaN shows only in some window positions
  (onnxruntime 1.32: only the second of a 2x2 window, the last of a GlobalMaxPool; pinned in
  tests/backends/test_nan.py); ``onnx.reference`` has yet
  another order. Neither is a rule one can state, so fastcnn follows PyTorch, where the NaN
  always shows: a NaN that vanishes in a pooling layer hides a broken input.
- ``relu`` and ``clip`` keep NaN as NaN (``relu(nan) = nan``), as ONNX Runtime does too.
- ``softmax`` makes a whole slice along its axis NaN when the slice holds a NaN, as ONNX
  Runtime does; Inf inputs give NaN there as well (``inf - inf``).
- ``avg_pool``, ``conv2d`` and the other arithmetic spread NaN and Inf as IEEE arithmetic does.

Results are produced under ``torch.inference_mode()``: they are inference tensors, which
autograd refuses and which cannot be updated in place outside inference mode; clone one to
change it. A result is never storage shared with an input or a constant (those are cloned).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fastcnn.backends.devices import check_torch_device
from fastcnn.backends.torch_ops import TORCH_OPS, OpFn
from fastcnn.errors import UnsupportedModelError
from fastcnn.ir import Graph, Value


@dataclass(frozen=True)
class _Step:
    """One node, with its inputs and outputs as slot numbers and the slots it is the last user of."""

    name: str
    fn: OpFn
    attrs: dict[str, Any]
    inputs: tuple[int | None, ...]
    outputs: tuple[int, ...]
    free: tuple[int, ...]


class TorchExecutor:
    """Runs an IR graph with torch ops on one device; built once, run many times."""

    def __init__(self, graph: Graph, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        self.graph = graph
        self.device = check_torch_device(device, "torch")
        self.dtype = dtype  # None: the graph's own dtypes
        _check_supported(graph)
        self._slots: dict[int, int] = {id(v): i for i, v in enumerate(graph.inputs)}
        self._template: list[Tensor | None] = [None] * len(graph.inputs)
        for value in graph.constants():
            self._slots[id(value)] = len(self._template)
            self._template.append(self._to_tensor(value.const))
        self._protected = {t.untyped_storage().data_ptr() for t in self._template if t is not None}
        for node in graph.nodes:
            for out in node.outputs:
                self._slots[id(out)] = len(self._template)
                self._template.append(None)
        self._outputs = [self._slots[id(v)] for v in graph.outputs]
        self._steps = self._plan()

    # -- building -------------------------------------------------------------------------
    def _to_tensor(self, array: np.ndarray) -> Tensor:
        """A constant as a tensor on the device, in the run dtype when it is a float.

        On the CPU in the graph's own dtype it shares memory with the IR's array (no second
        copy of VGG's half a gigabyte). The IR's arrays are read-only, which torch warns about
        because it cannot enforce it; nothing here writes to a constant, and results that
        would share a constant's storage are copied (:func:`_fresh`).
        """
        array = np.asarray(array, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
            tensor = torch.from_numpy(array)
        return self._cast(tensor.to(self.device))

    def _cast(self, tensor: Tensor) -> Tensor:
        if self.dtype is not None and tensor.is_floating_point() and tensor.dtype != self.dtype:
            return tensor.to(self.dtype)
        return tensor

    def _plan(self) -> list[_Step]:
        """The steps in graph order, each knowing which slots die after it."""
        last_use: dict[int, int] = {}
        for index, node in enumerate(self.graph.nodes):
            for value in node.inputs:
                if value is not None and not value.is_const:
                    last_use[self._slots[id(value)]] = index
        keep = set(self._outputs)
        dying: dict[int, list[int]] = {}
        for slot, index in last_use.items():
            if slot not in keep:
                dying.setdefault(index, []).append(slot)
        return [_Step(node.name, TORCH_OPS[node.op], dict(node.attrs),
                      tuple(None if v is None else self._slots[id(v)] for v in node.inputs),
                      tuple(self._slots[id(o)] for o in node.outputs),
                      tuple(dying.get(index, ())))
                for index, node in enumerate(self.graph.nodes)]

    # -- running --------------------------------------------------------------------------
    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        """Outputs in ``graph.outputs`` order for ``inputs`` in ``graph.inputs`` order."""
        env = list(self._template)
        for slot, tensor in enumerate(inputs):
            env[slot] = self._cast(tensor.to(self.device))
        protected = self._protected | {t.untyped_storage().data_ptr() for t in env[:len(inputs)]}
        with torch.inference_mode():
            for step in self._steps:
                args = [None if s is None else env[s] for s in step.inputs]
                result = step.fn(args, step.attrs)
                if len(step.outputs) == 1:
                    env[step.outputs[0]] = result
                else:
                    for slot, tensor in zip(step.outputs, result, strict=True):
                        env[slot] = tensor
                for slot in step.free:
                    env[slot] = None
            return [_fresh(env[slot], protected) for slot in self._outputs]

    def warmup(self) -> None:
        """Run once on zeros with batch 1, when every other input dim is known."""
        shapes = [_warmup_shape(v) for v in self.graph.inputs]
        if any(shape is None for shape in shapes):
            return
        self.run([torch.zeros(shape, dtype=_torch_dtype(v.dtype), device=self.device)
                  for shape, v in zip(shapes, self.graph.inputs)])


def _fresh(tensor: Tensor, protected: set[int]) -> Tensor:
    """``tensor``, or a copy when it shares storage with an input or a constant."""
    return tensor.clone() if tensor.untyped_storage().data_ptr() in protected else tensor


def _check_supported(graph: Graph) -> None:
    missing = [(n.op, n.name, "no torch implementation") for n in graph.nodes if n.op not in TORCH_OPS]
    if missing:
        ops = sorted({op for op, _, _ in missing})
        raise UnsupportedModelError(f"the torch backend cannot run op(s) {', '.join(ops)}", missing)


def _warmup_shape(value: Value) -> list[int] | None:
    """The input's shape with a symbolic batch (dim 0) set to 1; None if another dim is symbolic."""
    shape = [1 if i == 0 and isinstance(d, str) else d for i, d in enumerate(value.shape)]
    return None if any(isinstance(d, str) for d in shape) else shape


def _torch_dtype(name: str) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=name)).dtype
