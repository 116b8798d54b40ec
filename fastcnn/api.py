"""``fastcnn.load``: the one function that wires export, import and the runtime together.

    zoo name ---export_onnx---> .onnx ---read_onnx---> ModelProto ---import_onnx---> IR ---> Engine
    nn.Module --(example_input)--^          ^
    .onnx path -----------------------------'
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import onnx
import torch
from torch import nn

from fastcnn.backends import describe_available, unavailable_reason
from fastcnn.errors import BackendUnavailableError, InputError
from fastcnn.export import export_onnx
from fastcnn.frontend import import_onnx, read_onnx
from fastcnn.ir import Graph
from fastcnn.runtime import Engine, resolve_device
from fastcnn.runtime.engine import check_pass_options
from fastcnn.zoo import list_models, model_info

# The backend ``load`` picks when none is asked for, by device type.
# CPU: ONNX Runtime. bench/test_latency.py on the 2-core development machine (2026-11-23, batch 1
# and 8, float32; bench/results/2026-11-23-cpu-2core.md) measured it 1.5x to 3.1x faster (median)
# than the torch backend on every model tried (resnet18, googlenet, squeezenet1_1, densenet121);
# the torch backend ran within 10% of PyTorch eager. CUDA: the torch backend until the Triton
# backend exists.
DEFAULT_BACKEND = {"cpu": "onnxruntime", "cuda": "torch"}

Source = str | os.PathLike | bytes | onnx.ModelProto | nn.Module


def load(source: Source, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
         backend: str | None = None, example_input: torch.Tensor | None = None,
         pipeline: str | None = None, disable_passes: Sequence[str] = (), max_batch: int | None = None) -> Engine:
    """Build an :class:`Engine` for ``source``: a zoo name, an ``.onnx`` path, or an ``nn.Module``.

    Args:
        source: a zoo model name (``fastcnn.list_models()``; built with random weights and
            exported), a path to an ONNX file (or its bytes or ``ModelProto``), or a
            ``torch.nn.Module``, exported first at ``example_input``'s shape and dtype.
        device: ``None`` picks CUDA when torch sees a GPU, else the CPU.
        dtype: compute dtype; ``None`` keeps the model's (float32).
        backend: ``"torch"`` or ``"onnxruntime"``; ``None`` picks :data:`DEFAULT_BACKEND`.
        example_input: required for an ``nn.Module``; ignored otherwise.
        pipeline: the passes to run (``fastcnn.passes.PIPELINES``); ``None`` is the backend's
            own, ``"none"`` runs the graph as imported.
        disable_passes: passes to skip, e.g. ``["fuse_concat"]``, to bisect a wrong result
            to one pass (the ``FASTCNN_DISABLE_PASSES`` environment variable does the same).
        max_batch: the Triton backend's largest batch bucket (CUDA graph); ``None`` is 64.
    Raises:
        BackendUnavailableError: the device or backend asked for is not available (no fallback).
        InvalidModelError, UnsupportedModelError: the ONNX file is malformed or uses what
            fastcnn cannot run; both are raised here, never at the first ``infer``.
    """
    device = resolve_device(device)
    backend = choose_backend(backend, device)
    check_pass_options(pipeline, backend, disable_passes)
    graph = import_source(source, example_input)
    return Engine(graph, backend=backend, device=device, dtype=dtype, pipeline=pipeline,
                  disable_passes=disable_passes, max_batch=max_batch)


def choose_backend(backend: str | None, device: torch.device) -> str:
    """``backend`` or the default for ``device``'s type, checked to run there before any slow work."""
    backend = DEFAULT_BACKEND[device.type] if backend is None else backend
    reason = unavailable_reason(backend, device)
    if reason is not None:
        raise BackendUnavailableError(f"backend {backend!r} on {device} is not available: {reason}. "
                                      f"Available here: {describe_available()}")
    return backend


def import_source(source: Source, example_input: torch.Tensor | None = None) -> Graph:
    """The IR graph of any source ``load`` accepts."""
    if isinstance(source, nn.Module):
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1:
            raise InputError("load(nn.Module) needs example_input=, a torch tensor such as "
                             "torch.randn(1, 3, 224, 224), to export the module at that shape")
        return _import_module(source, tuple(example_input.shape[1:]), example_input.dtype)
    if isinstance(source, str) and source in list_models():
        return _import_module(source, model_info(source).input_size, torch.float32)
    if isinstance(source, str) and not _looks_like_path(source):
        model_info(source)  # raises UnknownModelError with close names
    return import_onnx(read_onnx(source))


def _import_module(model: nn.Module | str, input_size: tuple[int, ...], dtype: torch.dtype) -> Graph:
    """Export to a temporary file (deleted once read), then import."""
    with tempfile.TemporaryDirectory(prefix="fastcnn-") as folder:
        path = export_onnx(model, Path(folder) / "model.onnx", input_size=input_size, dtype=dtype)
        proto = read_onnx(path)
    return import_onnx(proto)


def _looks_like_path(text: str) -> bool:
    return text.endswith(".onnx") or os.sep in text or "/" in text or os.path.exists(text)
