"""Rewrite equivalence on every zoo model: the whole pipeline computes what the imported graph does.

For each model (batch norm randomized and exported as nodes of their own, so the passes fold
it): the graph's constants are cast to float64 *before* the passes, so the folds run in
float64, and the rewritten graph must match the unrewritten one within 1e-10 relative L2 on
the torch reference backend, with the verifier run after every pass. In float32 the rewritten
graph must match the float64 reference within 1e-5 on the torch backend, and through
``engine.save_onnx`` in ONNX Runtime.

CI runs a sample covering every kind of rewrite (BN folding, epilogues with residuals,
prologues, concat placement, squeeze-excite, sibling merging, Gemm folds); the rest of the
zoo runs under the ``slow`` marker.
"""
from __future__ import annotations

import gc

import onnxruntime as ort
import pytest
import torch

import fastcnn
from tests.passes.helpers import relative_l2, rewrite, run_torch, to_float64
from tests.passes.zoo_graphs import zoo_batch, zoo_graph

SAMPLE = ["lenet5", "alexnet", "resnet18", "preact_resnet18", "densenet121", "googlenet", "squeezenet1_1",
          "se_resnet50", "inception_v3"]
REST = [name for name in fastcnn.list_models() if name not in SAMPLE]


def _check_equivalence(name: str, tmp_path) -> None:
    graph = zoo_graph(name)
    wide = to_float64(graph)
    batch = zoo_batch(name, 2, torch.float64)
    (reference,) = run_torch(wide, [batch])
    (fused,) = run_torch(rewrite(wide, "full"), [batch])
    assert relative_l2(fused, reference) < 1e-10, "float64, torch reference"
    del wide
    engine = fastcnn.Engine(graph, backend="torch", device="cpu", pipeline="full")
    assert relative_l2(engine.infer(batch.float()), reference) < 1e-5, "float32, torch backend"
    path = engine.save_onnx(tmp_path / f"{name}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: batch.float().numpy()})
    assert relative_l2(torch.from_numpy(out), reference) < 1e-5, "float32, save_onnx in ONNX Runtime"
    gc.collect()


@pytest.mark.parametrize("name", SAMPLE)
def test_pipeline_preserves_the_result(name, tmp_path):
    _check_equivalence(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", REST)
def test_pipeline_preserves_the_result_on_the_rest_of_the_zoo(name, tmp_path):
    _check_equivalence(name, tmp_path)
