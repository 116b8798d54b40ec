"""Layers whose attributes or weights cannot fit their input: refused at load with a
FastCNNError naming the node, by onnx's full check or by fastcnn's own IR shape inference;
never a crash at the first infer, never a silent NaN."""
from __future__ import annotations

import re

import numpy as np
import pytest

import fastcnn
from tests.frontend.helpers import parse

X = "float[1, 4, 8, 8] x"


def _w(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


# case: (node, weights, the words of the check that must refuse it). onnx's full check runs
# first and names the attribute it rejects; fastcnn's IR shape inference catches the rest.
CASES = {
    "conv_zero_stride": ("y = Conv <strides = [0, 0]> (x, w)", {"w": _w(4, 4, 3, 3)},
                         "Attribute strides must only contain positive values"),
    "conv_negative_pads": ("y = Conv <pads = [-1, -1, -1, -1]> (x, w)", {"w": _w(4, 4, 3, 3)},
                           "Attribute pads must not contain negative values"),
    "conv_groups_do_not_divide": ("y = Conv <group = 3> (x, w)", {"w": _w(3, 1, 3, 3)},
                                  "conv2d input has 4 channels, weight expects 1 x 3 groups"),
    "conv_wrong_input_channels": ("y = Conv (x, w)", {"w": _w(4, 5, 3, 3)},
                                  "conv2d input has 4 channels, weight expects 5 x 1 groups"),
    "conv_kernel_larger_than_input": ("y = Conv (x, w)", {"w": _w(4, 4, 11, 11)},
                                      "window 11 is larger than the padded input 8"),
    "max_pool_zero_kernel": ("y = MaxPool <kernel_shape = [0, 0]> (x)", {},
                             "Attribute kernel_shape must only contain positive values"),
    "max_pool_kernel_larger_than_input": ("y = MaxPool <kernel_shape = [9, 9]> (x)", {},
                                          "window 9 is larger than the padded input 8"),
    "avg_pool_pads_as_large_as_kernel": (
        "y = AveragePool <kernel_shape = [2, 2], pads = [2, 0, 0, 0]> (x)", {},
        "padding (2, 0, 0, 0) (top, left, bottom, right) must be smaller than the 2x2 window"),
    "max_pool_pads_larger_than_kernel": (
        "y = MaxPool <kernel_shape = [2, 2], pads = [0, 0, 0, 3]> (x)", {},
        "padding (0, 0, 0, 3) (top, left, bottom, right) must be smaller than the 2x2 window"),
    # A rank-2 output, so that onnx's check of the declared rank is not what refuses it.
    "reshape_to_a_wrong_count": ("y = Reshape (x, s)", {"s": np.array([1, 7], np.int64)},
                                 "cannot reshape (1, 4, 8, 8) to [1, 7]", "float[a, b] y"),
    "batch_norm_of_wrong_length": ("y = BatchNormalization (x, s, b, m, v)",
                                   {k: np.ones(3, np.float32) for k in "sbmv"},
                                   "Dimension mismatch in unification between 3 and 4"),
    "pad_crops_below_zero": ("y = Pad (x, p)", {"p": np.array([0, 0, -9, -9, 0, 0, -9, -9], np.int64)},
                             "pads (0, 0, -9, -9, 0, 0, -9, -9) crop (1, 4, 8, 8) to nothing"),
    "softmax_axis_out_of_range": ("y = Softmax <axis = 9> (x)", {},
                                  "'axis' must be in [-4 , 3]. Its actual value is: 9"),
    "add_does_not_broadcast": ("y = Add (x, c)", {"c": np.ones(5, np.float32)}, "Incompatible dimensions"),
}


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("case", CASES)
def test_malformed_layer_is_refused_at_load(case: str, backend: str) -> None:
    body, weights, check, *output = CASES[case]
    output = output[0] if output else "float[a, b, c, d] y"
    model = parse(f'<ir_version: 8, opset_import: ["" : 17]>\ng ({X}) => ({output}) {{ {body} }}', **weights)
    op = body.split("=", 1)[1].split()[0]
    # The node's op (in onnx's "op_type:Conv" or fastcnn's "node 'Conv' (Conv)"), then the check.
    with pytest.raises(fastcnn.FastCNNError, match=rf"(op_type:{op}\)|\({op}\): {op}:).* {re.escape(check)}"):
        fastcnn.load(model, device="cpu", backend=backend)
