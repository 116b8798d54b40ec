"""Which torch devices a backend may be asked for, checked before anything is built.

A device that was asked for and is not here is an error (:class:`BackendUnavailableError`),
never a silent move to the CPU: a user who asked for ``cuda`` and got CPU timings would draw
the wrong conclusions.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import torch

from fastcnn.errors import BackendUnavailableError


def default_device() -> torch.device:
    """The device ``None`` means everywhere in fastcnn: CUDA when torch sees a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_device(device: torch.device | str | None) -> torch.device:
    """``None`` means :func:`default_device`; strings such as ``"cuda:0"`` are accepted too."""
    return default_device() if device is None else torch.device(device)


def cuda_index(device: torch.device) -> int:
    """The CUDA ordinal of ``device`` (``cuda`` alone means the current one)."""
    if device.index is not None:
        return device.index
    return torch.cuda.current_device() if torch.cuda.is_available() else 0


def torch_device_problem(device: torch.device) -> str | None:
    """Why torch cannot run on ``device`` here, or ``None`` when it can."""
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        return f"device type {device.type!r} is not supported (use 'cpu' or 'cuda')"
    if not torch.cuda.is_available():
        return "CUDA was asked for but torch reports no usable CUDA device on this machine"
    count = torch.cuda.device_count()
    if cuda_index(device) >= count:
        return f"{device} was asked for but this machine has {count} CUDA device(s)"
    return None


def check_torch_device(device: torch.device | str | None, backend: str,
                       backend_problem: Callable[[torch.device], str | None] = lambda device: None) -> torch.device:
    """Return ``device`` normalised, or raise naming the backend and what is available: torch
    must reach the device, and ``backend_problem`` (what the backend itself needs there, such as
    its runtime's provider) must find nothing wrong."""
    device = as_device(device)
    problem = torch_device_problem(device)
    if problem is not None:
        raise BackendUnavailableError(f"backend {backend!r} on {device}: {problem}; "
                                      f"available devices: {', '.join(available_devices())}")
    problem = backend_problem(device)
    if problem is not None:
        raise BackendUnavailableError(f"backend {backend!r} on {device}: {problem}")
    return device


def available_devices() -> list[str]:
    """Devices torch can use here, for error messages."""
    cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["cpu", *cuda]


def triton_problem(device: torch.device) -> str | None:
    """Why the Triton backend cannot run on ``device`` here, or None when it can. The CPU
    counts only under Triton's interpreter (``TRITON_INTERPRET=1``), which the tests use."""
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"Triton is not installed ({exc}); pip install triton"
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if device.type == "cpu" and not interpreted:
        return ("the Triton backend runs on CUDA; on the CPU only under Triton's interpreter "
                "(TRITON_INTERPRET=1, for tests)")
    if device.type == "cuda" and interpreted:
        return "TRITON_INTERPRET=1 runs Triton kernels on the CPU only; unset it to run on CUDA"
    return None
