"""`fastcnn export-repo`: the config.pbtxt parsed with Triton Inference Server's own model-config
protobuf (tritonclient) and checked against the written model.onnx, which ONNX Runtime runs to
the engine's answer."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2  # the test extra's; Triton's own ModelConfig

import fastcnn
from fastcnn.cli import main
from fastcnn.model_repository import export_model_repository, triton_config


def _parse(text: str):
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _onnx_dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]


def test_export_repo_writes_a_config_triton_parses_that_matches_the_onnx_file(tmp_path, capsys):
    weights = tmp_path / "lenet.pth"
    torch.save(fastcnn.create_model("lenet5", seed=4).state_dict(), weights)
    assert main(["export-repo", "lenet5", str(tmp_path / "repo"), "--max-batch", "16", "--weights", str(weights)]) == 0
    model_dir = tmp_path / "repo" / "lenet5"
    assert capsys.readouterr().out.split() == [str(model_dir / "config.pbtxt"), str(model_dir / "1" / "model.onnx")]
    config = _parse((model_dir / "config.pbtxt").read_text())
    graph = onnx.load(str(model_dir / "1" / "model.onnx")).graph
    assert (config.name, config.platform, config.max_batch_size) == ("lenet5", "onnxruntime_onnx", 16)
    assert config.HasField("dynamic_batching")
    for declared, values in ((config.input, graph.input), (config.output, graph.output)):
        assert [t.name for t in declared] == [v.name for v in values] and len(values) == 1
        assert [model_config_pb2.DataType.Name(t.data_type) for t in declared] == ["TYPE_FP32"]
        assert [list(t.dims) for t in declared] == [_onnx_dims(v)[1:] for v in values]
        assert all(_onnx_dims(v)[0] == -1 for v in values)  # the batch dim the server fills in
    assert list(config.input[0].dims) == [1, 32, 32] and list(config.output[0].dims) == [10]

    batch = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    session = onnxruntime.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    (served,) = session.run(None, {config.input[0].name: batch.numpy()})
    engine = fastcnn.load("lenet5", weights=weights, device="cpu", backend="onnxruntime")
    np.testing.assert_allclose(served, engine.infer(batch).numpy(), rtol=1e-5, atol=1e-6)


def _relu_graph(shape) -> onnx.GraphProto:
    return helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                             [helper.make_tensor_value_info("x", TensorProto.FLOAT16, shape)],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT16, shape)])


def test_symbolic_sizes_are_minus_one_and_the_dtype_is_the_files():
    config = _parse(triton_config(_relu_graph(["N", 3, "H", "W"]), "relu", 4))
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.output[0].dims) == [3, -1, -1]
    assert model_config_pb2.DataType.Name(config.input[0].data_type) == "TYPE_FP16"


def test_a_fixed_batch_dim_bad_names_and_max_batch_are_refused(tmp_path):
    with pytest.raises(fastcnn.InputError, match="'x' needs a symbolic batch dim first .* its first dim is 1"):
        triton_config(_relu_graph([1, 3, 8, 8]), "relu", 4)
    engine = fastcnn.load("lenet5", device="cpu", backend="onnxruntime")
    with pytest.raises(fastcnn.InputError, match="one folder name, got '../x'"):
        export_model_repository(engine, tmp_path, "../x")
    with pytest.raises(fastcnn.InputError, match="at least 1, got 0"):
        export_model_repository(engine, tmp_path, "lenet5", max_batch=0)
