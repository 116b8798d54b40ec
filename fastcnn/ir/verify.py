"""The IR verifier: run after import and after every rewrite.

It checks what a rewrite can break: every node follows its op's schema and its outputs
still have the shapes that schema infers, each value is defined before it is used (so the
node list is in topological order and acyclic), and use lists match the inputs.
"""
from __future__ import annotations

from fastcnn.ir.graph import Graph
from fastcnn.ir.ops import IRError, infer


def verify(graph: Graph) -> None:
    """Raise :class:`IRError` naming the first broken invariant of ``graph``."""
    defined = {id(v) for v in graph.inputs}
    names: set[str] = set()
    for node in graph.nodes:
        for i, value in enumerate(node.inputs):
            if value is None or value.is_const:
                continue
            if id(value) not in defined:
                raise IRError(f"{node.name}: input {i} (%{value.name}) is used before it is "
                              "defined (the graph is not in topological order, or has a cycle)")
            if node not in value.users:
                raise IRError(f"{node.name}: missing from the use list of %{value.name}")
        specs = infer(node)
        for out, (shape, dtype) in zip(node.outputs, specs, strict=True):
            if out.producer is not node:
                raise IRError(f"{node.name}: output %{out.name} names another producer")
            if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
                raise IRError(f"{node.name}: output %{out.name} is {out.dtype}{out.shape}, "
                              f"the op gives {dtype}{shape}")
            if out.name in names:
                raise IRError(f"{node.name}: value name %{out.name} is defined twice")
            names.add(out.name)
            defined.add(id(out))
    for value in graph.values():
        for user in value.users:
            if value not in user.inputs:
                raise IRError(f"%{value.name} lists {user.name} as a user that does not use it")
    for value in graph.outputs:
        if not value.is_const and id(value) not in defined:
            raise IRError(f"graph output %{value.name} is never defined")
