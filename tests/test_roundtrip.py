"""Every zoo model the whole way: export, check the file, import, run on both CPU backends.

Each model is exported once in the whole suite, here (exporting VGG takes seconds): the one
file serves the export checks (names, dynamic batch, ONNX Runtime on the file itself) and the
round trip through fastcnn's importer and both backends. Batch norm statistics are
randomized first so that a folding or eps mistake shows in the numbers.
"""
from __future__ import annotations

import gc

import onnxruntime as ort
import pytest
import torch

import fastcnn
from tests.helpers import randomize_batchnorm, relative_l2

TOLERANCE = 1e-5  # float32 relative L2 error, from the issue


@pytest.mark.parametrize("name", fastcnn.list_models())
def test_zoo_model_round_trips(name, tmp_path):
    info = fastcnn.model_info(name)
    model = randomize_batchnorm(fastcnn.create_model(name, seed=0))
    path = fastcnn.export_onnx(model, tmp_path / f"{name}.onnx", input_size=info.input_size)
    # Exported at batch 1: batch 2 shows the batch dimension is dynamic.
    batch = torch.randn(2, *info.input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(batch)
    del model

    _check_exported_file(path, info, batch, expected)
    engine = fastcnn.load(path, device="cpu", backend="torch")
    assert relative_l2(engine.infer(batch), expected) < TOLERANCE, "torch backend"
    # The same imported graph on the deployment backend (load would only import it again).
    engine = fastcnn.Engine(engine.graph, backend="onnxruntime", device="cpu")
    assert relative_l2(engine.infer(batch), expected) < TOLERANCE, "onnxruntime backend"
    del engine
    gc.collect()  # VGG's weights are half a gigabyte per copy; do not let them pile up


def _check_exported_file(path, info, batch: torch.Tensor, expected: torch.Tensor) -> None:
    """Names and dynamic batch as export_onnx promises; ONNX Runtime on the file agrees with torch."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape) == ("input", ["N", *info.input_size])
    assert (out.name, out.shape) == ("logits", ["N", info.num_classes])
    (actual,) = session.run(["logits"], {"input": batch.numpy()})
    assert actual.shape == tuple(expected.shape)
    assert relative_l2(torch.from_numpy(actual), expected) < TOLERANCE, "onnxruntime on the exported file"
