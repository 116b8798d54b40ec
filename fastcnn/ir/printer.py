"""A readable text dump of a graph, one node per line, for debugging and tests.

Annotations show after a value's type: ``in cat_3[64:+/256]`` for a channel slice of a
concat buffer (:class:`~fastcnn.ir.core.Storage`), ``NHWC`` for a layout other than NCHW.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastcnn.ir.core import Value

if TYPE_CHECKING:
    from fastcnn.ir.graph import Graph


def _value(v: Value | None) -> str:
    if v is None:
        return "_"
    return f"%{v.name}" if not v.is_const else f"@{v.name}"


def _type(v: Value) -> str:
    text = f"{v.dtype}[{', '.join(map(str, v.shape))}]"
    if v.layout != "NCHW":
        text += f" {v.layout}"
    if v.storage is not None:
        text += f" in {v.storage}"
    return text


def _attr(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_attr, value)) + ")"
    return repr(value)


def dump(graph: "Graph") -> str:
    lines = [f"graph {graph.name}("
             + ", ".join(f"%{v.name}: {_type(v)}" for v in graph.inputs) + ") {"]
    for c in graph.constants():
        lines.append(f"  @{c.name}: {_type(c)}")
    for node in graph.nodes:
        outs = ", ".join(f"%{o.name}: {_type(o)}" for o in node.outputs)
        attrs = ", ".join(f"{k}={_attr(v)}" for k, v in node.attrs.items())
        args = ", ".join(_value(v) for v in node.inputs)
        covers = f" <- {', '.join(node.sources)}" if node.sources and node.sources != (node.name,) else ""
        lines.append(f"  {outs} = {node.op}({args}){' {' + attrs + '}' if attrs else ''}  # {node.name}{covers}")
    lines.append("  return " + ", ".join(_value(v) for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines)
