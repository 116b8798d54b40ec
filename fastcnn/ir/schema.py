"""How an op is described: its number of inputs, its typed attributes, its shape function.

Every attribute has a spec (:class:`Attr`): the types it may take, a default when it may
be left out, and the values allowed. A node gets its defaults filled in when it is made
(:func:`fastcnn.ir.op_table.with_defaults`), so ``node.attrs`` is always complete and a
backend never guesses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from fastcnn.ir.core import Node, Shape
from fastcnn.tables import registrar

Spec = tuple[Shape, str]  # an output's (shape, dtype)
REQUIRED = object()  # the default of an attribute that must be given


class IRError(ValueError):
    """A node that breaks its op's schema; the importer turns it into a fastcnn error."""


@dataclass(frozen=True)
class Attr:
    """One attribute's spec: the types it may take, its default, and the values allowed."""

    kind: type | tuple[type, ...]
    default: Any = REQUIRED
    choices: tuple[Any, ...] = ()

    def check(self, node: Node, key: str) -> None:
        value = node.attrs[key]
        if not isinstance(value, self.kind):
            raise IRError(f"{node.name}: attribute {key!r} of {node.op} must be {self.kind}, got {value!r}")
        if self.choices and value not in self.choices:
            raise IRError(f"{node.name}: attribute {key!r} of {node.op} must be one of {self.choices}, "
                          f"got {value!r}")


@dataclass(frozen=True)
class OpSchema:
    name: str
    num_inputs: tuple[int, int]  # (minimum, maximum); maximum -1 means any number
    attrs: dict[str, Attr] = field(default_factory=dict)
    infer: Callable[[Node], list[Spec]] | None = None


def _schema(name: str, infer_fn: Callable[[Node], list[Spec]], inputs: tuple[int, int],
            **attrs: Attr | type | tuple[type, ...]) -> OpSchema:
    """The schema of op ``name``: an attribute given as a bare type is required."""
    return OpSchema(name, inputs, {k: v if isinstance(v, Attr) else Attr(v) for k, v in attrs.items()}, infer_fn)


def schema_table() -> tuple[dict[str, OpSchema], Callable[..., Any]]:
    """A new op table and its decorator, ``@op(name, inputs=(low, high), **attrs)`` over a shape
    function (``op(name, inputs=...)(fn)`` for a function used by several ops); filled through
    the shared registrar, which refuses an op defined twice."""
    table: dict[str, OpSchema] = {}
    return table, registrar(table, "op", build=_schema)
