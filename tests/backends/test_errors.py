"""A backend or device that was asked for and is not here: BackendUnavailableError, naming
what was asked and what is available, never a silent fallback."""
from __future__ import annotations

import onnxruntime as ort
import pytest
import torch

import fastcnn.backends.devices as devices
import fastcnn.backends.onnxruntime_backend as ort_backend
from fastcnn.backends import BACKENDS, OrtExecutor, TorchExecutor, available, create_executor
from fastcnn.errors import BackendUnavailableError, FastCNNError
from tests.backends.cases import Case

HAS_CUDA = torch.cuda.is_available()


def _graph():
    return Case("relu", {}, [("N", 3)]).build("relu", "float32")[0]


def test_registry_lists_the_backends_and_both_run_on_the_cpu() -> None:
    assert set(BACKENDS) == {"torch", "onnxruntime", "openvino", "triton"}
    assert available("torch", "cpu") and available("onnxruntime", torch.device("cpu"))


def test_unknown_backend() -> None:
    assert not available("tensorflow", "cpu")
    with pytest.raises(BackendUnavailableError, match="tensorflow") as info:
        create_executor("tensorflow", _graph(), "cpu")
    assert "torch" in str(info.value) and "onnxruntime" in str(info.value)
    assert isinstance(info.value, FastCNNError)


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_cuda_without_cuda(name: str) -> None:
    if HAS_CUDA:
        pytest.skip("this machine has CUDA")
    assert not available(name, "cuda")
    with pytest.raises(BackendUnavailableError, match="CUDA") as info:
        create_executor(name, _graph(), torch.device("cuda"))
    assert name in str(info.value) and "cpu" in str(info.value)
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        BACKENDS[name](_graph(), torch.device("cuda"), None)


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_cuda_ordinal_beyond_the_devices_here(name: str) -> None:
    with pytest.raises(BackendUnavailableError):
        create_executor(name, _graph(), "cuda:63")


def test_unsupported_device_type() -> None:
    with pytest.raises(BackendUnavailableError, match="meta"):
        TorchExecutor(_graph(), torch.device("meta"), None)


def test_onnxruntime_without_gpu_providers(monkeypatch) -> None:
    """A CUDA device with a CPU-only onnxruntime is refused even where torch has CUDA."""
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["AzureExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(devices, "torch_device_problem", lambda device: None)  # as if torch had CUDA
    with pytest.raises(BackendUnavailableError, match="no GPU provider") as info:
        OrtExecutor(_graph(), torch.device("cuda:0"), None)
    assert "CPUExecutionProvider" in str(info.value) and "onnxruntime-gpu" in str(info.value)
    assert ort_backend.provider_problem("cuda") is not None
    assert ort_backend.provider_problem("cpu") is None


def test_onnxruntime_real_providers_decide_cuda() -> None:
    gpu = "CUDAExecutionProvider" in ort.get_available_providers()
    assert (ort_backend.provider_problem("cuda") is None) == gpu


def test_onnxruntime_refuses_bfloat16() -> None:
    with pytest.raises(BackendUnavailableError, match="bfloat16"):
        OrtExecutor(_graph(), "cpu", torch.bfloat16)


def test_providers_follow_the_device() -> None:
    assert ort_backend.providers_for(torch.device("cpu")) == [("CPUExecutionProvider", {})]
    cuda = ort_backend.providers_for(torch.device("cuda:1"))
    assert cuda == [("CUDAExecutionProvider", {"device_id": "1"})]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_torch_on_cuda_matches_cpu() -> None:
    from tests.backends.test_executor import _feeds, small_cnn

    x = torch.from_numpy(_feeds()[0])
    cpu = TorchExecutor(small_cnn(), "cpu", None).run([x])[0]
    gpu = create_executor("torch", small_cnn(), "cuda", None).run([x.cuda()])[0]
    assert gpu.device.type == "cuda"
    assert float((gpu.cpu().double() - cpu.double()).norm() / cpu.double().norm()) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_onnxruntime_on_cuda_runs_on_gpu_or_refuses(record_property) -> None:
    """Never a silent run on the CPU: either a CUDA session or BackendUnavailableError."""
    from tests.backends.test_executor import _feeds, small_cnn

    if not available("onnxruntime", "cuda"):
        with pytest.raises(BackendUnavailableError):
            create_executor("onnxruntime", small_cnn(), "cuda", None)
        return
    try:  # the provider is listed, yet CUDA or cuDNN libraries may fail to load
        executor = create_executor("onnxruntime", small_cnn(), "cuda", None)
    except BackendUnavailableError as exc:
        record_property("onnxruntime_cuda_refused", str(exc))
        return
    assert "CUDAExecutionProvider" in executor.session.get_providers()
    x = torch.from_numpy(_feeds()[0])
    out = executor.run([x.cuda()])[0]
    cpu = TorchExecutor(small_cnn(), "cpu", None).run([x])[0]
    assert out.device.type == "cuda"
    assert float((out.cpu().double() - cpu.double()).norm() / cpu.double().norm()) < 1e-5
