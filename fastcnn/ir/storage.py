"""Channel-slice storage: where a concat is a statement about memory rather than a copy.

A concat stays in the graph; when each of its inputs is stored as the channel slice of the
concat's own buffer that it would be copied into, the producers write there directly and
the concat costs nothing (it is a *view*). These helpers say when that holds; the verifier
checks the slices tile each buffer exactly, and the planner allocates one buffer per root.
"""
from __future__ import annotations

from fastcnn.ir.core import Storage, Value


def storage_of(value: Value) -> Storage:
    """``value``'s storage: its annotation, or a buffer of its own (the value's name)."""
    if value.storage is not None:
        return value.storage
    channels = value.shape[1] if len(value.shape) > 1 else 1
    return Storage(value.name, 0, channels)


def concat_is_view(node) -> bool:
    """Whether concat ``node``'s inputs are exactly the slices of its output's storage, in order,
    so it moves nothing."""
    if node.op != "concat" or len(node.outputs[0].shape) != 4 or node.attrs["axis"] % 4 != 1:
        return False
    base = storage_of(node.outputs[0])
    offset = base.channel_offset
    for value in node.inputs:
        slot = value.storage
        if slot is None or (slot.buffer, slot.channel_stride, slot.channel_offset) != \
                (base.buffer, base.channel_stride, offset):
            return False
        offset += value.shape[1]
    return offset == base.channel_offset + node.outputs[0].shape[1]


def writes_into(node) -> list[Value]:
    """The outputs of ``node`` that live in a slice of another value's buffer."""
    return [v for v in node.outputs if v.storage is not None]
