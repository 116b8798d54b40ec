"""The Engine and its passes: a clone is rewritten, pipelines and switches, failures named."""
from __future__ import annotations

import pytest
import torch

import fastcnn
from fastcnn.errors import InputError, UnsupportedModelError
from fastcnn.ir import verify
from fastcnn.passes import DISABLE_ENV, PASSES
from tests.passes.helpers import Builder, ops


def _graph():
    """conv -> batch norm -> relu, then a concat of two such branches."""
    b = Builder((1, 3, 8, 8))
    left = b.node("relu", [b.batch_norm(b.conv(b.x, 4))])
    right = b.node("relu", [b.batch_norm(b.conv(b.x, 4))])
    return b.output(b.node("concat", [left, right], axis=1))


def test_engines_rewrite_a_clone_and_leave_the_imported_graph_alone():
    graph = _graph()
    before = ops(graph)
    weights = [v.const for v in graph.constants()]
    fused = fastcnn.Engine(graph, backend="torch")
    plain = fastcnn.Engine(graph, backend="torch", pipeline="none")
    assert ops(graph) == before and [v.const for v in graph.constants()] == weights
    verify(graph)
    assert fused.source_graph is graph and "batch_norm" not in ops(fused.graph)
    assert ops(plain.graph) == before
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(fused.infer(x), plain.infer(x), rtol=1e-5, atol=1e-5)


def test_disable_passes_skips_a_pass_by_name():
    graph = _graph()
    engine = fastcnn.Engine(graph, backend="torch", disable_passes=["fold_batch_norm"])
    assert "batch_norm" in ops(engine.graph)
    engine = fastcnn.Engine(graph, backend="torch", disable_passes=["fuse_concat"])
    assert all(v.storage is None for v in engine.graph.values())
    assert any(v.storage is not None for v in fastcnn.Engine(graph, backend="torch").graph.values())


def test_the_environment_variable_disables_passes_too(monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "fold_batch_norm, fuse_conv_epilogue")
    engine = fastcnn.Engine(_graph(), backend="torch")
    assert ops(engine.graph).count("batch_norm") == 2 and "relu" in ops(engine.graph)


@pytest.mark.parametrize("options, message", [
    ({"disable_passes": ["no_such_pass"]}, "unknown pass"),
    ({"pipeline": "turbo"}, "unknown pipeline"),
])
def test_unknown_names_are_input_errors_at_load(options, message):
    with pytest.raises(InputError, match=message):
        fastcnn.load("lenet5", backend="torch", **options)


def test_a_failing_pass_is_named_with_the_way_around_it(monkeypatch):
    def broken(graph):
        raise RuntimeError("boom")

    monkeypatch.setitem(PASSES, "fold_batch_norm", broken)
    with pytest.raises(UnsupportedModelError, match=r"fold_batch_norm.*boom.*disable_passes"):
        fastcnn.Engine(_graph(), backend="torch")
    fastcnn.Engine(_graph(), backend="torch", disable_passes=["fold_batch_norm"])  # the way around


def test_engine_plan_lists_the_launches_of_its_own_graph():
    engine = fastcnn.Engine(_graph(), backend="torch")
    (launch,) = engine.plan.launches  # two sibling branches, BN and ReLU fused, the concat a view
    assert launch.op == "fused_conv2d[split2+relu]" and engine.plan.totals.launches == 1
    assert [o.channels for o in launch.outputs] == [(0, 4, 8), (4, 8, 8)]  # each half in its slice
