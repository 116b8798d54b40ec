"""Let the convolution that feeds a squeeze-excite gate also pool its output for the gate.

``se_gate(x, ...)`` begins with ``mean(x)`` over H and W, a second full read of x just after
the convolution that wrote it. When that convolution is x's producer, it can sum each
channel as it writes it::

    x = conv2d(...)                      x, m = fused_conv2d(...) {pooled_output=True}
    g = se_gate(x, w1, b1, w2, b2)  ->   g = se_gate(m, w1, b1, w2, b2)

The same numbers: ``m`` is ``mean(x)`` over H and W, shape (N, C, 1, 1), and se_gate's own
mean over a 1 x 1 map is the identity, so the gate sees the same pooled vector. x keeps its
name and every other reader (the se_scale, a graph output).

Fires only when x is the single output of a conv2d or fused_conv2d: not one of several
out_splits outputs, and not a convolution that already has a pooled output. It does
nothing for x from a pool, a concat or a graph input; those gates keep pooling x
themselves.
"""
from __future__ import annotations

from fastcnn.ir import Graph, Node
from fastcnn.passes.rewrite import CONV_ATTRS

CONV_OPS = ("conv2d", "fused_conv2d")


def fuse_se_pooling(graph: Graph) -> bool:
    """Make each gate read the pooled output of the convolution producing its x; True if any did."""
    changed = False
    for gate in [n for n in graph.nodes if n.op == "se_gate"]:
        conv = _pooling_candidate(gate)
        if conv is not None:
            pooled = _with_pooled_output(graph, conv)
            graph.set_input(gate, 0, pooled.outputs[-1])
            changed = True
    return changed


def _pooling_candidate(gate: Node) -> Node | None:
    """The convolution whose only output is the gate's x, if it has no pooled output yet."""
    conv = gate.inputs[0].producer
    if conv is None or conv.op not in CONV_OPS or len(conv.outputs) != 1:
        return None
    if conv.op == "fused_conv2d" and (conv.attrs["out_splits"] or conv.attrs["pooled_output"]):
        return None
    return conv


def _with_pooled_output(graph: Graph, conv: Node) -> Node:
    """``conv`` as a fused_conv2d computing the same x and, after it, x's mean over H and W."""
    attrs = dict(conv.attrs) if conv.op == "fused_conv2d" else {k: conv.attrs[k] for k in CONV_ATTRS}
    attrs["pooled_output"] = True
    return graph.fuse([conv], "fused_conv2d", conv.inputs, attrs, outputs=[conv.outputs[0], None])
