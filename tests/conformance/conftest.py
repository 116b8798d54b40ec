"""Prints the ONNX backend suite's pass count at the end of a run, so CI logs show it.

It reads the reports of ``test_onnx_backend.py``: ``test_case`` ids are ``group/case``, and
an excluded case's skip message is ``excluded: <label>: <reason>`` (``op A+B: ...`` for
cases refused for ops the importer has no converter for).
"""
from __future__ import annotations

from collections import Counter, defaultdict

import pytest

_CASE_TEST = "test_onnx_backend.py::test_case["
_REFUSAL_TEST = "test_onnx_backend.py::test_unsupported_op_refused_cleanly["


def _skip_label(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ").removeprefix("excluded: ").split(": ", 1)[0]


def _reports(terminalreporter, marker: str):
    """(outcome, report) of each finished test whose node id contains ``marker``."""
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if marker not in getattr(report, "nodeid", ""):
                continue
            if report.when == "call" or (outcome != "passed" and report.when == "setup"):
                yield outcome, report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    groups: dict[str, Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    ops: Counter = Counter()
    for outcome, report in _reports(terminalreporter, _CASE_TEST):
        group = report.nodeid.split(_CASE_TEST, 1)[1].split("/", 1)[0]
        groups[group][outcome] += 1
        if outcome == "skipped":
            label = _skip_label(report)
            reasons["unsupported ops" if label.startswith("op ") else label] += 1
            ops.update(label.removeprefix("op ").split("+") if label.startswith("op ") else [])
    refusals = Counter(outcome for outcome, _ in _reports(terminalreporter, _REFUSAL_TEST))
    if not groups and not refusals:
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "ONNX backend conformance (fastcnn)")
    if groups:
        total = sum(groups.values(), Counter())
        by_reason = ", ".join(f"{key} {n}" for key, n in reasons.most_common())
        write(f"ONNX backend suite: {total['passed']} passed, {total['skipped']} excluded "
              f"(by reason: {by_reason or 'none'}), {total['failed']} failed")
        for group, c in groups.items():
            write(f"  {group:18s} {c['passed']:4d} passed {c['skipped']:4d} excluded {c['failed']:4d} failed")
        if ops:
            write("  unsupported ops met: " + ", ".join(f"{op} {n}" for op, n in ops.most_common()))
    if refusals:
        write(f"  node cases of {sum(refusals.values())} other op types: {refusals['passed']} op types "
              f"refused cleanly, {refusals['failed']} with a crash or a wrong refusal")
