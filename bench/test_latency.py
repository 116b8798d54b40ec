"""Latency of fastcnn's backends beside PyTorch eager (and torch.compile on a GPU), per model and batch.

Run with ``python -m pytest bench/test_latency.py`` (never part of the default test run; add
``--benchmark-json=FILE`` to keep the numbers). Each (device, model, batch) is one
pytest-benchmark group, so the implementations sit next to each other in the table; every
implementation's answer is checked against PyTorch eager (float32, same device) after it is
timed. Rounds alternate, so that slow drifts of the machine (a noisy neighbour, the heap's
state) fall on every implementation alike: before each timed round of one implementation,
every other implementation of its group runs once, untimed; then, after a 50 ms pause that
lets their thread pools stop spinning (ONNX Runtime's and OpenMP's workers spin after a run
and, on 2 cores, slowed the next implementation 2x), the timed implementation runs once
untimed, so it is timed warm, as a caller running batches back to back sees it.

The CPU groups decide ``fastcnn.backends.DEFAULT_BACKEND["cpu"]`` and each CPU backend's pipeline
of passes; the CUDA groups (run only where torch sees a GPU) are the baseline the Triton engine
has to beat. CUDA timings end with ``torch.cuda.synchronize()`` so that pytest-benchmark's host
clock reads finished work.
``FASTCNN_BENCH_MODELS=resnet18,vgg16`` picks other models.
"""
from __future__ import annotations

import functools
import os
import time
from typing import Callable

import pytest
import torch

import fastcnn

MODELS = os.environ.get("FASTCNN_BENCH_MODELS", "resnet18,googlenet,squeezenet1_1,densenet121").split(",")
BATCHES = [1, 8]
# "fastcnn-<backend>" runs the backend's own pipeline of passes; "-unfused" runs the graph as
# imported (pipeline "none") and "-full" every pass, so the passes' effect on that backend is
# measured in the same run. FASTCNN_BENCH_CPU=impl,impl,... picks the CPU implementations.
IMPLEMENTATIONS = {
    "cpu": os.environ.get("FASTCNN_BENCH_CPU", "pytorch-eager,fastcnn-torch,fastcnn-torch-unfused,"
                          "fastcnn-onnxruntime,fastcnn-onnxruntime-unfused").split(","),
    "cuda": ["pytorch-eager", "torch-compile", "fastcnn-torch", "fastcnn-triton"],
}
PIPELINE_SUFFIXES = {"-unfused": "none", "-full": "full"}
CASES = [(device, impl) for device, impls in IMPLEMENTATIONS.items() for impl in impls]
# TF32 would make eager and fastcnn-torch differ from the float32 reference by ~1e-3; the
# float32 comparison below is about the same arithmetic, so TF32 stays off everywhere.
TOLERANCE = 1e-4 if torch.cuda.is_available() else 1e-5
ROUNDS = {1: 15, 8: 7}  # timed rounds per implementation; each round also runs the others once
SETTLE_SECONDS = 0.05

Runner = Callable[[torch.Tensor], torch.Tensor]


@functools.cache
def _model(name: str, device: str) -> torch.nn.Module:
    return fastcnn.create_model(name, seed=0).to(device)


@functools.cache
def _runner(implementation: str, name: str, device: str) -> Runner:
    """The callable to time, built once per (implementation, model, device) for all batch sizes."""
    model = _model(name, device)
    if implementation in ("pytorch-eager", "torch-compile"):
        forward = torch.compile(model) if implementation == "torch-compile" else model

        def eager(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return forward(batch)
        return eager
    backend, pipeline = implementation.removeprefix("fastcnn-"), None
    for suffix, passes in PIPELINE_SUFFIXES.items():
        if backend.endswith(suffix):
            backend, pipeline = backend.removesuffix(suffix), passes
    example = torch.zeros(1, *fastcnn.model_info(name).input_size)
    engine = fastcnn.load(model.cpu(), device=device, backend=backend, example_input=example,
                          pipeline=pipeline)
    model.to(device)
    engine.warmup()
    return engine.infer


def _synchronized(run: Runner, device: str) -> Runner:
    if device != "cuda":
        return run

    def timed(batch: torch.Tensor) -> torch.Tensor:
        out = run(batch)
        torch.cuda.synchronize()
        return out
    return timed


def _relative_l2(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.double(), expected.double()
    return float((a - e).norm() / e.norm()) if torch.isfinite(a).all() else float("inf")


@pytest.mark.parametrize("batch_size", BATCHES)
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("device", "implementation"), CASES, ids=[f"{d}-{i}" for d, i in CASES])
def test_latency(benchmark, device, implementation, name, batch_size):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    benchmark.group = f"{device} {name} batch {batch_size}"
    benchmark.extra_info.update(device=device, model=name, batch=batch_size, threads=torch.get_num_threads(),
                                torch=torch.__version__)
    run = _synchronized(_runner(implementation, name, device), device)
    others = [_synchronized(_runner(other, name, device), device)
              for other in IMPLEMENTATIONS[device] if other != implementation]
    batch = torch.randn(batch_size, *fastcnn.model_info(name).input_size,
                        generator=torch.Generator().manual_seed(0)).to(device)

    def alternate() -> tuple[tuple[torch.Tensor], dict]:
        for other in others:
            other(batch)
        time.sleep(SETTLE_SECONDS)
        run(batch)
        return (batch,), {}

    output = benchmark.pedantic(run, setup=alternate, rounds=ROUNDS.get(batch_size, 5), warmup_rounds=1)
    with torch.inference_mode():
        expected = _model(name, device)(batch)
    assert _relative_l2(output, expected) < TOLERANCE
