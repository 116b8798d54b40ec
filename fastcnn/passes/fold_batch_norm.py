"""Fold a batch norm into the convolution or Gemm that produces its input.

At inference a batch norm is a per-channel affine map::

    batch_norm(y) = (y - mean) * k + beta,   k = gamma / sqrt(var + eps)

and a convolution or Gemm is linear in its weight, one output channel per weight row (or
column), so with ``y = conv(x, w) + b``::

    w' = w * k            (per output channel: axis 0 of a conv weight (O, I/g, kh, kw),
                           axis 0 of a Gemm weight (out, in) with trans_b, else axis 1)
    b' = (b - mean) * k + beta          (b = 0 when there is none)

and one node computing ``conv(x, w') + b'`` replaces both, taking over the batch norm's
output. The fold itself (:mod:`fastcnn.passes.affine_fold`) also serves
:mod:`fold_channel_affine`, which finds ``y * scale + shift`` spelled as elementwise ops.

It fires when the batch norm's input ``y``:

- is made by a ``conv2d``, ``fused_conv2d``, ``gemm`` or ``fused_gemm``;
- has that batch norm as its only reader and is not a graph output;
- comes from a node whose weight and bias (if any) are constants, and, for a fused op, has
  nothing applied after the product yet: activation ``none``, no residual,
  post_activation ``none``, no ``out_splits``, no ``pooled_output`` (a prologue is fine: it
  acts on the input);
- for a ``gemm``: ``trans_a`` is False and its C is absent or a constant of one number per
  column, so that it can become a ``fused_gemm`` (``rewrite.as_fused_gemm``);

and when gamma, beta, mean and var are constants of shape ``(C,)`` and ``k`` and
``beta - mean * k`` are finite (they are not when ``var + eps <= 0``). Any other batch norm
stays (``fuse_prologue`` may take it later).
"""
from __future__ import annotations

import numpy as np

from fastcnn.ir import Graph, Node
from fastcnn.passes.affine_fold import fold_affine, foldable_producer
from fastcnn.passes.rewrite import constant


def fold_batch_norm(graph: Graph) -> bool:
    """Fold every batch norm that can into its producer; True if any was."""
    changed = False
    while sum(_fold(graph, bn) for bn in [n for n in graph.nodes if n.op == "batch_norm"]):
        changed = True
    return changed


def _fold(graph: Graph, bn: Node) -> bool:
    """Fold ``bn`` into its producer as ``y * k + (beta - mean * k)`` when the module doc allows."""
    y = bn.inputs[0]
    producer = foldable_producer(graph, y, bn)
    if producer is None:
        return False
    channels = y.shape[1]
    params = [constant(v) for v in bn.inputs[1:]]
    if any(p is None or p.shape != (channels,) for p in params):
        return False
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    with np.errstate(all="ignore"):  # a negative var + eps gives NaN, which fold_affine refuses
        scale = gamma / np.sqrt(var + bn.attrs["eps"])
    return fold_affine(graph, producer, bn, scale, beta - mean * scale)
