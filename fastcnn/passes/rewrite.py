"""What the passes share: questions about values, and turning plain ops into fused ones.

Passes see only the IR. A pass never changes a constant in place (its array is read-only):
it computes a new array and makes a new constant with :func:`new_constant`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fastcnn.ir import Graph, Node, Value

CONV_ATTRS = ("stride", "padding", "dilation", "groups")
ACTIVATION_OPS = ("relu", "clip", "sigmoid", "tanh", "leaky_relu")
POOL_MODES = {"max_pool": "max", "avg_pool": "avg", "global_avg_pool": "global_avg",
              "global_max_pool": "global_max"}


def is_output(graph: Graph, value: Value) -> bool:
    return any(value is v for v in graph.outputs)


def only_use(graph: Graph, value: Value) -> Node | None:
    """The one node that reads ``value`` (in one input slot), when that is its only use and it
    is not a graph output; else None. A rewrite that swallows ``value`` needs this."""
    if len(value.uses) != 1 or is_output(graph, value):
        return None
    return value.uses[0][0]


def activation_attrs(node: Node) -> dict[str, Any]:
    """The epilogue attributes (``activation``, ``alpha``, ``clip_min``, ``clip_max``) that compute
    what the activation ``node`` (one of :data:`ACTIVATION_OPS`) computes."""
    if node.op == "clip":
        return {"activation": "clip", "clip_min": node.attrs["min"], "clip_max": node.attrs["max"]}
    if node.op == "leaky_relu":
        return {"activation": "leaky_relu", "alpha": node.attrs["alpha"]}
    return {"activation": node.op}


def constant(value: Value | None) -> np.ndarray | None:
    return value.const if value is not None and value.is_const else None


def per_channel(array: np.ndarray | None, channels: int, rank: int) -> np.ndarray | None:
    """A constant that broadcasts over a rank-``rank`` tensor with ``channels`` channels (axis 1) as
    one number per channel, as a 1-D array of length ``channels``; None if it is anything else."""
    if array is None or array.ndim > rank:
        return None
    shape = (1,) * (rank - array.ndim) + array.shape
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(array.reshape(-1), (channels,)).copy()


def new_constant(graph: Graph, array: np.ndarray, hint: str, like: Value | None = None) -> Value:
    """A new constant for ``array``, in ``like``'s dtype when given."""
    if like is not None:
        array = array.astype(like.dtype)
    return graph.constant(np.asarray(array, order="C"), hint)


def conv_inputs(node: Node) -> list[Value | None]:
    """A conv2d's or fused_conv2d's inputs padded to fused_conv2d's six slots."""
    return (list(node.inputs) + [None] * 6)[:6]


def as_fused_conv(graph: Graph, node: Node) -> Node:
    """``node`` itself if it is a fused_conv2d; a conv2d becomes one computing the same."""
    if node.op == "fused_conv2d":
        return node
    attrs = {k: node.attrs[k] for k in CONV_ATTRS}
    return graph.fuse([node], "fused_conv2d", node.inputs, attrs)


def as_fused_pool(graph: Graph, node: Node) -> Node:
    """``node`` itself if it is a fused_pool; a plain pooling op becomes one computing the same."""
    if node.op == "fused_pool":
        return node
    return graph.fuse([node], "fused_pool", node.inputs, {"mode": POOL_MODES[node.op], **node.attrs})


def trim(inputs: list[Value | None]) -> list[Value | None]:
    """Inputs without trailing left-out optional ones."""
    inputs = list(inputs)
    while inputs and inputs[-1] is None:
        inputs.pop()
    return inputs


def as_fused_gemm(graph: Graph, node: Node, a: Value | None = None) -> Node | None:
    """``node`` itself if it is a fused_gemm; a gemm becomes one reading ``a`` (default: its own
    first input; a 4-D tensor a Flatten fed it, say), or None when it cannot.

    fused_gemm has no ``alpha``, ``beta`` or ``trans_a``: alpha and beta fold into new constant
    weights and bias, so B must be constant unless alpha is 1, and C must be one number per
    output column (or absent), constant unless beta is 1.
    """
    if node.op == "fused_gemm":
        return node
    if node.op != "gemm" or node.attrs["trans_a"]:
        return None
    alpha, beta = node.attrs["alpha"], node.attrs["beta"]
    b, c = node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else None
    columns = node.outputs[0].shape[1]
    if alpha != 1.0:
        if constant(b) is None:
            return None
        b = new_constant(graph, constant(b).astype(np.float64) * alpha, f"{b.name}_alpha", like=b)
    if c is not None and (beta != 1.0 or tuple(c.shape) != (columns,)):
        bias = per_channel(constant(c), columns, 2) if isinstance(columns, int) else None
        if bias is None:
            return None
        c = new_constant(graph, bias.astype(np.float64) * beta, f"{c.name}_beta", like=c)
    return graph.fuse([node], "fused_gemm", trim([a or node.inputs[0], b, c]),
                      {"trans_b": node.attrs["trans_b"]})
