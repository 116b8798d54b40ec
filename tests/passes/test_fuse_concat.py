"""fuse_concat: concat inputs (and DenseNet's prefix concats) become channel slices of one buffer.

Storage is an annotation the reference backends ignore, so ``check_rewrite`` mostly shows the
graph is intact; the structural assertions (exact Storage, ``concat_is_view``, ``is_view``) are
the real tests. Each must-not-fire case checks that nothing at all was placed.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from fastcnn.api import import_source
from fastcnn.ir import Graph, Storage, Value, verify
from fastcnn.ir.cost import is_view
from fastcnn.ir.storage import concat_is_view
from fastcnn.passes import run_pipeline
from fastcnn.passes.fuse_concat import fuse_concat
from tests.passes.helpers import Builder, check_rewrite, rewrite


def max_pool(b: Builder, x: Value, kernel: int = 3, stride: int = 1, padding: int = 1) -> Value:
    return b.node("max_pool", [x], kernel=(kernel, kernel), stride=(stride, stride), padding=(padding,) * 4)


def concat(b: Builder, *values: Value, axis: int = 1) -> Value:
    return b.node("concat", list(values), axis=axis)


def concats(graph: Graph) -> list:
    return [node for node in graph.nodes if node.op == "concat"]


def value(graph: Graph, name: str) -> Value:
    return next(v for v in graph.values() if v.name == name)


def storages(graph: Graph, *values: Value) -> list[Storage | None]:
    """The storage of each of ``values`` (from the graph they were built in) in ``graph``."""
    return [value(graph, v.name).storage for v in values]


def assert_untouched(graph: Graph) -> None:
    """fuse_concat changes nothing: every concat stays a copy and no value is placed."""
    rewritten = rewrite(graph, "fuse_concat")
    assert not fuse_concat(graph.clone())
    assert all(v.storage is None for v in rewritten.values())
    assert not any(concat_is_view(n) or is_view(n) for n in concats(rewritten))


# -- where it fires -------------------------------------------------------------------------


def test_inception_module_writes_each_branch_into_its_slice():
    b = Builder((1, 8, 6, 6))
    b1 = b.conv(b.x, 4, kernel=1, padding=0)
    reduce = b.conv(b.x, 3, kernel=1, padding=0)
    b2 = b.conv(reduce, 6)
    b3 = max_pool(b, b.x)  # a reduction block concatenates the max pool itself
    cat = concat(b, b1, b2, b3)
    graph = b.output(b.conv(cat, 5, kernel=1, padding=0))
    out = check_rewrite(graph, "fuse_concat")
    assert storages(out, b1, b2, b3) == [Storage(cat.name, 0, 18), Storage(cat.name, 4, 18),
                                         Storage(cat.name, 10, 18)]
    assert storages(out, cat, reduce) == [None, None]  # the concat's output is the buffer
    node, = concats(out)
    assert concat_is_view(node) and is_view(node)


def test_concat_that_is_a_graph_output_is_the_buffer():
    b = Builder((1, 4, 5, 5))
    left, right = b.conv(b.x, 2), b.conv(b.x, 3)
    cat = concat(b, left, right, axis=-3)  # -3 is the channel axis of a 4-D tensor too
    out = check_rewrite(b.output(cat), "fuse_concat")
    assert storages(out, left, right, cat) == [Storage(cat.name, 0, 5), Storage(cat.name, 2, 5), None]
    assert concat_is_view(concats(out)[0])


def test_nested_concat_inputs_take_absolute_offsets_in_the_outer_buffer():
    b = Builder((1, 6, 6, 6))
    a = b.conv(b.x, 4, kernel=1, padding=0)
    mid = b.conv(b.x, 5, kernel=1, padding=0)
    inner_left, inner_right = b.conv(mid, 3), b.conv(mid, 5)
    inner = concat(b, inner_left, inner_right)  # Inception-v3's E block: a concat in the concat
    pool = max_pool(b, b.x)
    outer = concat(b, a, inner, pool)
    out = check_rewrite(b.output(b.conv(outer, 4, kernel=1, padding=0)), "fuse_concat")
    root = outer.name
    assert storages(out, a, inner, inner_left, inner_right, pool, outer) == [
        Storage(root, 0, 18), Storage(root, 4, 18), Storage(root, 4, 18), Storage(root, 7, 18),
        Storage(root, 12, 18), None]
    assert all(concat_is_view(n) and is_view(n) for n in concats(out))


def test_dense_block_concats_are_views_of_one_buffer():
    """torchvision's dense block: layer k concatenates [x0, y1, ..., y(k-1)], then convolves."""
    b = Builder((1, 3, 5, 5))
    features = [b.conv(b.x, 4)]
    prefixes = []
    for _ in range(3):
        prefixes.append(concat(b, *features))
        features.append(b.conv(b.node("relu", [prefixes[-1]]), 2))
    last = concat(b, *features)
    graph = b.output(b.conv(last, 3, kernel=1, padding=0))
    out = check_rewrite(graph, "fuse_concat")
    root = last.name
    assert storages(out, *features) == [Storage(root, c, 10) for c in (0, 4, 6, 8)]
    assert storages(out, *prefixes, last) == [Storage(root, 0, 10)] * 3 + [None]
    assert all(concat_is_view(n) and is_view(n) for n in concats(out))
    assert not fuse_concat(out)  # a fixed point: a second run changes nothing


