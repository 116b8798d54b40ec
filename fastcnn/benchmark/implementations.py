"""Everything a user could run a zoo model with, as one dict: name -> how to build a runner.

Every implementation gets the same ``nn.Module`` (one seeded set of weights) and returns a
``runner(batch) -> output`` that the suite times. One that cannot run here (a package not
installed, a device it does not support, a dtype it does not compute in) raises
:class:`Absent` with the reason; the suite reports it as absent, never as a number.

Peers (what a user would otherwise pick): PyTorch eager (NCHW and channels_last),
``torch.compile`` (default; max-autotune on a GPU), ONNX Runtime and OpenVINO on the exported
file. fastcnn: each backend through ``fastcnn.load`` (``-unfused``: without its passes).
"""
from __future__ import annotations

import copy
import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fastcnn.tables import registrar

Runner = Callable[[Tensor], Tensor]


class Absent(Exception):
    """This implementation cannot run this case here; the message says why."""


@dataclass(frozen=True)
class Case:
    """One measurement's setting: the zoo model, the device, the dtype, the batch's shape."""

    model: str
    device: str
    dtype: torch.dtype
    batch_shape: tuple[int, ...]


@dataclass(frozen=True)
class Implementation:
    name: str
    build: Callable[[nn.Module, Case], Runner]
    peer: bool  # a competitor (True) or fastcnn itself (False)
    computes_in: str | None = None  # a lower precision than asked, said out loud ("bfloat16")


IMPLEMENTATIONS: dict[str, Implementation] = {}
register = registrar(IMPLEMENTATIONS, "benchmark implementation",
                     build=lambda name, fn, peer, computes_in=None: Implementation(name, fn, peer, computes_in))


def _inference(forward: Callable[[Tensor], Tensor]) -> Runner:
    def run(batch: Tensor) -> Tensor:
        with torch.inference_mode():
            return forward(batch)
    return run


