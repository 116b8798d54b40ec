"""merge_sibling_convs: convolutions of one input become one fused_conv2d with out_splits."""
from __future__ import annotations

import numpy as np

from fastcnn.ir.cost import node_bytes
from tests.passes.helpers import Builder, check_rewrite, ops, rewrite

PASS = "merge_sibling_convs"


def sibling(b: Builder, x, out_channels: int, kernel: int = 1, stride: int = 1, bias: bool = True,
            prologue=(), **attrs):
    """A fused_conv2d of x (relu epilogue unless told otherwise), as after fuse_conv_epilogue."""
    pad = kernel // 2
    inputs = [x, b.weight(out_channels, x.shape[1], kernel, kernel, scale=0.4)]
    inputs.append(b.weight(out_channels, scale=0.1, name="b") if bias else None)
    if prologue:
        inputs += [None, *prologue]
    attrs = {"activation": "relu", "stride": (stride, stride), "padding": (pad,) * 4, **attrs}
    return b.graph.add_node("fused_conv2d", inputs, attrs, name="conv").outputs[0]


def inception_like() -> Builder:
    """Three 1x1 siblings of x interleaved with their branches' next convolutions, as exported."""
    b = Builder((1, 5, 6, 6))
    one = sibling(b, b.x, 4)
    reduce3 = sibling(b, b.x, 6)
    branch3 = sibling(b, reduce3, 3, kernel=3)
    reduce5 = sibling(b, b.x, 2)
    branch5 = sibling(b, reduce5, 3, kernel=3)
    b.output(b.node("concat", [one, branch3, branch5], axis=1))
    return b


def test_three_siblings_become_one_split_convolution():
    b = inception_like()
    before = b.graph.nodes
    names = [n.outputs[0].name for n in (before[0], before[1], before[3])]
    readers = {n.outputs[0].name: [u.name for u, _ in n.outputs[0].uses] for n in (before[0], before[1], before[3])}
    after = check_rewrite(b.graph, PASS)
    assert ops(after) == ["fused_conv2d"] * 3 + ["concat"]
    merged = after.nodes[0]
    assert merged.attrs["out_splits"] == (4, 6, 2) and merged.attrs["activation"] == "relu"
    assert [v.name for v in merged.outputs] == names
    assert {v.name: [u.name for u, _ in v.uses] for v in merged.outputs} == readers
    assert merged.sources == tuple(before[i].name for i in (0, 1, 3))
    weights = [before[i].inputs[1].const for i in (0, 1, 3)]
    np.testing.assert_array_equal(merged.inputs[1].const, np.concatenate(weights).astype(np.float64))
    merged32 = rewrite(b.graph, PASS).nodes[0]  # the float64 graph moves twice the bytes
    assert node_bytes(merged32, {"N": 1}) < sum(node_bytes(before[i], {"N": 1}) for i in (0, 1, 3))


def test_plain_conv2d_siblings_merge_without_epilogue():
    b = Builder((1, 5, 6, 6))
    b.output(b.conv(b.x, 3), b.conv(b.x, 4))
    after = check_rewrite(b.graph, PASS)
    assert ops(after) == ["fused_conv2d"]
    assert after.nodes[0].attrs["out_splits"] == (3, 4) and after.nodes[0].attrs["activation"] == "none"


def test_sibling_without_bias_gets_zeros():
    b = Builder((1, 5, 6, 6))
    b.output(sibling(b, b.x, 3), sibling(b, b.x, 2, bias=False), sibling(b, b.x, 4))
    merged = check_rewrite(b.graph, PASS).nodes[0]
    bias = merged.inputs[2].const
    assert bias.shape == (9,) and not bias[3:5].any() and bias[:3].all() and bias[5:].all()


def test_graph_outputs_among_siblings_keep_their_place_and_names():
    b = Builder((1, 5, 6, 6))
    first, second = sibling(b, b.x, 3), sibling(b, b.x, 2)
    b.output(b.node("relu", [first]), second, first)
    names = [v.name for v in b.graph.outputs]
    after = check_rewrite(b.graph, PASS)
    merged = after.nodes[0]
    assert ops(after) == ["fused_conv2d", "relu"]
    assert [v.name for v in after.outputs] == names
    assert after.outputs[1] is merged.outputs[1] and after.outputs[2] is merged.outputs[0]


