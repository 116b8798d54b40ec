"""export_onnx: the file it writes (names, dynamic batch, checks, stored shapes) and its errors.

Every zoo model is exported and run in ONNX Runtime against PyTorch in tests/test_roundtrip.py
(once per model in the whole suite, since exporting the VGGs takes seconds); here are the
export function's own promises, on small models.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import fastcnn
from tests.helpers import randomize_batchnorm, relative_l2


def _dims(value_info: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _ort_run(path, batch: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"input": batch.numpy()})[0])


@pytest.mark.parametrize("name", ["lenet5", "squeezenet1_1", "googlenet"])
def test_exported_file_keeps_export_onnx_promises(name, tmp_path):
    info = fastcnn.model_info(name)
    model = randomize_batchnorm(fastcnn.create_model(name, seed=0))
    path = fastcnn.export_onnx(model, tmp_path / f"{name}.onnx", input_size=info.input_size)

    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["input"]  # weights are initializers only
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert _dims(proto.graph.input[0]) == ["N", *info.input_size]
    assert _dims(proto.graph.output[0]) == ["N", info.num_classes]
    assert proto.opset_import[0].version == 17
    inferred = {v.name for v in proto.graph.value_info}
    assert all(out in inferred for node in proto.graph.node[:-1] for out in node.output), \
        "shape inference results are not stored in the file"

    for batch_size in (1, 3):  # exported at batch 1; the batch is dynamic
        batch = torch.randn(batch_size, *info.input_size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = model(batch)
        assert relative_l2(_ort_run(path, batch), expected) < 1e-5


def test_zoo_name_uses_its_own_input_size_and_the_opset_asked_for(tmp_path):
    path = fastcnn.export_onnx("lenet5", tmp_path / "sub" / "lenet5.onnx", opset=13)
    proto = onnx.load(str(path))
    assert _dims(proto.graph.input[0]) == ["N", 1, 32, 32]
    assert proto.opset_import[0].version == 13


def test_returns_a_path(tmp_path):
    path = fastcnn.export_onnx("lenet5", str(tmp_path / "m.onnx"))
    assert path == tmp_path / "m.onnx" and path.is_file()


def test_unknown_zoo_name_is_an_unknown_model_error(tmp_path):
    with pytest.raises(fastcnn.UnknownModelError, match="resnet51"):
        fastcnn.export_onnx("resnet51", tmp_path / "m.onnx")


def test_module_without_input_size_is_an_input_error(tmp_path):
    with pytest.raises(fastcnn.InputError, match="input_size"):
        fastcnn.export_onnx(nn.Conv2d(3, 4, 3), tmp_path / "m.onnx")


@pytest.mark.parametrize("size", [(3, 0, 8), (), (3, 8.0, 8)])
def test_bad_input_size_is_an_input_error(tmp_path, size):
    with pytest.raises(fastcnn.InputError, match="input_size"):
        fastcnn.export_onnx(nn.Conv2d(3, 4, 3), tmp_path / "m.onnx", input_size=size)


def test_something_else_than_a_model_is_an_input_error(tmp_path):
    with pytest.raises(fastcnn.InputError, match="dict"):
        fastcnn.export_onnx({"conv": nn.Conv2d(3, 4, 3)}, tmp_path / "m.onnx", input_size=(3, 8, 8))


def test_unexportable_module_is_an_export_error(tmp_path):
    class Spectrum(nn.Module):
        def forward(self, x):
            return torch.fft.fft2(x).abs()  # no ONNX equivalent in the TorchScript exporter

    with pytest.raises(fastcnn.ExportError, match="Spectrum.*fft"):
        fastcnn.export_onnx(Spectrum(), tmp_path / "m.onnx", input_size=(3, 4, 4))


def test_export_emits_no_warnings_of_torchs_own(tmp_path, recwarn):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LocalResponseNorm(3), nn.Flatten())
    fastcnn.export_onnx(model, tmp_path / "m.onnx", input_size=(3, 8, 8))
    assert not recwarn.list, [str(w.message) for w in recwarn]


def test_export_keeps_the_models_training_flag(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    fastcnn.export_onnx(model, tmp_path / "m.onnx", input_size=(3, 8, 8))
    assert model.training


def test_dtype_sets_the_graphs_dtype(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5)).double().eval()
    path = fastcnn.export_onnx(model, tmp_path / "m.onnx", input_size=(3, 2, 2), dtype=torch.float64)
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    batch = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    actual = _ort_run(path, batch)
    assert actual.dtype == torch.float64
    np.testing.assert_allclose(actual.numpy(), model(batch).detach().numpy(), rtol=1e-12)


def test_keep_batch_norm_writes_each_batch_norm_as_a_node(tmp_path):
    """By default torch folds conv + BN; keep_batch_norm writes them as other tools do."""
    model = randomize_batchnorm(fastcnn.create_model("resnet18", seed=0))
    folded = onnx.load(str(fastcnn.export_onnx(model, tmp_path / "folded.onnx", input_size=(3, 64, 64))))
    path = fastcnn.export_onnx(model, tmp_path / "kept.onnx", input_size=(3, 64, 64), keep_batch_norm=True)
    kept = onnx.load(str(path))
    count = lambda proto: sum(n.op_type == "BatchNormalization" for n in proto.graph.node)  # noqa: E731
    assert count(folded) == 0 and count(kept) == 20
    batch = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(batch)
    assert relative_l2(_ort_run(path, batch), expected) < 1e-5
