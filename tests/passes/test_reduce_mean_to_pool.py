"""reduce_mean_to_pool: a mean over H and W becomes a global average pool, nothing else does."""
from __future__ import annotations

import pytest

from fastcnn.passes.reduce_mean_to_pool import reduce_mean_to_pool
from tests.passes.helpers import Builder, check_rewrite, ops

PASS = "reduce_mean_to_pool"


def _mean(axes: tuple, keepdims: bool, shape: tuple = (1, 5, 4, 3)):
    b = Builder(shape)
    node = b.graph.add_node("reduce_mean", [b.node("relu", [b.x])], {"axes": axes, "keepdims": keepdims},
                            name="mean", out_names=["y"], sources=["/head/ReduceMean"])
    return b.output(node.outputs[0])


@pytest.mark.parametrize("axes", [(2, 3), (3, 2), (-2, -1), (2, -1)])
def test_spatial_mean_with_keepdims_becomes_a_global_pool(axes: tuple) -> None:
    graph = _mean(axes, True)
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["relu", "global_avg_pool"]
    pool = after.nodes[1]
    assert pool.sources == ("/head/ReduceMean",) and after.outputs == pool.outputs
    assert after.outputs[0].name == "y" and after.outputs[0].shape == ("N", 5, 1, 1)


@pytest.mark.parametrize("axes", [(2, 3), (-1, -2)])
def test_spatial_mean_without_keepdims_becomes_pool_and_reshape(axes: tuple) -> None:
    graph = _mean(axes, False)
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["relu", "global_avg_pool", "reshape"]
    pool, reshape = after.nodes[1:]
    assert reshape.inputs == pool.outputs and reshape.attrs["shape"] == (0, 5)
    assert pool.sources == reshape.sources == ("/head/ReduceMean",)
    assert after.outputs[0].name == "y" and after.outputs[0].shape == ("N", 5)


def test_static_batch_without_keepdims() -> None:
    b = Builder((2, 5, 4, 3))
    b.x.shape = (2, 5, 4, 3)
    graph = b.output(b.node("reduce_mean", [b.x], axes=(2, 3), keepdims=False))
    assert ops(check_rewrite(graph, PASS)) == ["global_avg_pool", "reshape"]


@pytest.mark.parametrize("axes, keepdims", [((2,), True), ((3,), False), ((1, 2, 3), True), ((), True),
                                            ((1, 2), False), ((0, 2, 3), True)])
def test_other_axes_stay(axes: tuple, keepdims: bool) -> None:
    graph = _mean(axes, keepdims)
    assert not reduce_mean_to_pool(graph.clone())
    assert ops(check_rewrite(graph, PASS)) == ["relu", "reduce_mean"]


def test_three_dimensional_input_stays() -> None:
    b = Builder((1, 5, 4))
    graph = b.output(b.node("reduce_mean", [b.x], axes=(1, 2), keepdims=True))
    assert not reduce_mean_to_pool(graph.clone())


def test_out_of_range_axis_stays() -> None:
    """Axis 6 of a 4-D tensor is not axis 2, however the schema's modulo reads it."""
    graph = _mean((6, 3), True)
    assert not reduce_mean_to_pool(graph.clone())


def test_symbolic_channels_only_fold_with_keepdims() -> None:
    """Without keepdims the reshape target needs the channel count as a number."""
    graphs = []
    for keepdims in (True, False):
        b = Builder((1, 5, 4, 3))
        b.x.shape = ("N", "C", 4, 3)
        graphs.append(b.output(b.node("reduce_mean", [b.x], axes=(2, 3), keepdims=keepdims)))
    assert reduce_mean_to_pool(graphs[0]) and ops(graphs[0]) == ["global_avg_pool"]
    assert not reduce_mean_to_pool(graphs[1])
