"""Latency of every implementation a user could pick, per model, dtype and batch, side by side.

``fastcnn bench`` runs this suite and writes its report; ``python -m pytest bench/test_latency.py
--benchmark-json=FILE`` runs it alone. Never part of the default test run.

- Implementations: :data:`fastcnn.benchmark.implementations.IMPLEMENTATIONS` (PyTorch eager,
  channels_last, torch.compile, ONNX Runtime, OpenVINO, each fastcnn backend). One that cannot
  run here is skipped with its reason, which the report lists as absent: never a fake number.
- Every implementation gets the same weights and the same input; its answer is checked
  against PyTorch eager in float32 on the same device *before* it is timed (1e-4 relative L2 in
  float32, 1e-2 in float16/bfloat16 or where it computes in lower precision and says so). A
  wrong answer is skipped as "WRONG", never timed.
- Each (model, dtype, batch) is one pytest-benchmark group. Rounds alternate: before each timed
  round, the next other implementation of the group (round robin) runs once, untimed, then a
  50 ms pause lets thread pools stop spinning (ONNX Runtime's and OpenMP's workers spin after a
  run and, on 2 cores, slowed the next implementation 2x), then the timed implementation runs
  once untimed, so it is timed warm, as a caller running batches back to back sees it.
- Rounds per implementation: as many as fit in ``FASTCNN_BENCH_SECONDS`` (default 3), between 3
  and ``FASTCNN_BENCH_ROUNDS`` (default 15).
- CUDA timings end with ``torch.cuda.synchronize()``, so the host clock reads finished work.

Settings (environment, as ``fastcnn bench`` sets them): ``FASTCNN_BENCH_MODELS``,
``FASTCNN_BENCH_BATCHES``, ``FASTCNN_BENCH_DEVICE`` (default cuda where present), ``FASTCNN_BENCH_DTYPES``,
``FASTCNN_BENCH_IMPLS``, comma-separated.
"""
from __future__ import annotations

import os
import time

import pytest
import torch

import fastcnn
from fastcnn.benchmark.implementations import IMPLEMENTATIONS, Absent, Case, bench_device, build_runner, relative_l2
from fastcnn.benchmark.roofline import model_cost

DEVICE = bench_device()
_DEFAULTS = {  # device: (models, batches, dtypes)
    "cpu": ("resnet18,googlenet,squeezenet1_1,densenet121", "1,8", "float32"),
    "cuda": ("resnet50,googlenet,densenet121,se_resnet50", "1,8,64,256", "float16"),
}
MODELS = os.environ.get("FASTCNN_BENCH_MODELS", _DEFAULTS[DEVICE][0]).split(",")
BATCHES = [int(b) for b in os.environ.get("FASTCNN_BENCH_BATCHES", _DEFAULTS[DEVICE][1]).split(",")]
DTYPES = os.environ.get("FASTCNN_BENCH_DTYPES", _DEFAULTS[DEVICE][2]).split(",")
IMPLS = os.environ.get("FASTCNN_BENCH_IMPLS", ",".join(IMPLEMENTATIONS)).split(",")
SECONDS = float(os.environ.get("FASTCNN_BENCH_SECONDS", "3"))
MAX_ROUNDS = int(os.environ.get("FASTCNN_BENCH_ROUNDS", "15"))
SETTLE_SECONDS = 0.05


class _Group:
    """Every implementation's runner for the (model, dtype) being measured, built on entering it
    (compilation stays out of the timings) and shared by its batch sizes; the previous model's
    are dropped (VGG's weights, copied per implementation, are 0.5 GB each)."""

    key: tuple[str, str] | None = None
    module: torch.nn.Module | None = None
    reference = None
    runners: dict[str, object] = {}
    absent: dict[str, str] = {}
    costs: dict[int, object] = {}

    @classmethod
    def enter(cls, model: str, dtype: str) -> None:
        if cls.key == (model, dtype):
            return
        cls.key, cls.runners, cls.absent, cls.costs = (model, dtype), {}, {}, {}
        cls.module = fastcnn.create_model(model, seed=0).eval()
        shape = (1, *fastcnn.model_info(model).input_size)
        cls.reference = build_runner("pytorch-eager", cls.module, Case(model, DEVICE, torch.float32, shape))
        for name in IMPLS:
            try:
                cls.runners[name] = _synchronized(build_runner(name, cls.module, Case(model, DEVICE,
                                                                                      getattr(torch, dtype), shape)))
            except Absent as exc:
                cls.absent[name] = str(exc)


def _synchronized(run):
    if DEVICE != "cuda":
        return run

    def timed(batch):
        out = run(batch)
        torch.cuda.synchronize()
        return out
    return timed


def _cost(model: str, batch: int, itemsize: int):
    if batch not in _Group.costs:
        example = torch.zeros(1, *fastcnn.model_info(model).input_size)
        graph = fastcnn.load(_Group.module, device="cpu", backend="torch", example_input=example).graph
        _Group.costs[batch] = model_cost(graph, batch, itemsize)
    return _Group.costs[batch]


@pytest.mark.parametrize("implementation", IMPLS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", MODELS)
def test_latency(benchmark, model, dtype, batch, implementation):
    _Group.enter(model, dtype)
    torch_dtype = getattr(torch, dtype)
    shape = (batch, *fastcnn.model_info(model).input_size)
    if implementation in _Group.absent:
        pytest.skip(f"absent: {_Group.absent[implementation]}")
    run = _Group.runners[implementation]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(batch)).to(DEVICE)
    expected = _Group.reference(x)
    spec = IMPLEMENTATIONS[implementation]
    tolerance = 1e-4 if dtype == "float32" and spec.computes_in is None else 1e-2
    start = time.perf_counter()
    error = relative_l2(run(x.to(torch_dtype)), expected)
    single = time.perf_counter() - start
    if not error <= tolerance:
        pytest.skip(f"WRONG: relative L2 {error:.2e} against eager float32, over {tolerance:g}")
    cost = _cost(model, batch, torch_dtype.itemsize)
    benchmark.group = f"{DEVICE} {model} {dtype} batch {batch}"
    benchmark.extra_info.update(device=DEVICE, model=model, dtype=dtype, batch=batch, implementation=implementation,
                                peer=spec.peer, computes_in=spec.computes_in, error=error, flops=cost.flops,
                                min_bytes=cost.min_bytes, layer_bytes=cost.layer_bytes,
                                threads=torch.get_num_threads())
    others = [name for name in IMPLS if name != implementation and name in _Group.runners]
    turn = iter(range(10**9))
    xin = x.to(torch_dtype)

    def alternate():
        if others:
            _Group.runners[others[next(turn) % len(others)]](xin)
            time.sleep(SETTLE_SECONDS)
        run(xin)
        return (xin,), {}

    rounds = min(MAX_ROUNDS, max(3, int(SECONDS / max(single, 1e-4))))
    benchmark.pedantic(run, setup=alternate, rounds=rounds, warmup_rounds=1)
