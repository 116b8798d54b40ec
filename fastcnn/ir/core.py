"""The IR's core types: dims and shapes, values, nodes, and the annotations passes set.

This module imports nothing of fastcnn, so every other IR module (and anything else) can
depend on it without a cycle. It depends on NumPy only: constants are ``np.ndarray``.

Shapes are tuples whose entries are ints or a symbol (a ``str``) for a dynamic size: ``"N"``,
the batch, a graph input's own ``"H"``, or an expression over them such as ``"N*400"`` after a
flatten or ``"(H+1)//2"`` after a stride-2 convolution (:mod:`fastcnn.ir.dims` computes them).

Shapes are always logical NCHW. Where a tensor really lives is an annotation a pass sets
and a backend reads: :class:`Storage` (a channel slice of a larger buffer, for concats that
are never copied) and ``Value.layout`` (``"NCHW"`` or ``"NHWC"``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

Dim = Union[int, str]
Shape = tuple[Dim, ...]
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class Storage:
    """Where a value's elements live when it is a channel slice of a larger buffer.

    ``buffer`` names the value that owns the allocation (a concat's output, or an outer
    concat's for nested ones); this value's channel ``c`` is the buffer's channel
    ``channel_offset + c``, and the buffer has ``channel_stride`` channels in all.
    """

    buffer: str
    channel_offset: int
    channel_stride: int

    def __str__(self) -> str:
        return f"{self.buffer}[{self.channel_offset}:+/{self.channel_stride}]"


@dataclass(eq=False)
class Value:
    """An SSA value: a graph input, a constant, or one output of a node.

    ``uses`` lists ``(node, input index)`` pairs, one per input slot that reads this value,
    so a node that reads it twice appears twice. A constant's array is read-only: a pass
    that changes a weight makes a new constant, and engines already built from the same
    graph keep theirs.
    """

    name: str
    shape: Shape
    dtype: str  # a NumPy dtype name: "float32", "int64", ...
    const: np.ndarray | None = None  # set for constants (weights), None otherwise
    producer: "Node | None" = None
    uses: list[tuple["Node", int]] = field(default_factory=list)
    storage: Storage | None = None  # None: a buffer of its own
    layout: str = "NCHW"

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def users(self) -> list["Node"]:
        """The distinct nodes that read this value, in first-use order."""
        seen: dict[int, Node] = {}
        for node, _ in self.uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    def __repr__(self) -> str:
        return f"%{self.name}"


@dataclass(eq=False)
class Node:
    """One operation. ``inputs`` may hold ``None`` for an omitted optional input.

    ``sources`` names the ONNX nodes this node computes: one for an imported node, all of
    them for a fused one, so a plan row can say what it covers.
    """

    op: str
    inputs: list[Value | None]
    outputs: list[Value]
    attrs: dict[str, Any]
    name: str
    sources: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Node({self.op} {self.name})"


def read_only(array: Any) -> np.ndarray:
    """``array`` as a read-only NumPy view (the caller's own array stays writable)."""
    view = np.asarray(array).view()
    view.setflags(write=False)
    return view
