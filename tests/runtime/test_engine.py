"""The Engine and fastcnn.load: input checks, device and backend refusal, save_onnx, sources."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import fastcnn
from fastcnn.backends import DEFAULT_BACKEND
from fastcnn.ir import Graph
from tests.helpers import randomize_batchnorm, relative_l2

BACKENDS = ["torch", "onnxruntime", "openvino"]
SIZE = (3, 8, 8)


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    return randomize_batchnorm(model).eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return _small_model()


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, model) -> fastcnn.Engine:
    return fastcnn.load(model, device="cpu", backend=request.param, example_input=torch.zeros(1, *SIZE))


def _batch(n: int = 2, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, *SIZE, generator=torch.Generator().manual_seed(n)).to(dtype)


# -- running -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 5])
def test_any_batch_size_matches_pytorch(engine, model, n):
    batch = _batch(n)
    out = engine.infer(batch)
    assert isinstance(out, torch.Tensor) and out.shape == (n, 5)
    assert relative_l2(out, model(batch)) < 1e-5


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "openvino"])  # float32 only: test_openvino.py
def test_dtype_float16_computes_in_float16(model, backend):
    engine = fastcnn.load(model, device="cpu", dtype=torch.float16, backend=backend,
                          example_input=torch.zeros(1, *SIZE))
    assert engine.input_spec.dtype == torch.float16
    batch = _batch(4)
    out = engine.infer(batch.half())
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert relative_l2(out.float(), model(batch)) < 1e-2  # float16 tolerance of the brief
    with pytest.raises(fastcnn.InputError, match="float32: wrong dtype"):
        engine.infer(batch)  # a float32 batch is refused, not cast behind the user's back


def test_call_is_infer_and_run_takes_a_list(engine):
    batch = _batch()
    (out,) = engine.run([batch])
    torch.testing.assert_close(engine(batch), engine.infer(batch))
    torch.testing.assert_close(out, engine.infer(batch))


def test_numpy_input_works(engine, model):
    array = _batch(3).numpy()
    assert relative_l2(engine.infer(array), model(torch.from_numpy(array))) < 1e-5
    read_only = array.copy()
    read_only.flags.writeable = False
    reversed_batch = array[::-1]  # negative strides
    assert relative_l2(engine.infer(read_only), model(torch.from_numpy(array))) < 1e-5
    assert relative_l2(engine.infer(reversed_batch), model(torch.from_numpy(array[::-1].copy()))) < 1e-5


def test_non_contiguous_input_works(engine, model):
    channels_last = _batch(2).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not channels_last.is_contiguous()
    assert relative_l2(engine.infer(channels_last), model(channels_last)) < 1e-5


def test_warmup_is_the_backends_warmup(engine, monkeypatch):
    """Engine.warmup hands over to the backend's warmup, once (what that promises is pinned in
    tests/backends/test_executor.py), and the engine infers as before afterwards."""
    calls = []
    warmup = engine._executor.warmup
    monkeypatch.setattr(engine._executor, "warmup", lambda *a, **k: calls.append((a, k)) or warmup(*a, **k))
    engine.warmup()
    assert calls == [((), {})]
    assert engine.infer(_batch()).shape == (2, 5)


def test_input_spec_is_readable(engine):
    spec = engine.input_spec
    assert (spec.name, spec.shape, spec.dtype) == ("input", ("N", *SIZE), torch.float32)
    assert repr(spec) == "InputSpec('input', shape=(N, 3, 8, 8), dtype=float32)"
    assert engine.backend in BACKENDS and engine.device == torch.device("cpu")
    assert "backend=" in repr(engine)


# -- refusing wrong inputs -----------------------------------------------------------------
@pytest.mark.parametrize("batch, message", [
    (torch.zeros(3, 8, 8), r"expected shape \(N, 3, 8, 8\) float32, got \(3, 8, 8\) float32: rank 3 instead of 4"),
    (torch.zeros(1, 2, 3, 8, 8), "rank 5 instead of 4"),
    (torch.zeros(2, 1, 8, 8), "channel count 1 instead of 3"),
    (torch.zeros(2, 3, 9, 8), "height 9 instead of 8"),
    (torch.zeros(2, 3, 8, 7), "width 7 instead of 8"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.float64), "got .* float64: wrong dtype.*never casts"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.int64), "int64: wrong dtype"),
    (np.zeros((2, 3, 8, 8)), "float64: wrong dtype"),
    (np.zeros((2, 3, 8, 8), dtype=object), "NumPy dtype object"),
    ([[0.0] * 8] * 8, "torch.Tensor or numpy.ndarray .* got list"),
])
def test_wrong_input_is_an_input_error_naming_expected_and_got(engine, batch, message):
    with pytest.raises(fastcnn.InputError, match=message):
        engine.infer(batch)


@pytest.mark.parametrize("batch", [torch.zeros(0, *SIZE), np.zeros((0, *SIZE), dtype=np.float32)])
def test_an_empty_batch_returns_an_empty_output_of_the_right_shape(engine, batch):
    """N=0 is a batch like any other on torch and onnxruntime: (0, 5) out, nothing computed."""
    out = engine.infer(batch)
    assert isinstance(out, torch.Tensor) and out.shape == (0, 5) and out.dtype == torch.float32
    assert engine.infer(_batch(2)).shape == (2, 5)  # and the engine still runs real batches


def test_wrong_number_of_inputs_is_an_input_error(engine):
    with pytest.raises(fastcnn.InputError, match=r"expected 1 input\(s\) \['input'\], got 2"):
        engine.run([_batch(), _batch()])


def _two_input_graph() -> Graph:
    graph = Graph("two_inputs")
    a = graph.add_input("a", ("N", 4), "float32")
    b = graph.add_input("b", ("N", 4), "float32")
    graph.outputs = [graph.add_node("add", [a, b]).outputs[0]]
    return graph


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_input_graph_runs_with_run_only(backend):
    engine = fastcnn.Engine(_two_input_graph(), backend=backend, device="cpu")
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    (out,) = engine.run([a, b])
    torch.testing.assert_close(out, a + b)
    with pytest.raises(fastcnn.InputError, match="engine.run"):
        engine.infer(a)
    with pytest.raises(fastcnn.InputError, match="batch size 2 instead of 3"):
        engine.run([a, b[:2]])


# -- devices and backends: asked for and missing is an error -------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_an_error_not_a_fallback(model, monkeypatch):
    monkeypatch.setattr("fastcnn.api.export_onnx", _must_not_run)  # refused before any slow work
    with pytest.raises(fastcnn.BackendUnavailableError, match="cuda"):
        fastcnn.load(model, device="cuda", example_input=torch.zeros(1, *SIZE))
    with pytest.raises(fastcnn.BackendUnavailableError, match="cuda"):
        fastcnn.load("vgg19", device="cuda:0", backend="torch")


def _must_not_run(*args, **kwargs):
    raise AssertionError("load exported a model it was going to refuse")


@pytest.mark.parametrize("device", ["tpu", "not a device", "cuda:99"])
def test_unknown_device_is_backend_unavailable(device):
    with pytest.raises(fastcnn.BackendUnavailableError):
        fastcnn.load("lenet5", device=device)


def test_unknown_backend_is_backend_unavailable(monkeypatch):
    monkeypatch.setattr("fastcnn.api.export_onnx", _must_not_run)
    with pytest.raises(fastcnn.BackendUnavailableError, match="'tvm'.*torch, onnxruntime"):
        fastcnn.load("vgg19", device="cpu", backend="tvm")
    with pytest.raises(fastcnn.BackendUnavailableError, match="'tvm'"):
        fastcnn.Engine(_two_input_graph(), backend="tvm", device="cpu")


def test_defaults_are_the_documented_ones(model):
    engine = fastcnn.load(model, example_input=torch.zeros(1, *SIZE))
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert engine.device.type == expected_device
    assert engine.backend == DEFAULT_BACKEND[expected_device]


# -- sources -------------------------------------------------------------------------------
def test_module_without_example_input_is_an_input_error(model):
    with pytest.raises(fastcnn.InputError, match="example_input"):
        fastcnn.load(model, device="cpu")


def test_zoo_name_builds_the_zoo_model():
    torch.manual_seed(0)  # load builds with the global generator; create_model(seed=0) matches it
    engine = fastcnn.load("lenet5", device="cpu", backend="torch")
    reference = fastcnn.create_model("lenet5", seed=0)
    assert engine.input_spec.shape == ("N", 1, 32, 32)
    batch = torch.randn(4, 1, 32, 32)
    assert relative_l2(engine.infer(batch), reference(batch)) < 1e-5


def test_unknown_zoo_name_is_an_unknown_model_error():
    with pytest.raises(fastcnn.UnknownModelError, match="resnt18.*resnet18"):
        fastcnn.load("resnt18", device="cpu")


def test_missing_file_fails_at_load(tmp_path):
    with pytest.raises(fastcnn.InvalidModelError):
        fastcnn.load(tmp_path / "missing.onnx", device="cpu")


@pytest.mark.parametrize("as_text", [True, False])
def test_onnx_path_loads(model, tmp_path, as_text):
    path = fastcnn.export_onnx(model, tmp_path / "m.onnx", input_size=SIZE)
    engine = fastcnn.load(str(path) if as_text else path, device="cpu")
    batch = _batch()
    assert relative_l2(engine.infer(batch), model(batch)) < 1e-5


def test_save_onnx_writes_a_file_onnxruntime_runs(engine, model, tmp_path):
    path = engine.save_onnx(tmp_path / "deploy.onnx")
    batch = _batch(3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    (out,) = session.run(None, {name: batch.numpy()})
    assert relative_l2(torch.from_numpy(out), model(batch)) < 1e-5
    assert relative_l2(fastcnn.load(path, device="cpu").infer(batch), model(batch)) < 1e-5
