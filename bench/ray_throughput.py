"""Throughput of fastcnn.ray.classify on this machine with 1, 2... actors: generated JPEG files
in, top-5 rows out (read, decode, preprocess, infer, all of Ray Data's job).

Each job's wall time includes starting its actors (each loads the model), so every actor count
runs two sizes of job and the steady rate is taken from the difference: (N_large - N_small) /
(T_large - T_small), free of the fixed start-up cost. Both raw times are written too.

    .venv/bin/python bench/ray_throughput.py --model resnet18 --out bench/results/DATE-ray-cpu-2core
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime
import ray
import torch
from PIL import Image

import fastcnn
import fastcnn.ray


def make_images(folder: Path, count: int) -> None:
    """``count`` JPEGs of 320 x 240 noise: decoding and resizing cost what a photo's would."""
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)


def time_job(folder: Path, model: str, actors: int, batch_size: int) -> float:
    """Seconds for one whole job (its rows materialised), every row checked to have run."""
    start = time.perf_counter()
    rows = fastcnn.ray.classify(folder, model, actors=actors, cpus_per_actor=1.0 / actors,
                                batch_size=batch_size).take_all()
    seconds = time.perf_counter() - start
    assert all(row["error"] == "" for row in rows), [row["error"] for row in rows if row["error"]][:3]
    return seconds


def measure(args: argparse.Namespace, root: Path) -> list[dict]:
    folders = {}
    for count in (args.small, args.large):
        folders[count] = root / str(count)
        folders[count].mkdir()
        make_images(folders[count], count)
    results = []
    for actors in args.actors:
        times = {count: [time_job(folders[count], args.model, actors, args.batch_size) for _ in range(args.repeat)]
                 for count in (args.small, args.large)}
        small, large = (statistics.median(times[c]) for c in (args.small, args.large))
        steady = (args.large - args.small) / (large - small)
        results.append({"actors": actors, "seconds": times, "images_per_s_steady": steady,
                        "images_per_s_whole_job": args.large / large})
        print(json.dumps(results[-1]), flush=True)
    return results


def machine(model: str) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "ray": ray.__version__, "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "fastcnn": fastcnn.__version__,
            "load_average_1min_at_start": os.getloadavg()[0], "backend": fastcnn.load(model).backend}


def report(meta: dict, args: argparse.Namespace, results: list[dict]) -> str:
    lines = [f"# fastcnn.ray.classify throughput, {args.model}, {meta['date'][:10]}", "",
             f"{meta['cpu']}, {meta['cores']} cores; Python {meta['python']}, Ray {meta['ray']}, "
             f"torch {meta['torch']}, ONNX Runtime {meta['onnxruntime']}, fastcnn {meta['fastcnn']} "
             f"(its default CPU backend: {meta['backend']}). "
             f"Load average at the start: {meta['load_average_1min_at_start']:.1f}.",
             f"JPEG 320 x 240 files -> top-5 rows; batch {args.batch_size}; jobs of {args.small} and {args.large} "
             f"images, {args.repeat} runs each (median).", "",
             f"| actors | job of {args.small} (s) | job of {args.large} (s) | images/s, steady | images/s, whole job |",
             "|---:|---:|---:|---:|---:|"]
    for r in results:
        small, large = (statistics.median(r["seconds"][c]) for c in (args.small, args.large))
        lines.append(f"| {r['actors']} | {small:.1f} | {large:.1f} | {r['images_per_s_steady']:.1f} | "
                     f"{r['images_per_s_whole_job']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--small", type=int, default=128)
    parser.add_argument("--large", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    meta = machine(args.model)
    with tempfile.TemporaryDirectory() as root:
        results = measure(args, Path(root))
    ray.shutdown()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({**meta, "model": args.model, "batch_size": args.batch_size,
                                                        "results": results}, indent=2) + "\n")
    (args.out / "report.md").write_text(report(meta, args, results))
    print(report(meta, args, results))


if __name__ == "__main__":
    main()
