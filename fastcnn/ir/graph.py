"""fastcnn's graph IR: values with shape and dtype, nodes with typed attributes, use lists.

Small on purpose: the importer builds it, the rewrites transform it, the backends run it.
It depends on NumPy only (constants are ``np.ndarray``), never on torch or onnx.

Shapes are tuples whose entries are ints or a symbol (a ``str``) for a dynamic size,
in practice ``"N"``, the batch.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

import numpy as np

Dim = Union[int, str]
Shape = tuple[Dim, ...]


@dataclass(eq=False)
class Value:
    """An SSA value: a graph input, a constant, or one output of a node."""

    name: str
    shape: Shape
    dtype: str  # a NumPy dtype name: "float32", "int64", ...
    const: np.ndarray | None = None  # set for constants (weights), None otherwise
    producer: "Node | None" = None
    users: list["Node"] = field(default_factory=list)

    @property
    def is_const(self) -> bool:
        return self.const is not None

    def __repr__(self) -> str:
        return f"%{self.name}"


@dataclass(eq=False)
class Node:
    """One operation. ``inputs`` may hold ``None`` for an omitted optional input."""

    op: str
    inputs: list[Value | None]
    outputs: list[Value]
    attrs: dict[str, Any]
    name: str

    def __repr__(self) -> str:
        return f"Node({self.op} {self.name})"


class Graph:
    """Nodes in topological order, with named graph inputs and outputs."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self._names: set[str] = set()
        self._counter = itertools.count()

    # -- building -----------------------------------------------------------------------
    def fresh_name(self, hint: str) -> str:
        """A value or node name not used yet in this graph, based on ``hint``."""
        name = hint or "v"
        while name in self._names:
            name = f"{hint}_{next(self._counter)}"
        self._names.add(name)
        return name

    def add_input(self, name: str, shape: Shape, dtype: str) -> Value:
        value = Value(self.fresh_name(name), tuple(shape), dtype)
        self.inputs.append(value)
        return value

    def constant(self, array: np.ndarray, name: str = "const") -> Value:
        array = np.asarray(array)
        return Value(self.fresh_name(name), tuple(array.shape), array.dtype.name, const=array)

    def add_node(self, op: str, inputs: Iterable[Value | None], attrs: dict[str, Any] | None = None,
                 name: str = "", out_names: Iterable[str] = ()) -> Node:
        """Append a node whose outputs get their shapes and dtypes from the op's schema."""
        from fastcnn.ir.ops import infer  # ops imports this module

        inputs = list(inputs)
        node = Node(op, inputs, [], dict(attrs or {}), self.fresh_name(name or op))
        specs = infer(node)
        out_names = list(out_names) or [node.name] * len(specs)
        for out_name, (shape, dtype) in zip(out_names, specs, strict=True):
            node.outputs.append(Value(self.fresh_name(out_name), shape, dtype, producer=node))
        for value in inputs:
            if value is not None:
                value.users.append(node)
        self.nodes.append(node)
        return node

    # -- rewriting ----------------------------------------------------------------------
    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Make every user of ``old`` (and the graph outputs) use ``new`` instead."""
        for user in old.users:
            user.inputs = [new if v is old else v for v in user.inputs]
            new.users.append(user)
        old.users = []
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_node(self, node: Node) -> None:
        """Drop ``node``; its outputs must be unused by then."""
        for out in node.outputs:
            if out.users or out in self.outputs:
                raise ValueError(f"cannot remove {node}: output {out} is still used")
        for value in node.inputs:
            if value is not None:
                value.users = [u for u in value.users if u is not node]
        self.nodes.remove(node)

    def remove_dead_nodes(self) -> int:
        """Remove nodes none of whose outputs reaches a graph output; returns how many."""
        removed = 0
        for node in reversed(list(self.nodes)):
            if not any(out.users or out in self.outputs for out in node.outputs):
                self.remove_node(node)
                removed += 1
        return removed

    # -- reading ------------------------------------------------------------------------
    def constants(self) -> list[Value]:
        """Every constant used by a node or returned, each once, in first-use order."""
        seen: dict[int, Value] = {}
        for node in self.nodes:
            for v in node.inputs:
                if v is not None and v.is_const:
                    seen.setdefault(id(v), v)
        for v in self.outputs:
            if v.is_const:
                seen.setdefault(id(v), v)
        return list(seen.values())

    def values(self) -> list[Value]:
        """Graph inputs, constants and node outputs."""
        return [*self.inputs, *self.constants(), *(o for n in self.nodes for o in n.outputs)]

    def __str__(self) -> str:
        from fastcnn.ir.printer import dump

        return dump(self)
