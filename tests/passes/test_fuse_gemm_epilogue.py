"""fuse_gemm_epilogue: gemms become fused_gemm, and the activation after one joins it."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.ir import Graph
from fastcnn.passes.fuse_gemm_epilogue import fuse_gemm_epilogue
from tests.passes.helpers import Builder, check_rewrite, ops, rewrite

PASS = "fuse_gemm_epilogue"


def linear(b: Builder, x, out_features: int, **attrs):
    """``x @ w.T + bias``, as torch.nn.Linear exports to Gemm."""
    w = b.weight(out_features, x.shape[1], scale=1 / np.sqrt(x.shape[1]))
    return b.node("gemm", [x, w, b.weight(out_features, scale=0.1, name="b")], trans_b=True, **attrs)


def unchanged(graph: Graph) -> bool:
    copy = graph.clone()
    return not fuse_gemm_epilogue(copy) and ops(copy) == ops(graph)


def test_alexnet_classifier_chain():
    b = Builder((1, 16))
    h1 = b.node("relu", [linear(b, b.x, 12)])
    h2 = b.node("relu", [linear(b, h1, 10)])
    y = linear(b, h2, 5)
    after = check_rewrite(b.output(y), PASS)
    assert ops(after) == ["fused_gemm"] * 3
    assert [n.attrs["activation"] for n in after.nodes] == ["relu", "relu", "none"]
    assert all(n.attrs["trans_b"] for n in after.nodes)
    assert after.nodes[0].sources == (h1.producer.inputs[0].producer.name, h1.producer.name)
    assert after.nodes[1].inputs[0] is after.nodes[0].outputs[0]
    assert after.outputs[0].name == y.name


@pytest.mark.parametrize("op, attrs, expected", [
    ("sigmoid", {}, {"activation": "sigmoid"}),
    ("tanh", {}, {"activation": "tanh"}),
    ("leaky_relu", {"alpha": 0.3}, {"activation": "leaky_relu", "alpha": 0.3}),
    ("clip", {"min": -0.2, "max": 0.2}, {"activation": "clip", "clip_min": -0.2, "clip_max": 0.2}),
    ("clip", {"max": 0.0}, {"activation": "clip", "clip_min": None, "clip_max": 0.0}),
])
def test_activation_kinds(op, attrs, expected):
    b = Builder((1, 8))
    after = check_rewrite(b.output(b.node(op, [linear(b, b.x, 6)], **attrs)), PASS)
    (node,) = after.nodes
    assert node.op == "fused_gemm" and {k: node.attrs[k] for k in expected} == expected


def test_alpha_and_beta_fold_into_constants():
    b = Builder((1, 8))
    w = b.weight(8, 6)  # not transposed
    bias = b.weight(1, 6, name="c")
    y = b.node("relu", [b.node("gemm", [b.x, w, bias], alpha=0.5, beta=2.0)])
    after = check_rewrite(b.output(y), PASS)
    (node,) = after.nodes
    assert node.op == "fused_gemm" and node.attrs["activation"] == "relu" and not node.attrs["trans_b"]
    np.testing.assert_allclose(node.inputs[1].const, w.const.astype(np.float64) * 0.5)
    np.testing.assert_allclose(node.inputs[2].const, bias.const.reshape(-1).astype(np.float64) * 2.0)


def test_gemm_without_activation_still_becomes_fused():
    b = Builder((1, 8))
    after = check_rewrite(b.output(linear(b, b.x, 4)), PASS)
    assert ops(after) == ["fused_gemm"] and after.nodes[0].attrs["activation"] == "none"


def test_fused_gemm_reading_a_feature_map_takes_its_activation():
    b = Builder((1, 2, 3, 3))
    gemm = b.node("fused_gemm", [b.x, b.weight(18, 5), b.weight(5, name="b")])
    after = check_rewrite(b.output(b.node("relu", [gemm])), PASS)
    assert ops(after) == ["fused_gemm"] and after.nodes[0].attrs["activation"] == "relu"


# -- where it must not fire --------------------------------------------------------------
def test_gemm_output_with_another_reader():
    b = Builder((1, 8))
    gemm = linear(b, b.x, 6)
    after = check_rewrite(b.output(b.node("relu", [gemm]), b.node("sigmoid", [gemm])), PASS)
    assert ops(after) == ["fused_gemm", "relu", "sigmoid"]
    assert after.nodes[0].attrs["activation"] == "none"


def test_gemm_output_that_is_a_graph_output():
    b = Builder((1, 8))
    gemm = linear(b, b.x, 6)
    after = check_rewrite(b.output(b.node("relu", [gemm]), gemm), PASS)
    assert ops(after) == ["fused_gemm", "relu"]


def test_activation_already_set():
    b = Builder((1, 8))
    gemm = b.node("fused_gemm", [b.x, b.weight(8, 6)], activation="tanh")
    assert unchanged(b.output(b.node("relu", [gemm])))


def test_second_activation_stays():
    b = Builder((1, 8))
    y = b.node("sigmoid", [b.node("relu", [linear(b, b.x, 6)])])
    after = check_rewrite(b.output(y), PASS)
    assert ops(after) == ["fused_gemm", "sigmoid"] and after.nodes[0].attrs["activation"] == "relu"


def test_gemm_with_trans_a():
    b = Builder((1, 8))
    a = b.node("transpose", [b.x], perm=(1, 0))  # 8 x N
    gemm = b.node("gemm", [a, b.weight(8, 6)], trans_a=True)
    assert unchanged(b.output(b.node("relu", [gemm])))


def test_gemm_with_alpha_and_a_computed_weight():
    b = Builder((1, 8))
    w = b.node("relu", [b.weight(8, 6)])  # not a constant: alpha cannot fold into it
    gemm = b.node("gemm", [b.x, w], alpha=0.5)
    assert unchanged(b.output(b.node("relu", [gemm])))


def test_reports_no_change_on_a_second_run():
    b = Builder((1, 8))
    graph = rewrite(b.output(b.node("relu", [linear(b, b.x, 6)])), PASS)
    assert fuse_gemm_epilogue(graph) is False
