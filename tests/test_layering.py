"""Imports flow one way down the pipeline: the IR depends on nothing else in fastcnn (its core
types on nothing at all), the passes see only the IR, the kernels nothing else, and the IR's
modules form no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastcnn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _fastcnn_imports(path: Path) -> set[str]:
    """The fastcnn modules ``path`` imports, anywhere in it except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fastcnn"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("fastcnn")}
    return found


MODULES = {_module_name(p): _fastcnn_imports(p) for p in PACKAGE.rglob("*.py")}


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("package, allowed", [
    ("fastcnn.ir", ("fastcnn.ir", "fastcnn.tables")),  # tables: the shared registrar, a leaf
    ("fastcnn.passes", ("fastcnn.ir", "fastcnn.passes")),
    ("fastcnn.kernels", ("fastcnn.kernels",)),
])
def test_package_imports_only_what_it_may(package, allowed):
    for module, imports in MODULES.items():
        if _in(module, package):
            assert all(_in(i, *allowed) for i in imports), f"{module} imports {sorted(imports)}"


def test_ir_core_and_the_registrar_import_nothing_of_fastcnn():
    assert MODULES["fastcnn.ir.core"] == set() and MODULES["fastcnn.tables"] == set()


def test_ir_modules_form_no_cycle():
    graph = {m: {i for i in imports if _in(i, "fastcnn.ir") and i != "fastcnn.ir"}
             for m, imports in MODULES.items() if _in(m, "fastcnn.ir") and m != "fastcnn.ir"}
    visiting, done = set(), set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in visiting, f"import cycle: {' -> '.join(path + [module])}"
        if module in done:
            return
        visiting.add(module)
        for target in graph.get(module, ()):
            visit(target, path + [module])
        visiting.discard(module)
        done.add(module)

    for module in graph:
        visit(module, [])


TOP = ("fastcnn.api", "fastcnn.cli", "fastcnn.preprocess", "fastcnn.labels", "fastcnn.model_repository",
       "fastcnn.ray", "fastcnn.benchmark")


@pytest.mark.parametrize("package", ["fastcnn.zoo", "fastcnn.export", "fastcnn.ir", "fastcnn.frontend",
                                     "fastcnn.passes", "fastcnn.kernels", "fastcnn.backends", "fastcnn.runtime"])
def test_the_pipeline_never_imports_what_sits_on_top_of_it(package):
    """Images, labels, deployment, the benchmark and the command line build on the engine, never
    the other way round."""
    for module, imports in MODULES.items():
        if _in(module, package):
            assert not any(_in(i, *TOP) for i in imports), f"{module} imports {sorted(imports)}"
