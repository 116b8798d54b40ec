"""Layers whose attributes or weights cannot fit their input: refused at load with a
FastCNNError naming the node, by onnx's full check or by fastcnn's own IR shape inference;
never a crash at the first infer, never a silent NaN."""
from __future__ import annotations

import numpy as np
import pytest

import fastcnn
from tests.frontend.helpers import parse

X = "float[1, 4, 8, 8] x"


def _w(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


CASES = {
    "conv_zero_stride": ("y = Conv <strides = [0, 0]> (x, w)", {"w": _w(4, 4, 3, 3)}, "Conv"),
    "conv_negative_pads": ("y = Conv <pads = [-1, -1, -1, -1]> (x, w)", {"w": _w(4, 4, 3, 3)}, "Conv"),
    "conv_groups_do_not_divide": ("y = Conv <group = 3> (x, w)", {"w": _w(3, 1, 3, 3)}, "channels"),
    "conv_wrong_input_channels": ("y = Conv (x, w)", {"w": _w(4, 5, 3, 3)}, "channels"),
    "conv_kernel_larger_than_input": ("y = Conv (x, w)", {"w": _w(4, 4, 11, 11)}, "larger than the padded input"),
    "max_pool_zero_kernel": ("y = MaxPool <kernel_shape = [0, 0]> (x)", {}, "MaxPool"),
    "max_pool_kernel_larger_than_input": ("y = MaxPool <kernel_shape = [9, 9]> (x)", {}, "larger than"),
    "avg_pool_pads_as_large_as_kernel": (
        "y = AveragePool <kernel_shape = [2, 2], pads = [2, 0, 0, 0]> (x)", {}, "smaller than the 2x2 window"),
    "max_pool_pads_larger_than_kernel": (
        "y = MaxPool <kernel_shape = [2, 2], pads = [0, 0, 0, 3]> (x)", {}, "smaller than the 2x2 window"),
    "reshape_to_a_wrong_count": ("y = Reshape (x, s)", {"s": np.array([1, 7], np.int64)}, "Reshape"),
    "batch_norm_of_wrong_length": ("y = BatchNormalization (x, s, b, m, v)",
                                   {k: np.ones(3, np.float32) for k in "sbmv"}, "BatchNormalization"),
    "pad_crops_below_zero": ("y = Pad (x, p)", {"p": np.array([0, 0, -9, -9, 0, 0, -9, -9], np.int64)}, "below zero"),
    "softmax_axis_out_of_range": ("y = Softmax <axis = 9> (x)", {}, "Softmax"),
    "add_does_not_broadcast": ("y = Add (x, c)", {"c": np.ones(5, np.float32)}, "Add"),
}


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("case", CASES)
def test_malformed_layer_is_refused_at_load(case: str, backend: str) -> None:
    body, weights, message = CASES[case]
    model = parse(f'<ir_version: 8, opset_import: ["" : 17]>\ng ({X}) => (float[a, b, c, d] y) {{ {body} }}',
                  **weights)
    with pytest.raises(fastcnn.FastCNNError, match=message):
        fastcnn.load(model, device="cpu", backend=backend)
