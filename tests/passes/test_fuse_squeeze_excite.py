"""fuse_squeeze_excite: an SE block becomes se_gate + se_scale, with the residual add and ReLU."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.ir import Value
from tests.passes.helpers import Builder, check_rewrite, ops, rewrite

PASS = "fuse_squeeze_excite"


def squeeze_excite(b: Builder, x: Value, squeezed: int = 2, pool: str = "global_avg_pool",
                   gate_first: bool = False, bias: bool = True) -> Value:
    """pool -> 1x1 conv -> relu -> 1x1 conv -> sigmoid -> mul with x, as the zoo exports it."""
    if pool == "global_avg_pool":
        p = b.node("global_avg_pool", [x])
    else:
        p = b.node("reduce_mean", [x], axes=(2, 3), keepdims=True)
    h = b.node("relu", [b.conv(p, squeezed, kernel=1, padding=0, bias=bias)])
    s = b.node("sigmoid", [b.conv(h, x.shape[1], kernel=1, padding=0, bias=bias)])
    return b.node("mul", [s, x] if gate_first else [x, s])


def se_resnet_block(pool: str = "global_avg_pool", gate_first: bool = False) -> Builder:
    """conv -> SE -> add(downsample conv, defined after the mul as in the export) -> relu."""
    b = Builder((1, 4, 5, 5))
    body = b.conv(b.x, 8)
    y = squeeze_excite(b, body, pool=pool, gate_first=gate_first)
    shortcut = b.conv(b.x, 8, kernel=1, padding=0)
    b.output(b.node("relu", [b.node("add", [y, shortcut])]))
    return b


def producer(graph, op):
    return next(n for n in graph.nodes if n.op == op)


@pytest.mark.parametrize("pool", ["global_avg_pool", "reduce_mean"])
@pytest.mark.parametrize("gate_first", [False, True])
def test_se_resnet_block_becomes_gate_and_scale(pool, gate_first):
    b = se_resnet_block(pool, gate_first)
    before = list(b.graph.nodes)
    out_name = b.graph.outputs[0].name
    sigmoid_out = producer(b.graph, "sigmoid").outputs[0].name
    after = check_rewrite(b.graph, PASS)
    assert ops(after) == ["conv2d", "se_gate", "conv2d", "se_scale"]
    body, gate, shortcut, scale = after.nodes
    assert gate.inputs[0] is body.outputs[0] and scale.inputs[0] is body.outputs[0]
    assert scale.inputs[1] is gate.outputs[0] and scale.inputs[2] is shortcut.outputs[0]
    assert scale.attrs["post_activation"] == "relu"
    assert gate.outputs[0].name == sigmoid_out and scale.outputs[0].name == out_name
    assert after.outputs == [scale.outputs[0]]
    assert gate.sources == tuple(n.name for n in before[1:6])
    assert scale.sources == tuple(n.name for n in before[6:7] + before[8:])


def test_gate_weights_are_the_convolutions_as_matrices():
    b = se_resnet_block()
    convs = [n for n in b.graph.nodes if n.op == "conv2d"][1:3]
    gate = producer(rewrite(b.graph, PASS), "se_gate")
    _, w1, b1, w2, b2 = gate.inputs
    np.testing.assert_array_equal(w1.const, convs[0].inputs[1].const[:, :, 0, 0])
    np.testing.assert_array_equal(w2.const, convs[1].inputs[1].const[:, :, 0, 0])
    assert (b1.name, b2.name) == (convs[0].inputs[2].name, convs[1].inputs[2].name)
    assert w1.shape == (2, 8) and w2.shape == (8, 2)


def test_se_on_a_concat_without_residual():
    """SE-BN-Inception: the SE scales a concat; nothing follows the mul."""
    b = Builder((1, 4, 5, 5))
    x = b.node("concat", [b.conv(b.x, 3), b.conv(b.x, 5, kernel=1, padding=0)], axis=1)
    b.output(squeeze_excite(b, x))
    out_name = b.graph.outputs[0].name
    after = check_rewrite(b.graph, PASS)
    assert ops(after) == ["conv2d", "conv2d", "concat", "se_gate", "se_scale"]
    concat, gate, scale = after.nodes[2:]
    assert gate.inputs[0] is concat.outputs[0]
    assert scale.inputs == [concat.outputs[0], gate.outputs[0]]
    assert scale.attrs["post_activation"] == "none"
    assert scale.outputs[0].name == out_name


def test_convolutions_without_bias_get_zero_biases():
    b = Builder((1, 6, 4, 4))
    b.output(squeeze_excite(b, b.conv(b.x, 6), squeezed=3, bias=False))
    gate = producer(check_rewrite(b.graph, PASS), "se_gate")
    assert gate.inputs[2].shape == (3,) and not gate.inputs[2].const.any()
    assert gate.inputs[4].shape == (6,) and not gate.inputs[4].const.any()


def test_relu_right_after_the_mul_is_the_scale_post_activation():
    b = Builder((1, 6, 4, 4))
    b.output(b.node("relu", [squeeze_excite(b, b.conv(b.x, 6))]))
    after = check_rewrite(b.graph, PASS)
    assert ops(after) == ["conv2d", "se_gate", "se_scale"]
    assert after.nodes[-1].attrs["post_activation"] == "relu" and len(after.nodes[-1].inputs) == 2


def test_add_of_a_broadcast_operand_stays_outside():
    """se_scale's residual has x's shape; a per-channel add is no residual."""
    b = Builder((1, 6, 4, 4))
    y = squeeze_excite(b, b.conv(b.x, 6))
    b.output(b.node("relu", [b.node("add", [y, b.weight(1, 6, 1, 1)])]))
    after = check_rewrite(b.graph, PASS)
    assert ops(after) == ["conv2d", "se_gate", "se_scale", "add", "relu"]
    assert len(after.nodes[2].inputs) == 2 and after.nodes[2].attrs["post_activation"] == "none"


def test_product_read_twice_keeps_its_add_outside():
    b = Builder((1, 6, 4, 4))
    y = squeeze_excite(b, b.conv(b.x, 6))
    b.output(b.node("add", [y, b.conv(b.x, 6)]), y)
    after = check_rewrite(b.graph, PASS)
    assert ops(after) == ["conv2d", "se_gate", "se_scale", "conv2d", "add"]
    assert after.outputs[1] is after.nodes[2].outputs[0]


def test_two_blocks_in_a_row_both_fuse():
    b = Builder((1, 4, 5, 5))
    y = squeeze_excite(b, b.conv(b.x, 6))
    b.output(squeeze_excite(b, b.conv(y, 6)))
    assert ops(check_rewrite(b.graph, PASS)) == ["conv2d", "se_gate", "se_scale"] * 2


# -- must not fire ----------------------------------------------------------------------
def assert_unchanged(graph):
    before = ops(graph)
    after = rewrite(graph, PASS)
    assert ops(after) == before


def test_not_when_the_sigmoid_has_another_reader():
    b = Builder((1, 6, 4, 4))
    y = squeeze_excite(b, b.conv(b.x, 6))
    s = producer(b.graph, "sigmoid").outputs[0]
    b.output(y, b.node("add", [s, s]))
    assert_unchanged(b.graph)


def test_not_when_the_sigmoid_is_a_graph_output():
    b = Builder((1, 6, 4, 4))
    y = squeeze_excite(b, b.conv(b.x, 6))
    b.output(y, producer(b.graph, "sigmoid").outputs[0])
    assert_unchanged(b.graph)


def test_not_with_a_3x3_convolution():
    """A padded 3x3 convolution of a 1 x 1 map sees only its centre tap, but is no 1x1 one."""
    b = Builder((1, 6, 4, 4))
    x = b.conv(b.x, 6)
    h = b.node("relu", [b.conv(b.node("global_avg_pool", [x]), 2, kernel=3, padding=1)])
    s = b.node("sigmoid", [b.conv(h, 6, kernel=1, padding=0)])
    b.output(b.node("mul", [x, s]))
    assert_unchanged(b.graph)


def test_not_when_the_mul_scales_another_tensor():
    b = Builder((1, 6, 4, 4))
    x, other = b.conv(b.x, 6), b.conv(b.x, 6)
    pooled = b.node("global_avg_pool", [x])
    h = b.node("relu", [b.conv(pooled, 2, kernel=1, padding=0)])
    s = b.node("sigmoid", [b.conv(h, 6, kernel=1, padding=0)])
    b.output(b.node("mul", [other, s]))
    assert_unchanged(b.graph)


def test_not_when_the_mean_also_runs_over_channels():
    b = Builder((1, 6, 4, 4))
    x = b.conv(b.x, 6)
    pooled = b.node("reduce_mean", [x], axes=(1, 2, 3), keepdims=True)
    h = b.node("relu", [b.conv(pooled, 2, kernel=1, padding=0)])
    s = b.node("sigmoid", [b.conv(h, 6, kernel=1, padding=0)])
    b.output(b.node("mul", [x, s]))
    assert_unchanged(b.graph)
