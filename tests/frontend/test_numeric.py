"""Each converter on small models: the imported IR, run by the torch executor, against
``onnx.reference`` on the original ONNX model.

The models are float64, so a converter that gets a padding, a divisor, an axis or an old
opset's semantics wrong shows as an error far above the 1e-8 allowed (float attributes such
as LRN's alpha are float32 in ONNX, which the oracle then computes with; hence not 0).

Cases marked ``oracle="onnxruntime"`` use ONNX Runtime instead: onnx 1.23's reference
applies opset 13's Softmax semantics to opset 11 models (no flattening at ``axis``) and
gets the opset-9 BatchNormalization wrong, both checked against NumPy by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from tests.frontend.helpers import import_text, onnxruntime_outputs, parse, reference, relative_error, run_graph

TOLERANCE = 1e-8


@dataclass
class Case:
    body: str  # the graph body: inputs => outputs { nodes }
    inputs: list[tuple[int, ...]]
    opset: int = 17
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    oracle: str = "reference"

    def text(self) -> str:
        return f'<ir_version: 8, opset_import: ["" : {self.opset}]>\n{self.body}'


def w(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def positive(*shape: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


X4 = "double[2, 3, 7, 7] x"
CASES: dict[str, Case] = {
    # -- convolution --------------------------------------------------------------------------
    "conv_pads_bias": Case(f"g ({X4}) => (double[2, 4, 7, 7] y) {{ y = Conv <pads = [1, 1, 1, 1]> (x, w, b) }}",
                           [(2, 3, 7, 7)], weights={"w": w(4, 3, 3, 3), "b": w(4)}),
    "conv_stride_dilation_no_bias": Case(
        f"g ({X4}) => (double[2, 4, 3, 2] y) {{ y = Conv <strides = [2, 2], dilations = [2, 2]> (x, w) }}",
        [(2, 3, 7, 7)], weights={"w": w(4, 3, 2, 3)}),
    "conv_asymmetric_pads_groups": Case(
        "g (double[1, 4, 6, 5] x) => (double[1, 6, 6, 6] y) "
        "{ y = Conv <pads = [0, 2, 1, 0], group = 2> (x, w, b) }",
        [(1, 4, 6, 5)], weights={"w": w(6, 2, 2, 2), "b": w(6)}),
    "conv_same_upper": Case(f"g ({X4}) => (double[2, 4, 4, 4] y) "
                            "{ y = Conv <auto_pad = \"SAME_UPPER\", strides = [2, 2]> (x, w) }",
                            [(2, 3, 7, 7)], weights={"w": w(4, 3, 4, 4)}),
    "conv_same_lower": Case(f"g ({X4}) => (double[2, 4, 4, 4] y) "
                            "{ y = Conv <auto_pad = \"SAME_LOWER\", strides = [2, 2]> (x, w) }",
                            [(2, 3, 7, 7)], weights={"w": w(4, 3, 4, 4)}),
    "conv_valid": Case(f"g ({X4}) => (double[2, 4, 5, 5] y) {{ y = Conv <auto_pad = \"VALID\"> (x, w) }}",
                       [(2, 3, 7, 7)], weights={"w": w(4, 3, 3, 3)}),
    "conv_1d": Case("g (double[2, 3, 9] x) => (double[2, 4, 5] y) "
                    "{ y = Conv <pads = [1, 2], strides = [2]> (x, w, b) }",
                    [(2, 3, 9)], weights={"w": w(4, 3, 3), "b": w(4)}),
    # -- pooling ------------------------------------------------------------------------------
    "maxpool_ceil_pads": Case(f"g ({X4}) => (double[2, 3, 4, 4] y) "
                              "{ y = MaxPool <kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 0, 0], "
                              "ceil_mode = 1> (x) }", [(2, 3, 7, 7)]),
    "maxpool_dilations": Case(f"g ({X4}) => (double[2, 3, 3, 3] y) "
                              "{ y = MaxPool <kernel_shape = [2, 2], dilations = [2, 2], strides = [2, 2]> (x) }",
                              [(2, 3, 7, 7)]),
    "maxpool_same_upper": Case(f"g ({X4}) => (double[2, 3, 4, 4] y) "
                               "{ y = MaxPool <kernel_shape = [3, 3], strides = [2, 2], auto_pad = \"SAME_UPPER\"> (x) }",
                               [(2, 3, 7, 7)]),
    "maxpool_1d": Case("g (double[2, 3, 9] x) => (double[2, 3, 4] y) "
                       "{ y = MaxPool <kernel_shape = [3], strides = [2]> (x) }", [(2, 3, 9)]),
    "avgpool_ceil_include_pad": Case(
        f"g ({X4}) => (double[2, 3, 4, 4] y) {{ y = AveragePool <kernel_shape = [3, 3], strides = [2, 2], "
        "pads = [1, 1, 1, 1], ceil_mode = 1, count_include_pad = 1> (x) }", [(2, 3, 7, 7)]),
    "avgpool_exclude_pad_asymmetric": Case(
        f"g ({X4}) => (double[2, 3, 3, 3] y) {{ y = AveragePool <kernel_shape = [3, 3], strides = [2, 2], "
        "pads = [1, 0, 0, 0]> (x) }", [(2, 3, 7, 7)]),
    "global_avg_pool": Case(f"g ({X4}) => (double[2, 3, 1, 1] y) {{ y = GlobalAveragePool (x) }}", [(2, 3, 7, 7)]),
    "global_max_pool": Case(f"g ({X4}) => (double[2, 3, 1, 1] y) {{ y = GlobalMaxPool (x) }}", [(2, 3, 7, 7)]),
    # -- normalisation, softmax -----------------------------------------------------------------
    "batchnorm": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) "
                      "{ y = BatchNormalization <epsilon = 0.001> (x, s, b, m, v) }", [(2, 3, 7, 7)],
                      weights={"s": w(3), "b": w(3, seed=3), "m": w(3, seed=4), "v": positive(3)}),
    "batchnorm_opset9": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) "
                             "{ y = BatchNormalization (x, s, b, m, v) }", [(2, 3, 7, 7)], opset=9,
                             oracle="onnxruntime",
                             weights={"s": w(3), "b": w(3, seed=3), "m": w(3, seed=4), "v": positive(3)}),
    "lrn_odd": Case("g (double[2, 6, 4, 4] x) => (double[2, 6, 4, 4] y) "
                    "{ y = LRN <size = 3, alpha = 0.5, beta = 0.75, bias = 2.0> (x) }", [(2, 6, 4, 4)]),
    "lrn_even": Case("g (double[2, 6, 4, 4] x) => (double[2, 6, 4, 4] y) "
                     "{ y = LRN <size = 4, alpha = 0.5> (x) }", [(2, 6, 4, 4)]),
    "softmax_opset13_axis1": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) {{ y = Softmax <axis = 1> (x) }}",
                                  [(2, 3, 7, 7)], opset=13),
    "softmax_opset11_axis1_flattens": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) {{ y = Softmax <axis = 1> (x) }}",
                                           [(2, 3, 7, 7)], opset=11, oracle="onnxruntime"),
    "softmax_opset11_default": Case("g (double[2, 3, 5] x) => (double[2, 3, 5] y) { y = Softmax (x) }",
                                    [(2, 3, 5)], opset=11, oracle="onnxruntime"),
    "softmax_opset11_last_axis": Case("g (double[2, 5] x) => (double[2, 5] y) { y = Softmax <axis = -1> (x) }",
                                      [(2, 5)], opset=11),
    # -- fully connected ------------------------------------------------------------------------
    "gemm_trans_b_bias": Case("g (double[2, 5] x) => (double[2, 4] y) { y = Gemm <transB = 1> (x, w, b) }",
                              [(2, 5)], weights={"w": w(4, 5), "b": w(4)}),
    "gemm_alpha_beta_trans_a": Case("g (double[5, 2] x) => (double[2, 4] y) "
                                    "{ y = Gemm <transA = 1, alpha = 0.5, beta = 2.0> (x, w, b) }",
                                    [(5, 2)], weights={"w": w(5, 4), "b": w(2, 4)}),
    "gemm_no_c": Case("g (double[2, 5] x) => (double[2, 4] y) { y = Gemm (x, w) }", [(2, 5)],
                      weights={"w": w(5, 4)}),
    "matmul_batched": Case("g (double[2, 3, 5] x) => (double[2, 3, 4] y) { y = MatMul (x, w) }", [(2, 3, 5)],
                           weights={"w": w(5, 4)}),
    # -- elementwise ----------------------------------------------------------------------------
    "add_sub_mul_div_broadcast": Case(
        f"g ({X4}) => (double[2, 3, 7, 7] y) "
        "{ a = Add (x, c) \n s = Sub (a, r) \n m = Mul (s, c) \n y = Div (m, p) }", [(2, 3, 7, 7)],
        weights={"c": w(3, 1, 1), "r": w(7), "p": positive(1, 3, 1, 1)}),
    "sum_three": Case(f"g ({X4}, double[3, 1, 1] z) => (double[2, 3, 7, 7] y) {{ y = Sum (x, z, x) }}",
                      [(2, 3, 7, 7), (3, 1, 1)]),
    "sum_one": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) {{ y = Sum (x) }}", [(2, 3, 7, 7)]),
    "mean_three": Case(f"g ({X4}, double[3, 1, 1] z) => (double[2, 3, 7, 7] y) {{ y = Mean (x, z, x) }}",
                       [(2, 3, 7, 7), (3, 1, 1)]),
    "activations": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) "
                        "{ a = Relu (x) \n b = Sigmoid (x) \n c = Tanh (x) \n d = LeakyRelu <alpha = 0.2> (x) \n"
                        " e = Neg (x) \n ab = Add (a, b) \n cd = Add (c, d) \n abcd = Add (ab, cd) \n y = Add (abcd, e) }",
                        [(2, 3, 7, 7)]),
    "clip_opset6_attrs": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) {{ y = Clip <min = -0.5, max = 0.7> (x) }}",
                              [(2, 3, 7, 7)], opset=6),
    "clip_opset13_inputs": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) {{ y = Clip (x, lo, hi) }}", [(2, 3, 7, 7)],
                                opset=13, weights={"lo": np.array(-0.5), "hi": np.array(0.7)}),
    "clip_opset13_max_only": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) {{ y = Clip (x, , hi) }}", [(2, 3, 7, 7)],
                                  opset=13, weights={"hi": np.array(0.7)}),
    "identity_dropout_opset7": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) "
                                    "{ a = Identity (x) \n y = Dropout <ratio = 0.3> (a) }", [(2, 3, 7, 7)], opset=7),
    "dropout_opset13_inputs": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) {{ y = Dropout (x, r) }}",
                                   [(2, 3, 7, 7)], opset=13, weights={"r": np.array(0.3)}),
    # -- layout ---------------------------------------------------------------------------------
    "flatten_axes": Case(f"g ({X4}) => (double[1, 294] a, double[6, 49] b, double[42, 7] c) "
                         "{ a = Flatten <axis = 0> (x) \n b = Flatten <axis = 2> (x) \n c = Flatten <axis = -1> (x) }",
                         [(2, 3, 7, 7)]),
    "reshape_zero_and_minus_one": Case(f"g ({X4}) => (double[2, 3, 49] y) {{ y = Reshape (x, s) }}",
                                       [(2, 3, 7, 7)], weights={"s": i64(0, 0, -1)}),
    "squeeze_unsqueeze_opset11": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) "
                                      "{ u = Unsqueeze <axes = [0, -1]> (x) \n y = Squeeze <axes = [0, 5]> (u) }",
                                      [(2, 3, 7, 7)], opset=11),
    "squeeze_unsqueeze_opset13": Case("g (double[2, 1, 7] x) => (double[2, 7, 1] y) "
                                      "{ s = Squeeze (x, a1) \n y = Unsqueeze (s, a2) }", [(2, 1, 7)], opset=13,
                                      weights={"a1": i64(1), "a2": i64(-1)}),
    "transpose": Case(f"g ({X4}) => (double[7, 2, 7, 3] y, double[7, 7, 3, 2] z) "
                      "{ y = Transpose <perm = [2, 0, 3, 1]> (x) \n z = Transpose (x) }", [(2, 3, 7, 7)]),
    "concat_with_weight": Case(f"g ({X4}) => (double[2, 3, 7, 14] y) {{ y = Concat <axis = -1> (x, x) }}",
                               [(2, 3, 7, 7)]),
    "pad_opset10_attrs_reflect": Case(f"g ({X4}) => (double[2, 3, 9, 10] y) "
                                      "{ y = Pad <mode = \"reflect\", pads = [0, 0, 1, 2, 0, 0, 1, 1]> (x) }",
                                      [(2, 3, 7, 7)], opset=10),
    "pad_opset13_edge": Case(f"g ({X4}) => (double[2, 3, 9, 10] y) {{ y = Pad <mode = \"edge\"> (x, p) }}",
                             [(2, 3, 7, 7)], opset=13, weights={"p": i64(0, 0, 1, 2, 0, 0, 1, 1)}),
    "pad_opset13_constant_crop": Case(f"g ({X4}) => (double[2, 3, 8, 6] y) {{ y = Pad (x, p, v) }}",
                                      [(2, 3, 7, 7)], opset=13,
                                      weights={"p": i64(0, 0, 1, -1, 0, 0, 0, 0), "v": np.array(1.5)}),
    "pad_opset18_axes": Case(f"g ({X4}) => (double[2, 3, 10, 7] y) {{ y = Pad (x, p, , a) }}",
                             [(2, 3, 7, 7)], opset=18, weights={"p": i64(1, 2), "a": i64(2)}),
    "reduce_mean_opset13_attrs": Case(f"g ({X4}) => (double[2, 1, 1, 7] y, double[2, 7] z) "
                                      "{ y = ReduceMean <axes = [1, 2]> (x) \n z = ReduceMean <axes = [1, -1], keepdims = 0> (x) }",
                                      [(2, 3, 7, 7)], opset=13),
    "reduce_mean_opset18_input": Case(f"g ({X4}) => (double[2, 3, 1, 1] y) {{ y = ReduceMean (x, a) }}",
                                      [(2, 3, 7, 7)], opset=18, weights={"a": i64(2, 3)}),
    "reduce_mean_all_axes": Case(f"g ({X4}) => (double[1, 1, 1, 1] y) {{ y = ReduceMean (x) }}",
                                 [(2, 3, 7, 7)], opset=18),
    "reduce_sum_opset13": Case(f"g ({X4}) => (double[2, 7, 7] y) {{ y = ReduceSum <keepdims = 0> (x, a) }}",
                               [(2, 3, 7, 7)], opset=13, weights={"a": i64(1)}),
    "cast_to_own_type": Case(f"g ({X4}) => (double[2, 3, 7, 7] y) {{ y = Cast <to = 11> (x) }}", [(2, 3, 7, 7)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_converter_matches_onnx_reference(name: str) -> None:
    case = CASES[name]
    model = parse(case.text(), **case.weights)
    graph = import_text(case.text(), **case.weights)
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal(shape) for shape in case.inputs]
    expected = (onnxruntime_outputs if case.oracle == "onnxruntime" else reference)(model, feeds)
    actual = run_graph(graph, feeds)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert relative_error(a, e) < TOLERANCE
