"""Which backend runs when none is asked for: by device, by dtype, and on the CPU by zoo model,
each entry from a measurement (the comments say which).

A default is only ever a backend that can run here: where the measured winner is not installed
(OpenVINO is optional), the device's default runs instead, and ``engine.backend`` says which.
A backend that is *asked for* and missing is an error, never a fallback.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

# By device type.
# CPU: ONNX Runtime. bench/test_latency.py on the 2-core development machine (2026-11-23, batch 1
# and 8, float32; bench/results/2026-11-23-cpu-2core.md) measured it 1.5x to 3.1x faster (median)
# than the torch backend on every model tried (resnet18, googlenet, squeezenet1_1, densenet121).
# CUDA: Triton. On an H200 (2026-12-01, float16, bench/results/2026-12-01-h200-triton.md) it was
# faster than the torch backend at every model and batch measured (resnet50, googlenet,
# densenet121, squeezenet1_1, vgg16, inception_v3 at batch 1, 8 and 64: 1.7x to 6.6x), and
# matched float32 eager on those six in float32, float16 and bfloat16.
DEFAULT_BACKEND = {"cpu": "onnxruntime", "cuda": "triton"}

# CPU, float32, zoo models where fastcnn's OpenVINO backend beat its ONNX Runtime backend at both
# batch 1 and 8, median against median in one run (`fastcnn bench`, 2-core Xeon VM, 2026-12-01,
# bench/results/2026-12-01-cpu-2core-openvino-backend/): googlenet 1.71x and 1.86x, alexnet 1.40x
# and 2.09x, zfnet 1.16x and 1.49x; the peers on the exported file agreed in the run of all 16
# models (bench/results/2026-12-01-cpu-2core/). Everywhere else the two were within 10% either way
# (bn_inception, nin, resnet18 in that run; the other models through the peers), so ONNX Runtime.
CPU_FLOAT32_BY_MODEL: dict[str, str] = {"googlenet": "openvino", "alexnet": "openvino", "zfnet": "openvino"}

# CPU, bfloat16: ONNX Runtime's CPU provider has no bfloat16 convolution; OpenVINO computes in
# bfloat16 where the CPU has it (measured in bench/results/2026-12-01-cpu-2core-bf16/), the torch
# backend everywhere.
CPU_BFLOAT16 = ("openvino", "torch")


def default_backend(device: torch.device, dtype: torch.dtype | None, model: str | None,
                    runs_here: Callable[[str], bool]) -> str:
    """The backend to use on ``device`` for zoo ``model`` (``None``: any other graph) in ``dtype``,
    among those ``runs_here`` accepts."""
    if device.type == "cpu" and dtype == torch.bfloat16:
        return next((name for name in CPU_BFLOAT16 if runs_here(name)), CPU_BFLOAT16[-1])
    if device.type == "cpu" and dtype in (None, torch.float32) and model in CPU_FLOAT32_BY_MODEL:
        measured = CPU_FLOAT32_BY_MODEL[model]
        if runs_here(measured):
            return measured
    return DEFAULT_BACKEND.get(device.type, "torch")
