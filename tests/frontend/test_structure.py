"""What each converter makes of its ONNX op: the IR ops, their typed attributes, the shapes."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.frontend import import_onnx
from tests.frontend.helpers import import_text, ops, parse


def text(body: str, opset: int = 17) -> str:
    return f'<ir_version: 8, opset_import: ["" : {opset}]>\n{body}'


def weights(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_inputs_outputs_and_weights() -> None:
    """Dynamic batch -> "N", other dims keep their names; weights become IR constants."""
    graph = import_text(text("g (float[batch, 3, H, 8] image) => (float[batch, 4, H, 8] out) "
                             "{ out = Conv <pads = [1, 1, 1, 1]> (image, w, b) }"),
                        w=weights(4, 3, 3, 3), b=weights(4))
    (image,) = graph.inputs
    assert (image.name, image.shape, image.dtype) == ("image", ("N", 3, "H", 8), "float32")
    assert [v.name for v in graph.outputs] == ["out"]
    (conv,) = graph.nodes
    assert conv.op == "conv2d" and conv.inputs[1].is_const and conv.inputs[2].is_const
    assert conv.attrs == {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1}


@pytest.mark.parametrize("auto_pad, padding", [("SAME_UPPER", (1, 1, 2, 2)), ("SAME_LOWER", (2, 2, 1, 1)),
                                                ("VALID", (0, 0, 0, 0))])
def test_conv_auto_pad_becomes_explicit(auto_pad: str, padding: tuple) -> None:
    graph = import_text(text(f'g (float[1, 3, 7, 7] x) => (float[1, 2, H, W] y) '
                             f'{{ y = Conv <auto_pad = "{auto_pad}", strides = [2, 2]> (x, w) }}'),
                        w=weights(2, 3, 4, 4))
    assert graph.nodes[0].attrs["padding"] == padding


def test_conv_1d_runs_as_2d_between_reshapes() -> None:
    graph = import_text(text("g (float[N, 3, 9] x) => (float[N, 4, 9] y) { y = Conv <pads = [1, 1]> (x, w) }"),
                        w=weights(4, 3, 3))
    assert ops(graph) == ["reshape", "conv2d", "reshape"]
    conv = graph.nodes[1]
    assert conv.inputs[1].shape == (4, 3, 1, 3) and conv.attrs["padding"] == (0, 1, 0, 1)
    assert graph.outputs[0].shape == ("N", 4, 9) and graph.outputs[0].name == "y"


def test_pools_keep_ceil_mode_dilation_and_count_include_pad() -> None:
    graph = import_text(text("g (float[N, 3, 9, 9] x) => (float[N, 3, A, B] y, float[N, 3, C, D] z) { "
                             "y = MaxPool <kernel_shape = [3, 3], strides = [2, 2], dilations = [1, 2], ceil_mode = 1> (x) \n"
                             "z = AveragePool <kernel_shape = [2, 2], pads = [0, 0, 1, 1], count_include_pad = 1> (x) }"))
    max_pool, avg_pool = graph.nodes
    assert max_pool.attrs == {"kernel": (3, 3), "stride": (2, 2), "padding": (0, 0, 0, 0),
                              "dilation": (1, 2), "ceil_mode": True}
    assert avg_pool.attrs == {"kernel": (2, 2), "stride": (1, 1), "padding": (0, 0, 1, 1),
                              "ceil_mode": False, "count_include_pad": True, "dilation": (1, 1)}
    assert max_pool.outputs[0].shape == ("N", 3, 4, 3) and avg_pool.outputs[0].shape == ("N", 3, 9, 9)


def test_gemm_batchnorm_lrn_attributes_are_typed() -> None:
    graph = import_text(text("g (float[N, 4, 2, 2] x) => (float[N, 5] y) { "
                             "b = BatchNormalization <epsilon = 0.01> (x, s, t, m, v) \n"
                             "l = LRN <size = 3> (b) \n f = Flatten (l) \n"
                             "y = Gemm <transB = 1, alpha = 2.0> (f, w, c) }"),
                        s=weights(4), t=weights(4), m=weights(4), v=np.ones(4, np.float32),
                        w=weights(5, 16), c=weights(5))
    assert ops(graph) == ["batch_norm", "lrn", "flatten", "gemm"]
    bn, lrn, flatten, gemm = graph.nodes
    assert bn.attrs["eps"] == pytest.approx(0.01)
    assert lrn.attrs == {"size": 3, "alpha": pytest.approx(1e-4), "beta": 0.75, "bias": 1.0}
    assert flatten.attrs == {"axis": 1} and flatten.outputs[0].shape == ("N", 16)
    assert gemm.attrs == {"alpha": 2.0, "beta": 1.0, "trans_a": False, "trans_b": True}
    assert gemm.outputs[0].shape == ("N", 5)


def test_identity_and_dropout_are_imported_as_they_are() -> None:
    """The importer keeps them (the drop_identity pass removes them), so the IR says what the file says."""
    graph = import_text(text("g (float[N, 3] x) => (float[N, 3] y) "
                             "{ r = Relu (x) \n i = Identity (r) \n y = Dropout (i) }"))
    assert ops(graph) == ["relu", "identity", "dropout"]
    assert graph.outputs[0].name == "y"


def test_sum_and_mean_become_add_chains() -> None:
    graph = import_text(text("g (float[N, 3] a, float[N, 3] b, float[3] c) => (float[N, 3] s, float[N, 3] m) "
                             "{ s = Sum (a, b, c) \n m = Mean (a, b, c) }"))
    assert ops(graph) == ["add", "add", "add", "add", "div"]
    assert float(graph.nodes[-1].inputs[1].const) == 3.0


def test_softmax_old_opset_flattens_at_axis() -> None:
    old = import_onnx(parse(text("g (float[N, 3, 4] x) => (float[N, 3, 4] y) { y = Softmax (x) }", opset=11)))
    new = import_text(text("g (float[N, 3, 4] x) => (float[N, 3, 4] y) { y = Softmax <axis = 1> (x) }", opset=13))
    assert ops(old) == ["flatten", "softmax", "reshape"]
    assert old.nodes[2].attrs["shape"] == (0, 3, 4)
    assert ops(new) == ["softmax"] and new.nodes[0].attrs == {"axis": 1}


def test_squeeze_unsqueeze_flatten_become_reshape_and_flatten() -> None:
    graph = import_text(text("g (float[N, 3, 1, 1] x) => (float[N, 1, 3] y) "
                             "{ s = Squeeze (x, axes) \n y = Unsqueeze (s, one) }"),
                        axes=np.array([2, 3]), one=np.array([1]))
    assert ops(graph) == ["reshape", "reshape"]
    assert [n.attrs["shape"] for n in graph.nodes] == [(0, 3), (0, 1, 3)]
    assert graph.outputs[0].shape == ("N", 1, 3)


def test_transpose_concat_pad_reduce_mean() -> None:
    graph = import_text(text("g (float[N, 3, 4, 4] x) => (float[N, 3, 1, 1] y, float[N, 6, 4, 6] z, "
                             "float[4, 4, 3, N] t) { y = ReduceMean <axes = [2, 3]> (x) \n"
                             "c = Concat <axis = 1> (x, x) \n z = Pad <mode = \"reflect\"> (c, p) \n"
                             "t = Transpose (x) }", opset=13), p=np.array([0, 0, 0, 1, 0, 0, 0, 1]))
    assert ops(graph) == ["reduce_mean", "concat", "pad", "transpose"]
    mean, concat, pad, transpose = graph.nodes
    assert mean.attrs == {"axes": (2, 3), "keepdims": True}
    assert concat.attrs == {"axis": 1}
    assert pad.attrs == {"pads": (0, 0, 0, 1, 0, 0, 0, 1), "mode": "reflect", "value": 0.0}
    assert transpose.attrs == {"perm": (3, 2, 1, 0)}


def test_clip_bounds_from_inputs_and_attributes() -> None:
    new = import_text(text("g (float[N, 3] x) => (float[N, 3] y) { y = Clip (x, , hi) }", opset=13),
                      hi=np.array(6.0, np.float32))
    old = import_onnx(parse(text("g (float[N, 3] x) => (float[N, 3] y) { y = Clip <min = 0.0> (x) }", opset=6)))
    assert new.nodes[0].attrs == {"min": None, "max": 6.0}
    assert old.nodes[0].attrs == {"min": 0.0, "max": None}


def test_decomposed_batch_norm_stays_mul_add_with_constants() -> None:
    graph = import_text(text("g (float[N, 3, 2, 2] x) => (float[N, 3, 2, 2] y) "
                             "{ m = Mul (x, scale) \n y = Add (m, shift) }"),
                        scale=weights(3, 1, 1), shift=weights(3, 1, 1))
    assert ops(graph) == ["mul", "add"]
    assert all(node.inputs[1].is_const for node in graph.nodes)


def test_reduce_sum_is_mean_times_count() -> None:
    graph = import_text(text("g (float[N, 3, 4] x) => (float[N, 1, 4] y) { y = ReduceSum (x, a) }", opset=13),
                        a=np.array([1]))
    assert ops(graph) == ["reduce_mean", "mul"]
    assert float(graph.nodes[1].inputs[1].const) == 3.0
