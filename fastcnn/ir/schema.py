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


def schema_table():
    """A new op table with its two ways in: ``define(name, inputs, shape_fn, **attrs)`` and the
    decorator ``@op(name, inputs, **attrs)`` over a shape function. An attribute given as a
    bare type is required; an op defined twice is refused."""
    table: dict[str, OpSchema] = {}

    def define(name: str, num_inputs: tuple[int, int], infer_fn: Callable[[Node], list[Spec]],
               **attrs: Attr | type | tuple[type, ...]) -> None:
        if name in table:
            raise ValueError(f"op {name!r} defined twice")
        specs = {k: v if isinstance(v, Attr) else Attr(v) for k, v in attrs.items()}
        table[name] = OpSchema(name, num_inputs, specs, infer_fn)

    def op(name: str, num_inputs: tuple[int, int], **attrs: Attr | type | tuple[type, ...]):
        def decorator(fn: Callable[[Node], list[Spec]]):
            define(name, num_inputs, fn, **attrs)
            return fn

        return decorator

    return table, op, define
