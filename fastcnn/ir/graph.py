"""The graph: nodes in topological order, named inputs and outputs, and the edits passes use.

Small on purpose: the importer builds it, the passes transform it, the backends run it.
Every edit keeps use lists exact (``value.uses`` holds one ``(node, input index)`` pair per
input slot reading it), so a pass can trust them; :func:`fastcnn.ir.verify` checks.

A node made with :meth:`Graph.make_node` is not in the graph until it is inserted
(:meth:`add_node` appends, :meth:`insert_before` and :meth:`insert_after` place it).
:meth:`fuse` replaces a chain of nodes by one node that takes over the chain's output
values, so names, graph outputs and every other reader stay as they were.
"""
from __future__ import annotations

import heapq
import itertools
from typing import Any, Iterable, Sequence

import numpy as np

from fastcnn.ir.core import Node, Shape, Value, read_only
from fastcnn.ir.dims import evaluate
from fastcnn.ir.op_table import infer, with_defaults
from fastcnn.ir.printer import dump
from fastcnn.ir.schema import IRError


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
        """A constant holding a read-only view of ``array`` (see :class:`Value`)."""
        array = read_only(array)
        return Value(self.fresh_name(name), tuple(array.shape), array.dtype.name, const=array)

    def make_node(self, op: str, inputs: Iterable[Value | None], attrs: dict[str, Any] | None = None,
                  name: str = "", out_names: Iterable[str] = (), sources: Sequence[str] = ()) -> Node:
        """A node checked against its op's schema, with new output values, not yet in the graph."""
        node = Node(op, list(inputs), [], with_defaults(op, attrs or {}), self.fresh_name(name or op),
                    tuple(sources))
        specs = infer(node)
        out_names = list(out_names) or [node.name] * len(specs)
        for out_name, (shape, dtype) in zip(out_names, specs, strict=True):
            node.outputs.append(Value(self.fresh_name(out_name), shape, dtype, producer=node))
        return node

    def add_node(self, op: str, inputs: Iterable[Value | None], attrs: dict[str, Any] | None = None,
                 name: str = "", out_names: Iterable[str] = (), sources: Sequence[str] = ()) -> Node:
        """Append a node whose outputs get their shapes and dtypes from the op's schema."""
        node = self.make_node(op, inputs, attrs, name, out_names, sources)
        self._attach(node)
        self.nodes.append(node)
        return node

    def insert_before(self, anchor: Node, node: Node) -> Node:
        """Put ``node`` (from :meth:`make_node`) just before ``anchor``."""
        self._attach(node)
        self.nodes.insert(self.nodes.index(anchor), node)
        return node

    def insert_after(self, anchor: Node, node: Node) -> Node:
        """Put ``node`` (from :meth:`make_node`) just after ``anchor``."""
        self._attach(node)
        self.nodes.insert(self.nodes.index(anchor) + 1, node)
        return node

    def _attach(self, node: Node) -> None:
        for index, value in enumerate(node.inputs):
            if value is not None:
                value.uses.append((node, index))

    def _detach(self, node: Node) -> None:
        for value in {id(v): v for v in node.inputs if v is not None}.values():
            value.uses = [(user, i) for user, i in value.uses if user is not node]

    # -- rewriting ----------------------------------------------------------------------
    def set_input(self, node: Node, index: int, value: Value | None) -> None:
        """Make input ``index`` of ``node`` read ``value``, keeping both use lists exact."""
        old = node.inputs[index]
        if old is not None:
            old.uses = [(user, i) for user, i in old.uses if not (user is node and i == index)]
        node.inputs[index] = value
        if value is not None:
            value.uses.append((node, index))

    def replace_all_uses(self, old: Value, new: Value, exclude: Iterable[Node] = ()) -> None:
        """Make every reader of ``old`` but the nodes in ``exclude`` (and the graph outputs)
        read ``new``. Excluding lets "insert X after v, then redirect v's other readers to X"
        leave X reading v rather than its own output."""
        skip = {id(n) for n in exclude}
        if new is not old:  # one pass over the uses: linear however many readers ``old`` has
            moved = [(user, index) for user, index in old.uses if id(user) not in skip]
            old.uses = [(user, index) for user, index in old.uses if id(user) in skip]
            for user, index in moved:
                user.inputs[index] = new
                new.uses.append((user, index))
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_node(self, node: Node) -> None:
        """Drop ``node``; its outputs must be unused by then."""
        for out in node.outputs:
            if out.uses or any(out is v for v in self.outputs):
                raise ValueError(f"cannot remove {node}: output {out} is still used")
        self._detach(node)
        self.nodes.remove(node)

    def remove_dead_nodes(self) -> int:
        """Remove nodes none of whose outputs reaches a graph output; returns how many."""
        returned = {id(v) for v in self.outputs}
        dead: dict[int, Node] = {}
        for node in reversed(self.nodes):  # a reader comes after its producer: it is decided first
            if not any(id(out) in returned or any(id(user) not in dead for user, _ in out.uses)
                       for out in node.outputs):
                dead[id(node)] = node
        if not dead:
            return 0
        # One pass over each affected use list and over the node list: linear, not one
        # filtering of a value's (possibly huge) use list per removed reader.
        read = {id(v): v for node in dead.values() for v in node.inputs if v is not None}
        for value in read.values():
            value.uses = [(user, i) for user, i in value.uses if id(user) not in dead]
        for node in dead.values():
            for out in node.outputs:
                out.uses = []
        self.nodes = [n for n in self.nodes if id(n) not in dead]
        return len(dead)

    def fuse(self, nodes: Sequence[Node], op: str, inputs: Sequence[Value | None],
             attrs: dict[str, Any] | None = None, outputs: Sequence[Value | None] | None = None,
             at: Node | None = None) -> Node:
        """Replace ``nodes`` by one ``op`` node and return it.

        The new node takes over ``outputs`` (default: the outputs of the last of ``nodes`` in
        graph order); a ``None`` entry gets a new value. Every other output of ``nodes`` must
        be read only inside ``nodes``. The node goes where ``at`` is (default: the last of
        ``nodes``), which keeps the order topological when all ``inputs`` are defined before
        it. Its ``sources`` are those of ``nodes``, in graph order.
        """
        order = {id(n): i for i, n in enumerate(self.nodes)}
        chain = sorted(nodes, key=lambda n: order[id(n)])
        outputs = list(chain[-1].outputs if outputs is None else outputs)
        kept = {id(v) for v in outputs if v is not None}
        inside = {id(n) for n in chain}
        for node in chain:
            for out in node.outputs:
                if id(out) not in kept and (any(id(u) not in inside for u, _ in out.uses)
                                            or any(out is v for v in self.outputs)):
                    raise IRError(f"cannot fuse {[n.name for n in chain]}: %{out.name} is read elsewhere")
        sources = tuple(dict.fromkeys(s for n in chain for s in (n.sources or (n.name,))))
        anchor = at if at is not None else chain[-1]
        # Re-fusing a node keeps its name (it goes away below); a new kind of node is named after it.
        name = chain[0].name if chain[0].op == op else self.fresh_name(f"{chain[0].name}/{op}")
        fused = Node(op, list(inputs), [], with_defaults(op, attrs or {}), name, sources)
        specs = infer(fused)
        if len(specs) != len(outputs):
            raise IRError(f"{fused.name}: {op} makes {len(specs)} outputs, {len(outputs)} were given")
        for i, ((shape, dtype), value) in enumerate(zip(specs, outputs)):
            if value is None:
                value = Value(self.fresh_name(f"{fused.name}_{i}"), shape, dtype)
            elif (tuple(value.shape), value.dtype) != (tuple(shape), dtype):
                raise IRError(f"{fused.name}: output %{value.name} is {value.dtype}{value.shape}, "
                              f"{op} gives {dtype}{shape}")
            value.producer = fused
            fused.outputs.append(value)
        position = order[id(anchor)]
        self.nodes.insert(position, fused)
        self._attach(fused)
        for node in chain:
            node.outputs = [v for v in node.outputs if id(v) not in kept]
        for node in reversed(chain):
            for out in node.outputs:
                out.uses = []
            self._detach(node)
            self.nodes.remove(node)
        return fused

    def topological_sort(self) -> None:
        """Reorder the nodes so each comes after the producers of its inputs, moving as little
        as possible (among ready nodes, the earliest in the current order goes first).

        Raises :class:`IRError` on a cycle.
        """
        position = {id(n): i for i, n in enumerate(self.nodes)}
        waiting = {id(n): sum(1 for v in {id(v): v for v in n.inputs if v is not None}.values()
                              if v.producer is not None and id(v.producer) in position)
                   for n in self.nodes}
        ready = [(position[id(n)], n) for n in self.nodes if waiting[id(n)] == 0]
        heapq.heapify(ready)
        ordered: list[Node] = []
        while ready:
            _, node = heapq.heappop(ready)
            ordered.append(node)
            for user in {id(u): u for out in node.outputs for u, _ in out.uses}.values():
                if id(user) in waiting:
                    waiting[id(user)] -= 1
                    if waiting[id(user)] == 0:
                        heapq.heappush(ready, (position[id(user)], user))
        if len(ordered) != len(self.nodes):
            stuck = [n.name for n in self.nodes if waiting[id(n)] > 0][:5]
            raise IRError(f"the graph has a cycle through {stuck}")
        self.nodes = ordered

    # -- copies -------------------------------------------------------------------------
    def clone(self) -> "Graph":
        """An independent copy: new nodes and values, the same (read-only) constant arrays."""
        copy = Graph(self.name)
        copy._names = set(self._names)
        copy._counter = itertools.count(next(self._counter))
        mapping: dict[int, Value] = {}

        def twin(value: Value | None) -> Value | None:
            if value is None:
                return None
            if id(value) not in mapping:
                mapping[id(value)] = Value(value.name, value.shape, value.dtype, value.const,
                                           storage=value.storage, layout=value.layout)
            return mapping[id(value)]

        copy.inputs = [twin(v) for v in self.inputs]
        for node in self.nodes:
            new = Node(node.op, [twin(v) for v in node.inputs], [], dict(node.attrs), node.name, node.sources)
            for out in node.outputs:
                value = twin(out)
                value.producer = new
                new.outputs.append(value)
            copy._attach(new)
            copy.nodes.append(new)
        copy.outputs = [twin(v) for v in self.outputs]
        return copy

    def specialize(self, **sizes: int) -> "Graph":
        """A fully static copy with each symbolic input dim bound, e.g. ``specialize(N=8)``.

        Every node's output shape is inferred anew from the bound inputs, so the copy is as
        consistent as the original. A symbol left unbound is an :class:`IRError`.
        """
        copy = self.clone()
        for value in copy.inputs:
            try:
                value.shape = tuple(evaluate(d, sizes) for d in value.shape)
            except KeyError as exc:
                raise IRError(f"specialize: input %{value.name} has dim {exc.args[0]!r}; give its size, "
                              f"e.g. specialize({exc.args[0]}=1)") from None
        copy.infer_shapes()
        return copy

    def infer_shapes(self) -> None:
        """Infer every node's output shapes and dtypes anew, in order (after inputs changed)."""
        for node in self.nodes:
            for out, (shape, dtype) in zip(node.outputs, infer(node), strict=True):
                out.shape, out.dtype = shape, dtype

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
        return dump(self)
