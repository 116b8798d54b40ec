"""Turn a ReduceMean over the spatial axes into a global average pool.

Exporters write global average pooling as ``reduce_mean(x, axes=(2, 3))`` (torch's
``x.mean((2, 3))`` or ``x.mean((-2, -1), keepdim=True)``). On a 4-D NCHW ``x``::

    reduce_mean(x, axes={2, 3}, keepdims=True)  == global_avg_pool(x)            (N, C, 1, 1)
    reduce_mean(x, axes={2, 3}, keepdims=False) == reshape(global_avg_pool(x), (0, C))  (N, C)

so the fusions that match ``global_avg_pool`` (squeeze-excite, pooled outputs) see one
spelling. Negative axes count from the end (``-1`` is 3). It fires only when ``x`` is 4-D,
the axes are exactly {2, 3} and, without keepdims, the channel count is a number; any other
ReduceMean stays as it is. The new node takes over the ReduceMean's output.
"""
from __future__ import annotations

from fastcnn.ir import Graph, Node

SPATIAL = {2, 3}


def reduce_mean_to_pool(graph: Graph) -> bool:
    """Rewrite every spatial ReduceMean as a global average pool; True if any was."""
    changed = False
    while sum(_rewrite(graph, node) for node in [n for n in graph.nodes if n.op == "reduce_mean"]):
        changed = True
    return changed


def _rewrite(graph: Graph, node: Node) -> bool:
    """Replace ``node`` by a global pool (and a reshape without keepdims) if it is spatial."""
    if not _is_spatial_mean(node):
        return False
    x = node.inputs[0]
    if node.attrs["keepdims"]:
        graph.fuse([node], "global_avg_pool", [x])
        return True
    channels = x.shape[1]
    if not isinstance(channels, int):
        return False  # a reshape target needs the number
    pool = graph.make_node("global_avg_pool", [x], name=f"{node.name}/pool", sources=node.sources or (node.name,))
    graph.insert_before(node, pool)
    graph.fuse([node], "reshape", pool.outputs, {"shape": (0, channels)})
    return True


def _is_spatial_mean(node: Node) -> bool:
    """Whether ``node`` averages a 4-D tensor over exactly H and W (no axes means all four)."""
    rank = len(node.inputs[0].shape)
    axes = node.attrs["axes"]
    if rank != 4 or any(not -rank <= a < rank for a in axes):
        return False
    return {a % rank for a in axes} == SPATIAL
