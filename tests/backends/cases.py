"""One-node IR graphs for every op, odd cases included, built in any float dtype.

Each case is built twice from the same random numbers (fixed seed per case): in float64, where
``onnx.reference`` is the oracle the executors are held to, and in float32, the dtype the
engine runs. A case names the op, its attributes and its inputs: a shape is a graph input of
random numbers, an array a constant, ``None`` an omitted optional input.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastcnn.ir import Graph


@dataclass
class Case:
    op: str
    attrs: dict[str, Any]
    inputs: list[Any]  # shape (graph input), np.ndarray (constant) or None (omitted)
    batch: int = 2  # the value of a symbolic "N" in an input shape

    def build(self, name: str, dtype: str) -> tuple[Graph, list[np.ndarray]]:
        """The graph in ``dtype`` and its inputs, the same numbers for every dtype."""
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        graph, feeds, values = Graph(name), [], []
        for i, spec in enumerate(self.inputs):
            if spec is None:
                values.append(None)
            elif isinstance(spec, np.ndarray):
                const = spec.astype(dtype) if spec.dtype.kind == "f" else spec
                values.append(graph.constant(const, f"c{i}"))
            else:
                shape = tuple(self.batch if isinstance(d, str) else d for d in spec)
                feeds.append(rng.standard_normal(shape).astype(dtype))
                values.append(graph.add_input(f"x{i}", spec, dtype))
        node = graph.add_node(self.op, values, self.attrs, name=self.op)
        graph.outputs = list(node.outputs)
        return graph, feeds


def weights(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape) * 0.5


def conv(stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1) -> dict[str, Any]:
    return dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def maxp(kernel, stride, padding=(0, 0, 0, 0), dilation=(1, 1), ceil=False) -> dict[str, Any]:
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil)


def avgp(kernel, stride, padding=(0, 0, 0, 0), ceil=False, include_pad=False) -> dict[str, Any]:
    return dict(kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil,
                count_include_pad=include_pad)


X = ("N", 3, 9, 9)  # odd sizes, so that stride-2 windows hang over the edge in ceil mode
W3 = weights(4, 3, 3, 3)
POOLS = {
    "max_pool_plain": Case("max_pool", maxp((2, 2), (2, 2)), [X]),
    "max_pool_ceil_overhang": Case("max_pool", maxp((3, 3), (2, 2), ceil=True), [(1, 2, 8, 8)]),
    "max_pool_sym_pad": Case("max_pool", maxp((3, 3), (2, 2), (1, 1, 1, 1), ceil=True), [X]),
    "max_pool_asym_pad": Case("max_pool", maxp((3, 3), (2, 2), (0, 1, 2, 0), ceil=True), [X]),
    "max_pool_wide_pad": Case("max_pool", maxp((3, 3), (1, 1), (2, 2, 2, 2)), [(1, 2, 5, 5)]),
    "max_pool_dilation": Case("max_pool", maxp((3, 3), (1, 2), (1, 2, 1, 2), (2, 2)), [X]),
    "max_pool_dilation_ceil": Case("max_pool", maxp((2, 2), (2, 2), (1, 1, 1, 1), (2, 2), True), [X]),
    # the last ceil window starts in the end padding: ONNX drops it, torch would keep it
    "max_pool_ceil_start_in_pad": Case("max_pool", maxp((2, 2), (3, 3), (0, 0, 1, 1), ceil=True),
                                       [(1, 2, 9, 9)]),
    "avg_pool_plain": Case("avg_pool", avgp((3, 3), (3, 3)), [X]),
    "avg_pool_ceil_overhang": Case("avg_pool", avgp((3, 3), (2, 2), ceil=True), [(1, 2, 8, 8)]),
    "avg_pool_ceil_overhang_cip": Case("avg_pool", avgp((3, 3), (2, 2), ceil=True, include_pad=True),
                                       [(1, 2, 8, 8)]),
    "avg_pool_sym_pad": Case("avg_pool", avgp((3, 3), (2, 2), (1, 1, 1, 1)), [X]),
    "avg_pool_sym_pad_cip": Case("avg_pool", avgp((3, 3), (2, 2), (1, 1, 1, 1), include_pad=True), [X]),
    "avg_pool_sym_pad_ceil": Case("avg_pool", avgp((3, 3), (2, 2), (1, 1, 1, 1), True), [(1, 2, 6, 6)]),
    "avg_pool_sym_pad_ceil_cip": Case("avg_pool", avgp((3, 3), (2, 2), (1, 1, 1, 1), True, True),
                                      [(1, 2, 6, 6)]),
    "avg_pool_asym_pad_ceil": Case("avg_pool", avgp((3, 3), (2, 2), (0, 1, 2, 0), True), [X]),
    "avg_pool_asym_pad_ceil_cip": Case("avg_pool", avgp((3, 3), (2, 2), (0, 1, 2, 0), True, True), [X]),
    "avg_pool_asym_pad_cip": Case("avg_pool", avgp((2, 3), (1, 2), (1, 0, 0, 2), False, True), [X]),
    "avg_pool_wide_pad_cip": Case("avg_pool", avgp((3, 3), (2, 2), (2, 2, 2, 2), True, True),
                                  [(1, 2, 7, 7)]),
    "avg_pool_wide_pad": Case("avg_pool", avgp((3, 3), (2, 2), (2, 2, 2, 2), True, False),
                              [(1, 2, 7, 7)]),
    "avg_pool_ceil_start_in_pad_cip": Case("avg_pool", avgp((2, 2), (3, 3), (0, 0, 1, 1), True, True),
                                           [(1, 2, 9, 9)]),
    "global_avg_pool": Case("global_avg_pool", {}, [X]),
    "global_max_pool": Case("global_max_pool", {}, [X]),
}

CONVS = {
    "conv_plain": Case("conv2d", conv(), [X, W3, weights(4)]),
    "conv_no_bias": Case("conv2d", conv((2, 2), (1, 1, 1, 1)), [X, W3]),
    "conv_sym_pad_stride": Case("conv2d", conv((2, 2), (1, 1, 1, 1)), [X, W3, weights(4)]),
    "conv_asym_pad": Case("conv2d", conv((1, 2), (1, 0, 2, 1)), [X, W3, weights(4)]),
    "conv_dilation": Case("conv2d", conv((1, 1), (2, 2, 2, 2), (2, 2)), [X, W3, weights(4)]),
    "conv_groups": Case("conv2d", conv(groups=2), [(1, 4, 7, 7), weights(6, 2, 3, 3), weights(6)]),
    "conv_depthwise": Case("conv2d", conv((2, 2), (1, 1, 1, 1), groups=3), [X, weights(3, 1, 3, 3)]),
    "conv_1x1": Case("conv2d", conv(), [X, weights(5, 3, 1, 1), weights(5)]),
    "conv_rect_kernel": Case("conv2d", conv((1, 1), (0, 3, 0, 3)), [X, weights(2, 3, 1, 7), None]),
}

C4 = ("N", 4, 5, 5)
ELEMENTWISE = {
    "batch_norm": Case("batch_norm", dict(eps=1e-3),
                       [C4, weights(4) + 1, weights(4, seed=1), weights(4, seed=2),
                        np.abs(weights(4, seed=3)) + 0.5]),
    "lrn_size3": Case("lrn", dict(size=3, alpha=1e-2, beta=0.75, bias=1.0), [(2, 6, 3, 3)]),
    "lrn_size4_even": Case("lrn", dict(size=4, alpha=2e-2, beta=0.5, bias=2.0), [(2, 6, 3, 3)]),
    "lrn_size5_edges": Case("lrn", dict(size=5, alpha=1e-1, beta=0.75, bias=1.0), [(1, 3, 4, 4)]),
    "lrn_size1": Case("lrn", dict(size=1, alpha=1e-1, beta=0.75, bias=1.0), [(1, 3, 4, 4)]),
    "relu": Case("relu", {}, [C4]),
    "sigmoid": Case("sigmoid", {}, [C4]),
    "tanh": Case("tanh", {}, [C4]),
    "identity": Case("identity", {}, [C4]),
    "clip_both": Case("clip", dict(min=-0.5, max=0.7), [C4]),
    "clip_min_only": Case("clip", dict(min=0.0, max=None), [C4]),
    "clip_max_only": Case("clip", dict(min=None, max=0.25), [C4]),
    "clip_none": Case("clip", dict(min=None, max=None), [C4]),
    "leaky_relu": Case("leaky_relu", dict(alpha=0.1), [C4]),
    "softmax_axis1": Case("softmax", dict(axis=1), [C4]),
    "softmax_last": Case("softmax", dict(axis=-1), [(3, 10)]),
    "add_broadcast_const": Case("add", {}, [C4, weights(4, 1, 1)]),
    "sub_two_inputs": Case("sub", {}, [C4, C4]),
    "mul_broadcast_inputs": Case("mul", {}, [C4, (1, 4, 1, 1)]),
    "div_const": Case("div", {}, [C4, np.abs(weights(5)) + 0.5]),
}

GEMM_ATTRS = dict(alpha=1.0, beta=1.0, trans_a=False, trans_b=False)
LINEAR = {
    "gemm_plain": Case("gemm", GEMM_ATTRS, [("N", 6), weights(6, 5), weights(5)]),
    "gemm_trans_b": Case("gemm", {**GEMM_ATTRS, "trans_b": True}, [("N", 6), weights(5, 6), weights(1, 5)]),
    "gemm_trans_a": Case("gemm", {**GEMM_ATTRS, "trans_a": True}, [(6, 3), weights(6, 5), weights(3, 1)]),
    "gemm_trans_both_alpha_beta": Case("gemm", dict(alpha=0.5, beta=2.0, trans_a=True, trans_b=True),
                                       [(6, 3), weights(5, 6), weights(3, 5)]),
    "gemm_scalar_c": Case("gemm", dict(alpha=1.5, beta=-1.0, trans_a=False, trans_b=True),
                          [(4, 6), weights(5, 6), np.array(0.75)]),
    "gemm_no_c": Case("gemm", dict(alpha=3.0, beta=1.0, trans_a=False, trans_b=False),
                      [(4, 6), weights(6, 5)]),
    "gemm_two_inputs": Case("gemm", {**GEMM_ATTRS, "trans_b": True}, [(4, 6), (5, 6), (5,)]),
    "matmul_2d": Case("matmul", {}, [(4, 6), weights(6, 5)]),
    "matmul_batched": Case("matmul", {}, [("N", 3, 4, 6), weights(6, 5)]),
    "matmul_vector": Case("matmul", {}, [(3, 4, 6), weights(6)]),
}

LAYOUT = {
    "concat_channels": Case("concat", dict(axis=1), [(2, 4, 5, 5), (2, 2, 5, 5), weights(2, 3, 5, 5)]),
    "concat_last": Case("concat", dict(axis=3), [C4, ("N", 4, 5, 2)]),
    "flatten_1": Case("flatten", dict(axis=1), [C4]),
    "flatten_0": Case("flatten", dict(axis=0), [(2, 3, 4)]),
    "flatten_2": Case("flatten", dict(axis=2), [(2, 3, 4, 5)]),
    "flatten_neg": Case("flatten", dict(axis=-1), [(2, 3, 4, 5)]),
    "reshape_zero_minus_one": Case("reshape", dict(shape=(0, -1)), [C4]),
    "reshape_zero_inner": Case("reshape", dict(shape=(0, 2, -1, 5)), [(2, 4, 5, 5)]),
    "reshape_static": Case("reshape", dict(shape=(5, 4, 6)), [(2, 3, 4, 5)]),
    "transpose": Case("transpose", dict(perm=(0, 2, 3, 1)), [C4]),
    "transpose_2d": Case("transpose", dict(perm=(1, 0)), [(3, 7)]),
    "pad_constant": Case("pad", dict(pads=(0, 0, 1, 2, 0, 0, 3, 0), mode="constant", value=1.5), [C4]),
    "pad_constant_crop": Case("pad", dict(pads=(0, 1, -1, 2, 0, -2, 1, -2), mode="constant", value=0.0),
                              [C4]),
    "pad_reflect": Case("pad", dict(pads=(0, 0, 2, 1, 0, 0, 1, 3), mode="reflect", value=0.0), [C4]),
    "pad_reflect_crop": Case("pad", dict(pads=(0, 0, -1, 2, 0, 0, 2, -2), mode="reflect", value=0.0),
                             [C4]),
    "pad_edge": Case("pad", dict(pads=(0, 1, 2, 0, 0, 2, 0, 3), mode="edge", value=0.0), [C4]),
    "pad_edge_crop": Case("pad", dict(pads=(0, 0, -2, 1, 0, -1, 3, -1), mode="edge", value=0.0), [C4]),
    "reduce_mean_hw": Case("reduce_mean", dict(axes=(2, 3), keepdims=True), [C4]),
    "reduce_mean_drop": Case("reduce_mean", dict(axes=(-1, 1), keepdims=False), [C4]),
    "reduce_mean_all": Case("reduce_mean", dict(axes=(), keepdims=False), [C4]),
}

CASES: dict[str, Case] = {**POOLS, **CONVS, **ELEMENTWISE, **LINEAR, **LAYOUT}
