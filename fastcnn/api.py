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

from fastcnn.backends import choose_backend
from fastcnn.errors import InputError, UnknownModelError
from fastcnn.export import export_onnx
from fastcnn.frontend import import_onnx, read_onnx
from fastcnn.ir import Graph
from fastcnn.preprocess import preprocessing_for
from fastcnn.runtime import Engine, resolve_device
from fastcnn.runtime.engine import check_pass_options
from fastcnn.runtime.spec import parse_precision
from fastcnn.zoo import ModelInfo, create_model, model_info

Source = str | os.PathLike | bytes | onnx.ModelProto | nn.Module


def load(source: Source, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
         backend: str | None = None, example_input: torch.Tensor | None = None,
         pipeline: str | None = None, disable_passes: Sequence[str] = (), max_batch: int | None = None,
         weights: str | os.PathLike | None = None) -> Engine:
    """Build an :class:`Engine` for ``source``: a zoo name, an ``.onnx`` path, or an ``nn.Module``.

    Args:
        source: a zoo model name (``fastcnn.list_models()``; built with random weights and
            exported), a path to an ONNX file (or its bytes or ``ModelProto``), or a
            ``torch.nn.Module``, exported first at ``example_input``'s shape and dtype.
        device: ``None`` picks CUDA when torch sees a GPU, else the CPU.
        dtype: compute dtype, a torch dtype or its name (``"float16"``, ``"bf16"``...); ``None``
            keeps the model's (float32); ``"tf32"``: float32 on TF32 tensor cores (Triton backend).
        backend: ``"triton"``, ``"torch"``, ``"onnxruntime"`` or ``"openvino"``; ``None`` picks
            the measured default for the device, the dtype and (on the CPU) the zoo model:
            :mod:`fastcnn.backends.defaults`.
        example_input: required for an ``nn.Module``; ignored otherwise.
        pipeline: the passes to run (``fastcnn.passes.PIPELINES``); ``None`` is the backend's
            own, ``"none"`` runs the graph as imported.
        disable_passes: passes to skip, e.g. ``["fuse_concat"]``, to bisect a wrong result
            to one pass (the ``FASTCNN_DISABLE_PASSES`` environment variable does the same).
        max_batch: the Triton backend's largest batch bucket (CUDA graph); ``None`` is 64.
        weights: for a zoo name, what ``create_model(name, weights=...)`` takes: a state-dict
            file, or a known weight name fetched once into the torch hub cache; ``None`` builds
            the model with random weights. Other sources carry their own weights.
    The engine's :meth:`~fastcnn.runtime.Engine.preprocess` turns images into a batch: a zoo
    model's own resize, crop and normalisation, or for another source its fixed input height and
    width with ImageNet's mean and std (refused when they are symbolic); see
    :mod:`fastcnn.preprocess`.

    Raises:
        BackendUnavailableError: the device or backend asked for is not available (no fallback).
        InvalidModelError, UnsupportedModelError: the ONNX file is malformed or uses what
            fastcnn cannot run; both are raised here, never at the first ``infer``.
    """
    device = resolve_device(device)
    precision, _ = parse_precision(dtype)  # a bad dtype is refused before the slow work
    zoo = _zoo_info(source)
    backend = choose_backend(backend, device, precision, zoo.name if zoo else None)
    check_pass_options(pipeline, backend, disable_passes)
    graph = import_source(source, example_input, weights)
    engine = Engine(graph, backend=backend, device=device, dtype=dtype, pipeline=pipeline,
                    disable_passes=disable_passes, max_batch=max_batch)
    if len(engine.input_specs) == 1:  # images make one input; the outputs may be several
        engine.preprocessing = preprocessing_for(zoo, engine.input_specs[0].shape)
    return engine


def import_source(source: Source, example_input: torch.Tensor | None = None,
                  weights: str | os.PathLike | None = None) -> Graph:
    """The IR graph of any source ``load`` accepts, named after the model (the zoo name, the
    module's class, or the file's stem when the file's own graph name is an exporter's default);
    ``weights`` only with a zoo name."""
    if weights is not None and not _is_name(source):
        raise InputError(f"weights= is for zoo model names (see fastcnn.list_models()); got "
                         f"{_describe(source)}, which carries its own weights (load a state dict "
                         "into an nn.Module yourself before passing it)")
    if isinstance(source, nn.Module):
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1:
            raise InputError("load(nn.Module) needs example_input=, a torch tensor such as "
                             "torch.randn(1, 3, 224, 224), to export the module at that shape")
        graph = _import_module(source, tuple(example_input.shape[1:]), example_input.dtype)
        return _named(graph, type(source).__name__)
    if _is_name(source):
        name = model_info(source).name  # raises UnknownModelError with close names
        model = name if weights is None else create_model(name, weights=weights)
        return _named(_import_module(model, model_info(name).input_size, torch.float32), name)
    if not isinstance(source, (str, os.PathLike, bytes, onnx.ModelProto)):
        raise InputError("fastcnn.load takes a zoo model name, a path to an .onnx file, the file's bytes, an "
                         f"onnx.ModelProto or a torch.nn.Module; got {type(source).__name__}")
    graph = import_onnx(read_onnx(source))
    if isinstance(source, (str, os.PathLike)):
        graph = _named(graph, Path(source).stem, only_if_generic=True)
    return graph


# Graph names that say nothing about the model: torch.onnx's and other exporters' defaults.
_GENERIC_NAMES = ("", "main_graph", "torch_jit", "torch-jit-export", "graph", "model")


def _named(graph: Graph, name: str, only_if_generic: bool = False) -> Graph:
    if not only_if_generic or graph.name in _GENERIC_NAMES:
        graph.name = name
    return graph


def _import_module(model: nn.Module | str, input_size: tuple[int, ...], dtype: torch.dtype) -> Graph:
    """Export to a temporary file (deleted once read), then import."""
    with tempfile.TemporaryDirectory(prefix="fastcnn-") as folder:
        path = export_onnx(model, Path(folder) / "model.onnx", input_size=input_size, dtype=dtype)
        proto = read_onnx(path)
    return import_onnx(proto)


def _zoo_info(source: Source) -> ModelInfo | None:
    """The zoo facts when ``source`` names a zoo model, else None (an unknown name is refused
    later, by ``import_source``, with close names)."""
    if not _is_name(source):
        return None
    try:
        return model_info(source)
    except UnknownModelError:
        return None


def _is_name(source: Source) -> bool:
    return isinstance(source, str) and not _looks_like_path(source)


def _describe(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"the file {str(source)!r}"
    return f"a {type(source).__name__}"


def _looks_like_path(text: str) -> bool:
    return text.endswith(".onnx") or os.sep in text or "/" in text or os.path.exists(text)
