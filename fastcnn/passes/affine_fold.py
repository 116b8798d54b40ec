"""Moving a per-channel affine map ``y * scale + shift`` into the conv or Gemm that makes ``y``.

Shared by :mod:`fold_batch_norm` (a BatchNormalization) and :mod:`fold_channel_affine` (the
same map spelled as Mul/Add/Sub/Div with constants); the math and the conditions are in
:mod:`fastcnn.passes.fold_batch_norm`'s docstring.
"""
from __future__ import annotations

import numpy as np

from fastcnn.ir import Graph, Node, Value
from fastcnn.ir.fused_ops import CONV_BIAS, CONV_RESIDUAL, operand
from fastcnn.passes.rewrite import (
    as_fused_conv,
    as_fused_gemm,
    constant,
    conv_inputs,
    new_constant,
    only_use,
    per_channel,
    trim,
)

PRODUCERS = ("conv2d", "fused_conv2d", "gemm", "fused_gemm")
BIAS = CONV_BIAS  # a fused_gemm's bias is its input 2 as well


def foldable_producer(graph: Graph, y: Value, reader: Node) -> Node | None:
    """The conv or Gemm node making ``y`` when a per-channel affine map that ``reader`` applies
    to ``y`` can move into its weight and bias (the conditions in the module doc); else None."""
    node = y.producer
    if node is None or node.op not in PRODUCERS or only_use(graph, y) is not reader:
        return None
    if len(node.outputs) != 1 or not _nothing_after_product(node):
        return None
    weight, bias = node.inputs[1], operand(node, CONV_BIAS)
    if constant(weight) is None or (bias is not None and constant(bias) is None):
        return None
    if node.op == "gemm" and not _becomes_fused_gemm(node):
        return None
    if node.op == "conv2d" and bias is not None and tuple(bias.shape) != (y.shape[1],):
        return None
    return node


def fold_affine(graph: Graph, producer: Node, reader: Node, scale: np.ndarray, shift: np.ndarray) -> bool:
    """Replace ``producer`` and ``reader`` by one fused node computing ``producer(x) * scale +
    shift`` per output channel (``scale`` and ``shift`` are float64 arrays of shape (C,));
    ``producer`` comes from :func:`foldable_producer`. A non-finite ``scale`` or ``shift``
    (a zero divisor, ``var + eps <= 0``) is refused with nothing changed: an inf inside a
    weight does not give the infs and NaNs the unfolded ops give (``inf - inf`` in the sum)."""
    if not (np.isfinite(scale).all() and np.isfinite(shift).all()):
        return False
    node = as_fused_gemm(graph, producer) if producer.op.endswith("gemm") else as_fused_conv(graph, producer)
    if node is None:  # foldable_producer has checked that as_fused_gemm converts it
        return False
    inputs = conv_inputs(node) if node.op == "fused_conv2d" else (list(node.inputs) + [None])[:3]
    weight, bias = inputs[1], inputs[BIAS]
    folded = constant(weight).astype(np.float64) * scale.reshape(_channel_shape(node, len(weight.shape)))
    inputs[1] = new_constant(graph, folded, f"{weight.name}_folded", like=weight)
    if bias is not None or shift.any():  # no bias and no shift: leave the bias out
        old = 0.0 if bias is None else constant(bias).astype(np.float64)
        inputs[BIAS] = new_constant(graph, old * scale + shift, f"{node.name}_bias",
                                    like=weight if bias is None else bias)
    graph.fuse([node, reader], node.op, trim(inputs), dict(node.attrs))
    return True


def _channel_shape(node: Node, ndim: int) -> tuple[int, ...]:
    """How a (C,) array lies along a fused node's weight, whose output channels are axis 0 of a
    conv weight (O, I/g, kh, kw) or of a Gemm weight (out, in) with trans_b, else axis 1."""
    if node.op == "fused_gemm" and not node.attrs["trans_b"]:
        return (1, -1)
    return (-1,) + (1,) * (ndim - 1)


def _nothing_after_product(node: Node) -> bool:
    """A fused op may already apply an epilogue to its product, and a per-channel affine map
    cannot move back through that; a prologue acts on the input, so it does not matter."""
    a = node.attrs
    if node.op == "fused_gemm":
        return a["activation"] == "none"
    if node.op == "fused_conv2d":
        return (a["activation"] == "none" and a["post_activation"] == "none" and not a["out_splits"]
                and not a["pooled_output"] and operand(node, CONV_RESIDUAL) is None)
    return True


def _becomes_fused_gemm(node: Node) -> bool:
    """What ``rewrite.as_fused_gemm`` needs besides constants: no trans_a, and C absent or
    one number per output column."""
    c = operand(node, 2)
    columns = node.outputs[0].shape[1]
    if node.attrs["trans_a"] or not isinstance(columns, int):
        return False
    return c is None or per_channel(constant(c), columns, 2) is not None
