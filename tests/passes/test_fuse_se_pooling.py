"""fuse_se_pooling: the convolution feeding an se_gate pools its output for the gate."""
from __future__ import annotations

from tests.passes.helpers import Builder, check_rewrite, ops, rewrite
from tests.passes.test_fuse_squeeze_excite import se_resnet_block

PASS = "fuse_se_pooling"


def gate_and_scale(b: Builder, x, squeezed: int = 2):
    """se_gate + se_scale over x, built directly (no fuse_squeeze_excite needed)."""
    c = x.shape[1]
    gate = b.node("se_gate", [x, b.weight(squeezed, c), b.weight(squeezed, scale=0.1, name="b"),
                              b.weight(c, squeezed), b.weight(c, scale=0.1, name="b")])
    return b.node("se_scale", [x, gate])


def test_se_resnet_block_conv_pools_for_its_gate():
    b = se_resnet_block()
    x_name = b.graph.nodes[0].outputs[0].name
    after = check_rewrite(b.graph, ["fuse_squeeze_excite", PASS])
    assert ops(after) == ["fused_conv2d", "se_gate", "conv2d", "se_scale"]
    conv, gate, _, scale = after.nodes
    assert conv.attrs["pooled_output"] and conv.attrs["activation"] == "none"
    x, pooled = conv.outputs
    assert x.name == x_name and pooled.shape == ("N", 8, 1, 1)
    assert gate.inputs[0] is pooled and scale.inputs[0] is x
    assert [u for u, _ in pooled.uses] == [gate]


def test_fused_conv_keeps_its_epilogue():
    b = Builder((1, 4, 5, 5))
    w = b.weight(6, 4, 3, 3, scale=0.3)
    x = b.node("fused_conv2d", [b.x, w, b.weight(6, scale=0.1, name="b")], padding=(1, 1, 1, 1),
               activation="relu")
    b.output(gate_and_scale(b, x), x)
    after = check_rewrite(b.graph, PASS)
    conv = after.nodes[0]
    assert ops(after) == ["fused_conv2d", "se_gate", "se_scale"]
    assert conv.attrs["activation"] == "relu" and conv.attrs["pooled_output"]
    assert after.nodes[1].inputs[0] is conv.outputs[1]
    assert after.outputs[1] is conv.outputs[0]


# -- must not fire ----------------------------------------------------------------------
def assert_unchanged(graph):
    after = rewrite(graph, PASS)
    assert ops(after) == ops(graph)
    assert not any(n.attrs.get("pooled_output") for n in after.nodes)
    gate = next(n for n in after.nodes if n.op == "se_gate")
    assert gate.inputs[0].shape[2:] != (1, 1)


def test_not_when_x_comes_from_a_pool():
    b = Builder((1, 4, 6, 6))
    x = b.node("max_pool", [b.conv(b.x, 6)], kernel=(2, 2), stride=(2, 2))
    b.output(gate_and_scale(b, x))
    assert_unchanged(b.graph)


def test_not_when_x_comes_from_a_concat():
    b = Builder((1, 4, 5, 5))
    x = b.node("concat", [b.conv(b.x, 3), b.conv(b.x, 5)], axis=1)
    b.output(gate_and_scale(b, x))
    assert_unchanged(b.graph)


def test_not_when_x_is_a_graph_input():
    b = Builder((1, 4, 5, 5))
    b.output(gate_and_scale(b, b.x))
    assert_unchanged(b.graph)


def test_not_when_x_is_one_split_of_a_merged_conv():
    b = Builder((1, 4, 5, 5))
    merged = b.graph.add_node("fused_conv2d", [b.x, b.weight(9, 4, 1, 1)], {"out_splits": (6, 3)})
    x, other = merged.outputs
    b.output(gate_and_scale(b, x), other)
    assert_unchanged(b.graph)


def test_not_twice_on_one_convolution():
    """A second gate on the same x: the conv already pools for the first, so it stays as it is."""
    b = Builder((1, 4, 5, 5))
    x = b.conv(b.x, 6)
    b.output(gate_and_scale(b, x), gate_and_scale(b, x))
    after = check_rewrite(b.graph, PASS)
    conv, first, _, second, _ = after.nodes
    assert conv.attrs["pooled_output"] and first.inputs[0] is conv.outputs[1]
    assert second.inputs[0] is conv.outputs[0]
