"""The Triton backend on a lent GPU, in one bounded run: is it right, and how fast is it beside PyTorch.

Device minutes are few (see ../shared/gpu.md), so this script does the most valuable work first
and writes every result as one JSON line the moment it has it (``$OUT/gpu_check.jsonl``): a run
cut off by its time limit keeps what it measured.

1. ``correct``: per model, the Triton engine in float32 (exact, TF32 off), float16 and bfloat16
   against PyTorch eager in float32 on the same GPU and input; also torch's own error in the low
   precision dtype, the yardstick the ``gpu`` tests use.
2. ``latency``: per model and batch size, in float16, the implementations of
   :mod:`fastcnn.benchmark.implementations` named by ``--impls`` (by default PyTorch eager,
   channels_last, eager captured in a CUDA graph, torch.compile, the fastcnn torch and Triton
   backends), each timed with ``triton.testing.do_bench`` (median of CUDA-event timings after
   warm-up), in alternating rounds; the median over rounds is reported. ``fastcnn-triton`` is ``engine.infer`` whole:
   the copy in, the CUDA graph's replay and the output's copy out.

Usage: ``python bench/gpu_check.py --out DIR [--budget SECONDS] [--models a,b] [--batches 1,8]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

import fastcnn
from fastcnn.backends.triton_backend import planned_launches
from fastcnn.benchmark.implementations import Absent, Case, build_runner, relative_l2
from fastcnn.runtime.plan import make_plan
from fastcnn.zoo import ONE_PER_FAMILY

LATENCY_MODELS = ("resnet50", "googlenet", "densenet121", "squeezenet1_1", "vgg16", "inception_v3",
                  "se_resnet50", "resnet18", "alexnet", "bn_inception", "inception_v4",
                  "inception_resnet_v2", "preact_resnet50", "nin", "zfnet", "lenet5")
ROUNDS = 3
COMPILE_RESERVE_S = 120  # torch.compile's first call per shape (max-autotune takes longer: give it its own run)
IMPLS = ("pytorch-eager", "pytorch-eager-channels-last", "pytorch-cudagraph", "torch-compile", "fastcnn-torch",
         "fastcnn-triton", "fastcnn-triton-pdl")
# ONE_PER_FAMILY, the most used first; batch 8 so that the float16 kernels compiled here serve step 2.
_FIRST = ("resnet50", "googlenet", "densenet121", "squeezenet1_1", "se_resnet50", "inception_v3", "vgg16", "alexnet")
CORRECT_MODELS = (*_FIRST, *(m for m in ONE_PER_FAMILY if m not in _FIRST))
# "cpu" (with TRITON_INTERPRET=1) dry-runs this script on a machine without a GPU, before device time is spent.
DEVICE = os.environ.get("FASTCNN_CHECK_DEVICE", "cuda")


class Session:
    """The results file and the deadline shared by every step."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.path = out / "gpu_check.jsonl"
        self.deadline = time.monotonic() + budget_s

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def write(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True)
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line + "\n")


def torch_model(name: str) -> torch.nn.Module:
    """The zoo model with seeded random weights, on the GPU, in float32."""
    return fastcnn.create_model(name, seed=0).eval().to(DEVICE)


def source_graph(model: torch.nn.Module, name: str):
    example = torch.zeros(1, *fastcnn.model_info(name).input_size)
    return fastcnn.load(model.cpu(), device="cpu", backend="torch", example_input=example).source_graph


