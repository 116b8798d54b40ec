"""Make a batch norm (+ ReLU) that cannot fold backwards the prologue of every consumer.

DenseNet's and pre-activation ResNet's ``relu(batch_norm(x))`` reads a buffer other layers
share, so it cannot fold into the producer of ``x``. Each consumer applies it instead as
it loads ``x``. Per channel ``c``::

    batch_norm(x) = (x - mean) / sqrt(var + eps) * gamma + beta = x * scale + shift
    scale = gamma / sqrt(var + eps)        shift = beta - mean * scale

computed in float64 and stored once, as two new 1-D constants in ``x``'s dtype that all the
consumers share.

Pattern: ``b = batch_norm(x, gamma, beta, mean, var)`` with the four parameters constant and
of shape ``(C,)``, optionally followed by ``r = relu(b)`` when that ReLU is ``b``'s only
reader; ``t`` is ``r``, else ``b``. It fires when ``t`` is not a graph output and every reader
of ``t`` is a conv2d or fused_conv2d reading it as input 0, or a max_pool, avg_pool,
global_avg_pool, global_max_pool or fused_pool, none of them with a prologue yet. Each reader
then becomes a fused_conv2d or fused_pool reading ``x`` with the prologue (scale, shift and
``prologue_relu`` if there was a ReLU), the batch norm's and ReLU's names join its
``sources``, and the batch norm and ReLU are removed. If any reader cannot take a prologue
(an add, a concat, a gemm, ...), nothing changes for that batch norm.

A lone ``r = relu(x)`` whose readers all qualify in the same way becomes their
``prologue_relu`` (no scale or shift). A ReLU right after a batch norm gets this only when
the batch norm itself cannot become a prologue (a parameter that is not constant, say).

Padding: in the unfused graph the consumer pads ``t``, so a padded position is 0 for a
convolution or an average pool and never wins a max pool; it is not ``relu(shift)``. The
fused ops apply the prologue first and pad afterwards, so this rewrite is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastcnn.ir import Graph, Node, Value
from fastcnn.ir.fused_ops import CONV_SCALE, POOL_SCALE, operand
from fastcnn.passes.rewrite import (
    as_fused_conv,
    as_fused_pool,
    constant,
    conv_inputs,
    is_output,
    new_constant,
    only_use,
    trim,
)

CONV_OPS = ("conv2d", "fused_conv2d")
POOL_OPS = ("max_pool", "avg_pool", "global_avg_pool", "global_max_pool", "fused_pool")


@dataclass
class _Prologue:
    """What the readers of ``out`` will compute from ``x`` themselves, and the nodes it replaces."""

    x: Value
    out: Value
    nodes: list[Node]  # the batch norm and/or the ReLU, in graph order
    scale: np.ndarray | None = None  # float64, one number per channel
    shift: np.ndarray | None = None
    relu: bool = False


def fuse_prologue(graph: Graph) -> bool:
    """Move batch norms (+ ReLU) and lone ReLUs into their consumers; see the module doc."""
    changed = False
    while _sweep(graph):
        changed = True
    return changed


def _sweep(graph: Graph) -> bool:
    """One walk over the batch norms and ReLUs in graph order. A rewrite removes a ReLU after
    the batch norm at hand, so each node is looked at only while it is still in the graph."""
    changed = False
    for node in [n for n in graph.nodes if n.op in ("batch_norm", "relu")]:
        if node not in graph.nodes:
            continue
        prologue = _batch_norm_prologue(graph, node) if node.op == "batch_norm" else _relu_prologue(node)
        if prologue is not None and _all_readers_take_it(graph, prologue.out):
            _move_into_readers(graph, prologue)
            changed = True
    return changed


def _batch_norm_prologue(graph: Graph, bn: Node) -> _Prologue | None:
    """The prologue computing ``bn`` (and the ReLU that is its only reader), or None when a
    parameter is not a constant of one number per channel."""
    x = bn.inputs[0]
    params = [constant(v) for v in bn.inputs[1:]]
    if len(x.shape) != 4 or any(p is None or p.shape != (x.shape[1],) for p in params):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + bn.attrs["eps"])
    prologue = _Prologue(x, bn.outputs[0], [bn], scale, beta - mean * scale)
    relu = only_use(graph, prologue.out)
    if relu is not None and relu.op == "relu":
        prologue.out, prologue.relu = relu.outputs[0], True
        prologue.nodes.append(relu)
    return prologue


def _relu_prologue(relu: Node) -> _Prologue | None:
    x = relu.inputs[0]
    return _Prologue(x, relu.outputs[0], [relu], relu=True) if len(x.shape) == 4 else None


def _all_readers_take_it(graph: Graph, out: Value) -> bool:
    """Whether ``out`` has readers, all able to take a prologue on it, and is not a graph output."""
    return bool(out.uses) and not is_output(graph, out) and all(_takes_prologue(n, i) for n, i in out.uses)


def _takes_prologue(node: Node, index: int) -> bool:
    """Whether ``node`` reads its input ``index`` through a prologue it does not have yet."""
    if index != 0 or node.op not in CONV_OPS + POOL_OPS:
        return False
    scale_at = CONV_SCALE if node.op in CONV_OPS else POOL_SCALE
    return operand(node, scale_at) is None and not node.attrs.get("prologue_relu", False)


def _move_into_readers(graph: Graph, prologue: _Prologue) -> None:
    """Give every reader of ``prologue.out`` the prologue, then drop the batch norm and ReLU."""
    name = prologue.nodes[0].name
    scale = shift = None
    if prologue.scale is not None:
        scale = new_constant(graph, prologue.scale, f"{name}_scale", like=prologue.x)
        shift = new_constant(graph, prologue.shift, f"{name}_shift", like=prologue.x)
    covered = tuple(s for n in prologue.nodes for s in (n.sources or (n.name,)))
    for reader in prologue.out.users:
        fused = _with_prologue(graph, reader, prologue, scale, shift)
        fused.sources = tuple(dict.fromkeys((*covered, *fused.sources)))
    for node in reversed(prologue.nodes):
        graph.remove_node(node)


def _with_prologue(graph: Graph, reader: Node, prologue: _Prologue, scale: Value | None,
                   shift: Value | None) -> Node:
    """``reader`` as a fused node that reads ``prologue.x`` and applies the prologue to it."""
    if reader.op in CONV_OPS:
        fused, scale_at = as_fused_conv(graph, reader), CONV_SCALE
        inputs = conv_inputs(fused)
    else:
        fused, scale_at = as_fused_pool(graph, reader), POOL_SCALE
        inputs = (list(fused.inputs) + [None] * 3)[:3]
    inputs[0], inputs[scale_at], inputs[scale_at + 1] = prologue.x, scale, shift
    attrs = {**fused.attrs, "prologue_relu": prologue.relu}
    return graph.fuse([fused], fused.op, trim(inputs), attrs)

