"""fuse_prologue: a batch norm (+ ReLU) before convolutions and poolings becomes their prologue."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.ir import Graph, Value
from fastcnn.ir.fused_ops import CONV_SCALE, CONV_SHIFT, POOL_SCALE, POOL_SHIFT
from fastcnn.passes.fuse_prologue import fuse_prologue
from tests.passes.helpers import Builder, check_rewrite, ops, random_inputs, relative_l2, rewrite, run_torch

PASS = "fuse_prologue"
SHAPE = (1, 4, 6, 6)
EPS = 1e-5


def batch_norm(b: Builder, x: Value, beta: float, eps: float = EPS) -> Value:
    """A batch norm whose shift is about ``beta``: its mean is small and its scale near 1."""
    c = x.shape[1]
    return b.node("batch_norm", [x, b.weight(c, positive=True, name="gamma"),
                                 b.graph.constant(np.full(c, beta, np.float32) + b.rng.uniform(-0.2, 0.2, c)
                                                  .astype(np.float32), "beta"),
                                 b.weight(c, scale=0.1, name="mean"),
                                 b.weight(c, positive=True, name="var")], eps=eps)


def expected_scale_shift(bn: Value) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, var = (v.const.astype(np.float64) for v in bn.producer.inputs[1:])
    scale = gamma / np.sqrt(var + bn.producer.attrs["eps"])
    return scale, beta - mean * scale


def unchanged(graph: Graph) -> bool:
    copy = graph.clone()
    return not fuse_prologue(copy) and ops(copy) == ops(graph)


def max_pool(b: Builder, x: Value) -> Value:
    return b.node("max_pool", [x], kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1))


# -- padding comes after the prologue -----------------------------------------------------------
@pytest.mark.parametrize("beta", [3.0, -3.0])
@pytest.mark.parametrize("relu", [True, False])
def test_padded_conv_reading_batch_norm(beta, relu):
    b = Builder(SHAPE)
    bn = batch_norm(b, b.x, beta)
    t = b.node("relu", [bn]) if relu else bn
    y = b.conv(t, 5)
    after = check_rewrite(b.output(y), PASS)
    assert ops(after) == ["fused_conv2d"]
    (node,) = after.nodes
    assert node.inputs[0] is after.inputs[0] and node.attrs["padding"] == (1, 1, 1, 1)
    assert node.attrs["prologue_relu"] is relu
    scale, shift = expected_scale_shift(bn)
    np.testing.assert_allclose(node.inputs[CONV_SCALE].const, scale, rtol=1e-6)
    np.testing.assert_allclose(node.inputs[CONV_SHIFT].const, shift, rtol=1e-6)
    covered = (bn.producer.name, t.producer.name) if relu else (bn.producer.name,)
    assert node.sources == (*covered, y.producer.name)


@pytest.mark.parametrize("beta, relu", [(3.0, True), (-3.0, True), (-3.0, False)])
def test_padded_max_pool_reading_batch_norm(beta, relu):
    b = Builder(SHAPE)
    bn = batch_norm(b, b.x, beta)
    t = b.node("relu", [bn]) if relu else bn
    after = check_rewrite(b.output(max_pool(b, t)), PASS)
    assert ops(after) == ["fused_pool"]
    (node,) = after.nodes
    assert node.attrs["mode"] == "max" and node.attrs["padding"] == (1, 1, 1, 1)
    assert node.attrs["prologue_relu"] is relu and node.inputs[0] is after.inputs[0]
    assert node.inputs[POOL_SCALE] is not None and node.inputs[POOL_SHIFT] is not None


@pytest.mark.parametrize("count_include_pad", [False, True])
def test_padded_avg_pool_reading_batch_norm(count_include_pad):
    b = Builder(SHAPE)
    t = b.node("relu", [batch_norm(b, b.x, 3.0)])
    y = b.node("avg_pool", [t], kernel=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1),
               count_include_pad=count_include_pad)
    after = check_rewrite(b.output(y), PASS)
    assert ops(after) == ["fused_pool"] and after.nodes[0].attrs["count_include_pad"] is count_include_pad


def bn_relu_conv(pad_first: bool) -> Graph:
    """relu(bn(x)) -> 3x3 conv with padding 1; or, wrongly, x padded with zeros before the batch
    norm, so the padding becomes relu(shift). The same seed gives both the same weights."""
    b = Builder(SHAPE)
    x = b.node("pad", [b.x], pads=(0, 0, 1, 1, 0, 0, 1, 1)) if pad_first else b.x
    t = b.node("relu", [batch_norm(b, x, 3.0)])
    return b.output(b.conv(t, 5, padding=0 if pad_first else 1))


def test_padding_order_matters_for_this_shift():
    """The checks above have teeth: padding with relu(shift) instead of 0 changes the result a lot."""
    right, wrong = bn_relu_conv(pad_first=False), bn_relu_conv(pad_first=True)
    inputs = random_inputs(right)
    assert relative_l2(run_torch(wrong, inputs)[0], run_torch(right, inputs)[0]) > 0.05


# -- the networks that need it ------------------------------------------------------------------
def test_densenet_shared_buffer():
    """Each dense layer reads the concat of all features so far through its own BN + ReLU; the
    next concat (and a transition's BN + ReLU + 1x1 conv + average pool) read the same buffer."""
    b = Builder((1, 4, 6, 6))
    layer_in = b.node("concat", [b.x, b.conv(b.x, 4)], axis=1)
    bn = batch_norm(b, layer_in, 0.5)
    bottleneck = b.conv(b.node("relu", [bn]), 8, kernel=1, padding=0)
    block_out = b.node("concat", [layer_in, b.conv(bottleneck, 4)], axis=1)
    transition = b.conv(b.node("relu", [batch_norm(b, block_out, -0.5)]), 6, kernel=1, padding=0)
    y = b.node("avg_pool", [transition], kernel=(2, 2), stride=(2, 2))
    after = check_rewrite(b.output(y), PASS)
    assert "batch_norm" not in ops(after) and "relu" not in ops(after)
    assert ops(after).count("fused_conv2d") == 2
    first, second = [n for n in after.nodes if n.op == "fused_conv2d"]
    concat_out = next(n for n in after.nodes if n.op == "concat").outputs[0]
    assert first.inputs[0] is concat_out and first.attrs["prologue_relu"]
    assert {u.op for u in concat_out.users} == {"fused_conv2d", "concat"}
    assert second.inputs[0].producer.op == "concat" and second.inputs[0] is not concat_out
    assert after.nodes[-1].op == "avg_pool"  # reads a conv's output: nothing to do


def test_pre_activation_resnet_projection_shares_the_constants():
    b = Builder((1, 4, 8, 8))
    t = b.node("relu", [batch_norm(b, b.x, 1.0)])
    main = b.conv(t, 8, kernel=3, padding=1, stride=2)
    projection = b.conv(t, 8, kernel=1, padding=0, stride=2, bias=False)
    y = b.node("add", [b.conv(b.node("relu", [main]), 8), projection])
    after = check_rewrite(b.output(y), PASS)
    # relu(main) is a lone ReLU before a convolution: it becomes that convolution's prologue too
    assert ops(after) == ["fused_conv2d"] * 3 + ["add"]
    main, projection, second = after.nodes[:3]
    assert main.inputs[CONV_SCALE] is projection.inputs[CONV_SCALE]
    assert main.inputs[CONV_SHIFT] is projection.inputs[CONV_SHIFT]
    assert all(n.inputs[0] is after.inputs[0] and n.attrs["prologue_relu"] for n in (main, projection))
    assert len(projection.inputs) == 6 and projection.inputs[2] is None  # still no bias
    assert second.inputs[0] is main.outputs[0] and second.attrs["prologue_relu"] and len(second.inputs) == 3


def test_final_batch_norm_relu_global_pool():
    b = Builder((1, 4, 5, 5))
    pooled = b.node("global_avg_pool", [b.node("relu", [batch_norm(b, b.x, 0.5)])])
    y = b.node("gemm", [b.node("flatten", [pooled]), b.weight(3, 4)], trans_b=True)
    after = check_rewrite(b.output(y), PASS)
    assert ops(after) == ["fused_pool", "flatten", "gemm"]
    assert after.nodes[0].attrs["mode"] == "global_avg" and after.nodes[0].attrs["prologue_relu"]


def test_global_max_pool_and_fused_conv_epilogue_kept():
    b = Builder((1, 4, 5, 5))
    bn = batch_norm(b, b.x, -1.0)
    conv = b.node("fused_conv2d", [bn, b.weight(4, 4, 3, 3), None, b.x], padding=(1, 1, 1, 1),
                  activation="sigmoid", post_activation="relu")
    after = check_rewrite(b.output(conv, b.node("global_max_pool", [bn])), PASS)
    assert ops(after) == ["fused_conv2d", "fused_pool"]
    node = after.nodes[0]
    assert node.inputs[3] is after.inputs[0] and node.attrs["activation"] == "sigmoid"
    assert node.attrs["post_activation"] == "relu" and not node.attrs["prologue_relu"]


def test_lone_relu_becomes_a_prologue():
    b = Builder(SHAPE)
    conv = b.conv(b.x, 4)
    r = b.node("relu", [conv])
    graph = b.output(b.conv(r, 4), max_pool(b, r), conv)
    after = check_rewrite(graph, PASS)
    assert ops(after) == ["conv2d", "fused_conv2d", "fused_pool"]
    fused_conv, fused_pool = after.nodes[1:]
    assert len(fused_conv.inputs) == 3 and len(fused_pool.inputs) == 1  # no scale or shift
    for node in (fused_conv, fused_pool):
        assert node.attrs["prologue_relu"] and node.inputs[0] is after.nodes[0].outputs[0]
        assert node.sources == (r.producer.name, node.sources[-1])


def test_relu_after_a_non_constant_batch_norm_moves_alone():
    b = Builder(SHAPE)
    gamma = b.node("relu", [b.weight(4, positive=True)])
    bn = b.node("batch_norm", [b.x, gamma, *(b.weight(4, positive=True) for _ in range(3))])
    after = check_rewrite(b.output(b.conv(b.node("relu", [bn]), 4)), PASS)
    assert ops(after) == ["relu", "batch_norm", "fused_conv2d"]
    assert after.nodes[-1].inputs[0].producer.op == "batch_norm" and after.nodes[-1].attrs["prologue_relu"]


# -- where it must not fire ---------------------------------------------------------------
def test_reader_that_is_an_add():
    b = Builder(SHAPE)
    t = b.node("relu", [batch_norm(b, b.x, 1.0)])
    assert unchanged(b.output(b.conv(t, 4), b.node("add", [t, b.x])))


def test_batch_norm_output_that_is_a_graph_output():
    b = Builder(SHAPE)
    t = b.node("relu", [batch_norm(b, b.x, 1.0)])
    assert unchanged(b.output(b.conv(t, 4), t))
    b = Builder(SHAPE)
    bn = batch_norm(b, b.x, 1.0)
    assert unchanged(b.output(b.conv(bn, 4), bn))


def test_batch_norm_read_by_relu_and_conv():
    """The ReLU is one of two readers: the batch norm must stay, the ReLU may move."""
    b = Builder(SHAPE)
    bn = batch_norm(b, b.x, 1.0)
    after = check_rewrite(b.output(b.conv(b.node("relu", [bn]), 4), b.node("sigmoid", [bn])), PASS)
    assert ops(after) == ["batch_norm", "fused_conv2d", "sigmoid"]


def test_batch_norm_with_a_non_constant_parameter():
    b = Builder(SHAPE)
    mean = b.node("relu", [b.weight(4)])
    bn = b.node("batch_norm", [b.x, b.weight(4, positive=True), b.weight(4), mean, b.weight(4, positive=True)])
    assert unchanged(b.output(b.conv(bn, 4)))


def test_conv_reading_it_as_residual():
    b = Builder(SHAPE)
    bn = batch_norm(b, b.x, 1.0)
    conv = b.node("fused_conv2d", [b.x, b.weight(4, 4, 3, 3), None, bn], padding=(1, 1, 1, 1))
    assert unchanged(b.output(conv))


def test_reader_with_a_prologue_already():
    b = Builder(SHAPE)
    bn = batch_norm(b, b.x, 1.0)
    scale, shift = b.weight(4, positive=True), b.weight(4)
    conv = b.node("fused_conv2d", [bn, b.weight(4, 4, 1, 1), None, None, scale, shift])
    assert unchanged(b.output(conv, max_pool(b, bn)))
    b = Builder(SHAPE)
    r = b.node("relu", [b.x])
    pool = b.node("fused_pool", [r], mode="global_avg", prologue_relu=True)
    assert unchanged(b.output(pool))


def test_reports_no_change_on_a_second_run():
    b = Builder(SHAPE)
    graph = rewrite(b.output(b.conv(b.node("relu", [batch_norm(b, b.x, 1.0)]), 4)), PASS)
    assert fuse_prologue(graph) is False
