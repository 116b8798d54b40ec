"""Lay activations out NHWC (channels innermost), where the tensor cores want them.

Shapes stay logical NCHW; ``Value.layout`` says how a 4-D activation's elements are ordered
in memory, and a backend builds its strides from it. Every 4-D value a node produces becomes
NHWC, except where memory order is meaning:

- a graph output is returned to the caller as NCHW;
- a reshape, flatten, transpose, identity or dropout reading a value with more than one
  spatial position reinterprets its memory as contiguous NCHW (for one position, N x C x 1 x 1,
  the two orders are the same bytes), so that value stays NCHW.

Graph inputs stay NCHW: the first convolution reads the caller's tensor as it is, through its
strides, with no transpose launch. All values living in one concat buffer share its layout,
so a buffer with any member that must be NCHW is NCHW throughout. A Flatten folded into a
Gemm reads NHWC in (H, W, C) order; the backend permutes the Gemm's weight to match when it
packs it. Backends that ignore layouts (the torch reference) compute the same either way.
"""
from __future__ import annotations

from fastcnn.ir import Graph, Value
from fastcnn.ir.storage import storage_of
from fastcnn.passes.rewrite import is_output

MEMORY_ORDER_READERS = frozenset({"reshape", "flatten", "transpose", "identity", "dropout"})


def layout_nhwc(graph: Graph) -> bool:
    """Set ``layout`` on every 4-D node output; True if any changed."""
    groups: dict[str, list[Value]] = {}
    for node in graph.nodes:
        for value in node.outputs:
            if len(value.shape) == 4:
                groups.setdefault(storage_of(value).buffer, []).append(value)
    changed = False
    for members in groups.values():
        layout = "NCHW" if any(_needs_nchw(graph, v) for v in members) else "NHWC"
        for value in members:
            changed |= value.layout != layout
            value.layout = layout
    return changed


def _needs_nchw(graph: Graph, value: Value) -> bool:
    if is_output(graph, value):
        return True
    spatial = value.shape[2:]
    single = all(isinstance(d, int) and d == 1 for d in spatial)
    return not single and any(reader.op in MEMORY_ORDER_READERS for reader in value.users)
