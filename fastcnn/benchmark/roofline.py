"""The fastest a model could possibly run on a device: its floor time, from the IR and the device's peaks.

A model at a batch size must do its FLOPs and move its bytes; a device does at most ``flops``
per second and moves at most ``bandwidth`` bytes per second, so the floor is the larger of the
two quotients. Two byte counts:

- ``min_bytes``: weights + input + output, read or written once (the model's true minimum);
- ``layer_bytes``: layer-by-layer traffic after fastcnn's passes (every launch reads its
  inputs and writes its outputs once), what an engine that keeps no activation on chip moves.

GPU peaks are the datasheets' (dense, no sparsity); the CPU's are measured by :func:`probe_cpu`
(a large copy and a large matmul), since no datasheet knows a shared 2-core VM.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from fastcnn.ir import Graph


@dataclass(frozen=True)
class Peaks:
    """A device's ceilings: FLOP/s per dtype, and memory bandwidth in bytes/s."""

    device: str
    flops: dict[str, float]
    bandwidth: float
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


# Datasheet numbers, dense (NVIDIA H100 and H200 SXM datasheets). TF32 is float32 on tensor cores.
GPU_PEAKS = {
    "NVIDIA H100 80GB HBM3": Peaks("NVIDIA H100 SXM", {"float32": 67e12, "tf32": 494.5e12, "float16": 989.5e12,
                                                       "bfloat16": 989.5e12}, 3.35e12, "NVIDIA H100 datasheet"),
    "NVIDIA H200": Peaks("NVIDIA H200 SXM", {"float32": 67e12, "tf32": 494.5e12, "float16": 989.5e12,
                                             "bfloat16": 989.5e12}, 4.8e12, "NVIDIA H200 datasheet"),
}


@dataclass(frozen=True)
class ModelCost:
    flops: int
    min_bytes: int
    layer_bytes: int

    def floor_seconds(self, peaks: Peaks, dtype: str) -> float:
        """The larger of compute time and layer-by-layer memory time (the engine's real floor)."""
        rate = peaks.flops.get(dtype) or peaks.flops["float32"]
        return max(self.flops / rate, self.layer_bytes / peaks.bandwidth)


def model_cost(graph: Graph, batch: int, itemsize: int = 4) -> ModelCost:
    """FLOPs and bytes of ``graph`` (rewritten by the passes) at ``batch``, for ``itemsize``-byte
    activations and weights (the IR is float32: byte counts are scaled for float16/bfloat16)."""
    from fastcnn.runtime.plan import make_plan

    plan = make_plan(graph, batch)
    scale = itemsize / 4
    weights = sum(value.const.nbytes for value in graph.constants())
    ends = sum(_bytes(v, batch) for v in (*graph.inputs, *graph.outputs))
    return ModelCost(plan.totals.flops, int((weights + ends) * scale), int(plan.totals.bytes_moved * scale))


def _bytes(value, batch: int) -> int:
    n = 1
    for d in value.shape:
        n *= d if isinstance(d, int) else batch
    return n * 4


def gpu_peaks(name: str) -> Peaks | None:
    return GPU_PEAKS.get(name)


def probe_cpu(seconds: float = 1.0) -> Peaks:
    """This CPU's copy bandwidth (256 MiB copies; bytes read + written) and float32/bfloat16 matmul
    rates (2048-square products), each the best of repeated runs within ``seconds``."""
    source = torch.empty(64 * 2**20, dtype=torch.float32)
    target = torch.empty_like(source)
    bandwidth = 2 * source.nbytes / _best(lambda: target.copy_(source), seconds)
    flops = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        flops[str(dtype).removeprefix("torch.")] = 2 * 2048**3 / _best(lambda a=a, b=b: a @ b, seconds)
    stamp = time.strftime("%Y-%m-%d")
    return Peaks(f"cpu ({torch.get_num_threads()} threads)", flops, bandwidth,
                 f"measured by fastcnn.benchmark.roofline.probe_cpu on {stamp}")


def _best(fn, seconds: float) -> float:
    fn()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
