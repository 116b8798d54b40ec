"""Models whose weights protobuf cannot hold (over 2 GiB) go through ONNX external data, both
in ``save_onnx`` and in the ONNX Runtime backend. The limit is patched down so that a small
model takes the large-model road in a test."""
from __future__ import annotations

import torch

import fastcnn
from fastcnn.backends import onnx_files


def test_the_onnxruntime_backend_runs_a_model_past_the_protobuf_limit(monkeypatch):
    small = fastcnn.load("lenet5", device="cpu", backend="onnxruntime")
    monkeypatch.setattr(onnx_files, "PROTOBUF_LIMIT", 1024)
    large = fastcnn.Engine(small.source_graph, device="cpu", backend="onnxruntime")
    assert large._executor._folder is not None  # the session was built from a file with a .data side file
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(large.infer(x), small.infer(x), rtol=0, atol=0)


def test_save_onnx_writes_external_data_past_the_limit(monkeypatch, tmp_path):
    engine = fastcnn.load("lenet5", device="cpu", backend="torch")
    monkeypatch.setattr(onnx_files, "PROTOBUF_LIMIT", 1024)
    path = engine.save_onnx(tmp_path / "lenet5.onnx")
    assert (tmp_path / "lenet5.onnx.data").stat().st_size > 200_000
    reloaded = fastcnn.load(path, device="cpu", backend="torch")
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(reloaded.infer(x), engine.infer(x), rtol=1e-6, atol=1e-6)
