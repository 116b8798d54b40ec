"""Turning a user's device request into a ``torch.device``, refusing ones that are not here."""
from __future__ import annotations

import torch

from fastcnn.backends.devices import available_devices, default_device, torch_device_problem
from fastcnn.errors import BackendUnavailableError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` picks :func:`default_device`.

    A device asked for explicitly that is not available raises
    :class:`BackendUnavailableError`: never a silent fallback to the CPU.
    """
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise BackendUnavailableError(f"unknown device {device!r}: fastcnn runs on 'cpu', 'cuda' or 'cuda:N'; "
                                      f"available here: {', '.join(available_devices())}") from None
    problem = torch_device_problem(device)
    if problem is not None:
        raise BackendUnavailableError(f"device '{device}': {problem}; available: {', '.join(available_devices())}")
    return device
