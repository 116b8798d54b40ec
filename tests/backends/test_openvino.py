"""The OpenVINO backend: the same answers as the torch backend in float32, bfloat16 within 1e-2
when asked for, on the CPU only, and a clear refusal where it cannot run (not installed, CUDA,
float16)."""
from __future__ import annotations

import importlib.util

import pytest
import torch

import fastcnn
from fastcnn.backends import openvino_backend
from tests.helpers import randomize_batchnorm, relative_l2

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")


@pytest.mark.parametrize("name", ["squeezenet1_1", "googlenet"])
def test_openvino_matches_the_torch_backend_in_float32(name):
    model = randomize_batchnorm(fastcnn.create_model(name, seed=0)).eval()
    example = torch.zeros(1, 3, 224, 224)
    reference = fastcnn.load(model, device="cpu", backend="torch", example_input=example)
    engine = fastcnn.Engine(reference.source_graph, backend="openvino", device="cpu")
    assert engine.pipeline == "openvino"
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert relative_l2(engine.infer(x), reference.infer(x)) < 1e-5  # float32, never OpenVINO's bf16 default


def test_openvino_bfloat16_is_asked_for_and_within_1e_2():
    model = randomize_batchnorm(fastcnn.create_model("squeezenet1_1", seed=0)).eval()
    example = torch.zeros(1, 3, 224, 224)
    reference = fastcnn.load(model, device="cpu", backend="torch", example_input=example)
    engine = fastcnn.Engine(reference.source_graph, backend="openvino", device="cpu", dtype="bf16")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    out = engine.infer(x.bfloat16())
    assert out.dtype == torch.bfloat16
    # bfloat16 where the CPU has it, else float32 (more precise than asked): never anything lower.
    assert engine._executor.computes_in in ("bfloat16", "float32")
    assert relative_l2(out.float(), reference.infer(x)) < 1e-2


def test_openvino_refuses_what_it_cannot_do(monkeypatch):
    graph = fastcnn.load("lenet5", device="cpu", backend="torch").source_graph
    with pytest.raises(fastcnn.BackendUnavailableError, match="float32 or bfloat16"):
        fastcnn.Engine(graph, backend="openvino", device="cpu", dtype=torch.float16)
    assert "CPU only" in openvino_backend.openvino_problem("cuda")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else object())
    with pytest.raises(fastcnn.BackendUnavailableError, match="not installed"):
        fastcnn.Engine(graph, backend="openvino", device="cpu")
