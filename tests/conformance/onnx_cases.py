"""ONNX's backend conformance cases, listed once and run one at a time through ``BackendTest``.

Used by ``tests/conformance/test_onnx_backend.py`` and ``bench/onnx_backend_report.py``.

Where the cases come from: the node cases are onnx's own op tests. onnx >= 1.17 builds them
in memory when ``onnx.backend.test.case.node`` is imported (every ``export*`` method runs
its NumPy reference; about 13 s for all 1,900 cases, so it is done once per process);
older wheels ship them as files under ``onnx/backend/test/data/node``. The model groups
(``real``, ``simple``, ``pytorch-converted``, ``pytorch-operator``) ship in the wheel; the
``real`` ones point at the tiny ``light_*.onnx`` models of the wheel (a wheel older than
that points at URLs, which an offline run cannot fetch; those cases report a skip).

Each case is run by ``BackendTest``'s own test function, so the data and the tolerances
(rtol 1e-3 / atol 1e-7 unless the case's ``data.json`` says otherwise) are onnx's, unchanged.
"""
from __future__ import annotations

import functools
import os
import unittest
from dataclasses import dataclass
from typing import Any, Callable

import onnx
from onnx.backend.test import BackendTest
from onnx.backend.test.loader import load_model_tests

GROUPS = ("node", "real", "simple", "pytorch-converted", "pytorch-operator")
LIGHT_PREFIX = "onnx/backend/test/data/light/"


@dataclass(frozen=True)
class Case:
    """One conformance case: its name in ``BackendTest`` (without the device suffix),
    its group, the op types its model uses, and, for node cases, the op it tests."""

    name: str
    group: str
    op_types: frozenset[str]
    tested_op: str | None
    model: onnx.ModelProto | None  # None: the model must be downloaded first

    @property
    def base_name(self) -> str:
        """A node case's name without ``_expanded`` (the op written as its function body)."""
        return self.name.split("_expanded")[0]


def _onnx_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(onnx.__file__)))


def _model_of(test_case: Any) -> onnx.ModelProto | None:
    if test_case.model is not None:
        return test_case.model
    if test_case.model_dir is not None:
        return onnx.load(os.path.join(test_case.model_dir, "model.onnx"))
    if test_case.url and test_case.url.startswith(LIGHT_PREFIX):
        return onnx.load(os.path.join(_onnx_root(), test_case.url))
    return None


def _op_types(model: onnx.ModelProto | None) -> frozenset[str]:
    """Every op type of the model, those inside subgraphs (If branches, ...) included."""
    if model is None:
        return frozenset()
    found: set[str] = set()
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}")
            for attr in node.attribute:
                stack.extend(([attr.g] if attr.HasField("g") else []) + list(attr.graphs))
    return frozenset(found)


def _tested_op(model: onnx.ModelProto) -> str | None:
    nodes = model.graph.node
    return nodes[0].op_type if len(nodes) == 1 else None


@functools.lru_cache(maxsize=1)
def all_cases() -> tuple[Case, ...]:
    """Every case of every group, node cases first, each group sorted by name."""
    cases: list[Case] = []
    for group in GROUPS:
        found = []
        for test_case in load_model_tests(kind=group):
            model = _model_of(test_case)
            found.append(Case(test_case.name, group, _op_types(model), None, model))
        found.sort(key=lambda c: c.name)
        cases.extend(_with_tested_ops(found) if group == "node" else found)
    return tuple(cases)


def _with_tested_ops(cases: list[Case]) -> list[Case]:
    """Node cases with the op they test; an ``_expanded`` case tests its base case's op."""
    single = {c.name: _tested_op(c.model) for c in cases if c.model is not None}
    return [Case(c.name, c.group, c.op_types, single.get(c.base_name) or single.get(c.name), c.model)
            for c in cases]


def in_scope(case: Case, supported_ops: set[str] | frozenset[str]) -> bool:
    """Whether a case belongs to the suite run for a backend converting ``supported_ops``:
    every case of the model groups, and the node cases of a supported op or built only of
    supported ops (an ``_expanded`` function body, say)."""
    if case.group != "node":
        return True
    return case.tested_op in supported_ops or case.op_types <= set(supported_ops)


class Runner:
    """``BackendTest`` for one backend, running the case functions it generates one by one."""

    def __init__(self, backend: Any) -> None:
        suite = BackendTest(backend, __name__)
        self._functions: dict[str, Callable[[], None]] = {}
        for test_class in suite.test_cases.values():
            for attr in dir(test_class):
                if attr.startswith("test_"):
                    self._functions[attr] = functools.partial(_run_method, test_class, attr)

    def run(self, case: Case, device: str = "cpu") -> None:
        """Run one case; raises AssertionError on a mismatch, unittest.SkipTest on a skip."""
        if case.model is None:
            raise unittest.SkipTest("download needed: this onnx wheel's case points at a model on "
                                    "the web, which an offline run does not fetch")
        self._functions[f"{case.name}_{device}"]()


def _run_method(test_class: type[unittest.TestCase], name: str) -> None:
    test_class(name).debug()  # debug(): exceptions propagate instead of being collected


def outcome(runner: Runner, case: Case) -> tuple[str, str]:
    """``("passed" | "failed" | "skipped", detail)`` of one case, for reports."""
    try:
        runner.run(case)
    except unittest.SkipTest as exc:
        return "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 - a report records every failure kind
        return "failed", describe(exc)
    return "passed", ""


def describe(exc: BaseException) -> str:
    """One line for an exception; an UnsupportedModelError lists what it refused."""
    unsupported = getattr(exc, "unsupported", None)
    if unsupported:
        return f"{type(exc).__name__}: " + "; ".join(f"{op}: {why}" for op, _, why in unsupported)
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]
