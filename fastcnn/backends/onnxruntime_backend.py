"""The deployment path: the IR written as plain ONNX and run by an ONNX Runtime session.

The session is made from the serialized model in memory (no temporary file) with all graph
optimizations on. Providers follow the device: on the CPU the CPUExecutionProvider; on a CUDA
device the CUDAExecutionProvider of onnxruntime-gpu, or an error when this onnxruntime has
none (never a quiet run on the CPU). TensorRT is used only when asked for (``tensorrt=True``):
it builds an engine per input shape on first use, minutes for the larger models and again for
every new batch size, and onnxruntime-gpu lists it even where the TensorRT libraries are
missing.

Inputs and outputs cross as NumPy arrays: ``run`` copies torch tensors to the host and the
results back to the engine's device.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from fastcnn.backends.devices import as_device, check_torch_device, cuda_index
from fastcnn.backends.onnx_files import needs_external_data, save_model
from fastcnn.backends.onnx_writer import graph_to_onnx
from fastcnn.errors import BackendUnavailableError, UnsupportedModelError
from fastcnn.ir import Graph, Node

if TYPE_CHECKING:
    import onnxruntime as ort

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_DTYPES = {None: None, torch.float32: None, torch.float16: "float16", torch.float64: "float64"}


def _ort():
    """onnxruntime, imported on first use: ``import fastcnn`` does not pay for it."""
    import onnxruntime

    return onnxruntime


def provider_problem(device: torch.device | str | None) -> str | None:
    """Why ONNX Runtime cannot run on ``device`` here, or ``None`` when it can."""
    device = as_device(device)
    if device.type != "cuda":
        return None
    ort = _ort()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ("a CUDA device was asked for but this onnxruntime has no GPU provider "
                f"(available: {', '.join(ort.get_available_providers())}; install onnxruntime-gpu)")
    return None


def providers_for(device: torch.device, tensorrt: bool = False) -> list[tuple[str, dict[str, str]]]:
    """The providers, with options, that run on ``device``, in order of preference."""
    if device.type == "cpu":
        return [("CPUExecutionProvider", {})]
    options = {"device_id": str(cuda_index(device))}
    chosen = [("CUDAExecutionProvider", options)]
    if tensorrt and "TensorrtExecutionProvider" in _ort().get_available_providers():
        chosen.insert(0, ("TensorrtExecutionProvider", options))
    return chosen


class OrtExecutor:
    """Runs an IR graph through an ONNX Runtime session; built once, run many times."""

    def __init__(self, graph: Graph, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, opset: int = 17, tensorrt: bool = False) -> None:
        self.graph = graph
        self.device = check_torch_device(device, "onnxruntime", provider_problem)
        if dtype not in _DTYPES:
            raise BackendUnavailableError(f"backend 'onnxruntime' cannot run in {dtype}: it runs "
                                          "float32, float16 and float64")
        self.dtype = dtype
        _check_supported(graph)
        self.model = graph_to_onnx(graph, opset, float_dtype=_DTYPES[dtype])
        providers = providers_for(self.device, tensorrt)
        self._folder = None  # holds the model's external data while the session lives
        if needs_external_data(graph):
            self._folder = tempfile.TemporaryDirectory(prefix="fastcnn-ort-")
            source = str(save_model(self.model, Path(self._folder.name) / "model.onnx", external=True))
        else:
            source = self.model.SerializeToString()
        self.session = _session(source, providers, self.device)
        self._input_names = [i.name for i in self.session.get_inputs()]
        self._numpy_dtypes = [_numpy_dtype(i.type) for i in self.session.get_inputs()]

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        """Outputs in ``graph.outputs`` order for ``inputs`` in ``graph.inputs`` order."""
        feed = {name: _to_numpy(t, dtype)
                for name, t, dtype in zip(self._input_names, inputs, self._numpy_dtypes, strict=True)}
        results = self.session.run(None, feed)
        return [torch.from_numpy(np.asarray(r, order="C")).to(self.device) for r in results]

    def warmup(self) -> None:
        """Run once on zeros with batch 1 when every other input dim is known."""
        shapes = []
        for info in self.session.get_inputs():
            shape = [1 if i == 0 and not isinstance(d, int) else d for i, d in enumerate(info.shape)]
            if not all(isinstance(d, int) for d in shape):
                return
            shapes.append(shape)
        self.session.run(None, {name: np.zeros(shape, dtype) for name, shape, dtype
                                in zip(self._input_names, shapes, self._numpy_dtypes)})


def _ort_refuses(node: Node) -> str | None:
    """What ONNX Runtime's CPU and CUDA kernels refuse though ONNX allows it, or None."""
    if node.op == "lrn" and node.attrs["size"] % 2 == 0:
        return "ONNX Runtime's LRN takes odd sizes only"
    return None


def _check_supported(graph: Graph) -> None:
    refused = [(n.op, n.name, reason) for n in graph.nodes if (reason := _ort_refuses(n))]
    if refused:
        details = "; ".join(f"{name} ({op}): {reason}" for op, name, reason in refused)
        raise UnsupportedModelError(f"backend 'onnxruntime' cannot run this graph: {details}", refused)


def _session(model: bytes | str, providers: list[tuple[str, dict[str, str]]],
             device: torch.device) -> "ort.InferenceSession":
    """A session for the serialised model, or for the model file (with its external data) at a path."""
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: node placement notes are noise here
    try:
        session = ort.InferenceSession(model, options, providers=providers)
    except Exception as exc:  # ORT's own pybind types, e.g. NOT_IMPLEMENTED for a dtype
        raise UnsupportedModelError(f"onnxruntime could not build a session for this graph on "
                                    f"{device}: {str(exc).strip()[:500]}") from exc
    wanted = {name for name, _ in providers}
    if device.type == "cuda" and not wanted & set(session.get_providers()):
        # onnxruntime-gpu falls back to the CPU when CUDA or cuDNN fail to load; we do not.
        raise BackendUnavailableError(f"onnxruntime could not start {sorted(wanted)} on {device} "
                                      f"(the session got {session.get_providers()})")
    return session


def _to_numpy(tensor: Tensor, dtype: np.dtype) -> np.ndarray:
    """A host copy of ``tensor`` in ``dtype``; the cast happens in torch, which knows bfloat16."""
    as_torch = torch.from_numpy(np.zeros(0, dtype)).dtype
    return tensor.detach().to(device="cpu", dtype=as_torch).numpy()


def _numpy_dtype(ort_type: str) -> np.dtype:
    """NumPy dtype of an ONNX Runtime type string such as ``tensor(float)``."""
    names = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
             "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool",
             "tensor(uint8)": "uint8", "tensor(int8)": "int8"}
    if ort_type not in names:
        raise BackendUnavailableError(f"onnxruntime input type {ort_type} is not supported by fastcnn")
    return np.dtype(names[ort_type])
