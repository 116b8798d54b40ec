"""fold_flatten_into_gemm: the Gemm reads the unflattened features; the Flatten goes."""
from __future__ import annotations

import pytest

from fastcnn.ir import Value
from fastcnn.passes.fold_flatten_into_gemm import fold_flatten_into_gemm
from tests.passes.helpers import Builder, check_rewrite, ops

PASS = "fold_flatten_into_gemm"
FEATURES = 4 * 3 * 3  # the conv's output, flattened


def _head(op: str = "flatten", gemm: str = "gemm", **attrs):
    """x -> conv (N, 4, 3, 3) -> ``op`` -> ``gemm`` with 5 outputs; returns (builder, graph)."""
    b = Builder((1, 3, 3, 3))
    rows = b.node(op, [b.conv(b.x, 4)], **attrs)
    head = b.node(gemm, [rows, b.weight(5, FEATURES), b.weight(5)], trans_b=True)
    return b, b.output(head)


def _folds(graph) -> None:
    """Check the fold fired (structure) and computes the same (numbers)."""
    flatten = graph.nodes[1]
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["conv2d", "fused_gemm"]
    conv, gemm = after.nodes
    assert gemm.inputs[0] is conv.outputs[0] and len(gemm.inputs[0].shape) == 4
    assert gemm.sources == (flatten.name, graph.nodes[2].name)
    assert gemm.outputs[0].name == graph.outputs[0].name


def _stays(graph, numbers: bool = True) -> None:
    assert not fold_flatten_into_gemm(graph.clone())
    if numbers:
        assert ops(check_rewrite(graph, PASS)) == ops(graph)


@pytest.mark.parametrize("axis", [1, -3])
def test_flatten_into_gemm_folds(axis: int) -> None:
    _folds(_head("flatten", axis=axis)[1])


@pytest.mark.parametrize("target", [(0, -1), (-1, FEATURES), (0, FEATURES)])
def test_flattening_reshape_folds(target: tuple) -> None:
    _folds(_head("reshape", shape=target)[1])


def test_flatten_into_fused_gemm_folds() -> None:
    _folds(_head("flatten", gemm="fused_gemm")[1])


@pytest.mark.parametrize("trans_b", [True, False])
def test_gemm_with_alpha_and_beta_folds(trans_b: bool) -> None:
    b = Builder((1, 3, 3, 3))
    weight = b.weight(*((5, FEATURES) if trans_b else (FEATURES, 5)))
    rows = b.node("flatten", [b.conv(b.x, 4)], axis=1)
    graph = b.output(b.node("gemm", [rows, weight, b.weight(1, 5)], trans_b=trans_b, alpha=0.5, beta=2.0))
    _folds(graph)


def test_static_batch_reshape_to_rows_folds() -> None:
    b = Builder((2, 4, 3, 3))
    b.x.shape = (2, 4, 3, 3)
    rows = b.node("reshape", [b.x], shape=(-1, FEATURES))
    graph = b.output(b.node("gemm", [rows, b.weight(FEATURES, 5)]))
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["fused_gemm"] and after.nodes[0].inputs[0] is after.inputs[0]


# -- where it must not fire ------------------------------------------------------------------
def test_flatten_along_another_axis_stays() -> None:
    b = Builder((1, 3, 3, 3))
    rows = b.node("flatten", [b.conv(b.x, 4)], axis=2)  # ("N*4", 9)
    _stays(b.output(b.node("gemm", [rows, b.weight(9, 5)])))


def test_reshape_that_splits_rows_stays() -> None:
    """(-1, 18) on (N, 4, 3, 3) makes 2N rows: not the batch first."""
    b = Builder((1, 3, 3, 3))
    rows = b.node("reshape", [b.conv(b.x, 4)], shape=(-1, FEATURES // 2))
    _stays(b.output(b.node("gemm", [rows, b.weight(FEATURES // 2, 5)])))


def test_reshape_with_allowzero_stays() -> None:
    """allowzero=1 (its 0s are sizes, not batch copies) is left alone, even where it flattens."""
    _stays(_head("reshape", shape=(-1, FEATURES), allowzero=1)[1])


def test_reshape_to_another_shape_stays() -> None:
    b = Builder((1, 3, 3, 3))
    rows = b.node("reshape", [b.conv(b.x, 4)], shape=(0, 4, 9))
    _stays(b.output(b.node("matmul", [rows, b.weight(9, 5)])))


def test_flatten_with_another_reader_stays() -> None:
    b, graph = _head()
    rows = graph.nodes[1].outputs[0]
    _stays(b.output(graph.outputs[0], b.node("relu", [rows])))


def test_flatten_that_is_a_graph_output_stays() -> None:
    b, graph = _head()
    _stays(b.output(graph.outputs[0], graph.nodes[1].outputs[0]))


def test_flatten_read_as_the_weight_stays() -> None:
    b = Builder((1, 3, 3, 3), (1, FEATURES))
    b.inputs[1].shape = (5, FEATURES)
    rows = b.node("flatten", [b.conv(b.x, 4)])  # (N, 36), read as B below: (5, 36) @ (36, N)
    _stays(b.output(b.node("gemm", [b.inputs[1], rows], trans_b=True)), numbers=False)


def test_gemm_with_trans_a_stays() -> None:
    b = Builder((2, 3, 3, 3))
    b.x.shape = (2, 3, 3, 3)
    rows = b.node("flatten", [b.conv(b.x, 4)])
    _stays(b.output(b.node("gemm", [rows, b.weight(2, 5)], trans_a=True)))


def test_gemm_with_a_full_c_matrix_stays() -> None:
    """A C of one row per batch row is no fused_gemm bias: as_fused_gemm refuses, so must we."""
    b = Builder((2, 3, 3, 3))
    b.x.shape = (2, 3, 3, 3)
    rows = b.node("flatten", [b.conv(b.x, 4)])
    _stays(b.output(b.node("gemm", [rows, b.weight(FEATURES, 5), b.weight(2, 5)])))


def test_non_constant_weight_with_alpha_stays() -> None:
    b = Builder((1, 3, 3, 3), (1, 5))
    weight: Value = b.inputs[1]
    weight.shape = (FEATURES, 5)
    rows = b.node("flatten", [b.conv(b.x, 4)])
    _stays(b.output(b.node("gemm", [rows, weight], alpha=2.0)), numbers=False)
