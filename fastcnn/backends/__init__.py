"""Where the IR meets something that computes: a plain dict of executor factories.

``BACKENDS[name](graph, device, dtype)`` builds an executor with ``run(inputs) -> outputs``
and ``warmup()``. Asking for a backend or device that is not here raises
:class:`~fastcnn.errors.BackendUnavailableError` naming what was asked and what is available;
there is no silent fallback.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import Tensor

from fastcnn.backends.defaults import DEFAULT_BACKEND, default_backend
from fastcnn.backends.devices import (
    as_device,
    available_devices,
    torch_device_problem,
    triton_problem,
)
from fastcnn.backends.onnxruntime_backend import OrtExecutor, provider_problem
from fastcnn.backends.torch_backend import TorchExecutor
from fastcnn.errors import BackendUnavailableError, InputError
from fastcnn.ir import Graph


class Executor(Protocol):
    def run(self, inputs: list[Tensor]) -> list[Tensor]: ...

    def warmup(self) -> None: ...


def _openvino_executor(graph: Graph, device: torch.device, dtype: torch.dtype | None) -> Executor:
    """Imported on use: importing OpenVINO takes time, and a platform may lack its wheel."""
    from fastcnn.backends.openvino_backend import OpenVinoExecutor

    return OpenVinoExecutor(graph, device, dtype)


def _openvino_problem(device: torch.device) -> str | None:
    from fastcnn.backends.openvino_backend import openvino_problem

    return openvino_problem(device)


def _triton_executor(graph: Graph, device: torch.device, dtype: torch.dtype | None, **options) -> Executor:
    """Imported on use: the Triton backend needs triton, which only some platforms have."""
    from fastcnn.backends.triton_backend import TritonExecutor

    return TritonExecutor(graph, device, dtype, **options)


BACKENDS: dict[str, Callable[[Graph, torch.device, torch.dtype | None], Executor]] = {
    "torch": TorchExecutor,
    "onnxruntime": OrtExecutor,
    "openvino": _openvino_executor,
    "triton": _triton_executor,
}

# Options beyond (graph, device, dtype) that a backend takes. max_batch: the largest batch bucket
# (CUDA graph) the Triton backend prepares; the others run any batch as it comes. allow_tf32:
# float32 convolutions and GEMMs on TF32 tensor cores (about 1e-3 relative error), asked for
# with dtype="tf32".
BACKEND_OPTIONS: dict[str, frozenset[str]] = {
    "torch": frozenset(),
    "onnxruntime": frozenset(),
    "openvino": frozenset(),
    "triton": frozenset({"max_batch", "allow_tf32"}),
}

# Beyond the device torch itself must reach, what each backend needs (None: nothing more).
_EXTRA_CHECKS: dict[str, Callable[[torch.device], str | None]] = {
    "torch": lambda device: None,
    "onnxruntime": provider_problem,
    "openvino": _openvino_problem,
    "triton": triton_problem,
}


def choose_backend(backend: str | None, device: torch.device | str | None, dtype: torch.dtype | None = None,
                   model: str | None = None) -> str:
    """``backend``, or the measured default for ``device``, ``dtype`` and zoo ``model`` (see
    :mod:`fastcnn.backends.defaults`), checked to run there before any slow work."""
    device = as_device(device)
    if backend is None:
        backend = default_backend(device, dtype, model, lambda name: available(name, device))
    reason = unavailable_reason(backend, device)
    if reason is not None:
        raise BackendUnavailableError(f"backend {backend!r} on {device} is not available: {reason}. "
                                      f"Available here: {describe_available()}")
    return backend


def unavailable_reason(name: str, device: torch.device | str | None) -> str | None:
    """Why backend ``name`` cannot run on ``device`` here, or ``None`` when it can."""
    if name not in BACKENDS:
        return f"unknown backend {name!r}; backends: {', '.join(BACKENDS)}"
    device = as_device(device)
    return torch_device_problem(device) or _EXTRA_CHECKS[name](device)


def available(name: str, device: torch.device | str | None) -> bool:
    """Whether backend ``name`` can run on ``device`` on this machine."""
    return unavailable_reason(name, device) is None


def create_executor(name: str, graph: Graph, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None, **options) -> Executor:
    """Build backend ``name``'s executor for ``graph``, or raise saying what is available.
    ``options`` (see :data:`BACKEND_OPTIONS`) left at ``None`` are the backend's defaults."""
    reason = unavailable_reason(name, device)
    if reason is not None:
        raise BackendUnavailableError(f"backend {name!r} on {as_device(device)} is not available: "
                                      f"{reason}. Available here: {describe_available()}")
    given = {key: value for key, value in options.items() if value is not None}
    foreign = sorted(set(given) - BACKEND_OPTIONS[name])
    if foreign:
        raise InputError(f"backend {name!r} takes no option {', '.join(foreign)}")
    return BACKENDS[name](graph, as_device(device), dtype, **given)


def describe_available() -> str:
    """Each usable device with the backends that run on it, e.g. ``cpu (torch, onnxruntime)``."""
    usable = {d: [b for b in BACKENDS if available(b, d)] for d in available_devices()}
    return "; ".join(f"{d} ({', '.join(b) or 'no backend'})" for d, b in usable.items())


__all__ = ["BACKENDS", "BACKEND_OPTIONS", "DEFAULT_BACKEND", "Executor", "OrtExecutor", "TorchExecutor", "available",
           "choose_backend", "create_executor", "describe_available", "unavailable_reason"]