def test_a_view_made_late_makes_a_later_concat_a_view():
    """``inner`` becomes a view only after ``middle`` was passed over; a second sweep finds it."""
    b = Builder((1, 3, 5, 5))
    x0, y1, y2 = b.conv(b.x, 4), b.conv(b.x, 2), b.conv(b.x, 1)
    inner = concat(b, x0, y1)
    middle = concat(b, inner, y2)  # the same channels as `last`, spelled through `inner`
    last = concat(b, x0, y1, y2)
    out = check_rewrite(b.output(b.node("add", [middle, last])), "fuse_concat")
    root = last.name
    assert storages(out, x0, y1, y2, inner, middle, last) == [
        Storage(root, 0, 7), Storage(root, 4, 7), Storage(root, 6, 7), Storage(root, 0, 7), Storage(root, 0, 7), None]
    assert all(concat_is_view(n) for n in concats(out))


def test_split_outputs_of_one_convolution_are_placed_each_on_its_own():
    b = Builder((1, 4, 6, 6))
    weight, bias = b.weight(8, 4, 3, 3, scale=0.2), b.weight(8, scale=0.1, name="b")
    first, second = b.graph.add_node("fused_conv2d", [b.x, weight, bias],
                                     {"padding": (1, 1, 1, 1), "activation": "relu", "out_splits": (3, 5)}).outputs
    pool = max_pool(b, b.conv(b.x, 2))
    cat = concat(b, second, pool, first)
    out = check_rewrite(b.output(cat), "fuse_concat")
    assert storages(out, second, pool, first) == [Storage(cat.name, 0, 10), Storage(cat.name, 5, 10),
                                                  Storage(cat.name, 7, 10)]


def test_a_tensor_two_unrelated_concats_want_goes_to_the_later_one():
    b = Builder((1, 4, 5, 5))
    shared, early, late = b.conv(b.x, 2), b.conv(b.x, 3), b.conv(b.x, 1)
    first = concat(b, shared, early)
    second = concat(b, late, shared)
    out = check_rewrite(b.output(b.node("add", [b.conv(first, 2), b.conv(second, 2)])), "fuse_concat")
    assert storages(out, late, shared, early, first) == [Storage(second.name, 0, 3), Storage(second.name, 1, 3),
                                                         None, None]
    copy, view = concats(out)
    assert not concat_is_view(copy) and concat_is_view(view)


def test_an_inner_concat_that_cannot_be_a_view_copies_into_its_slice():
    b = Builder((1, 4, 5, 5))
    inner_left = b.conv(b.x, 2)
    inner = concat(b, b.x, inner_left)  # the graph input keeps it a copy
    a = b.conv(b.x, 3)
    outer = concat(b, a, inner)
    out = check_rewrite(b.output(outer), "fuse_concat")
    assert storages(out, a, inner, inner_left) == [Storage(outer.name, 0, 9), Storage(outer.name, 3, 9), None]
    copy, view = concats(out)
    assert not concat_is_view(copy) and concat_is_view(view)


def test_a_prefix_concat_that_is_a_graph_output_stays_a_copy():
    b = Builder((1, 3, 5, 5))
    x0 = b.conv(b.x, 4)
    prefix = concat(b, x0)
    y1 = b.conv(prefix, 2)
    last = concat(b, x0, y1)
    out = check_rewrite(b.output(last, prefix), "fuse_concat")
    assert storages(out, x0, y1, prefix) == [Storage(last.name, 0, 6), Storage(last.name, 4, 6), None]
    copy, view = concats(out)
    assert not concat_is_view(copy) and concat_is_view(view)


