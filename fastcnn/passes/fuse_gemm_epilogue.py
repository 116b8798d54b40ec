"""Turn gemms into fused_gemm and fuse the activation that follows one into it.

``fused_gemm(a, w, bias)`` computes ``activation(flatten(a, 1) @ w' + bias)``, with
``w' = w.T`` when ``trans_b``. Two rewrites, repeated to a fixed point, so AlexNet's
classifier ``gemm -> relu -> gemm -> relu -> gemm`` ends as three fused_gemm:

1. every ``gemm`` that :func:`fastcnn.passes.rewrite.as_fused_gemm` can express becomes a
   fused_gemm: ``alpha * A @ B + beta * C`` with alpha folded into a new constant B and beta
   into a new constant bias. It cannot when ``trans_a`` is set, when alpha is not 1 and B is
   not constant, or when C is not one number per output column (constant unless beta is 1);
   such a gemm stays as it is, and so does the activation after it.
2. ``act(fused_gemm(...))`` with activation "none" -> ``fused_gemm(..., activation=act)``,
   when the activation is the only reader of the gemm's output and that output is not a
   graph output. ``act`` is relu, sigmoid, tanh, leaky_relu or clip, mapped to the epilogue
   attributes as for convolutions (:func:`fastcnn.passes.rewrite.activation_attrs`).
"""
from __future__ import annotations

from fastcnn.ir import Graph, Node
from fastcnn.passes.rewrite import ACTIVATION_OPS, activation_attrs, as_fused_gemm, only_use


def fuse_gemm_epilogue(graph: Graph) -> bool:
    """Make gemms fused_gemm and fuse their activations; see the module doc."""
    changed = False
    while _sweep(graph):
        changed = True
    return changed


def _sweep(graph: Graph) -> bool:
    """One walk in graph order. A rewrite replaces only the node at hand and the gemm before
    it, so the nodes still ahead stay in the graph; a gemm is converted before its activation
    is reached, so one walk fuses a whole chain."""
    changed = False
    for node in list(graph.nodes):
        if node.op == "gemm":
            changed |= as_fused_gemm(graph, node) is not None
        elif node.op in ACTIVATION_OPS:
            changed |= _fuse_activation(graph, node)
    return changed


def _fuse_activation(graph: Graph, act: Node) -> bool:
    """Rule 2: fold ``act`` into the fused_gemm before it when that gemm has no activation yet."""
    gemm = act.inputs[0].producer
    if gemm is None or gemm.op != "fused_gemm" or gemm.attrs["activation"] != "none":
        return False
    if only_use(graph, act.inputs[0]) is not act:
        return False
    graph.fuse([gemm, act], "fused_gemm", gemm.inputs, {**gemm.attrs, **activation_attrs(act)})
    return True
