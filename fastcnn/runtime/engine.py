"""The :class:`Engine`: a graph bound to a backend and a device, built once and run many times.

Building it does the slow work: the passes rewrite a clone of the imported graph (the
imported graph itself is never changed, so engines built from one graph stay independent),
then the backend prepares its executor (a torch step list, an ONNX Runtime session).
``infer`` then only checks the input's shape and dtype, moves it to the device and runs
the executor.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx
import torch

from fastcnn.backends import choose_backend, create_executor
from fastcnn.backends.onnx_files import needs_external_data, save_model
from fastcnn.backends.onnx_writer import graph_to_onnx
from fastcnn.errors import InputError, UnsupportedModelError
from fastcnn.ir import Graph
from fastcnn.passes import PIPELINES, PassError, check_pass_names, disabled_from_env, run_pipeline
from fastcnn.runtime.device import resolve_device
from fastcnn.runtime.plan import Plan, make_plan
from fastcnn.runtime.spec import InputSpec, SizeCheck, as_tensor, check_input, dtype_name, parse_precision



class Engine:
    """Runs ``graph`` with ``backend`` on ``device``.

    Args:
        graph: a verified fastcnn IR graph (``fastcnn.frontend.import_onnx`` makes one).
        backend: a key of ``fastcnn.backends.BACKENDS`` (``"triton"``, ``"torch"``, ``"onnxruntime"``);
            ``None`` picks the measured default for the device and dtype (``load`` also knows
            the zoo model, which on the CPU may choose another: :mod:`fastcnn.backends.defaults`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA when present.
        dtype: the floating-point dtype to compute in (a torch dtype or its name); ``None`` keeps
            the graph's. ``"tf32"``: float32 on TF32 tensor cores (Triton backend, about 1e-3).
        pipeline: which passes run (a key of ``fastcnn.passes.PIPELINES``); ``None`` picks the
            backend's own. ``"none"`` runs the graph as imported.
        disable_passes: pass names to skip, on top of ``FASTCNN_DISABLE_PASSES``.
        max_batch: the Triton backend's largest batch bucket (one CUDA graph per power of two
            up to it, all in one arena sized for it; a larger batch runs in parts); ``None``
            is its default, 64. Other backends take no such option.
    Raises:
        BackendUnavailableError: the device or backend asked for is not available here.
        InputError: an unknown pipeline or pass name, or an option the backend does not take.
    """

    def __init__(self, graph: Graph, backend: str | None = None, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None, pipeline: str | None = None,
                 disable_passes: Sequence[str] = (), max_batch: int | None = None) -> None:
        self.source_graph = graph
        self.device = resolve_device(device)
        self.dtype, tf32 = parse_precision(dtype)
        self.backend = backend = choose_backend(backend, self.device, self.dtype)
        dtype = self.dtype
        self.pipeline, disabled = check_pass_options(pipeline, backend, disable_passes)
        self.graph = _rewrite(graph, self.pipeline, disabled)
        self.input_specs = tuple(InputSpec.of(value, dtype) for value in self.graph.inputs)
        self._check_sizes = SizeCheck(self.graph)
        self._executor = create_executor(backend, self.graph, self.device, dtype, max_batch=max_batch,
                                         allow_tf32=tf32 or None)
        # Decoded images -> a batch; fastcnn.load sets it (fastcnn.preprocess, above the runtime).
        self.preprocessing: Callable[[Any], torch.Tensor] | None = None

    @property
    def input_spec(self) -> InputSpec:
        """The spec of the graph's only input (see :attr:`input_specs` for several)."""
        self._require_single("input_spec")
        return self.input_specs[0]

    def infer(self, batch: torch.Tensor | Any) -> torch.Tensor:
        """Run one batch (torch tensor or NumPy array, e.g. (N, C, H, W)); returns the output tensor."""
        if len(self.input_specs) != 1 or len(self.graph.outputs) != 1:
            self._require_single("infer")
        spec = self.input_specs[0]
        tensor = as_tensor(batch, spec)
        sizes: dict[str, int] = {}
        check_input(tensor, spec, sizes, from_numpy=isinstance(batch, np.ndarray))
        self._check_sizes(sizes)
        return self._executor.run([tensor.to(self.device).contiguous()])[0]

    __call__ = infer

    def preprocess(self, images: Any) -> torch.Tensor:
        """Decoded images (PIL images or uint8 H x W x C arrays, one or a list) as a batch for
        :meth:`infer`: resized, centre-cropped and normalised as the model expects
        (:class:`fastcnn.preprocess.Preprocessing`), in the engine's input dtype, on the CPU."""
        if self.preprocessing is None:
            raise InputError("this engine has no preprocessing: it was built as Engine(graph), not by "
                             "fastcnn.load; set engine.preprocessing = fastcnn.preprocess.Preprocessing(...)")
        self._require_single("preprocess")
        return self.preprocessing(images).to(self.input_spec.dtype)

    def run(self, inputs: Sequence[torch.Tensor | Any]) -> list[torch.Tensor]:
        """Run a graph with any number of inputs (in ``graph.inputs`` order); returns every output."""
        if len(inputs) != len(self.input_specs):
            names = [spec.name for spec in self.input_specs]
            raise InputError(f"expected {len(names)} input(s) {names}, got {len(inputs)}")
        sizes: dict[str, int] = {}
        tensors = []
        for batch, spec in zip(inputs, self.input_specs):
            tensor = as_tensor(batch, spec)
            check_input(tensor, spec, sizes, from_numpy=isinstance(batch, np.ndarray))
            tensors.append(tensor.to(self.device).contiguous())
        self._check_sizes(sizes)
        return list(self._executor.run(tensors))

    def warmup(self, autotune: bool | None = None) -> None:
        """Do the backend's one-time work (compilation, allocation, autotuning) now.

        ``autotune``: measure each convolution's and GEMM's candidate launches (tiles, split-K,
        torch's cuDNN convolution) and keep the fastest that computes the same result, cached on
        disk under ``$FASTCNN_CACHE_DIR/autotune`` so that a second process measures nothing;
        ``None`` follows ``FASTCNN_AUTOTUNE=1``; ``False``: the rules choose. Only the Triton
        backend on CUDA tunes: ``True`` is refused (InputError) by backends with nothing to tune
        and under Triton's interpreter. :attr:`kernel_choices` shows what was chosen and why.
        """
        if autotune is not None and getattr(self._executor, "tunes", False):
            self._executor.warmup(autotune=autotune)
        elif autotune:
            raise InputError(f"backend {self.backend!r} has no kernels to autotune; autotune=True is for 'triton'")
        else:
            self._executor.warmup()

    @property
    def kernel_choices(self) -> list:
        """Per convolution and GEMM, which launch runs and why (``rule``, ``tuned: 0.12 ms vs rule
        0.15 ms``, ``cudnn: ...``), for each batch bucket prepared; empty for backends that
        choose no kernels. Each row has ``to_dict()``; ``str(row)`` is a line of `fastcnn plan`."""
        choices = getattr(self._executor, "kernel_choices", None)
        return list(choices()) if choices is not None else []

    def save_onnx(self, path: str | os.PathLike) -> Path:
        """Write the graph as fastcnn has it as a plain, checked ONNX file, for deployment elsewhere
        (weights over 2 GiB go to ``<name>.data`` beside it). InputError if ``path`` cannot be written."""
        path = save_model(graph_to_onnx(self.graph), path, external=needs_external_data(self.graph))
        onnx.checker.check_model(str(path), full_check=True)
        return path

    @property
    def plan(self) -> "Plan":
        """The launches this engine's graph makes for a batch of one, with the memory plan
        (:func:`fastcnn.runtime.plan.make_plan` gives other batch sizes). A backend with a plan
        of its own gives that: the Triton backend's shows each node it runs as a torch op as
        ``torch:<op>``, and its split-K workspace."""
        own = getattr(self._executor, "plan", None)
        return own(1) if own is not None else make_plan(self.graph, batch=1)

    def _require_single(self, what: str) -> None:
        if len(self.input_specs) != 1 or len(self.graph.outputs) != 1:
            raise InputError(f"engine.{what} needs a graph with one input and one output; this one has "
                             f"{len(self.input_specs)} and {len(self.graph.outputs)}: use engine.run([...])")

    def __repr__(self) -> str:
        specs = ", ".join(repr(spec) for spec in self.input_specs)
        dtype = f", dtype={dtype_name(self.dtype)}" if self.dtype is not None else ""
        return f"Engine({self.graph.name!r}, backend={self.backend!r}, device='{self.device}'{dtype}, inputs=[{specs}])"


def _pipeline_name(pipeline: str | None, backend: str) -> str:
    if pipeline is None:  # an unknown backend is refused when its executor is made
        return backend if backend in PIPELINES else "none"
    name = pipeline
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; pipelines: {', '.join(PIPELINES)}")
    return name


def check_pass_options(pipeline: str | None, backend: str, disable_passes: Sequence[str]) -> list[str]:
    """The pipeline's name and the passes to skip, or InputError; cheap, so ``load`` calls it
    before any slow work."""
    try:
        return [_pipeline_name(pipeline, backend),
                check_pass_names([*disable_passes, *disabled_from_env()])]
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _rewrite(graph: Graph, pipeline: str, disabled: list[str]) -> Graph:
    """The passes of ``pipeline`` run on a clone of ``graph``."""
    rewritten = graph.clone()
    try:
        run_pipeline(rewritten, pipeline, disabled)
    except PassError as exc:
        raise UnsupportedModelError(f"{exc}. This is a bug in fastcnn; load(..., disable_passes=[{exc.name!r}]) "
                                    "runs the model without that pass") from exc
    return rewritten
