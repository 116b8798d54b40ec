"""What a converter sees: its operands, the graph being built, and helpers to read both.

An ONNX tensor name is bound to one of three things while the importer walks the graph:

- a :class:`~fastcnn.ir.Value` computed at run time (a graph input or a node output);
- a :class:`Folded` array, known at import time (an initializer, a ``Constant``, or any
  node whose inputs were all known and that was evaluated); it becomes an IR constant only
  when a run-time node uses it, so shape arithmetic never reaches the IR;
- a :class:`Blocked` marker, when it depends on a node the importer could not convert.

Converters raise :class:`Unsupported` with a reason; the importer collects those for the
whole graph and reports them together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from fastcnn.errors import InvalidModelError
from fastcnn.frontend.symbolic import is_symbolic
from fastcnn.ir import Graph, IRError, Shape, Value


class Unsupported(Exception):
    """Raised by a converter for an op or attribute fastcnn cannot run; the text is the reason."""


class StandIn(Value):
    """A value standing in for a blocked input while probing a node for its own problems."""


class NeedsBlockedValue(Exception):
    """A probe reached for the value of a stand-in; that says nothing about the node itself."""


@dataclass(eq=False)
class Folded:
    """A tensor known at import time. An object array is an int64 shape vector with symbols."""

    array: np.ndarray
    name: str
    value: Value | None = None  # the IR constant, made on first run-time use

    @property
    def symbolic(self) -> bool:
        return is_symbolic(self.array)


@dataclass(eq=False)
class Blocked:
    """A tensor that depends on a node the importer could not convert.

    ``node`` is the node that produced it; ``upstream`` the blocked inputs that node had.
    Following ``upstream`` from the graph outputs finds every problem that matters, and only
    those: a problem in a branch that later turned out dead (a recognised pattern) is dropped.
    """

    node: onnx.NodeProto
    upstream: tuple["Blocked", ...] = ()


Operand = Value | Folded | None


@dataclass
class ImportContext:
    """The state of one import: the IR graph, the ONNX name bindings and the opset."""

    graph: Graph
    opset: int
    env: dict[str, Value | Folded | Blocked] = field(default_factory=dict)
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)  # names some live node or graph output reads
    onnx_types: dict[str, tuple[Shape, str]] = field(default_factory=dict)  # from onnx's inference
    node: onnx.NodeProto | None = None  # the node being converted
    # Converts a subgraph's nodes in this context and returns its outputs (for If).
    inline: Callable[[onnx.GraphProto], list[Operand]] | None = None
    fold_budget: Any = None  # the FoldBudget of import-time folding (fastcnn.frontend.folding)

    # -- reading operands ---------------------------------------------------------------
    def operand(self, name: str) -> Value | Folded | Blocked | None:
        if name == "":
            return None
        if name not in self.env:
            where = f"node {self.node.name!r} ({self.node.op_type})" if self.node else "the graph"
            raise InvalidModelError(f"{where} uses {name!r}, which is not defined before it "
                                    "(a missing initializer or input, or a cycle)")
        return self.env[name]

    def shape(self, x: Operand) -> Shape:
        """The shape of a run-time value or of a folded array."""
        if isinstance(x, Folded):
            return tuple(x.array.shape)
        if isinstance(x, Value):
            return x.shape
        raise Unsupported("a required input is missing")

    def runtime(self, x: Operand, what: str = "input") -> Value:
        """``x`` as an IR value; a folded array becomes an IR constant (once)."""
        if isinstance(x, Value):
            return x
        if not isinstance(x, Folded):
            raise Unsupported(f"the {what} is missing")
        if x.symbolic:
            raise Unsupported(f"the {what} {x.name!r} is a shape computed from the run-time "
                              "batch size and used as data")
        if x.value is None:
            x.value = self.graph.constant(x.array, x.name)
        return x.value

    def folded(self, x: Operand, what: str) -> Folded:
        """An input that must be known at import time, symbolic entries allowed."""
        if isinstance(x, Folded):
            return x
        if isinstance(x, StandIn):
            raise NeedsBlockedValue(what)
        raise Unsupported(f"the {what} is computed at run time; fastcnn needs it at import time")

    def known(self, x: Operand, what: str) -> np.ndarray:
        """The value of an input that must be known at import time (pads, axes, targets)."""
        folded = self.folded(x, what)
        if folded.symbolic:
            raise Unsupported(f"the {what} depends on the run-time batch size")
        return folded.array

    def ints(self, x: Operand, what: str) -> tuple[int, ...]:
        return tuple(int(v) for v in self.known(x, what).reshape(-1))

    def scalar(self, x: Operand, what: str) -> float:
        array = self.known(x, what)
        if array.size != 1:
            raise Unsupported(f"the {what} must be a single number, got shape {array.shape}")
        return float(array.reshape(-1)[0])

    def is_used(self, name: str) -> bool:
        return name != "" and name in self.used

    # -- building -----------------------------------------------------------------------
    def emit(self, op: str, inputs: Sequence[Operand], attrs: dict[str, Any] | None = None,
             suffix: str = "", out_name: str | None = None) -> Value:
        """Append IR node ``op`` for the node being converted and return its one output."""
        return self.emit_outputs(op, inputs, attrs, suffix, [out_name])[0]

    def emit_outputs(self, op: str, inputs: Sequence[Operand], attrs: dict[str, Any] | None = None,
                     suffix: str = "", out_names: Sequence[str | None] = (None,)) -> list[Value]:
        """Append IR node ``op`` and return all its outputs, named ``out_names`` where given."""
        node_name = (self.node.name or self.node.op_type) if self.node is not None else op
        values = [None if x is None else self.runtime(x) for x in inputs]
        hint = f"{node_name}/{suffix}" if suffix else node_name
        outs = [name or (hint if i == 0 else f"{hint}_{i}") for i, name in enumerate(out_names)]
        try:
            ir_node = self.graph.add_node(op, values, attrs, name=hint, out_names=outs,
                                          sources=(self._source_label(op),))
        except IRError as exc:
            raise InvalidModelError(f"node {node_name!r} ({self.node.op_type if self.node else op}): "
                                    f"{exc}") from None
        return ir_node.outputs

    def _source_label(self, op: str) -> str:
        """The ONNX node an IR node comes from, as plans show it (unnamed ones by their output)."""
        if self.node is None:
            return op
        return self.node.name or f"<{self.node.op_type} -> {self.node.output[0] if self.node.output else '?'}>"

    def output_name(self, index: int = 0) -> str | None:
        """The ONNX name of the converted node's output ``index``, to name the IR value."""
        if self.node is None or index >= len(self.node.output):
            return None
        return self.node.output[index] or None
