"""Autotuning the Triton backend's plan, under Triton's interpreter with a fake clock.

The clock says which candidate is fastest; the rest is real: each candidate is bound to the
bucket's views, checked against the rule's result, the choice is recorded in the lowering, the
bucket is planned again (its split-K workspace sized for the choice) and runs. Networks are
small and ``max_batch`` is 1 or 2, so that the interpreter runs each test in seconds.
"""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import fastcnn
from fastcnn.backends.triton_lowering import TORCH_CONV
from fastcnn.kernels import conv_torch
from fastcnn.kernels.autotune import TuneCache
from fastcnn.kernels.conv2d import ConvConfig
from tests.helpers import randomize_batchnorm, relative_l2

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
pytestmark = pytest.mark.skipif(not INTERPRETED, reason="the fake clock is for Triton's interpreter")
TOLERANCE = 1e-4


class TinyNet(nn.Module):
    """Every epilogue the torch candidate must reproduce: an RGB stem (gathered K), batch norm
    and ReLU, a residual add with a ReLU after it, two branches into one concat buffer (channel
    slices), a squeeze-excite gate (pooled sums), batch norm and ReLU before a convolution (its
prologue), a classifier Gemm."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.left, self.right = nn.Conv2d(16, 16, 1), nn.Conv2d(16, 16, 3, stride=2, padding=(1, 1))
        self.pool = nn.MaxPool2d(2)
        self.squeeze = nn.Sequential(nn.Conv2d(32, 32, 1), nn.ReLU())
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 8, 1), nn.ReLU(), nn.Conv2d(8, 32, 1),
                                  nn.Sigmoid())
        self.pre = nn.Sequential(nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.body(x) + x)
        x = torch.cat([self.pool(self.left(x)), self.right(x)], dim=1)
        x = self.squeeze(x)
        x = self.pre(x * self.gate(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _engines(model: nn.Module, size: tuple[int, ...], max_batch: int = 1):
    reference = fastcnn.load(model.eval(), device="cpu", backend="torch", example_input=torch.zeros(1, *size))
    return reference, fastcnn.Engine(reference.source_graph, backend="triton", device="cpu", max_batch=max_batch)


def _tiny():
    return _engines(randomize_batchnorm(TinyNet()), (3, 16, 16))


def _small(max_batch: int = 1):
    return _engines(randomize_batchnorm(TinyNet()), (3, 8, 8), max_batch)


def _matches(reference, triton, batch: int = 1) -> None:
    x = torch.randn(batch, *reference.input_spec.shape[1:], generator=torch.Generator().manual_seed(batch))
    assert relative_l2(triton.infer(x), reference.infer(x)) < TOLERANCE


class Clock:
    """A fake timer: ``fast(name)`` says whether a candidate is the quick one; it logs calls."""

    def __init__(self, fast=lambda name: False) -> None:
        self.fast, self.log = fast, []

    def __call__(self, fn) -> float:
        self.log.append(fn.name)
        return 0.01 if self.fast(fn.name) else 1.0


def _torch_wins(name: str) -> bool:
    return name.startswith("torch")


def _tunable(triton) -> list:
    return [row for row in triton.kernel_choices if row.choice != "direct conv"]


def test_torch_winning_runs_the_layers_through_torch_and_matches(tmp_path):
    reference, triton = _tiny()
    triton._executor.warmup(autotune=True, timer=Clock(_torch_wins), cache=TuneCache(tmp_path))
    convs = [row for row in _tunable(triton) if row.op != "fused_gemm"]
    assert len(convs) >= 5 and all(row.choice == "torch conv2d + epilogue" for row in convs), convs
    assert all(row.reason.startswith("torch: 0.01 ms vs rule 1 ms") for row in convs)
    calls = triton._executor.buckets[1].calls
    assert sum(isinstance(c, conv_torch.TorchConvCall) for c in calls) == len(convs)
    _matches(reference, triton)


def test_a_second_process_reads_the_choices_and_measures_nothing(tmp_path):
    reference, triton = _small()
    triton._executor.warmup(autotune=True, timer=Clock(_torch_wins), cache=TuneCache(tmp_path))
    second = fastcnn.Engine(reference.source_graph, backend="triton", device="cpu", max_batch=1)
    clock = Clock(_torch_wins)
    second._executor.warmup(autotune=True, timer=clock, cache=TuneCache(tmp_path))
    assert clock.log == []
    assert [r.choice for r in second.kernel_choices] == [r.choice for r in triton.kernel_choices]
    assert all(r.reason.endswith("(cached)") for r in _tunable(second))
    _matches(reference, second)


def test_a_wrong_fast_candidate_is_rejected(tmp_path, monkeypatch):
    """The torch path made wrong (one output off by 1e-3 of its channels) and the fastest:
    the rule's tiles stay."""
    reference, triton = _small()
    original = conv_torch.TorchConvCall.__call__

    def wrong(self) -> None:
        original(self)
        self.outs[0][:, :1].mul_(1.001)

    monkeypatch.setattr(conv_torch.TorchConvCall, "__call__", wrong)
    triton._executor.warmup(autotune=True, timer=Clock(_torch_wins), cache=TuneCache(tmp_path))
    decisions = triton._executor._decisions
    convs = [d for (name, _), d in decisions.items() if "Gemm" not in name and "Flatten" not in name]
    assert convs and all(d.value != TORCH_CONV and "torch" in next(iter(d.rejected)) for d in convs)
    assert all(v.startswith("wrong") for d in convs for v in d.rejected.values())
    _matches(reference, triton)


def test_a_chosen_split_k_gets_its_workspace_planned(tmp_path):
    reference, triton = _small(max_batch=2)
    triton._executor.warmup(autotune=True, timer=Clock(lambda name: "split-K" in name and "conv" in name),
                            cache=TuneCache(tmp_path))
    executor = triton._executor
    split = {key: d.value for key, d in executor._decisions.items()
             if isinstance(d.value, ConvConfig) and d.value.split_k == 2}
    assert {batch for _, batch in split} == {1, 2}
    for (node, batch) in split:
        assert executor.buckets[batch].views.memory.request(node, "partials").nbytes > 0
    _matches(reference, triton, batch=2)
    _matches(reference, triton, batch=1)


def test_without_autotune_nothing_is_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCNN_CACHE_DIR", str(tmp_path))
    reference, triton = _small()
    clock = Clock(_torch_wins)
    triton._executor.warmup(autotune=False, timer=clock)
    monkeypatch.setenv("FASTCNN_AUTOTUNE", "1")  # no clock on the interpreter: the rules decide
    triton.warmup()
    assert clock.log == [] and not list(tmp_path.iterdir())
    assert all(row.reason == "rule" for row in triton.kernel_choices) and triton.kernel_choices
    _matches(reference, triton)


def test_the_environment_variable_tunes_when_a_clock_can_measure(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCNN_AUTOTUNE", "1")
    monkeypatch.setenv("FASTCNN_CACHE_DIR", str(tmp_path))
    reference, triton = _small()
    clock = Clock(_torch_wins)
    triton._executor.warmup(timer=clock)
    assert clock.log and list((tmp_path / "autotune").iterdir())
    _matches(reference, triton)


def test_autotune_is_refused_where_it_cannot_measure():
    reference, triton = _small()
    with pytest.raises(fastcnn.InputError, match="interpreter"):
        triton.warmup(autotune=True)
    with pytest.raises(fastcnn.InputError, match="no kernels to autotune"):
        reference.warmup(autotune=True)
    reference.warmup(autotune=False)
    assert reference.kernel_choices == []
