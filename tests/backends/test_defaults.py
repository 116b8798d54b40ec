"""The default backend follows the measurements in fastcnn.backends.defaults: by device, by dtype
(bfloat16 on the CPU) and on the CPU by zoo model, and only ever picks what runs here."""
from __future__ import annotations

import pytest
import torch

import fastcnn
from fastcnn.backends import available, choose_backend, defaults

CPU = torch.device("cpu")


def _runs(*names):
    return lambda name: name in names


def test_device_defaults_for_any_graph():
    assert defaults.default_backend(CPU, None, None, _runs("onnxruntime", "openvino")) == "onnxruntime"
    assert defaults.default_backend(torch.device("cuda"), torch.float16, "resnet50", _runs("triton")) == "triton"


def test_cpu_bfloat16_is_openvino_where_installed_else_torch():
    assert defaults.default_backend(CPU, torch.bfloat16, None, _runs("onnxruntime", "openvino")) == "openvino"
    assert defaults.default_backend(CPU, torch.bfloat16, None, _runs("onnxruntime", "torch")) == "torch"


def test_cpu_float32_follows_the_per_model_table(monkeypatch):
    monkeypatch.setitem(defaults.CPU_FLOAT32_BY_MODEL, "lenet5", "openvino")
    assert defaults.default_backend(CPU, None, "lenet5", _runs("onnxruntime", "openvino")) == "openvino"
    assert defaults.default_backend(CPU, torch.float32, "lenet5", _runs("onnxruntime", "openvino")) == "openvino"
    # the measured winner not installed: the device's default, not an error
    assert defaults.default_backend(CPU, None, "lenet5", _runs("onnxruntime")) == "onnxruntime"
    # another dtype, another model, or a file: the device's default
    assert defaults.default_backend(CPU, torch.float16, "lenet5", _runs("onnxruntime", "openvino")) == "onnxruntime"
    assert defaults.default_backend(CPU, None, "alexnet_x", _runs("onnxruntime", "openvino")) == "onnxruntime"


def test_every_table_entry_is_a_zoo_model_and_a_backend():
    from fastcnn.backends import BACKENDS

    assert set(defaults.CPU_FLOAT32_BY_MODEL) <= set(fastcnn.list_models())
    assert set(defaults.CPU_FLOAT32_BY_MODEL.values()) <= set(BACKENDS)
    assert set(defaults.CPU_BFLOAT16) <= set(BACKENDS)


@pytest.mark.skipif(not available("openvino", "cpu"), reason="openvino is not installed")
def test_load_uses_the_per_model_default(monkeypatch):
    monkeypatch.setitem(defaults.CPU_FLOAT32_BY_MODEL, "lenet5", "openvino")
    assert fastcnn.load("LeNet-5", device="cpu").backend == "openvino"
    assert fastcnn.load("lenet5", device="cpu", backend="torch").backend == "torch"  # asked for wins
    engine = fastcnn.load("lenet5", device="cpu", dtype="bf16")
    assert engine.backend == "openvino" and engine.infer(torch.randn(2, 1, 32, 32).bfloat16()).dtype == torch.bfloat16
    assert choose_backend(None, "cpu", torch.bfloat16) == "openvino"
