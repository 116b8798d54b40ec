"""Fold the Flatten (or flattening Reshape) before a Gemm into the Gemm.

A classifier head flattens the (N, C, H, W) features to (N, C*H*W) rows for its Gemm.
``fused_gemm`` flattens an input of rank > 2 from axis 1 itself, so::

    gemm(flatten(x, axis=1), w, b)          == fused_gemm(x, w', b')   (alpha, beta folded)
    fused_gemm(flatten(x, axis=1), w, b)    == fused_gemm(x, w, b)

and the flatten, a copy of the whole feature map on most backends, disappears. A
``reshape`` flattens the same way when its target is ``(0, -1)``, ``(-1, K)`` or ``(0, K)``
with ``K`` the product of ``x.shape[1:]`` and its result really is ``(N, K)``, the batch
first (``(-1, K)`` with another ``K`` would move elements between rows).

It fires when ``x`` has rank >= 2 and known sizes after the batch, the flattened value's
only reader is a ``fused_gemm`` (as input ``a``) or a ``gemm`` (as input A, ``trans_a``
False) that :func:`rewrite.as_fused_gemm` can convert, and that value is not a graph output.
A Flatten along another axis stays.
"""
from __future__ import annotations

from fastcnn.ir import Graph, Node, Value
from fastcnn.passes.rewrite import as_fused_gemm, only_use

FLATTEN_OPS = ("flatten", "reshape")


def fold_flatten_into_gemm(graph: Graph) -> bool:
    """Fold every Flatten or flattening Reshape into the Gemm that reads it; True if any was."""
    changed = False
    while sum(_fold(graph, node) for node in [n for n in graph.nodes if n.op in FLATTEN_OPS]):
        changed = True
    return changed


def _fold(graph: Graph, flatten: Node) -> bool:
    """Fold ``flatten`` into its Gemm (made a fused_gemm first) when the module doc allows."""
    x, rows = flatten.inputs[0], flatten.outputs[0]
    gemm = only_use(graph, rows)
    if gemm is None or gemm.op not in ("gemm", "fused_gemm") or gemm.inputs[0] is not rows:
        return False
    if not _flattens_from_axis_1(flatten, x, rows):
        return False
    gemm = as_fused_gemm(graph, gemm)
    if gemm is None:
        return False
    # One fuse, so the fused_gemm also names the Flatten among the ONNX nodes it computes.
    graph.fuse([flatten, gemm], "fused_gemm", [x, *gemm.inputs[1:]], dict(gemm.attrs))
    return True


def _flattens_from_axis_1(node: Node, x: Value, rows: Value) -> bool:
    """Whether ``node`` turns ``x`` into ``(N, K)`` rows, K the product of ``x.shape[1:]``."""
    rank = len(x.shape)
    features = _known_product(x.shape[1:])
    if rank < 2 or features is None or tuple(rows.shape) != (x.shape[0], features):
        return False
    if node.op == "flatten":
        return node.attrs["axis"] in (1, 1 - rank)  # negative axes count from the end
    if node.attrs["allowzero"]:
        return False  # its 0 is no batch copy; such a reshape is left alone
    return tuple(node.attrs["shape"]) in ((0, -1), (-1, features), (0, features))


def _known_product(dims: tuple) -> int | None:
    """The product of ``dims`` when all are numbers, else None."""
    total = 1
    for d in dims:
        if not isinstance(d, int):
            return None
        total *= d
    return total
