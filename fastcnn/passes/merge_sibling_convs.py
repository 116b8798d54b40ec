"""Merge sibling convolutions that read the same input into one with split outputs.

An Inception module's 1x1, 3x3-reduce and 5x5-reduce branches are k convolutions of one
input ``x``. Stacked along output channels they are one convolution::

    y_i = conv(x, w_i, b_i)  for i = 1..k
      ->  y_1, ..., y_k = fused_conv2d(x, concat(w_i), concat(b_i)) {out_splits=(C_1, ..., C_k)}

The same numbers: output channel c of a convolution with one group depends on x and on
weight row c (and bias c) only, so the stacked convolution's channels are the siblings'
channels side by side; a per-element epilogue (activation, its parameters, the
post-activation) and a per-input-channel prologue shared by all act the same on each
slice. A sibling without bias gets zeros in its slice. Each y_i is taken over as it is,
name, readers and graph-output place included, so each still goes where it went (a concat
slice, a temporary).

Why it pays: each sibling reads x (and the prologue's scale and shift) in full; merged, x
is read once, which saves (k - 1) reads of x, while weights and outputs move the same bytes
as before. The pass checks it with :func:`fastcnn.ir.cost.node_bytes` at batch 1 (the sum
over the siblings against the merged node) and merges only where the merged node moves
fewer bytes; the merged launch also covers more output channels, which fills the GPU
better on small maps.

Siblings qualify when they are conv2d or fused_conv2d nodes reading the same value as
input 0 with identical stride, padding, dilation, kernel size and groups (1 only), the
same prologue (the same scale and shift values, or none, and the same prologue_relu), the
same activation and parameters and post_activation, no residual, no pooled output, no
out_splits, a constant weight and a constant bias (or none), all of one dtype. The merged
node is placed where the earliest sibling was: every input it reads is defined there.
"""
from __future__ import annotations

import numpy as np

from fastcnn.ir import Graph, Node, Value
from fastcnn.ir.cost import node_bytes
from fastcnn.ir.fused_ops import CONV_BIAS, CONV_RESIDUAL, CONV_SCALE, CONV_SHIFT, operand
from fastcnn.ir.op_table import with_defaults
from fastcnn.passes.rewrite import constant, new_constant, trim

CONV_OPS = ("conv2d", "fused_conv2d")
# What siblings must share, besides their input, kernel size, prologue operands and dtype.
SHARED_ATTRS = ("stride", "padding", "dilation", "groups", "activation", "alpha", "clip_min", "clip_max",
                "post_activation", "prologue_relu")
COST_SIZES = {"N": 1}


def merge_sibling_convs(graph: Graph) -> bool:
    """Merge every group of mergeable siblings into one split fused_conv2d; True if any merged.

    A merged node has out_splits, so it never qualifies again: one sweep is the fixed point.
    """
    changed = False
    for siblings in _sibling_groups(graph):
        weight, bias = _stacked_operands(siblings)
        if _saves_bytes(siblings, weight, bias):
            _merge(graph, siblings, weight, bias)
            changed = True
    return changed


# -- finding siblings -------------------------------------------------------------------
def _sibling_groups(graph: Graph) -> list[list[Node]]:
    """Groups of two or more qualifying convolutions with the same signature, in graph order."""
    groups: dict[tuple, list[Node]] = {}
    for node in graph.nodes:
        if _qualifies(node):
            groups.setdefault(_signature(node), []).append(node)
    return [group for group in groups.values() if len(group) > 1]


def _qualifies(node: Node) -> bool:
    """A one-group convolution with constant weight and bias, no residual, one output."""
    if node.op not in CONV_OPS or len(node.outputs) != 1:
        return False
    attrs = _full_attrs(node)
    weight, bias = node.inputs[1], operand(node, CONV_BIAS)
    return (attrs["groups"] == 1 and not attrs["out_splits"] and not attrs["pooled_output"]
            and operand(node, CONV_RESIDUAL) is None and constant(weight) is not None
            and (bias is None or (constant(bias) is not None and bias.dtype == weight.dtype)))


def _signature(node: Node) -> tuple:
    """What siblings must have in common; the values by identity (the same scale, not equal ones)."""
    attrs = _full_attrs(node)
    x, weight = node.inputs[0], node.inputs[1]
    scale, shift = operand(node, CONV_SCALE), operand(node, CONV_SHIFT)
    return (id(x), id(scale), id(shift), tuple(weight.shape[1:]), x.dtype, weight.dtype,
            *(attrs[key] for key in SHARED_ATTRS))


def _full_attrs(node: Node) -> dict:
    """``node``'s attributes as a fused_conv2d's, defaults filled in for a plain conv2d."""
    return with_defaults("fused_conv2d", node.attrs)


# -- merging ----------------------------------------------------------------------------
def _stacked_operands(siblings: list[Node]) -> tuple[np.ndarray, np.ndarray | None]:
    """The siblings' weights stacked along output channels, and their biases likewise (zeros
    for a sibling without one), or None when none has a bias."""
    weights = [constant(node.inputs[1]) for node in siblings]
    biases = [constant(operand(node, CONV_BIAS)) for node in siblings]
    if all(b is None for b in biases):
        return np.concatenate(weights), None
    dtype = weights[0].dtype
    stacked = [b if b is not None else np.zeros(w.shape[0], dtype) for w, b in zip(weights, biases)]
    return np.concatenate(weights), np.concatenate(stacked)


def _saves_bytes(siblings: list[Node], weight: np.ndarray, bias: np.ndarray | None) -> bool:
    """Whether the merged node moves fewer bytes than the siblings do, at batch 1. A draft node
    of loose values stands in for it, so nothing is added to the graph to find out."""
    first = siblings[0]
    draft_weight = Value("merged_weight", weight.shape, weight.dtype.name)
    draft_bias = None if bias is None else Value("merged_bias", bias.shape, bias.dtype.name)
    inputs = [first.inputs[0], draft_weight, draft_bias, None,
              operand(first, CONV_SCALE), operand(first, CONV_SHIFT)]
    draft = Node("fused_conv2d", inputs, [node.outputs[0] for node in siblings], {}, "draft")
    try:
        separate = sum(node_bytes(node, COST_SIZES) for node in siblings)
        return node_bytes(draft, COST_SIZES) < separate
    except ValueError:  # a symbolic dim other than the batch: no size to compare
        return False


def _merge(graph: Graph, siblings: list[Node], weight: np.ndarray, bias: np.ndarray | None) -> Node:
    """One fused_conv2d at the first sibling's place, taking over every sibling's output."""
    first = siblings[0]
    attrs = {key: _full_attrs(first)[key] for key in SHARED_ATTRS}
    attrs["out_splits"] = tuple(node.outputs[0].shape[1] for node in siblings)
    hint = first.inputs[1].name
    inputs = [first.inputs[0], new_constant(graph, weight, f"{hint}_merged"),
              None if bias is None else new_constant(graph, bias, f"{hint}_merged_bias"), None,
              operand(first, CONV_SCALE), operand(first, CONV_SHIFT)]
    return graph.fuse(siblings, "fused_conv2d", trim(inputs), attrs,
                      outputs=[node.outputs[0] for node in siblings], at=first)
