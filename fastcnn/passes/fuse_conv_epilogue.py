"""Fuse what follows a convolution into it: the activation, a residual add, the ReLU after it.

``fused_conv2d`` computes ``y = post_activation(activation(conv(x) + b) + residual)``; the bias
``b`` is already an input of both ``conv2d`` and ``fused_conv2d``. Three rewrites grow a
convolution's epilogue one node at a time, repeated to a fixed point, so ResNet's
``conv -> relu -> conv -> relu -> conv -> add(., shortcut) -> relu`` ends as three
``fused_conv2d``, the last reading the shortcut as its residual:

1. ``act(conv(x))`` -> ``fused_conv2d(x, ..., activation=act)``, when the convolution has
   activation "none", no residual and post_activation "none". ``act`` is relu, sigmoid,
   tanh, leaky_relu (its ``alpha`` kept) or clip (its ``min``/``max`` as ``clip_min``/
   ``clip_max``; a missing bound stays open).
2. ``conv(x) + r`` (or ``r + conv(x)``: float addition commutes) ->
   ``fused_conv2d(x, ..., residual=r)``, when the convolution has no residual and
   post_activation "none" (its activation, if any, already comes before the add), and ``r``
   has exactly the shape and dtype of the convolution's output: the fused add does not
   broadcast. The fused node takes the add's place, after ``r`` is defined. When both
   operands qualify, the convolution later in graph order takes the add: the other is
   computed by then. ``v + v`` is no residual (``v`` then has two readers).
3. ``relu(fused_conv2d(..., residual=r))`` with post_activation "none" -> post_activation
   "relu".

Each rewrite needs the node it swallows to be the only reader of the convolution's output,
and that output not to be a graph output, since the fused node yields only the end of the
chain. Convolutions with several outputs (``out_splits``, ``pooled_output``) are left alone.
"""
from __future__ import annotations

from typing import Any

from fastcnn.ir import Graph, Node, Value
from fastcnn.ir.fused_ops import CONV_RESIDUAL, operand
from fastcnn.passes.rewrite import ACTIVATION_OPS, CONV_ATTRS, activation_attrs, conv_inputs, only_use, trim

CONV_OPS = ("conv2d", "fused_conv2d")
def fuse_conv_epilogue(graph: Graph) -> bool:
    """Fuse activations, residual adds and the ReLU after them into convolutions; see module doc."""
    changed = False
    while _sweep(graph):
        changed = True
    return changed


def _sweep(graph: Graph) -> bool:
    """One walk in graph order, fusing each activation or add into the convolution before it.

    A rewrite replaces only the node at hand and a node before it, so the nodes still ahead
    in the walk stay in the graph; by the time an add is reached, the activations of both its
    operands have been fused, so its operands' producers are the convolutions themselves.
    """
    changed = False
    for node in list(graph.nodes):
        if node.op == "add":
            changed |= _fuse_residual(graph, node)
        elif node.op in ACTIVATION_OPS:
            changed |= _fuse_activation(graph, node)
    return changed


def _fuse_activation(graph: Graph, act: Node) -> bool:
    """Rule 1 (an activation before any residual) or rule 3 (a ReLU after the residual add)."""
    conv = _single_output_conv(graph, act.inputs[0], act)
    if conv is None or conv.attrs.get("post_activation", "none") != "none":
        return False
    has_residual = operand(conv, CONV_RESIDUAL) is not None
    if not has_residual and conv.attrs.get("activation", "none") == "none":
        _fuse(graph, conv, act, activation_attrs(act))
        return True
    if has_residual and act.op == "relu":
        _fuse(graph, conv, act, {"post_activation": "relu"})
        return True
    return False


def _fuse_residual(graph: Graph, add: Node) -> bool:
    """Rule 2: the later of the add's qualifying convolution operands takes the other operand."""
    a, b = add.inputs
    candidates = [(conv, other) for value, other in ((a, b), (b, a))
                  if (conv := _residual_conv(graph, value, other, add)) is not None]
    if not candidates:
        return False
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    conv, other = max(candidates, key=lambda pair: position[id(pair[0])])
    _fuse(graph, conv, add, {}, residual=other)
    return True


def _residual_conv(graph: Graph, value: Value, other: Value, add: Node) -> Node | None:
    """The convolution making ``value`` if it can take ``other`` as its residual in ``add``."""
    conv = _single_output_conv(graph, value, add)
    if conv is None or operand(conv, CONV_RESIDUAL) is not None:
        return None
    if conv.attrs.get("post_activation", "none") != "none":
        return None
    if (tuple(other.shape), other.dtype) != (tuple(value.shape), value.dtype):
        return None  # a broadcasting add: the residual must match the output exactly
    return conv


def _single_output_conv(graph: Graph, value: Value, reader: Node) -> Node | None:
    """The convolution producing ``value`` when ``reader`` is the value's only reader (so the
    fused node may swallow both) and the convolution has no outputs besides ``value``."""
    conv = value.producer
    if conv is None or conv.op not in CONV_OPS or only_use(graph, value) is not reader:
        return None
    if conv.op == "fused_conv2d" and (conv.attrs["out_splits"] or conv.attrs["pooled_output"]):
        return None
    return conv


def _fuse(graph: Graph, conv: Node, reader: Node, attrs: dict[str, Any], residual: Value | None = None) -> Node:
    """Replace ``conv`` and its reader by one fused_conv2d with ``attrs`` added to its epilogue."""
    inputs = conv_inputs(conv)
    if residual is not None:
        inputs[CONV_RESIDUAL] = residual
    base = dict(conv.attrs) if conv.op == "fused_conv2d" else {k: conv.attrs[k] for k in CONV_ATTRS}
    return graph.fuse([conv, reader], "fused_conv2d", trim(inputs), {**base, **attrs})