def _exported(module: nn.Module, case: Case, folder: Path) -> Path:
    """The model as an ONNX file (float32, dynamic batch), as a user of ORT or OpenVINO has it."""
    from fastcnn.export import export_onnx

    if case.dtype != torch.float32:
        raise Absent(f"exported models are float32; {_name(case.dtype)} is not measured through ONNX")
    return export_onnx(module, folder / f"{case.model}.onnx", input_size=case.batch_shape[1:])


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _require(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise Absent(f"{package} is not installed")


# -- PyTorch ---------------------------------------------------------------------------------
@register("pytorch-eager", peer=True)
def _eager(module: nn.Module, case: Case) -> Runner:
    return _inference(module.to(case.device, case.dtype))


@register("pytorch-eager-channels-last", peer=True)
def _eager_channels_last(module: nn.Module, case: Case) -> Runner:
    model = module.to(case.device, case.dtype).to(memory_format=torch.channels_last)
    return _inference(lambda x: model(x.contiguous(memory_format=torch.channels_last)))


@register("pytorch-cudagraph", peer=True)
def _cuda_graph(module: nn.Module, case: Case) -> Runner:
    """Eager channels_last captured in a CUDA graph per batch shape (captured on first use): the
    copy in, replay, copy out that fastcnn's Triton engine does, so launch overhead is no longer
    what separates them."""
    if case.device != "cuda":
        raise Absent("CUDA graphs need a CUDA device")
    model = module.to(case.device, case.dtype).to(memory_format=torch.channels_last)
    captured: dict[tuple[int, ...], tuple] = {}

    def capture(batch: Tensor) -> tuple:
        static = batch.clone().contiguous(memory_format=torch.channels_last)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(2):
                model(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            out = model(static)
        return static, graph, out

    def run(batch: Tensor) -> Tensor:
        if tuple(batch.shape) not in captured:
            captured[tuple(batch.shape)] = capture(batch)
        static, graph, out = captured[tuple(batch.shape)]
        static.copy_(batch)
        graph.replay()
        return out.clone()
    return run


def _compiled(mode: str | None) -> Callable[[nn.Module, Case], Runner]:
    def build(module: nn.Module, case: Case) -> Runner:
        if mode == "max-autotune" and case.device != "cuda":
            raise Absent("max-autotune is measured on a GPU only (on the CPU it is the default's code)")
        compiled = torch.compile(module.to(case.device, case.dtype), mode=mode, dynamic=False)
        return _inference(compiled)
    return build


register("torch-compile", peer=True)(_compiled(None))
register("torch-compile-max-autotune", peer=True)(_compiled("max-autotune"))


# -- ONNX Runtime and OpenVINO on the exported file -------------------------------------------
@register("onnxruntime", peer=True)
def _onnxruntime(module: nn.Module, case: Case) -> Runner:
    _require("onnxruntime")
    import onnxruntime as ort

    provider = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}[case.device]
    if provider not in ort.get_available_providers():
        raise Absent(f"this onnxruntime has no {provider} (install onnxruntime-gpu)")
    with tempfile.TemporaryDirectory() as folder:
        session = ort.InferenceSession(str(_exported(module, case, Path(folder))), providers=[provider])
    name = session.get_inputs()[0].name
    return lambda batch: torch.from_numpy(session.run(None, {name: batch.cpu().numpy()})[0]).to(case.device)


def _openvino(precision: str) -> Callable[[nn.Module, Case], Runner]:
    """OpenVINO's CPU plugin; ``precision`` is its INFERENCE_PRECISION_HINT ("f32" computes in
    float32; its default on CPUs with bfloat16 units computes in bfloat16)."""
    def build(module: nn.Module, case: Case) -> Runner:
        _require("openvino")
        if case.device != "cpu":
            raise Absent("OpenVINO is measured on the CPU, where its users run it")
        import openvino as ov

        core = ov.Core()
        with tempfile.TemporaryDirectory() as folder:
            model = core.read_model(str(_exported(module, case, Path(folder))))
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
        request = compiled.create_infer_request()

        def run(batch: Tensor) -> Tensor:
            result = request.infer([np.ascontiguousarray(batch.numpy())])
            return torch.from_numpy(np.array(result[compiled.output(0)]))
        return run
    return build


register("openvino", peer=True)(_openvino("f32"))
register("openvino-bf16", peer=True, computes_in="bfloat16")(_openvino("bf16"))


# -- fastcnn ----------------------------------------------------------------------------------
def _fastcnn(backend: str, pipeline: str | None = None,
             environment: dict[str, str] | None = None) -> Callable[[nn.Module, Case], Runner]:
    """fastcnn's engine on ``backend``; ``environment``: variables set while the engine is built
    (read by the executor then), such as ``FASTCNN_PDL``."""
    def build(module: nn.Module, case: Case) -> Runner:
        import fastcnn
        from fastcnn.backends import unavailable_reason

        reason = unavailable_reason(backend, case.device)
        if reason is not None:
            raise Absent(reason)
        example = torch.zeros(1, *case.batch_shape[1:])
        try:
            with _environment(environment or {}):
                engine = fastcnn.load(module.float().cpu(), device=case.device, backend=backend, dtype=case.dtype,
                                      example_input=example, pipeline=pipeline)
                engine.warmup()
        except fastcnn.BackendUnavailableError as exc:
            raise Absent(str(exc)) from None
        return engine.infer
    return build


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _fastcnn_triton_pdl(module: nn.Module, case: Case) -> Runner:
    """The Triton backend with programmatic dependent launches (Hopper and later)."""
    if not str(case.device).startswith("cuda") or torch.cuda.get_device_capability(case.device)[0] < 9:
        raise Absent("programmatic dependent launch needs a GPU of compute capability 9.0 or later")
    return _fastcnn("triton", environment={"FASTCNN_PDL": "1"})(module, case)


register("fastcnn-torch", peer=False)(_fastcnn("torch"))
register("fastcnn-torch-unfused", peer=False)(_fastcnn("torch", pipeline="none"))
register("fastcnn-onnxruntime", peer=False)(_fastcnn("onnxruntime"))
register("fastcnn-openvino", peer=False)(_fastcnn("openvino"))
register("fastcnn-triton", peer=False)(_fastcnn("triton"))
register("fastcnn-triton-pdl", peer=False)(_fastcnn_triton_pdl)


def relative_l2(actual: Tensor, expected: Tensor) -> float:
    """||actual - expected|| / ||expected|| in float64 on the CPU; anything non-finite is inf, so
    a NaN answer can never pass the check before timing."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    return float((a - e).norm() / e.norm()) if torch.isfinite(a).all() else float("inf")


def bench_device() -> str:
    """The suite's device: ``FASTCNN_BENCH_DEVICE``, else CUDA where torch sees a GPU."""
    return os.environ.get("FASTCNN_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def build_runner(name: str, module: nn.Module, case: Case) -> Runner:
    """The runner of implementation ``name`` for ``case`` (Absent if it cannot run here), built
    on its own copy of ``module``: implementations move, cast and re-layout what they get."""
    if name not in IMPLEMENTATIONS:
        raise Absent(f"unknown implementation {name!r}; known: {', '.join(IMPLEMENTATIONS)}")
    return IMPLEMENTATIONS[name].build(copy.deepcopy(module), case)
