"""Fuse a squeeze-excite block into a gate and a scale: two launches instead of six to eight.

The block as SE-ResNet and SE-BN-Inception export it (``x`` any 4-D tensor, ``C`` its
channels)::

    p = global_avg_pool(x)          or reduce_mean(x, axes=(2, 3), keepdims=1)
    h = relu(conv2d(p, w1, b1))     w1: (Cr, C, 1, 1)
    s = sigmoid(conv2d(h, w2, b2))  w2: (C, Cr, 1, 1)
    y = mul(x, s)                   either operand order
    y = add(y, residual)            optional; residual has exactly y's shape
    y = relu(y)                     optional

becomes::

    s = se_gate(x, W1, b1, W2, b2)  W1 = w1.reshape(Cr, C), W2 = w2.reshape(C, Cr)
    y = se_scale(x, s[, residual])  post_activation "relu" when the relu was there

The same numbers: a 1x1 convolution with stride 1, no padding, no dilation and one group
of an (N, C, 1, 1) tensor is ``p.flatten(1) @ w.reshape(Cout, C).T + b``, which is what
se_gate computes between its mean over H and W and its sigmoid; a missing bias is a zero
one. se_scale computes ``relu(x * s + residual)``, the mul, add and relu in one.

Fires only when every intermediate the fused nodes swallow (p, both convolutions' outputs,
h, s; y when an add follows; the add's output when a relu follows) has exactly one reader
and is not a graph output, so nothing else needs it; when both convolutions are plain 1x1
ones with constant weights and biases; and when the mul's other operand is the very ``x``
that was pooled. An add whose other operand only broadcasts to y (a per-channel constant)
is no residual and stays outside, as does everything after it; a relu straight after the
mul becomes the post-activation too. The gate keeps ``s``'s name, the scale the name of the
chain's last output.

It does not move the pooling into x's producer (``fuse_se_pooling`` does, once the
convolution epilogues are final), so the gate still reads x once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastcnn.ir import Graph, Node, Value
from fastcnn.passes.rewrite import constant, new_constant, only_use, trim

GATE_OPS = ("global_avg_pool", "reduce_mean")


@dataclass
class _Block:
    """A matched squeeze-excite block: the gate's nodes, the scale's nodes, and their operands."""

    x: Value
    gate: list[Node]  # pool, conv, relu, conv, sigmoid
    scale: list[Node]  # mul, then the add and the relu that follow, if any
    residual: Value | None
    relu_after: bool


def fuse_squeeze_excite(graph: Graph) -> bool:
    """Replace each squeeze-excite block by se_gate + se_scale; True if any was replaced."""
    changed = False
    # A rewrite removes only its own block's nodes, and every block has one pool, so the
    # pools listed up front are still in the graph when their turn comes.
    for node in [n for n in graph.nodes if n.op in GATE_OPS]:
        block = _match(graph, node)
        if block is not None:
            _rewrite(graph, block)
            changed = True
    return changed


# -- matching ---------------------------------------------------------------------------
def _match(graph: Graph, pool: Node) -> _Block | None:
    """The block that starts at ``pool``, or None if ``pool`` does not start one."""
    if not _pools_spatially(pool):
        return None
    gate = _gate_chain(graph, pool)
    if gate is None:
        return None
    mul = _sole_reader(graph, gate[-1].outputs[0], "mul")
    x = pool.inputs[0]
    if mul is None or not _scales(mul, gate[-1].outputs[0], x):
        return None
    scale, residual = _scale_chain(graph, mul)
    return _Block(x, gate, scale, residual, scale[-1].op == "relu")


def _pools_spatially(pool: Node) -> bool:
    """Whether ``pool`` is a mean of a 4-D x over H and W that keeps them as 1 x 1."""
    if len(pool.inputs[0].shape) != 4:
        return False
    if pool.op == "global_avg_pool":
        return True
    axes = {a % 4 for a in pool.attrs["axes"]}
    return axes == {2, 3} and pool.attrs["keepdims"]


def _gate_chain(graph: Graph, pool: Node) -> list[Node] | None:
    """pool -> 1x1 conv -> relu -> 1x1 conv -> sigmoid, each the sole reader of the one
    before, with weights of an SE over x's channels; or None."""
    chain = [pool]
    for op in ("conv2d", "relu", "conv2d", "sigmoid"):
        following = _sole_reader(graph, chain[-1].outputs[0], op)
        if following is None or (op == "conv2d" and not _is_plain_1x1(following)):
            return None
        chain.append(following)
    channels, squeezed = pool.inputs[0].shape[1], chain[1].inputs[1].shape[0]
    if chain[3].inputs[1].shape[:2] != (channels, squeezed):
        return None
    return chain


