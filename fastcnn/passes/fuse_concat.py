"""Place each concat's inputs in channel slices of one buffer, so that no concat copies.

A channel concat of 4-D tensors ``y = concat(x_1, ..., x_k, axis=1)``, ``x_i`` with ``C_i``
channels, moves nothing when every ``x_i`` already lives at channels ``[o_i, o_i + C_i)`` of
``y``'s buffer, ``o_1`` being ``y``'s own offset and ``o_{i+1} = o_i + C_i``. The concat stays
in the graph as that statement (:func:`fastcnn.ir.storage.concat_is_view`); the pass only sets
``Value.storage``, and each producer then writes straight into its slice. Two rules make it so:

- *scatter*: no input is placed yet; with ``(B, o, S) = storage_of(y)`` (``y``'s own buffer,
  or its slice of an outer one), ``x_i.storage = Storage(B, o + C_1 + ... + C_{i-1}, S)``.
  ``B`` always names the outermost buffer, so nested concats get absolute offsets.
- *view*: every input is already placed, contiguous and in order, in one buffer ``B`` from
  offset ``o``; then ``y`` itself becomes that slice, ``Storage(B, o, S)``. This is DenseNet's
  dense block, whose concats ``[x0, y1]``, ``[x0, y1, y2]``, ... are prefixes of the last one:
  the last is the buffer, every earlier one a view of its prefix, and no layer copies.

Concats are taken in reverse graph order, so an outer (later) concat has placed an inner one's
output before the inner one places its inputs, and the last dense-block concat is the buffer
before its prefixes look. A sweep repeats until nothing changes (a view made late can make a
later concat a view too).

A concat stays a copy, and none of its inputs is placed (never some and not others), when:
it is not along the channels of 4-D tensors; it reads one value twice; an input is a graph
input, a constant or a graph output (those own their buffers); an input's producer cannot
write a strided channel slice (:data:`SLICE_WRITERS`; a global pool, a squeeze-excite conv's
pooled sum, a ReLU or Add left unfused, a reshape or identity view, ... cannot); an input
already lives in a buffer inconsistent with this concat (one tensor two unrelated concats both
want: the one placed first, the later in graph order, wins); or, for the view rule, its output
is a graph output or is placed already. Readers other than the concat read a strided view.
"""
from __future__ import annotations

from fastcnn.ir import Graph, Node, Storage, Value
from fastcnn.ir.storage import concat_is_view, storage_of
from fastcnn.passes.rewrite import is_output

# Ops whose kernels take an output channel offset and stride, so can write into a slice of a
# bigger buffer; a concat among them is a nested concat (a copy into the slice if not a view).
SLICE_WRITERS = frozenset({"conv2d", "fused_conv2d", "max_pool", "avg_pool", "fused_pool", "se_scale",
                           "lrn", "concat"})


def fuse_concat(graph: Graph) -> bool:
    """Give concat inputs (and prefix concats' outputs) storage in one buffer; see the module doc."""
    buffers = {v.storage.buffer for v in graph.values() if v.storage is not None}
    changed = False
    while True:
        placed = [node for node in reversed(graph.nodes) if node.op == "concat" and _place(graph, node, buffers)]
        if not placed:
            return changed
        changed = True


def _place(graph: Graph, node: Node, buffers: set[str]) -> bool:
    """Apply the scatter or the view rule to concat ``node``; whether it changed anything.
    ``buffers`` names every value that holds slices of others, and grows with each placement."""
    if not _is_channel_concat(node) or concat_is_view(node):
        return False
    placed = sum(v.storage is not None for v in node.inputs)
    if placed == 0:
        return _scatter(graph, node, buffers)
    if placed == len(node.inputs):
        return _view(graph, node, buffers)
    return False


def _is_channel_concat(node: Node) -> bool:
    out = node.outputs[0]
    return (len(out.shape) == 4 and node.attrs["axis"] % 4 == 1
            and len({id(v) for v in node.inputs}) == len(node.inputs)
            and all((v.dtype, v.layout) == (out.dtype, out.layout) for v in node.inputs))


def _scatter(graph: Graph, node: Node, buffers: set[str]) -> bool:
    """Every input (none placed yet) becomes its slice of the output's storage."""
    if not all(_can_write_slice(graph, v, buffers) for v in node.inputs):
        return False
    base = storage_of(node.outputs[0])
    offset = base.channel_offset
    for value in node.inputs:
        value.storage = Storage(base.buffer, offset, base.channel_stride)
        offset += value.shape[1]
    buffers.add(base.buffer)
    return True


def _view(graph: Graph, node: Node, buffers: set[str]) -> bool:
    """The output becomes the slice its inputs (all placed) make, if they are contiguous and in
    order in one buffer."""
    out = node.outputs[0]
    if out.storage is not None or out.name in buffers or is_output(graph, out):
        return False
    first = node.inputs[0].storage
    offset = first.channel_offset
    for value in node.inputs:
        if value.storage != Storage(first.buffer, offset, first.channel_stride):
            return False
        offset += value.shape[1]
    out.storage = first
    return True


def _can_write_slice(graph: Graph, value: Value, buffers: set[str]) -> bool:
    """Whether ``value``'s producer can write it into a channel slice of another buffer: it is an
    op's output (not a graph input or a constant), not a graph output, holds no slices of its
    own, and its kernel writes strided channels."""
    producer = value.producer
    if producer is None or value.is_const or is_output(graph, value) or value.name in buffers:
        return False
    if producer.op == "fused_pool":
        return not producer.attrs["mode"].startswith("global")  # a per-channel reduction, like global pools
    if producer.op == "fused_conv2d" and producer.attrs["pooled_output"]:
        return value is not producer.outputs[-1]  # the squeeze-excite sum is summed by atomic adds
    return producer.op in SLICE_WRITERS
