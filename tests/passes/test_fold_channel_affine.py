"""fold_channel_affine: mul/add/sub/div by a per-channel constant fold into the conv or Gemm."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.passes.fold_channel_affine import fold_channel_affine
from tests.passes.helpers import Builder, check_rewrite, ops

PASS = "fold_channel_affine"


def _folds(graph, expected_ops: list[str]):
    """Check the fold fired (structure) and computes the same (numbers); return the result."""
    after = check_rewrite(graph, PASS)
    assert ops(after) == expected_ops
    return after


def _stays(graph, numbers: bool = True) -> None:
    assert not fold_channel_affine(graph.clone())
    if numbers:
        assert ops(check_rewrite(graph, PASS)) == ops(graph)


def _conv_then(op: str, constant_first: bool, shape: tuple = (1, 4, 1, 1)):
    """x -> conv (4 channels) -> op with a random per-channel constant -> relu."""
    b = Builder((1, 3, 6, 6))
    c = b.graph.constant((b.rng.uniform(0.5, 2.0, shape) * b.rng.choice([-1, 1], shape)).astype(np.float32), "c")
    conv = b.conv(b.x, 4)
    y = b.node(op, [c, conv] if constant_first else [conv, c])
    return b.output(b.node("relu", [y]))


@pytest.mark.parametrize("op, constant_first", [("mul", False), ("mul", True), ("add", False), ("add", True),
                                                ("sub", False), ("sub", True), ("div", False)])
def test_each_spelling_folds(op: str, constant_first: bool) -> None:
    graph = _conv_then(op, constant_first)
    after = _folds(graph, ["fused_conv2d", "relu"])
    assert after.nodes[0].sources == (graph.nodes[0].name, graph.nodes[1].name)
    assert after.nodes[0].outputs[0].name == graph.nodes[1].outputs[0].name


@pytest.mark.parametrize("shape", [(4, 1, 1), (1, 4, 1, 1), (1,), ()], ids=["C11", "1C11", "one", "scalar"])
def test_constant_shapes_that_are_per_channel_fold(shape: tuple) -> None:
    _folds(_conv_then("mul", False, shape), ["fused_conv2d", "relu"])


def test_lenet_scalar_scale_before_tanh_folds() -> None:
    """LeNet-5: conv -> mul(scalar) -> tanh, with a conv without bias."""
    b = Builder((1, 1, 8, 8))
    scaled = b.node("mul", [b.conv(b.x, 6, kernel=5, padding=0, bias=False),
                            b.graph.constant(np.array(1.7159, np.float32), "scale")])
    after = _folds(b.output(b.node("tanh", [scaled])), ["fused_conv2d", "tanh"])
    assert len(after.nodes[0].inputs) == 2  # a scale alone needs no bias


def test_batch_norm_spelled_out_folds_as_a_chain() -> None:
    """conv -> sub(mean) -> div(std) -> mul(gamma) -> add(beta): one node."""
    b = Builder((1, 3, 6, 6))
    y = b.conv(b.x, 4)
    for op, positive in (("sub", False), ("div", True), ("mul", True), ("add", False)):
        y = b.node(op, [y, b.weight(4, 1, 1, positive=positive)])
    graph = b.output(y)
    after = _folds(graph, ["fused_conv2d"])
    assert after.nodes[0].sources == tuple(n.name for n in graph.nodes)


def test_gemm_output_with_a_per_column_constant_folds() -> None:
    b = Builder((1, 12))
    gemm = b.node("gemm", [b.x, b.weight(5, 12), b.weight(5)], trans_b=True, alpha=0.5, beta=2.0)
    shifted = b.node("sub", [b.weight(5), b.node("mul", [gemm, b.weight(5)])])
    after = _folds(b.output(shifted), ["fused_gemm"])
    assert after.nodes[0].attrs["trans_b"]


def test_fused_ops_without_epilogue_fold() -> None:
    b = Builder((1, 3, 6, 6))
    fused = b.node("fused_conv2d", [b.x, b.weight(4, 3, 3, 3), None, None, b.weight(3), b.weight(3)],
                   padding=(1, 1, 1, 1), prologue_relu=True)
    pooled = b.node("fused_gemm", [b.node("mul", [fused, b.weight(4, 1, 1)]), b.weight(144, 5)])
    _folds(b.output(b.node("add", [pooled, b.weight(1, 5)])), ["fused_conv2d", "fused_gemm"])


# -- where it must not fire ------------------------------------------------------------------
def test_channel_vector_on_nchw_broadcasts_over_width_and_stays() -> None:
    """A (C,) constant on (N, C, H, W) is one number per column W, not per channel."""
    b = Builder((1, 3, 4, 4))
    _stays(b.output(b.node("mul", [b.conv(b.x, 4), b.weight(4)])))


def test_constant_that_varies_along_h_stays() -> None:
    b = Builder((1, 3, 4, 4))
    _stays(b.output(b.node("add", [b.conv(b.x, 4), b.weight(4, 4, 1)])))


def test_constant_that_grows_the_output_stays() -> None:
    b = Builder((1, 12))
    one_column = b.node("gemm", [b.x, b.weight(12, 1)])
    _stays(b.output(b.node("mul", [one_column, b.weight(1, 3)])))


def test_constant_of_higher_rank_stays() -> None:
    b = Builder((1, 12))
    _stays(b.output(b.node("add", [b.node("gemm", [b.x, b.weight(12, 5)]), b.weight(1, 1, 5)])))


def test_constant_divided_by_the_output_stays() -> None:
    _stays(_conv_then("div", True), numbers=False)  # c / y near y = 0 is too ill-conditioned to compare


def test_division_by_zero_stays() -> None:
    b = Builder((1, 3, 4, 4))
    zero = b.graph.constant(np.array([1.0, 0.0, 2.0, 3.0], np.float32).reshape(4, 1, 1), "c")
    _stays(b.output(b.node("div", [b.conv(b.x, 4), zero])), numbers=False)  # inf and NaN do not compare


def test_operand_that_is_a_graph_input_stays() -> None:
    b = Builder((1, 3, 4, 4), (1, 4, 1, 1))
    _stays(b.output(b.node("mul", [b.conv(b.x, 4), b.inputs[1]])))


def test_output_with_another_reader_stays() -> None:
    b = Builder((1, 3, 4, 4))
    conv = b.conv(b.x, 4)
    _stays(b.output(b.node("add", [b.node("mul", [conv, b.weight(4, 1, 1)]), conv])))


def test_conv_output_that_is_a_graph_output_stays() -> None:
    b = Builder((1, 3, 4, 4))
    conv = b.conv(b.x, 4)
    _stays(b.output(b.node("mul", [conv, b.weight(4, 1, 1)]), conv))


def test_activation_already_fused_stays() -> None:
    b = Builder((1, 3, 4, 4))
    fused = b.node("fused_conv2d", [b.x, b.weight(4, 3, 3, 3)], padding=(1, 1, 1, 1), activation="relu")
    _stays(b.output(b.node("add", [fused, b.weight(4, 1, 1)])))


def test_operand_made_by_another_op_stays() -> None:
    b = Builder((1, 3, 4, 4))
    _stays(b.output(b.node("mul", [b.node("relu", [b.conv(b.x, 4)]), b.weight(4, 1, 1)])))


def test_constant_of_another_dtype_stays() -> None:
    """mul(c, y) takes c's dtype: float64 here, which the float32 conv could not take over."""
    b = Builder((1, 3, 4, 4))
    wide = b.graph.constant(np.full((1, 4, 1, 1), 2.0), "c")
    _stays(b.output(b.node("mul", [wide, b.conv(b.x, 4)])), numbers=False)  # ONNX refuses mixed dtypes
