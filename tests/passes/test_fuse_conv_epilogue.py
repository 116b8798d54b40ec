"""fuse_conv_epilogue: activations, residual adds and the ReLU after them join the convolution."""
from __future__ import annotations

import pytest

from fastcnn.ir import Graph
from fastcnn.passes.fuse_conv_epilogue import fuse_conv_epilogue
from tests.passes.helpers import Builder, check_rewrite, ops, rewrite

PASS = "fuse_conv_epilogue"
SHAPE = (1, 4, 6, 6)


def fused(graph: Graph):
    """The graph's only fused_conv2d."""
    (node,) = [n for n in graph.nodes if n.op == "fused_conv2d"]
    return node


def unchanged(graph: Graph) -> bool:
    """Whether the pass leaves ``graph`` (a clone of it) alone, and says so."""
    copy = graph.clone()
    changed = fuse_conv_epilogue(copy)
    return not changed and ops(copy) == ops(graph)


# -- rule 1: the activation -----------------------------------------------------------------
@pytest.mark.parametrize("op, attrs, expected", [
    ("relu", {}, {"activation": "relu"}),
    ("sigmoid", {}, {"activation": "sigmoid"}),
    ("tanh", {}, {"activation": "tanh"}),
    ("leaky_relu", {"alpha": 0.2}, {"activation": "leaky_relu", "alpha": 0.2}),
    ("clip", {"min": 0.0, "max": 0.3}, {"activation": "clip", "clip_min": 0.0, "clip_max": 0.3}),
    ("clip", {"max": 0.1}, {"activation": "clip", "clip_min": None, "clip_max": 0.1}),
    ("clip", {"min": -0.1}, {"activation": "clip", "clip_min": -0.1, "clip_max": None}),
])
def test_activation_joins_the_conv(op, attrs, expected):
    b = Builder(SHAPE)
    conv = b.conv(b.x, 4)
    y = b.node(op, [conv], **attrs)
    graph = b.output(y)
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["fused_conv2d"]
    node = fused(after)
    assert {k: node.attrs[k] for k in expected} == expected
    assert node.attrs["post_activation"] == "none" and len(node.inputs) == 3
    assert node.sources == (conv.producer.name, y.producer.name)
    assert after.outputs[0].name == y.name


def test_conv_without_bias_keeps_no_bias():
    b = Builder(SHAPE)
    graph = b.output(b.node("relu", [b.conv(b.x, 4, bias=False)]))
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["fused_conv2d"] and len(fused(after).inputs) == 2


# -- rule 2 and 3: the residual add and the ReLU after it ---------------------------------------
def test_residual_and_relu_after_it():
    b = Builder(SHAPE)
    conv = b.conv(b.x, 4)
    add = b.node("add", [conv, b.x])
    y = b.node("relu", [add])
    after = check_rewrite(b.output(y), PASS)
    assert ops(after) == ["fused_conv2d"]
    node = fused(after)
    assert node.inputs[3] is after.inputs[0]
    assert (node.attrs["activation"], node.attrs["post_activation"]) == ("none", "relu")
    assert node.sources == tuple(v.producer.name for v in (conv, add, y))


def test_shortcut_on_the_left_of_the_add():
    b = Builder(SHAPE)
    graph = b.output(b.node("add", [b.x, b.conv(b.x, 4)]))
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["fused_conv2d"] and fused(after).inputs[3] is after.inputs[0]


def test_activation_then_residual_then_relu():
    b = Builder(SHAPE)
    y = b.node("relu", [b.node("add", [b.node("relu", [b.conv(b.x, 4)]), b.x])])
    after = check_rewrite(b.output(y), PASS)
    assert ops(after) == ["fused_conv2d"]
    node = fused(after)
    assert (node.attrs["activation"], node.attrs["post_activation"]) == ("relu", "relu")
    assert node.inputs[3] is after.inputs[0]


def test_resnet_basic_and_bottleneck_blocks():
    """conv-relu-conv-relu-conv-add-relu with the identity shortcut, then a block whose
    shortcut is a stride-2 downsample convolution computed after the main path."""
    b = Builder((1, 8, 8, 8))
    h = b.node("relu", [b.conv(b.x, 4, kernel=1, padding=0)])
    h = b.node("relu", [b.conv(h, 4)])
    block1 = b.node("relu", [b.node("add", [b.conv(h, 8, kernel=1, padding=0), b.x])])
    h = b.node("relu", [b.conv(block1, 8, stride=2)])
    main = b.conv(h, 16)
    shortcut = b.conv(block1, 16, kernel=1, padding=0, stride=2)
    y = b.node("relu", [b.node("add", [main, shortcut])])
    after = check_rewrite(b.output(y), PASS)
    assert ops(after) == ["fused_conv2d"] * 4 + ["conv2d", "fused_conv2d"]  # main path: bias only
    last = after.nodes[-1]
    assert last.attrs["stride"] == (2, 2) and last.inputs[0] is after.nodes[2].outputs[0]  # the downsample
    assert last.inputs[3] is after.nodes[4].outputs[0]  # the main path is its residual
    assert last.attrs["post_activation"] == "relu"
    assert [n.attrs.get("post_activation") for n in after.nodes] == ["none", "none", "relu", "none", None, "relu"]


