"""The Triton backend on a real GPU: every zoo model at full size, in float32, float16 and
bfloat16, against the float32 torch reference on the same GPU (TF32 off). Skipped without CUDA.

- float32: within 1e-4 relative L2;
- float16 and bfloat16: at most twice torch's own error in that dtype on the same input, and
  under 1e-2 where torch's own is.

Random weights overflow float16 in deep residual networks (resnet152's logits reach about
1e8), so the weights keep activations bounded: each residual block's last batch norm gets a
small gamma, as trained networks have.
"""
from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

import fastcnn
from tests.helpers import randomize_batchnorm, relative_l2

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
BATCH = 4


def _bounded(model: nn.Module) -> nn.Module:
    """Scale the last batch norm of every residual block by 0.1 (see the module docstring)."""
    for module in model.modules():
        norms = [m for m in module.children() if isinstance(m, nn.BatchNorm2d)]
        if norms and ("Block" in type(module).__name__ or "Bottleneck" in type(module).__name__):
            with torch.no_grad():
                norms[-1].weight.mul_(0.1)
    return model


@pytest.fixture(autouse=True)
def _no_tf32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.fixture(scope="module")
def squeezenet():
    """squeezenet1_1 in float16 on the Triton backend with buckets 1, 2, 4 and 8, and its float32 model."""
    model = randomize_batchnorm(fastcnn.create_model("squeezenet1_1", seed=0)).eval()
    example = torch.zeros(1, 3, 224, 224)
    graph = fastcnn.load(model, device="cpu", backend="torch", example_input=example).source_graph
    # small buckets: a batch of 11 runs as 8 + 3 (3 padded to 4)
    engine = fastcnn.Engine(graph, backend="triton", device="cuda", dtype=torch.float16, max_batch=8)
    return engine, model.cuda()


@pytest.mark.parametrize("batch", [1, 3, 8, 11])
def test_batches_between_buckets_and_past_the_largest(squeezenet, batch):
    engine, model = squeezenet
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch)).cuda()
    with torch.no_grad():
        expected = model(x)
    got = engine.infer(x.half())
    assert got.shape == expected.shape
    assert relative_l2(got, expected) < 1e-2


def test_concurrent_infer_calls_stay_correct(squeezenet):
    """Threads share one engine (one arena, one CUDA graph per bucket); the lock keeps each
    call's input, replay and output together, so every thread gets its own answer."""
    engine, _ = squeezenet
    inputs = [torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(i)).cuda().half()
              for i in range(4)]
    expected = [engine.infer(x) for x in inputs]
    results: dict[int, list[torch.Tensor]] = {i: [] for i in range(4)}

    def worker(i: int) -> None:
        for _ in range(5):
            results[i].append(engine.infer(inputs[i]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert len(results[i]) == 5
        for got in results[i]:
            torch.testing.assert_close(got, expected[i], rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 9,
                    reason="programmatic dependent launch needs compute capability 9.0 or later")
@pytest.mark.parametrize("batch", [1, 8])
def test_dependent_launches_give_the_same_answer_bit_for_bit(squeezenet, batch, monkeypatch):
    """FASTCNN_PDL=1: the same kernels, each waiting for the one before; any kernel that read
    or wrote too early would change the answer."""
    engine, _ = squeezenet
    monkeypatch.setenv("FASTCNN_PDL", "1")
    dependent = fastcnn.Engine(engine.source_graph, backend="triton", device="cuda", dtype=torch.float16, max_batch=8)
    assert dependent._executor.dependent_launches
    for seed in range(3):
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(seed)).cuda().half()
        torch.testing.assert_close(dependent.infer(x), engine.infer(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", fastcnn.list_models())
def test_zoo_model_on_the_gpu(name):
    info = fastcnn.model_info(name)
    model = _bounded(randomize_batchnorm(fastcnn.create_model(name, seed=0))).eval()
    example = torch.zeros(1, *info.input_size)
    x = torch.randn(BATCH, *info.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model.cuda()(x.cuda()).double()
    graph = fastcnn.load(model.cpu(), device="cpu", backend="torch", example_input=example).source_graph
    fp32 = fastcnn.Engine(graph, backend="triton", device="cuda").infer(x.cuda())
    assert relative_l2(fp32, reference) < 1e-4, "float32"
    for dtype in (torch.float16, torch.bfloat16):
        with torch.no_grad():
            torch_own = relative_l2(model.to(dtype).cuda()(x.to(dtype).cuda()), reference)
        model.float()
        got = fastcnn.Engine(graph, backend="triton", device="cuda", dtype=dtype).infer(x.to(dtype).cuda())
        error = relative_l2(got, reference)
        assert error <= 2 * torch_own, f"{dtype}: {error:.2e} vs torch's own {torch_own:.2e}"
        if torch_own < 1e-2:
            assert error < 1e-2, f"{dtype}: {error:.2e}"
