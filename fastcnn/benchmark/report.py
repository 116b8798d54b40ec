"""The suite's pytest-benchmark JSON as a markdown table and a PNG chart.

Per (model, dtype, batch): each implementation's median and interquartile range, images/s,
speedup over PyTorch eager and over the best peer, and the percentage of the roofline floor
(floor time / measured time); absent and wrong cases with their reasons. The chart: per device,
the speedup over eager of each implementation, per model.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from fastcnn.benchmark.roofline import ModelCost, Peaks

EAGER = "pytorch-eager"


@dataclass(frozen=True)
class Row:
    implementation: str
    peer: bool
    median: float  # seconds
    iqr: float
    computes_in: str | None
    cost: ModelCost


def load_results(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def groups(results: dict) -> dict[tuple, list[Row]]:
    """(device, model, dtype, batch) -> rows, in the order the suite measured them."""
    table: dict[tuple, list[Row]] = defaultdict(list)
    for bench in results.get("benchmarks", []):
        info = bench["extra_info"]
        cost = ModelCost(info["flops"], info["min_bytes"], info["layer_bytes"])
        table[(info["device"], info["model"], info["dtype"], info["batch"])].append(
            Row(info["implementation"], info["peer"], bench["stats"]["median"], bench["stats"]["iqr"],
                info.get("computes_in"), cost))
    return dict(table)


def _peaks(results: dict) -> Peaks | None:
    raw = results.get("machine_info", {}).get("peaks")
    return Peaks(**raw) if raw else None


def markdown(results: dict) -> str:
    """The whole report: the setting, one table per group, then what was absent or wrong."""
    info = results.get("machine_info", {})
    peaks = _peaks(results)
    software = ", ".join(f"{k} {v}" for k, v in info.get("software", {}).items() if v)
    lines = [f"Measured {info.get('date', '?')} on {info.get('fastcnn_device_name', '?')} "
             f"({info.get('threads', '?')} threads); {software}.", ""]
    if peaks is not None:
        rates = ", ".join(f"{k} {v / 1e12:.3g} TFLOP/s" for k, v in peaks.flops.items())
        lines += [f"Roofline peaks: {rates}; memory {peaks.bandwidth / 1e9:.3g} GB/s ({peaks.source}).", ""]
    for (device, model, dtype, batch), rows in groups(results).items():
        lines += [f"### {model}, batch {batch}, {dtype} ({device})", "", *_group_table(rows, batch, dtype, peaks), ""]
    absent = results.get("absent", [])
    if absent:
        lines += ["### Absent or wrong", "", "| model | dtype | batch | implementation | reason |",
                  "|---|---|---|---|---|"]
        lines += [f"| {a.get('model')} | {a.get('dtype')} | {a.get('batch')} | {a.get('implementation')} | "
                  f"{a.get('reason')} |" for a in absent]
    return "\n".join(lines) + "\n"


def _group_table(rows: list[Row], batch: int, dtype: str, peaks: Peaks | None) -> list[str]:
    eager = next((r.median for r in rows if r.implementation == EAGER), None)
    best_peer = min((r.median for r in rows if r.peer), default=None)
    floor = rows[0].cost.floor_seconds(peaks, dtype) if peaks is not None else None
    out = ["| implementation | median (ms) | IQR (ms) | images/s | vs eager | vs best peer | % of floor |",
           "|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: r.median):
        name = row.implementation + (f" (computes in {row.computes_in})" if row.computes_in else "")
        out.append(f"| {name} | {row.median * 1e3:.3f} | {row.iqr * 1e3:.3f} | {batch / row.median:,.1f} | "
                   f"{_ratio(eager, row.median)} | {_ratio(best_peer, row.median)} | "
                   f"{f'{100 * floor / row.median:.1f}%' if floor else '-'} |")
    return out


def _ratio(base: float | None, value: float) -> str:
    return f"{base / value:.2f}x" if base else "-"


def chart(results: dict, path: str | Path) -> Path | None:
    """A bar chart per device and batch size: each implementation's speedup over eager, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = groups(results)
    panels = sorted({(device, dtype, batch) for device, _, dtype, batch in table})
    if not panels:
        return None
    figure, axes = plt.subplots(len(panels), 1, figsize=(12, 3.5 * len(panels)), squeeze=False)
    for ax, (device, dtype, batch) in zip(axes[:, 0], panels, strict=True):
        models = [m for d, m, t, b in table if (d, t, b) == (device, dtype, batch)]
        impls = sorted({r.implementation for m in models for r in table[(device, m, dtype, batch)]})
        width = 0.8 / max(1, len(impls))
        for i, impl in enumerate(impls):
            speedups = []
            for model in models:
                rows = {r.implementation: r.median for r in table[(device, model, dtype, batch)]}
                speedups.append(rows[EAGER] / rows[impl] if EAGER in rows and impl in rows else 0)
            ax.bar([m + i * width for m in range(len(models))], speedups, width, label=impl)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([m + 0.4 - width / 2 for m in range(len(models))], models, rotation=20)
        ax.set_ylabel("speedup over eager")
        ax.set_title(f"{device}, {dtype}, batch {batch}")
        ax.legend(fontsize=7, ncol=3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