@pytest.mark.parametrize("later_on_left", [False, True])
def test_both_operands_convs_the_later_takes_the_add(later_on_left):
    b = Builder(SHAPE)
    first = b.conv(b.x, 4)
    second = b.conv(b.x, 4, kernel=1, padding=0)
    add = b.node("add", [second, first] if later_on_left else [first, second])
    graph = b.output(add)
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["conv2d", "fused_conv2d"]
    node = fused(after)
    assert node.inputs[1].shape[2:] == (1, 1)  # the 1x1, later, convolution fused
    assert node.inputs[3] is after.nodes[0].outputs[0]
    assert node.sources == (second.producer.name, add.producer.name)


def test_fused_conv_with_activation_takes_a_residual():
    b = Builder(SHAPE)
    w = b.weight(4, 4, 3, 3)
    conv = b.node("fused_conv2d", [b.x, w], padding=(1, 1, 1, 1), activation="tanh")
    after = check_rewrite(b.output(b.node("add", [conv, b.x])), PASS)
    node = fused(after)
    assert ops(after) == ["fused_conv2d"] and node.attrs["activation"] == "tanh" and node.inputs[2] is None


# -- where it must not fire ------------------------------------------------------------------
@pytest.mark.parametrize("other_shape", [(1, 4, 1, 1), (4, 1, 1), (1, 1, 6, 6)])
def test_broadcasting_add_is_no_residual(other_shape):
    b = Builder(SHAPE)
    conv = b.conv(b.x, 4)
    graph = b.output(b.node("add", [conv, b.weight(*other_shape)]))
    assert unchanged(graph)


def test_shortcut_of_another_batch_size_is_no_residual():
    b = Builder(SHAPE)
    graph = b.output(b.node("add", [b.conv(b.x, 4), b.weight(1, 4, 6, 6)]))
    assert unchanged(graph)  # (N, 4, 6, 6) + (1, 4, 6, 6) broadcasts over N


def test_add_of_a_conv_output_to_itself():
    b = Builder(SHAPE)
    conv = b.conv(b.x, 4)
    assert unchanged(b.output(b.node("add", [conv, conv])))


def test_conv_output_with_two_readers():
    b = Builder(SHAPE)
    conv = b.conv(b.x, 4)
    graph = b.output(b.node("relu", [conv]), b.node("add", [conv, b.x]))
    assert unchanged(graph)


def test_conv_output_that_is_a_graph_output():
    b = Builder(SHAPE)
    conv = b.conv(b.x, 4)
    graph = b.output(b.node("relu", [conv]), conv)
    assert unchanged(graph)
    b = Builder(SHAPE)
    conv = b.conv(b.x, 4)
    assert unchanged(b.output(b.node("add", [conv, b.x]), conv))


def test_add_after_post_activation():
    b = Builder(SHAPE)
    w = b.weight(4, 4, 3, 3)
    conv = b.node("fused_conv2d", [b.x, w], padding=(1, 1, 1, 1), post_activation="relu")
    assert unchanged(b.output(b.node("add", [conv, b.x])))


def test_second_residual_or_activation_after_residual():
    b = Builder(SHAPE, SHAPE)
    w = b.weight(4, 4, 3, 3)
    conv = b.node("fused_conv2d", [b.x, w, None, b.inputs[1]], padding=(1, 1, 1, 1))
    assert unchanged(b.output(b.node("add", [conv, b.x])))
    b = Builder(SHAPE, SHAPE)
    conv = b.node("fused_conv2d", [b.x, b.weight(4, 4, 3, 3), None, b.inputs[1]], padding=(1, 1, 1, 1))
    assert unchanged(b.output(b.node("sigmoid", [conv])))


def test_second_activation_stays():
    b = Builder(SHAPE)
    graph = b.output(b.node("sigmoid", [b.node("relu", [b.conv(b.x, 4)])]))
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["fused_conv2d", "sigmoid"] and fused(after).attrs["activation"] == "relu"


def test_split_conv_is_left_alone():
    b = Builder(SHAPE)
    node = b.graph.add_node("fused_conv2d", [b.x, b.weight(8, 4, 1, 1)], {"out_splits": (4, 4)})
    graph = b.output(b.node("relu", [node.outputs[0]]), node.outputs[1])
    assert unchanged(graph)


def test_reports_no_change_on_a_second_run():
    b = Builder(SHAPE)
    graph = rewrite(b.output(b.node("relu", [b.node("add", [b.conv(b.x, 4), b.x])])), PASS)
    assert fuse_conv_epilogue(graph) is False
