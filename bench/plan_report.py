"""What the passes buy, per model family: kernel launches, bytes moved, activation memory.

    python bench/plan_report.py [--batch N] [--models lenet5 resnet50 ...]

Prints a markdown table (for the README): one row per model, each number before the passes
(pipeline ``none``) and after them (``full``), from :func:`fastcnn.runtime.plan.make_plan`.
Bytes moved are the lower bound of :mod:`fastcnn.ir.cost` (every launch reads its inputs and
weights once, writes its outputs once); peak memory is the planned activation arena plus
the zeroed workspace. Exporting the zoo takes a few minutes (VGG-16 alone about 15 s).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastcnn.api import import_source
from fastcnn.passes import run_pipeline
from fastcnn.runtime.plan import Plan, make_plan
from fastcnn.zoo import ONE_PER_FAMILY

HEADER = ("model", "launches before", "launches after", "MB moved before", "MB moved after",
          "peak MiB before", "peak MiB after")


def plans(model: str, batch: int) -> tuple[Plan, Plan]:
    """The plans of ``model`` before and after the full pipeline."""
    graph = import_source(model)
    fused = graph.clone()
    run_pipeline(fused, "full")
    return make_plan(graph, batch, name=model), make_plan(fused, batch, name=model)


def row(model: str, before: Plan, after: Plan) -> str:
    a, b = before.totals, after.totals
    cells = (model, f"{a.launches}", f"{b.launches}", f"{a.bytes_moved / 1e6:.1f}", f"{b.bytes_moved / 1e6:.1f}",
             f"{a.peak_bytes / 2**20:.2f}", f"{b.peak_bytes / 2**20:.2f}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--models", nargs="+", default=ONE_PER_FAMILY, help="zoo names (default: one per family)")
    args = parser.parse_args()
    print(f"Batch {args.batch}, float32; before: pipeline `none`, after: pipeline `full`.\n")
    print("| " + " | ".join(HEADER) + " |")
    print("|---" + "|---:" * (len(HEADER) - 1) + "|")
    for model in args.models:
        print(row(model, *plans(model, args.batch)), flush=True)


if __name__ == "__main__":
    main()
