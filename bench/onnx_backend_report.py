"""ONNX's backend test suite, fastcnn beside ONNX Runtime's own backend.

    python bench/onnx_backend_report.py [--all]

Runs the cases of ``tests/conformance`` (node tests of the ops fastcnn converts, and the
model groups the onnx wheel ships) through ``onnx.backend.test.BackendTest`` three times, on
the CPU, with onnx's data and tolerances: ``fastcnn.onnx_backend`` with fastcnn's reference
``torch`` executor, the same with fastcnn's ``onnxruntime`` executor (fastcnn's import, then
its graph written back to ONNX and run by ONNX Runtime), and ONNX Runtime's own backend
(``onnxruntime.backend``) on the original files. Prints per-group counts side by side, then
the cases ONNX Runtime's backend fails among those fastcnn passes, and its other failures
grouped by cause (``--all`` lists every case).

For fastcnn, ``refused`` is a clean refusal (``UnsupportedModelError``, or ``InputError``
for an input it does not take; see ``EXCLUDED``/``UNSUPPORTED_OPS`` in the test);
``failed`` is anything else.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.conformance

import onnxruntime  # noqa: E402
import onnxruntime.backend  # noqa: E402

from fastcnn.errors import InputError, UnsupportedModelError  # noqa: E402
from fastcnn.frontend.converters import CONVERTERS  # noqa: E402
from fastcnn.onnx_backend import FastCNNBackend  # noqa: E402
from tests.conformance.onnx_cases import GROUPS, Case, Runner, all_cases, in_scope, outcome  # noqa: E402


class FastCNNOnnxRuntime(FastCNNBackend):
    """fastcnn's ONNX backend with its ``onnxruntime`` executor instead of ``torch``."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):  # noqa: ANN001, ANN206 - Backend's signature
        return FastCNNBackend.prepare(model, device, backend="onnxruntime")


def fastcnn_outcome(runner: Runner, case: Case) -> tuple[str, str]:
    """Like :func:`outcome`, with a clean refusal counted apart from a failure."""
    try:
        runner.run(case)
    except (UnsupportedModelError, InputError) as exc:
        return "refused", str(exc).splitlines()[-1].strip()
    except Exception:  # noqa: BLE001
        return outcome(runner, case)  # run again only to describe the failure
    return "passed", ""


# name -> (the backend BackendTest runs, how an outcome is read)
BACKENDS = {
    "fastcnn/torch": (FastCNNBackend, fastcnn_outcome),
    "fastcnn/onnxruntime": (FastCNNOnnxRuntime, fastcnn_outcome),
    "onnxruntime.backend": (onnxruntime.backend, outcome),
}
ORT = "onnxruntime.backend"


def cause(detail: str) -> str:
    """A failure message without its case-specific parts, to group failures."""
    detail = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : ", "", detail)
    detail = re.sub(r"node with name '[^']*'", "node", detail)
    detail = re.sub(r"string_normalizer\.cc.*", "StringNormalizer locale missing", detail)
    return detail[:110]


Results = dict[str, dict[str, tuple[str, str]]]  # backend -> case name -> (outcome, detail)


def run_all(cases: list[Case]) -> Results:
    results: Results = {}
    for name, (backend, read) in BACKENDS.items():
        runner, start = Runner(backend), time.perf_counter()
        results[name] = {case.name: read(runner, case) for case in cases}
        print(f"{name}: {len(cases)} cases in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return results


def print_table(cases: list[Case], results: Results) -> None:
    """One row per group: each backend's passed/refused-or-skipped/failed counts."""
    print(f"{'':18s} {'':5s}" + "".join(f" | {name:>21s}" for name in BACKENDS) + " | ORT backend fails")
    print(f"{'group':18s} {'cases':>5s}" + " | passed refused failed" * 2 + " | passed skipped failed"
          + " | of fastcnn-passed")
    rows = [[c for c in cases if c.group == g] for g in GROUPS] + [cases]
    for group, members in zip([*GROUPS, "all"], rows):
        line = f"{group:18s} {len(members):5d}"
        for name in BACKENDS:
            n = Counter(results[name][c.name][0] for c in members)
            line += f" | {n['passed']:6d} {n['refused'] + n['skipped']:7d} {n['failed']:6d}"
        passed = [c for c in members if results["fastcnn/torch"][c.name][0] == "passed"]
        bad = sum(results[ORT][c.name][0] != "passed" for c in passed)
        print(f"{line} | {bad:4d} of {len(passed)}")


def print_failures(cases: list[Case], results: Results, every: bool) -> None:
    fast, ort = results["fastcnn/torch"], results[ORT]
    print("\nONNX Runtime's failures among the cases fastcnn passes:")
    for c in cases:
        if fast[c.name][0] == "passed" and ort[c.name][0] != "passed":
            print(f"  {c.group}/{c.name}: {ort[c.name][0]}: {cause(ort[c.name][1])}")
    others = [c for c in cases if fast[c.name][0] != "passed" and ort[c.name][0] != "passed"]
    print(f"\nONNX Runtime's other failures ({len(others)}, cases fastcnn refuses too), by cause:")
    by_cause: dict[str, list[str]] = defaultdict(list)
    for c in others:
        by_cause[cause(ort[c.name][1])].append(c.name)
    for text, names in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(names) if every else ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        print(f"  {len(names):4d} x {text}\n         {shown}")
    for name in ("fastcnn/torch", "fastcnn/onnxruntime"):
        failed = [c for c in cases if results[name][c.name][0] == "failed"]
        print(f"\n{name} failures: {len(failed)}")
        for c in failed:
            print(f"  {c.group}/{c.name}: {results[name][c.name][1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="list every failing case by name")
    args = parser.parse_args()
    onnxruntime.set_default_logger_severity(4)  # its warnings would bury the report
    os.environ["ONNX_HOME"] = tempfile.mkdtemp(prefix="onnx_home_")  # inputs of the `real` cases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [c for c in all_cases() if in_scope(c, set(CONVERTERS))]
        results = run_all(cases)
    print(f"onnx {__import__('onnx').__version__}, onnxruntime {onnxruntime.__version__}, CPU\n")
    print_table(cases, results)
    print_failures(cases, results, args.all)


if __name__ == "__main__":
    main()
