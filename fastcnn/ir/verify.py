"""The IR verifier: run after import and after every rewrite (in tests, after every pass).

It checks what a rewrite can break, in time linear in the graph's size:

- every node follows its op's schema and its outputs have the shapes that schema infers;
- each value is defined before it is used (the node list is topological and acyclic);
- every value's use list, constants' included, is exactly the input slots that read it;
- each constant's array has its value's shape and dtype, and is read-only;
- value names are unique;
- storage annotations: each slice lies inside its buffer, buffers are values of their own,
  and a concat whose inputs are placed in its buffer has them tile it exactly
  (see :mod:`fastcnn.ir.storage`); slices of one buffer never overlap.
"""
from __future__ import annotations

from collections import Counter

from fastcnn.ir.core import LAYOUTS, Node, Value
from fastcnn.ir.cost import accumulated
from fastcnn.ir.graph import Graph
from fastcnn.ir.op_table import infer
from fastcnn.ir.schema import IRError
from fastcnn.ir.storage import concat_is_view, storage_of


def verify(graph: Graph) -> None:
    """Raise :class:`IRError` naming the first broken invariant of ``graph``."""
    _check_order_and_schemas(graph)
    values = graph.values()
    _check_names(values)
    _check_uses(graph, values)
    for value in values:
        if value.is_const:
            _check_constant(value)
        if value.layout not in LAYOUTS:
            raise IRError(f"%{value.name} has layout {value.layout!r}; layouts are {LAYOUTS}")
    _check_storage(graph, values)


def _check_order_and_schemas(graph: Graph) -> None:
    defined = {id(v) for v in graph.inputs}
    for node in graph.nodes:
        for i, value in enumerate(node.inputs):
            if value is not None and not value.is_const and id(value) not in defined:
                raise IRError(f"{node.name}: input {i} (%{value.name}) is used before it is "
                              "defined (the graph is not in topological order, or has a cycle)")
        specs = infer(node)
        for out, (shape, dtype) in zip(node.outputs, specs, strict=True):
            if out.producer is not node:
                raise IRError(f"{node.name}: output %{out.name} names another producer")
            if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
                raise IRError(f"{node.name}: output %{out.name} is {out.dtype}{out.shape}, "
                              f"the op gives {dtype}{shape}")
            defined.add(id(out))
    for value in graph.outputs:
        if not value.is_const and id(value) not in defined:
            raise IRError(f"graph output %{value.name} is never defined")


def _check_names(values: list[Value]) -> None:
    counts = Counter(v.name for v in values)
    twice = [name for name, n in counts.items() if n > 1]
    if twice:
        raise IRError(f"value name %{twice[0]} is defined twice")


def _check_uses(graph: Graph, values: list[Value]) -> None:
    expected: dict[int, Counter] = {id(v): Counter() for v in values}
    for node in graph.nodes:
        for index, value in enumerate(node.inputs):
            if value is None:
                continue
            if id(value) not in expected:
                raise IRError(f"{node.name}: input {index} (%{value.name}) is not a value of this graph")
            expected[id(value)][(id(node), index)] += 1
    for value in values:
        got = Counter((id(node), index) for node, index in value.uses)
        if got != expected[id(value)]:
            missing = expected[id(value)] - got
            what = "is missing a reader" if missing else "lists a reader that does not read it"
            raise IRError(f"the use list of %{value.name} {what}")


def _check_constant(value: Value) -> None:
    array = value.const
    if tuple(array.shape) != tuple(value.shape) or array.dtype.name != value.dtype:
        raise IRError(f"constant @{value.name} holds {array.dtype.name}{tuple(array.shape)}, "
                      f"its value says {value.dtype}{value.shape}")
    if array.flags.writeable:
        raise IRError(f"constant @{value.name} is writable; constants are read-only "
                      "(make a new one with graph.constant)")


def _check_storage(graph: Graph, values: list[Value]) -> None:
    by_name = {v.name: v for v in values}
    for value in (*graph.inputs, *graph.outputs, *graph.constants()):
        if value.storage is not None:
            raise IRError(f"%{value.name} is a graph input, output or constant and cannot live in "
                          f"another value's buffer ({value.storage})")
    slices: dict[str, list[tuple[int, int, Value]]] = {}
    for node in graph.nodes:
        if node.op == "concat":
            _check_concat(node)
        view = concat_is_view(node)
        for value in node.outputs:
            if value.storage is None:
                continue
            _check_slice(value, by_name)
            if not view:  # a view's range is its inputs' ranges, checked by _check_concat
                start = value.storage.channel_offset
                slices.setdefault(value.storage.buffer, []).append((start, start + value.shape[1], value))
    for buffer, ranges in slices.items():
        ranges.sort(key=lambda r: r[0])
        for (_, end, first), (start, _, second) in zip(ranges, ranges[1:]):
            if start < end:
                raise IRError(f"%{first.name} and %{second.name} overlap in buffer %{buffer}")


def _check_slice(value: Value, by_name: dict[str, Value]) -> None:
    slot = value.storage
    root = by_name.get(slot.buffer)
    if root is None or root.storage is not None:
        raise IRError(f"%{value.name} lives in %{slot.buffer}, which is not a buffer of its own")
    if len(value.shape) != 4 or len(root.shape) != 4 or root.shape[1] != slot.channel_stride:
        raise IRError(f"%{value.name} ({value.shape}) in {slot}: the buffer %{root.name} has shape {root.shape}")
    if (value.dtype, value.layout) != (root.dtype, root.layout):
        raise IRError(f"%{value.name} ({value.dtype}, {value.layout}) lives in %{root.name} "
                      f"({root.dtype}, {root.layout}): a slice has its buffer's dtype and layout")
    if value.producer is not None and any(value is v for v in accumulated(value.producer)):
        raise IRError(f"%{value.name} is a sum accumulated in float32 and cannot live in a slice")
    same = (value.shape[0], *value.shape[2:]) == (root.shape[0], *root.shape[2:])
    if not same or slot.channel_offset < 0 or slot.channel_offset + value.shape[1] > slot.channel_stride:
        raise IRError(f"%{value.name} ({value.shape}) does not fit in {slot} of %{root.name} {root.shape}")


def _check_concat(node: Node) -> None:
    """Inputs placed in the concat's own buffer must tile it exactly; otherwise none may be."""
    base = storage_of(node.outputs[0])
    placed = [v for v in node.inputs if v.storage is not None and v.storage.buffer == base.buffer]
    if placed and not concat_is_view(node):
        raise IRError(f"{node.name}: inputs {[v.name for v in placed]} live in the concat's buffer "
                      f"%{base.buffer} but do not tile its slice {base} exactly, in order")
