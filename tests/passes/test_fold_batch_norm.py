"""fold_batch_norm: a batch norm folds into the conv or Gemm before it, and nowhere else."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.ir import Value
from fastcnn.passes.fold_batch_norm import fold_batch_norm
from tests.passes.helpers import Builder, check_rewrite, ops

EPS = 1e-3  # far from the default 1e-5, so a fold that drops eps shows in the numbers
CONV = {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1}


def _folds_into(graph, expected_ops: list[str]):
    """Check the fold fired (structure) and computes the same (numbers); return the result."""
    assert "batch_norm" in ops(graph)
    after = check_rewrite(graph, "fold_batch_norm")
    assert ops(after) == expected_ops
    return after


def _stays(graph) -> None:
    assert not fold_batch_norm(graph.clone())
    assert ops(check_rewrite(graph, "fold_batch_norm")) == ops(graph)


def _fused_conv(b: Builder, x: Value, out_channels: int, **attrs) -> Value:
    """A fused_conv2d with a bias and a prologue (scale, shift) on its input."""
    cin = x.shape[1]
    inputs = [x, b.weight(out_channels, cin, 3, 3, scale=0.3), b.weight(out_channels, scale=0.1, name="b"),
              attrs.pop("residual", None), b.weight(cin, positive=True), b.weight(cin, scale=0.3)]
    return b.node("fused_conv2d", inputs, **CONV, **attrs)


@pytest.mark.parametrize("bias", [True, False])
def test_conv_batch_norm_folds_into_one_fused_conv(bias: bool) -> None:
    b = Builder((1, 3, 6, 6))
    graph = b.output(b.node("relu", [b.batch_norm(b.conv(b.x, 4, bias=bias), eps=EPS)]))
    after = _folds_into(graph, ["fused_conv2d", "relu"])
    conv = after.nodes[0]
    assert conv.sources == ("conv2d", "batch_norm") and len(conv.inputs) == 3
    assert conv.attrs["activation"] == "none" and conv.outputs[0].name == graph.nodes[1].outputs[0].name


def test_depthwise_strided_conv_batch_norm_folds() -> None:
    b = Builder((1, 6, 7, 7))
    graph = b.output(b.batch_norm(b.conv(b.x, 6, groups=6, stride=2), eps=EPS))
    after = _folds_into(graph, ["fused_conv2d"])
    assert after.nodes[0].attrs["groups"] == 6 and after.nodes[0].attrs["stride"] == (2, 2)


def test_fused_conv_with_prologue_folds_and_keeps_it() -> None:
    b = Builder((1, 3, 6, 6))
    graph = b.output(b.batch_norm(_fused_conv(b, b.x, 4, prologue_relu=True), eps=EPS))
    after = _folds_into(graph, ["fused_conv2d"])
    conv = after.nodes[0]
    assert conv.attrs["prologue_relu"] and conv.inputs[4] is not None and conv.inputs[5] is not None


def test_two_batch_norms_in_a_row_both_fold() -> None:
    b = Builder((1, 3, 6, 6))
    graph = b.output(b.batch_norm(b.batch_norm(b.conv(b.x, 4), eps=EPS), eps=0.1))
    names = tuple(n.name for n in graph.nodes)
    assert _folds_into(graph, ["fused_conv2d"]).nodes[0].sources == names


@pytest.mark.parametrize("trans_b", [True, False])
def test_gemm_batch_norm_folds_with_alpha_and_beta(trans_b: bool) -> None:
    b = Builder((1, 12))
    weight = b.weight(*((5, 12) if trans_b else (12, 5)))
    gemm = b.node("gemm", [b.x, weight, b.weight(1, 5)], trans_b=trans_b, alpha=0.7, beta=1.3)
    graph = b.output(b.batch_norm(gemm, eps=EPS))
    after = _folds_into(graph, ["fused_gemm"])
    assert after.nodes[0].sources == ("gemm", "batch_norm") and after.nodes[0].attrs["trans_b"] == trans_b


def test_fused_gemm_batch_norms_fold() -> None:
    b = Builder((1, 12))
    fused = b.node("fused_gemm", [b.node("relu", [b.x]), b.weight(7, 12), b.weight(7)], trans_b=True)
    graph = b.output(b.batch_norm(b.batch_norm(fused, eps=EPS)))
    after = _folds_into(graph, ["relu", "fused_gemm"])
    assert after.nodes[1].sources == tuple(n.name for n in graph.nodes[1:])


def test_gemm_feeding_a_batch_norm_folds_without_bias() -> None:
    b = Builder((1, 12))
    graph = b.output(b.node("relu", [b.batch_norm(b.node("gemm", [b.x, b.weight(12, 5)]), eps=EPS)]))
    after = _folds_into(graph, ["fused_gemm", "relu"])
    assert len(after.nodes[0].inputs) == 3  # the batch norm's shift became the bias


def test_folded_weights_are_new_constants_in_the_original_dtype() -> None:
    b = Builder((1, 3, 6, 6))
    graph = b.output(b.batch_norm(b.conv(b.x, 4), eps=EPS))
    old_weight = graph.nodes[0].inputs[1]
    assert fold_batch_norm(graph)
    conv = graph.nodes[0]
    assert conv.inputs[1] is not old_weight and conv.inputs[1].dtype == "float32" == conv.inputs[2].dtype
    assert not old_weight.const.flags.writeable


# -- where it must not fire ------------------------------------------------------------------
def test_conv_output_with_another_reader_stays() -> None:
    b = Builder((1, 3, 6, 6))
    conv = b.conv(b.x, 4)
    _stays(b.output(b.node("add", [b.batch_norm(conv, eps=EPS), b.node("relu", [conv])])))


def test_conv_output_that_is_a_graph_output_stays() -> None:
    b = Builder((1, 3, 6, 6))
    conv = b.conv(b.x, 4)
    _stays(b.output(b.batch_norm(conv, eps=EPS), conv))


def test_batch_norm_after_anything_else_stays() -> None:
    b = Builder((1, 3, 6, 6))
    _stays(b.output(b.batch_norm(b.node("relu", [b.conv(b.x, 4)]), eps=EPS)))


def test_weight_that_is_not_constant_stays() -> None:
    b = Builder((1, 3, 6, 6), (4, 3, 3, 3))
    b.inputs[1].shape = (4, 3, 3, 3)  # a weight fed at run time, batch-free
    conv = b.node("conv2d", [b.x, b.inputs[1]], **CONV)
    _stays(b.output(b.batch_norm(conv, eps=EPS)))


def test_batch_norm_parameter_that_is_not_constant_stays() -> None:
    b = Builder((1, 3, 6, 6), (4,))
    gamma = b.inputs[1]
    gamma.shape = (4,)
    bn = b.node("batch_norm", [b.conv(b.x, 4), gamma, b.weight(4), b.weight(4), b.weight(4, positive=True)],
                eps=EPS)
    _stays(b.output(bn))


@pytest.mark.parametrize("attrs", [{"activation": "relu"}, {"post_activation": "relu"},
                                   {"pooled_output": True}, {"out_splits": (2, 2)}],
                         ids=["activation", "post_activation", "pooled_output", "out_splits"])
def test_fused_conv_with_an_epilogue_stays(attrs: dict) -> None:
    b = Builder((1, 3, 6, 6))
    conv = b.graph.add_node("fused_conv2d", _fused_conv(b, b.x, 4).producer.inputs, {**CONV, **attrs})
    outputs = [b.batch_norm(conv.outputs[0], eps=EPS), *conv.outputs[1:]]
    _stays(b.output(*outputs))


def test_fused_conv_with_a_residual_stays() -> None:
    b = Builder((1, 4, 6, 6))
    _stays(b.output(b.batch_norm(_fused_conv(b, b.x, 4, residual=b.x), eps=EPS)))


def test_fused_gemm_with_an_activation_stays() -> None:
    b = Builder((1, 12))
    fused = b.node("fused_gemm", [b.x, b.weight(12, 5), b.weight(5)], activation="tanh")
    _stays(b.output(b.batch_norm(fused, eps=EPS)))


def test_gemm_with_trans_a_stays() -> None:
    b = Builder((4, 12))
    b.x.shape = (4, 12)  # trans_a makes the batch the inner size, so it must be a number
    _stays(b.output(b.batch_norm(b.node("gemm", [b.x, b.weight(4, 5)], trans_a=True), eps=EPS)))


def test_negative_variance_stays() -> None:
    """var + eps < 0 makes the batch norm NaN; folded, it would hide inside the weights."""
    b = Builder((1, 3, 6, 6))
    var = b.graph.constant(np.array([1.0, -1.0, 1.0, 1.0], np.float32), "var")
    bn = b.node("batch_norm", [b.conv(b.x, 4), b.weight(4), b.weight(4), b.weight(4), var], eps=EPS)
    graph = b.output(bn)
    assert not fold_batch_norm(graph.clone())