def test_shared_prologue_merges():
    b = Builder((1, 5, 6, 6))
    prologue = (b.weight(5, positive=True, name="scale"), b.weight(5, name="shift"))
    b.output(sibling(b, b.x, 3, prologue=prologue, prologue_relu=True),
             sibling(b, b.x, 2, prologue=prologue, prologue_relu=True))
    merged = check_rewrite(b.graph, PASS).nodes[0]
    assert merged.attrs["prologue_relu"] and merged.inputs[4].name.startswith("scale")
    assert merged.attrs["out_splits"] == (3, 2)


def test_only_the_matching_siblings_merge():
    b = Builder((1, 5, 6, 6))
    b.output(sibling(b, b.x, 3), sibling(b, b.x, 2, activation="sigmoid"), sibling(b, b.x, 4))
    after = check_rewrite(b.graph, PASS)
    assert [n.attrs["out_splits"] for n in after.nodes] == [(3, 4), ()]
    assert after.nodes[1].attrs["activation"] == "sigmoid"


# -- must not merge ---------------------------------------------------------------------
def assert_unchanged(graph):
    after = rewrite(graph, PASS)
    assert ops(after) == ops(graph)
    assert not any(n.attrs.get("out_splits") for n in after.nodes)


def test_not_with_different_activations():
    b = Builder((1, 5, 6, 6))
    b.output(sibling(b, b.x, 3), sibling(b, b.x, 2, activation="none"))
    assert_unchanged(b.graph)


def test_not_with_different_activation_parameters():
    b = Builder((1, 5, 6, 6))
    b.output(sibling(b, b.x, 3, activation="leaky_relu", alpha=0.1),
             sibling(b, b.x, 2, activation="leaky_relu", alpha=0.2))
    assert_unchanged(b.graph)


def test_not_with_different_strides():
    b = Builder((1, 5, 6, 6))
    b.output(sibling(b, b.x, 3), sibling(b, b.x, 2, stride=2))
    assert_unchanged(b.graph)


def test_not_with_different_kernels():
    b = Builder((1, 5, 6, 6))
    b.output(sibling(b, b.x, 3), sibling(b, b.x, 2, kernel=3))
    assert_unchanged(b.graph)


def test_not_with_different_prologues():
    b = Builder((1, 5, 6, 6))
    first = (b.weight(5, positive=True, name="scale"), b.weight(5, name="shift"))
    second = (b.weight(5, positive=True, name="scale"), b.weight(5, name="shift"))
    b.output(sibling(b, b.x, 3, prologue=first), sibling(b, b.x, 2, prologue=second))
    assert_unchanged(b.graph)


def test_not_with_a_residual():
    b = Builder((1, 5, 6, 6))
    plain = sibling(b, b.x, 3)
    weight = b.weight(3, 5, 1, 1)
    with_residual = b.graph.add_node("fused_conv2d", [b.x, weight, None, plain], {}, name="conv").outputs[0]
    b.output(sibling(b, b.x, 3, activation="none"), with_residual)
    assert_unchanged(b.graph)


def test_not_depthwise():
    b = Builder((1, 4, 6, 6))
    b.output(b.conv(b.x, 4, groups=4), b.conv(b.x, 4, groups=4))
    assert_unchanged(b.graph)


def test_not_with_a_computed_weight():
    b = Builder((1, 5, 6, 6))
    weight = b.node("relu", [b.weight(3, 5, 1, 1)])
    computed = b.graph.add_node("conv2d", [b.x, weight], {}, name="conv").outputs[0]
    b.output(b.conv(b.x, 3, kernel=1, padding=0), computed)
    assert_unchanged(b.graph)


def test_not_across_different_inputs():
    b = Builder((1, 5, 6, 6), (1, 5, 6, 6))
    b.output(sibling(b, b.x, 3), sibling(b, b.inputs[1], 2))
    assert_unchanged(b.graph)
