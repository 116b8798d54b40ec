"""One converter per ONNX op type, whose signature is the op's spec.

A converter is ``fn(ctx, node, <inputs...>, *, <attributes...>)``: its positional
parameters after ``ctx`` and ``node`` are the op's inputs in ONNX order (an omitted optional
input arrives as ``None``), its keyword-only parameters are the op's attributes under their
ONNX names with the ONNX defaults. :func:`call` binds a node to it, so an attribute the
converter does not name, or more inputs than it takes, is refused with the node's name
before any conversion code runs. It returns the IR value(s) or folded arrays of the node's
outputs, in order (a bare value for one output).

Each theme module keeps its own table (``CONVERTERS = {}``, filled by ``@converter(...)``
from :func:`table_decorator`); :mod:`fastcnn.frontend.converters` merges them into one.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import onnx
from onnx import helper

from fastcnn.errors import InvalidModelError
from fastcnn.frontend.context import ImportContext, Operand, Unsupported
from fastcnn.tables import registrar

Converter = Callable[..., Any]


def table_decorator(table: dict[str, Converter]) -> Callable[..., Callable[[Converter], Converter]]:
    """A ``@converter("Conv", "ConvInteger"...)`` decorator that fills ``table``, refusing duplicates."""
    return registrar(table, "converter for ONNX op")


def merge_tables(*tables: dict[str, Converter]) -> dict[str, Converter]:
    """One table from several theme tables; an op type in two of them is a bug."""
    merged: dict[str, Converter] = {}
    for table in tables:
        for op_type, fn in table.items():
            if op_type in merged:
                raise ValueError(f"two converters for ONNX op {op_type!r}")
            merged[op_type] = fn
    return merged


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes as Python values (strings decoded, tensors kept as protos)."""
    out: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.ref_attr_name:
            raise Unsupported(f"attribute {attr.name!r} refers to a function attribute")
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", errors="replace") for v in value]
        out[attr.name] = value
    return out


@functools.lru_cache(maxsize=None)
def _signature(fn: Converter) -> tuple[int, int, bool, frozenset[str]]:
    """(required inputs, declared inputs, takes any number, attribute names) of a converter."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind == p.POSITIONAL_OR_KEYWORD][2:]  # after ctx, node
    required = sum(p.default is p.empty for p in positional)
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    return required, len(positional), variadic, frozenset(p.name for p in params if p.kind == p.KEYWORD_ONLY)


def check_declared(fn: Converter, node: onnx.NodeProto) -> None:
    """Refuse attributes ``fn`` does not name, and more inputs than it takes."""
    _, declared, variadic, accepted = _signature(fn)
    unknown = sorted({a.name for a in node.attribute} - accepted)
    if unknown:
        raise Unsupported(f"attribute{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                          f"not supported")
    given = len(node.input)
    while given and not node.input[given - 1]:  # trailing "" are omitted optional inputs
        given -= 1
    if not variadic and given > declared:
        raise Unsupported(f"takes at most {declared} inputs, got {given}")


def call(fn: Converter, ctx: ImportContext, node: onnx.NodeProto, inputs: list[Operand]) -> Any:
    """Run converter ``fn`` on ``node``, refusing attributes and inputs it does not declare."""
    check_declared(fn, node)
    required = _signature(fn)[0]
    attrs = attributes(node)
    if len(inputs) < required or any(x is None for x in inputs[:required]):
        raise InvalidModelError(f"node {node.name!r} ({node.op_type}) needs {required} inputs, "
                                f"got {len([x for x in inputs if x is not None])}")
    return fn(ctx, node, *inputs, **attrs)