# -- where it must not fire -----------------------------------------------------------------


def _static_builder() -> Builder:
    """A Builder whose input has a fixed batch of 1, so a constant can join a concat."""
    b = Builder((1, 4, 5, 5))
    b.x.shape = (1, 4, 5, 5)
    return b


def _graph_input(b):
    return concat(b, b.conv(b.x, 2), b.x)


def _constant(b):
    return concat(b, b.conv(b.x, 2), b.graph.constant(np.ones((1, 3, 5, 5), np.float32)))


def _same_value_twice(b):
    y = b.conv(b.x, 2)
    return concat(b, y, y)


def _height_axis(b):
    return concat(b, b.conv(b.x, 2), b.conv(b.x, 2), axis=2)


def _flat(b):
    return concat(b, *(b.node("flatten", [b.conv(b.x, 2)]) for _ in range(2)))


def _unfused_relu(b):
    return concat(b, b.conv(b.x, 2), b.node("relu", [b.conv(b.x, 3)]))


def _add(b):
    return concat(b, b.conv(b.x, 2), b.node("add", [b.conv(b.x, 3), b.conv(b.x, 3)]))


def _batch_norm(b):
    return concat(b, b.batch_norm(b.conv(b.x, 2)), b.conv(b.x, 3))


def _identity(b):
    return concat(b, b.conv(b.x, 2), b.node("identity", [b.conv(b.x, 3)]))


def _reshape(b):
    return concat(b, b.conv(b.x, 2), b.node("reshape", [b.conv(b.x, 3)], shape=(1, 3, 5, 5)))


def _global_pools(b):
    return concat(b, b.node("global_avg_pool", [b.conv(b.x, 2)]), b.node("global_max_pool", [b.conv(b.x, 3)]))


def _fused_global_pool(b):
    pooled = b.node("fused_pool", [b.conv(b.x, 3)], mode="global_avg")
    return concat(b, b.node("global_avg_pool", [b.conv(b.x, 2)]), pooled)


@pytest.mark.parametrize("make", [_graph_input, _constant, _same_value_twice, _height_axis, _flat, _unfused_relu,
                                  _add, _batch_norm, _identity, _reshape, _global_pools, _fused_global_pool],
                         ids=lambda f: f.__name__.strip("_"))
def test_does_not_fire(make):
    b = _static_builder()
    assert_untouched(b.output(b.node("relu", [make(b)])))


def test_an_input_that_is_a_graph_output_keeps_its_own_buffer():
    b = Builder((1, 4, 5, 5))
    returned = b.conv(b.x, 2)
    cat = concat(b, returned, b.conv(b.x, 3))
    assert_untouched(b.output(b.conv(cat, 2), returned))


def test_a_squeeze_excite_pooled_sum_is_not_placed():
    b = Builder((1, 4, 5, 5))
    weight = b.weight(4, 4, 1, 1)
    _, pooled = b.graph.add_node("fused_conv2d", [b.x, weight], {"pooled_output": True}).outputs
    cat = concat(b, pooled, b.node("global_avg_pool", [b.conv(b.x, 2)]))
    assert_untouched(b.output(cat))


# -- the zoo --------------------------------------------------------------------------------


@functools.cache
def _zoo(name: str) -> Graph:
    return import_source(name)


def test_every_densenet121_concat_is_a_view():
    graph = _zoo("densenet121").clone()
    assert run_pipeline(graph, ["fuse_concat"]) == ["fuse_concat"]
    verify(graph)
    assert all(concat_is_view(node) for node in concats(graph))


def test_inception_v3_concats_of_unfused_relus_stay_copies():
    graph = _zoo("inception_v3").clone()
    assert run_pipeline(graph, ["fuse_concat"]) == []
    verify(graph)
    assert all(v.storage is None for v in graph.values())


def test_every_inception_v3_concat_is_a_view_once_epilogues_are_fused():
    graph = _zoo("inception_v3").clone()
    changed = run_pipeline(graph, ["drop_identity", "fold_batch_norm", "fuse_conv_epilogue", "fuse_concat"])
    if "fuse_conv_epilogue" not in changed:
        pytest.skip("fuse_conv_epilogue fused nothing (not written yet), so ReLUs still feed the concats")
    verify(graph)
    assert all(concat_is_view(node) for node in concats(graph))
