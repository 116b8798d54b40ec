"""Markdown tables from a ``bench/gpu_check.py`` results file (JSON lines).

Usage: ``python bench/gpu_check_report.py RESULTS.jsonl [--chart CHART.png] > RESULTS.md``

``--chart`` draws the speedup-over-eager chart with the benchmark report's own renderer
(:func:`fastcnn.benchmark.report.chart`), so GPU and CPU charts look alike.

The floor of each latency row is the larger of its FLOPs at the GPU's matrix rate and its
fewest bytes (the plan's ``bytes_moved``) at its copy bandwidth; ``gap`` is the Triton
engine's time over that floor. The ceilings default to what was measured on an H200 here
(KINDS.md in the device tool's library: 788 TFLOP/s bf16 on random data, 4.3 TB/s copy).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

PEERS = ("pytorch-eager", "pytorch-eager-channels-last", "pytorch-cudagraph", "torch-compile",
         "torch-compile-max-autotune")
IMPLS = (*PEERS, "fastcnn-torch", "fastcnn-triton", "fastcnn-triton-pdl")


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def environment(records: list[dict]) -> str:
    env = next((r for r in records if r["step"] == "environment"), {})
    return (f"{env.get('gpu', '?')} ({env.get('sms', '?')} SMs), torch {env.get('torch', '?')} "
            f"(CUDA {env.get('cuda', '?')}, cuDNN {env.get('cudnn', '?')}), Triton {env.get('triton', '?')}, "
            f"Python {env.get('python', '?')}, {env.get('date', '?')}")


def correctness_table(records: list[dict]) -> list[str]:
    rows = ["| model | dtype | fastcnn-triton rel. L2 vs float32 eager | torch's own in that dtype | first infer (s) |",
            "|---|---|---|---|---|"]
    for r in records:
        if r["step"] != "correct" or "model" not in r:
            continue
        error = f"{r['error']:.2e}" if "error" in r else f"FAILED: {r.get('failure', '?')[:80]}"
        own = f"{r['torch_error']:.2e}" if "torch_error" in r else "-"
        rows.append(f"| {r['model']} | {r['dtype']} | {error} | {own} | {r.get('first_infer_s', '-')} |")
    return rows


def latency_table(records: list[dict], tflops: float, tbps: float) -> list[str]:
    present = [i for i in IMPLS if any(i in r.get("median_ms", {}) for r in records)]
    rows = ["| model | batch | " + " | ".join(f"{i} (ms)" for i in present)
            + " | triton vs best PyTorch | triton launches | floor (ms) | gap |",
            "|---|---|" + "---|" * (len(present) + 4)]
    for r in records:
        times = r.get("median_ms")
        if r["step"] != "latency" or not times:
            continue
        cells = [f"{times[i]:.3f}" if i in times else "-" for i in present]
        best_peer = min((times[i] for i in PEERS if i in times), default=None)
        triton = times.get("fastcnn-triton")
        ratio = f"{best_peer / triton:.2f}x" if best_peer and triton else "-"
        floor = max(r.get("flops", 0) / (tflops * 1e12), r.get("min_bytes", 0) / (tbps * 1e12)) * 1e3
        gap = f"{triton / floor:.1f}x" if triton and floor else "-"
        rows.append(f"| {r['model']} | {r['batch']} | " + " | ".join(cells)
                    + f" | {ratio} | {r.get('triton_launches', '-')} | {floor:.3f} | {gap} |")
    return rows


def as_bench_results(records: list[dict]) -> dict:
    """The latency records in pytest-benchmark's shape, as :mod:`fastcnn.benchmark.report` reads it."""
    benchmarks = []
    for r in (r for r in records if r.get("step") == "latency" and "median_ms" in r):
        for impl, ms in r["median_ms"].items():
            info = dict(device="cuda", model=r["model"], dtype=r["dtype"], batch=r["batch"], implementation=impl,
                        peer=impl in PEERS, flops=r["flops"], min_bytes=r["min_bytes"],
                        layer_bytes=r.get("layer_bytes", r["min_bytes"]))
            benchmarks.append({"extra_info": info, "stats": {"median": ms / 1e3, "iqr": 0.0}})
    return {"benchmarks": benchmarks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--tflops", type=float, default=788.0, help="matrix rate ceiling, TFLOP/s")
    parser.add_argument("--tbps", type=float, default=4.3, help="copy bandwidth ceiling, TB/s")
    parser.add_argument("--chart", type=Path, help="also write the speedup-over-eager chart (PNG) here")
    args = parser.parse_args()
    records = read(args.results)
    if args.chart is not None:
        from fastcnn.benchmark.report import chart

        chart(as_bench_results(records), args.chart)
    lines = [f"Measured on {environment(records)}.", "", "## Correctness", "", *correctness_table(records),
             "", "## Latency, float16 (median of 3 alternating do_bench rounds)", "",
             *latency_table(records, args.tflops, args.tbps)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
