"""``fastcnn bench``: run the suite (``bench/test_latency.py``, pytest-benchmark) in a child
process with the settings as its environment, then write the report beside its JSON.

The suite lives in the source tree, not in the installed package: ``fastcnn bench`` runs from a
checkout (a fresh clone with ``make setup`` is enough) and says so otherwise.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fastcnn.benchmark.report import chart, load_results, markdown
from fastcnn.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "bench" / "test_latency.py"


@dataclass(frozen=True)
class BenchSettings:
    models: tuple[str, ...] = ()
    batches: tuple[int, ...] = ()
    device: str | None = None
    dtypes: tuple[str, ...] = ()
    implementations: tuple[str, ...] = ()
    rounds: int | None = None
    seconds: float | None = None

    def environment(self) -> dict[str, str]:
        """The suite's settings, as the variables ``bench/test_latency.py`` reads."""
        values = {"FASTCNN_BENCH_MODELS": ",".join(self.models),
                  "FASTCNN_BENCH_BATCHES": ",".join(map(str, self.batches)),
                  "FASTCNN_BENCH_DEVICE": self.device or "", "FASTCNN_BENCH_DTYPES": ",".join(self.dtypes),
                  "FASTCNN_BENCH_IMPLS": ",".join(self.implementations),
                  "FASTCNN_BENCH_ROUNDS": str(self.rounds or ""), "FASTCNN_BENCH_SECONDS": str(self.seconds or "")}
        return {key: value for key, value in values.items() if value}


def default_folder(device: str | None) -> Path:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return Path("fastcnn-bench") / f"{time.strftime('%Y-%m-%d-%H%M')}-{device}"


def run_bench(settings: BenchSettings, folder: Path) -> dict[str, Path]:
    """Run the suite, then write ``report.md`` and ``chart.png`` next to ``bench.json`` in ``folder``."""
    if not SUITE.is_file():
        raise InputError(f"fastcnn bench runs the suite in the source tree ({SUITE}), which this installation "
                         "lacks: run it from a clone of fastcnn")
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / "bench.json"
    command = [sys.executable, "-m", "pytest", str(SUITE), "-v", "-p", "no:cacheprovider", "-o", "addopts=",
               "-rs", f"--benchmark-json={results}", "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=name"]
    env = {**os.environ, **settings.environment(), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode != 0 or not results.is_file():
        raise InputError(f"the benchmark suite failed (exit {done.returncode}); its output is above")
    data = load_results(results)
    report = folder / "report.md"
    report.write_text(markdown(data))
    paths = {"json": results, "report": report}
    picture = chart(data, folder / "chart.png")
    if picture is not None:
        paths["chart"] = picture
    return paths