def _is_plain_1x1(conv: Node) -> bool:
    """A 1x1 convolution whose every setting is the identity one, with a constant weight and a
    constant per-channel bias (or none), all of its input's dtype."""
    weight, bias = conv.inputs[1], _bias(conv)
    plain = (conv.attrs["stride"] == (1, 1) and conv.attrs["padding"] == (0, 0, 0, 0)
             and conv.attrs["dilation"] == (1, 1) and conv.attrs["groups"] == 1)
    constants = constant(weight) is not None and (
        bias is None or (constant(bias) is not None and tuple(bias.shape) == weight.shape[:1]))
    dtypes = {v.dtype for v in (conv.inputs[0], weight, bias) if v is not None}
    return plain and constants and weight.shape[2:] == (1, 1) and len(dtypes) == 1


def _scales(mul: Node, gate: Value, x: Value) -> bool:
    """Whether ``mul`` is ``x * gate`` (either order), the product having x's shape."""
    other = mul.inputs[1] if mul.inputs[0] is gate else mul.inputs[0]
    return other is x and tuple(mul.outputs[0].shape) == tuple(x.shape)


def _scale_chain(graph: Graph, mul: Node) -> tuple[list[Node], Value | None]:
    """mul, then an add of a residual of exactly its shape and a relu where they follow;
    and the residual (None without the add)."""
    chain, residual = [mul], None
    add = _sole_reader(graph, mul.outputs[0], "add")
    if add is not None:
        y = mul.outputs[0]
        other = add.inputs[1] if add.inputs[0] is y else add.inputs[0]
        if tuple(other.shape) == tuple(y.shape) and other.dtype == y.dtype:
            chain.append(add)
            residual = other
    relu = _sole_reader(graph, chain[-1].outputs[0], "relu")
    if relu is not None:
        chain.append(relu)
    return chain, residual


def _sole_reader(graph: Graph, value: Value, op: str) -> Node | None:
    """The ``op`` node that is ``value``'s one reader (not a graph output); else None."""
    reader = only_use(graph, value)
    return reader if reader is not None and reader.op == op else None


def _bias(conv: Node) -> Value | None:
    return conv.inputs[2] if len(conv.inputs) > 2 else None


# -- rewriting --------------------------------------------------------------------------
def _rewrite(graph: Graph, block: _Block) -> None:
    """Fuse the gate at the sigmoid (it takes over s) and the scale at the chain's end."""
    _, conv1, _, conv2, _ = block.gate
    gate = graph.fuse(block.gate, "se_gate", [block.x, *_dense(graph, conv1), *_dense(graph, conv2)])
    post = "relu" if block.relu_after else "none"
    graph.fuse(block.scale, "se_scale", trim([block.x, gate.outputs[0], block.residual]),
               {"post_activation": post})


def _dense(graph: Graph, conv: Node) -> tuple[Value, Value]:
    """A 1x1 convolution's weight as a 2-D constant, and its bias (zeros when it has none)."""
    weight = conv.inputs[1]
    matrix = new_constant(graph, constant(weight).reshape(weight.shape[:2]), f"{weight.name}_2d")
    bias = _bias(conv)
    if bias is None:
        bias = new_constant(graph, np.zeros(weight.shape[0], dtype=weight.dtype), f"{conv.name}_zero_bias")
    return matrix, bias