def batch_of(name: str, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    shape = fastcnn.model_info(name).input_size
    return torch.randn(size, *shape, generator=torch.Generator().manual_seed(size)).to(DEVICE, dtype)


def check_correct(session: Session, name: str, batch: int = 8) -> None:
    """float32, float16 and bfloat16 Triton engines against float32 eager on one input."""
    model = torch_model(name)
    graph = source_graph(model, name)
    model.to(DEVICE)
    x = batch_of(name, batch)
    with torch.inference_mode():
        reference = model(x)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        record = {"step": "correct", "model": name, "batch": batch, "dtype": str(dtype).removeprefix("torch.")}
        try:
            start = time.perf_counter()
            engine = fastcnn.Engine(graph, backend="triton", device=DEVICE, dtype=dtype)
            record["build_s"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            got = engine.infer(x.to(dtype))
            synchronize()
            record["first_infer_s"] = round(time.perf_counter() - start, 2)
            again = engine.infer(x.to(dtype))  # a replay of the captured graph
            record["error"] = relative_l2(got, reference)
            record["replay_error"] = relative_l2(again, reference)
            if dtype != torch.float32:
                with torch.inference_mode():
                    record["torch_error"] = relative_l2(model.to(dtype)(x.to(dtype)), reference)
                model.float()
        except Exception as exc:  # one model's failure must not end the session
            record["failure"] = f"{type(exc).__name__}: {exc}"[:2000]
            record["traceback"] = traceback.format_exc()[-3000:]
        session.write(record)


def time_latency(session: Session, name: str, batches: list[int], impls: list[str],
                 dtype: torch.dtype = torch.float16) -> None:
    """Every implementation at every batch size, alternating, with do_bench's median; errors
    against float32 eager. torch.compile compiles at its first call per shape, and is skipped
    when less than COMPILE_RESERVE_S of the budget is left."""
    module = fastcnn.create_model(name, seed=0).eval()
    one = (1, *fastcnn.model_info(name).input_size)
    reference_run = build_runner("pytorch-eager", module, Case(name, DEVICE, torch.float32, one))
    runners = {}
    for impl in impls:
        try:
            runners[impl] = build_runner(impl, module, Case(name, DEVICE, dtype, one))
        except Absent as exc:
            session.write({"step": "latency", "model": name, "impl": impl, "absent": str(exc)})
        except Exception as exc:  # one implementation's failure must not end the session
            session.write({"step": "latency", "model": name, "impl": impl,
                           "failure": f"{type(exc).__name__}: {exc}"[:2000],
                           "traceback": traceback.format_exc()[-3000:]})
    for batch in batches:
        if session.left() < 20:
            session.write({"step": "latency", "model": name, "batch": batch, "skipped": "budget"})
            return
        x = batch_of(name, batch, dtype)
        times: dict[str, list[float]] = {impl: [] for impl in runners}
        errors: dict[str, float] = {}
        reference = reference_run(x.float())
        for impl, run in list(runners.items()):
            if impl.startswith("torch-compile") and session.left() < COMPILE_RESERVE_S:
                session.write({"step": "latency", "model": name, "impl": impl, "batch": batch, "skipped": "budget"})
                del runners[impl]
                continue
            try:
                start = time.perf_counter()
                errors[impl] = relative_l2(run(x), reference)
                synchronize()
                times[impl + ":first_s"] = [time.perf_counter() - start]
            except Exception as exc:
                session.write({"step": "latency", "model": name, "impl": impl, "batch": batch,
                               "failure": f"{type(exc).__name__}: {exc}"[:2000],
                               "traceback": traceback.format_exc()[-3000:]})
                del runners[impl]
        for _ in range(ROUNDS):
            for impl, run in runners.items():
                times[impl].append(median_ms(lambda run=run, x=x: run(x)))
        record = {"step": "latency", "model": name, "batch": batch, "dtype": str(dtype).removeprefix("torch."),
                  "median_ms": {impl: statistics.median(times[impl]) for impl in runners},
                  "rounds_ms": {impl: times[impl] for impl in runners},
                  "first_call_s": {impl: round(times[impl + ":first_s"][0], 2) for impl in runners},
                  "error_vs_float32_eager": errors}
        try:
            example = torch.zeros(one)
            graph = fastcnn.load(module, device="cpu", backend="torch", pipeline="triton", example_input=example).graph
            record["triton_launches"] = len(planned_launches(graph, batch, dtype))
            totals = make_plan(graph, batch).totals
            record["flops"], record["min_bytes"] = totals.flops, totals.bytes_moved
        except Exception as exc:
            record["plan_failure"] = f"{type(exc).__name__}: {exc}"[:500]
        session.write(record)


def synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def median_ms(run: Callable[[], object]) -> float:
    """do_bench's median on a GPU; on the CPU dry run, one timed call."""
    if DEVICE != "cuda":
        start = time.perf_counter()
        run()
        return (time.perf_counter() - start) * 1e3
    from triton.testing import do_bench

    return do_bench(run, warmup=5, rep=30, return_mode="median")


def describe_environment(session: Session) -> None:
    import triton

    if DEVICE != "cuda":
        session.write({"step": "environment", "device": DEVICE, "torch": torch.__version__,
                       "triton": triton.__version__})
        return
    props = torch.cuda.get_device_properties(0)
    session.write({"step": "environment", "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                   "gpu": props.name, "sms": props.multi_processor_count,
                   "memory_gib": round(props.total_memory / 2**30, 1), "torch": torch.__version__,
                   "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                   "triton": triton.__version__, "python": sys.version.split()[0]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/fastcnn-gpu")))
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run")
    parser.add_argument("--correct-share", type=float, default=0.4, help="of the budget, for step 1")
    parser.add_argument("--models", default="", help="latency models, comma-separated")
    parser.add_argument("--correct-models", default=",".join(CORRECT_MODELS))
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--impls", default=",".join(IMPLS), help="implementations (fastcnn.benchmark), comma-separated")
    args = parser.parse_args()
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; nothing to do")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    session = Session(args.out, args.budget)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    describe_environment(session)
    correct_until = time.monotonic() + args.budget * args.correct_share
    for name in filter(None, args.correct_models.split(",")):
        if time.monotonic() > correct_until:
            session.write({"step": "correct", "skipped": name, "why": "time share spent"})
            continue
        check_correct(session, name)
    batches = [int(b) for b in args.batches.split(",")]
    for name in filter(None, (args.models or ",".join(LATENCY_MODELS)).split(",")):
        if session.left() < 30:
            session.write({"step": "latency", "skipped": name, "why": "budget spent"})
            continue
        try:
            time_latency(session, name, batches, args.impls.split(","))
        except Exception as exc:
            session.write({"step": "latency", "model": name, "failure": f"{type(exc).__name__}: {exc}"[:2000],
                           "traceback": traceback.format_exc()[-3000:]})
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
