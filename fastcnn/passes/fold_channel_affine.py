"""Fold a per-channel affine map spelled as elementwise ops into the conv or Gemm before it.

Exporters write some batch norms (and LeNet-5's scaling after its convolutions) as ``mul``,
``add``, ``sub`` or ``div`` of a convolution's or Gemm's output ``y`` and a constant ``c``
holding one number per output channel, or one number in all. Each is ``y * s + t`` per
channel, and with ``y = conv(x, w) + b`` it folds as ``w' = w * s``, ``b' = b * s + t``::

    mul(y, c), mul(c, y)    s = c,   t = 0      w' = w * c,   b' = b * c
    add(y, c), add(c, y)    s = 1,   t = c      b' = b + c
    sub(y, c)               s = 1,   t = -c     b' = b - c
    sub(c, y)               s = -1,  t = c      w' = -w,      b' = c - b
    div(y, c)               s = 1/c, t = 0      w' = w / c,   b' = b / c   (no c may be 0)
    div(c, y)               not affine in y: never folds

The fused node takes over the elementwise op's output, so a chain (conv -> mul -> add)
folds step by step into one node. The fold itself, and the conditions on ``y`` and its
producer (only reader, not a graph output, constant weights, nothing applied after the
product yet), are those of :mod:`fold_batch_norm`. Besides those, ``c`` must be a constant
that :func:`rewrite.per_channel` reads as one number per channel along axis 1 (a ``(C,)``
constant on a 4-D NCHW tensor broadcasts along W, not C, and does not fold), and the op's
output must have the shape and dtype of ``y`` (a constant that would broadcast ``y`` to a
bigger shape does not fold).
"""
from __future__ import annotations

import numpy as np

from fastcnn.ir import Graph, Node
from fastcnn.passes.affine_fold import fold_affine, foldable_producer
from fastcnn.passes.rewrite import constant, per_channel

ELEMENTWISE = ("mul", "add", "sub", "div")


def fold_channel_affine(graph: Graph) -> bool:
    """Fold every elementwise per-channel affine op that can into its producer; True if any was."""
    changed = False
    while sum(_fold(graph, node) for node in [n for n in graph.nodes if n.op in ELEMENTWISE]):
        changed = True
    return changed


def _fold(graph: Graph, node: Node) -> bool:
    """Fold ``node`` into the producer of its non-constant operand when the module doc allows."""
    for y_side in (0, 1):
        y, c = node.inputs[y_side], node.inputs[1 - y_side]
        producer = foldable_producer(graph, y, node)
        if producer is not None:
            break
    else:
        return False
    out = node.outputs[0]
    if (tuple(out.shape), out.dtype) != (tuple(y.shape), y.dtype):
        return False
    c = per_channel(constant(c), y.shape[1], len(y.shape))
    affine = None if c is None else _scale_and_shift(node.op, y_side, c.astype(np.float64))
    return affine is not None and fold_affine(graph, producer, node, *affine)


def _scale_and_shift(op: str, y_side: int, c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(s, t)`` with ``op`` applied to y and c (y first when ``y_side`` is 0) equal to
    ``y * s + t`` per channel; None when it is not such a map (see the module doc's table)."""
    ones, zeros = np.ones_like(c), np.zeros_like(c)
    if op == "mul":
        return c, zeros
    if op == "add":
        return ones, c
    if op == "sub":
        return (ones, -c) if y_side == 0 else (-ones, c)
    if op == "div" and y_side == 0 and c.all():
        with np.errstate(over="ignore"):  # 1 / a subnormal is inf, which fold_affine refuses
            return 1.0 / c, zeros
    return None
