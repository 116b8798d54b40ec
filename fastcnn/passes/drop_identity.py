"""Remove ``identity`` and ``dropout`` nodes: at inference both return their input unchanged.

``y = identity(x)`` (or ``dropout(x)``) is dropped by making every reader of ``y`` read ``x``.

A graph output keeps its name, so when ``y`` is a graph output, ``x`` takes over that name
(it is renamed and returned in ``y``'s place), and that is only allowed when ``x`` is the
output of another node and is not itself a graph input, a graph output or a constant:

- a graph input or a constant cannot be renamed without changing the graph's interface
  or its weights' names, and the output needs a buffer of its own;
- a value returned twice under two names needs a copy for the second name.

In those cases the node stays: it is the copy.
"""
from __future__ import annotations

from fastcnn.ir import Graph, Node, Value
from fastcnn.passes.rewrite import is_output

PASS_THROUGH = ("identity", "dropout")


def drop_identity(graph: Graph) -> bool:
    """Drop every identity and dropout that is not needed as a copy; True if any was."""
    changed = False
    while sum(_drop(graph, node) for node in [n for n in graph.nodes if n.op in PASS_THROUGH]):
        changed = True
    return changed


def _drop(graph: Graph, node: Node) -> bool:
    """Drop ``node``, its readers reading its input instead, unless an output needs the copy."""
    source, result = node.inputs[0], node.outputs[0]
    if is_output(graph, result):
        if not _can_take_name(graph, source):
            return False
        source.name = result.name  # the node's output name is free once the node is gone
    graph.replace_all_uses(result, source)
    graph.remove_node(node)
    return True


def _can_take_name(graph: Graph, value: Value) -> bool:
    """Whether ``value`` may be renamed to become a graph output: only a node's own output
    that is not already an input, output or constant of the graph (see the module doc)."""
    return (value.producer is not None and not value.is_const and value.storage is None
            and not is_output(graph, value) and not any(value is v for v in graph.inputs))
