"""The OpenVINO backend: the IR written back as plain ONNX (the ONNX Runtime backend's path) and
compiled by OpenVINO's CPU plugin, in float32, or in bfloat16 when ``dtype=torch.bfloat16``.

Why: on the 2-core development VM, OpenVINO ran googlenet, alexnet and zfnet 1.2x to 2.1x faster
than ONNX Runtime (``fastcnn bench``, 2026-12-01, bench/results/2026-12-01-cpu-2core/). Its CPU
plugin computes in bfloat16 by default where the CPU has bfloat16 units; fastcnn asks for the
precision it was given (``INFERENCE_PRECISION_HINT``: ``f32`` unless bfloat16 was asked for) and
never computes in lower precision than asked. A CPU without bfloat16 support computes a bfloat16
request in float32 (more precise than asked); :attr:`OpenVinoExecutor.computes_in` says which.
"""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fastcnn.backends.devices import as_device, check_torch_device
from fastcnn.backends.onnx_files import needs_external_data, save_model
from fastcnn.backends.onnx_writer import graph_to_onnx
from fastcnn.errors import BackendUnavailableError, UnsupportedModelError
from fastcnn.ir import Graph


def openvino_problem(device: torch.device | str | None) -> str | None:
    """Why OpenVINO cannot run on ``device`` here, or ``None`` when it can."""
    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed (pip install openvino; fastcnn depends on it, so reinstall fastcnn)"
    if as_device(device).type != "cpu":
        return "fastcnn runs OpenVINO on the CPU only"
    return None


# dtype asked for -> the CPU plugin's INFERENCE_PRECISION_HINT. The graph stays float32 (NumPy has
# no bfloat16): bfloat16 inputs are widened on the way in, outputs narrowed on the way out.
_PRECISION_HINTS = {None: "f32", torch.float32: "f32", torch.bfloat16: "bf16"}
_PRECISION_NAMES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def _host_array(tensor: Tensor) -> np.ndarray:
    """A contiguous NumPy copy of ``tensor``; bfloat16 widened to float32 exactly."""
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return np.ascontiguousarray(tensor.numpy())


class OpenVinoExecutor:
    """Runs an IR graph through an OpenVINO compiled model; built once, run many times."""

    def __init__(self, graph: Graph, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, opset: int = 17) -> None:
        self.device = check_torch_device(device, "openvino", openvino_problem)
        if dtype not in _PRECISION_HINTS:
            raise BackendUnavailableError(f"backend 'openvino' computes in float32 or bfloat16, not {dtype}")
        self.dtype = dtype
        import openvino as ov

        with tempfile.TemporaryDirectory(prefix="fastcnn-ov-") as folder:
            path = save_model(graph_to_onnx(graph, opset), Path(folder) / "model.onnx",
                              external=needs_external_data(graph))
            try:
                core = ov.Core()
                self._compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                                    {"INFERENCE_PRECISION_HINT": _PRECISION_HINTS[dtype]})
            except RuntimeError as exc:  # OpenVINO's own errors for ops or forms it cannot convert
                raise UnsupportedModelError(f"OpenVINO could not compile this graph: {str(exc).strip()[:500]}") from exc
        self._request = self._compiled.create_infer_request()
        self._outputs = list(self._compiled.outputs)
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.computes_in = _PRECISION_NAMES.get(hint, hint)  # what the plugin settled on

    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        """Outputs in ``graph.outputs`` order for ``inputs`` in ``graph.inputs`` order. OpenVINO's
        CPU plugin refuses a batch of zero, so an empty batch runs as one row of zeros, cut to none."""
        empty = bool(inputs) and all(t.dim() and t.shape[0] == 0 for t in inputs)
        if empty:
            inputs = [torch.zeros((1, *t.shape[1:]), dtype=t.dtype) for t in inputs]
        results = self._request.infer([_host_array(t) for t in inputs])
        outputs = [torch.from_numpy(np.array(results[output])) for output in self._outputs]
        if self.dtype is not None:
            outputs = [out.to(self.dtype) if out.is_floating_point() else out for out in outputs]
        return [out[:0] for out in outputs] if empty else outputs

    def warmup(self) -> None:
        """Run once on zeros with batch 1 when every other input dim is known."""
        shapes = []
        for port in self._compiled.inputs:
            dims = port.get_partial_shape()
            shape = [1 if i == 0 and dim.is_dynamic else dim.get_length() if dim.is_static else None
                     for i, dim in enumerate(dims)]
            if None in shape:
                return
            shapes.append((shape, port.get_element_type().to_dtype()))
        self._request.infer([np.zeros(shape, dtype) for shape, dtype in shapes])
