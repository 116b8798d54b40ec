"""The edges of an imported graph: which nodes matter, graph inputs, weights, graph outputs.

Old exporters list every weight among the graph inputs too (before IR version 4 an
initializer had to be an input); an input that an initializer backs is a weight, a
constant of the IR, and not an input of the engine.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper

from fastcnn.errors import InputError
from fastcnn.frontend.context import Blocked, Folded, ImportContext, Unsupported
from fastcnn.frontend.converters.constants import numeric_array
from fastcnn.ir import Dim, Value

BATCH = "N"
_FLOAT_INPUTS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}
Problem = tuple[str, str, str]


def subgraph_inputs(node: onnx.NodeProto) -> Iterable[str]:
    """Every name read inside the node's subgraphs (If branches...), outer ones included."""
    for attr in node.attribute:
        for graph in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            for inner in graph.node:
                yield from inner.input
                yield from subgraph_inputs(inner)
            yield from (o.name for o in graph.output)


def live_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes some graph output depends on, in their order; the rest is never converted."""
    needed = {o.name for o in graph.output}
    live = []
    for node in reversed(list(graph.node)):
        if any(out in needed for out in node.output):
            live.append(node)
            needed.update(node.input)
            needed.update(subgraph_inputs(node))
    return live[::-1]


def used_names(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> set[str]:
    used = {o.name for o in graph.output}
    for node in nodes:
        used.update(node.input)
        used.update(subgraph_inputs(node))
    used.discard("")
    return used


def bind_inputs(ctx: ImportContext, graph: onnx.GraphProto,
                known: dict[str, np.ndarray] | None = None) -> list[Problem]:
    """Bind weights as folded constants and real inputs as IR graph inputs; list problems.

    ``known`` gives values for some graph inputs (a shape or axes that a test feeds as an
    input, say); those are constants too and leave the IR's inputs.
    """
    problems: list[Problem] = []
    weights = {t.name for t in graph.initializer}
    known = dict(known or {})
    unknown = sorted(set(known) - {vi.name for vi in graph.input} | (set(known) & weights))
    if unknown:
        raise InputError(f"known_inputs names {unknown}, which are not graph inputs "
                         f"(inputs: {[vi.name for vi in graph.input if vi.name not in weights]})")
    for tensor in graph.initializer:
        if tensor.name in ctx.used:
            try:
                ctx.env[tensor.name] = Folded(numeric_array(tensor, f"initializer {tensor.name!r}"), tensor.name)
            except Unsupported as exc:  # its readers are blocked: the problem is this one
                problems.append(("initializer", tensor.name, str(exc)))
                ctx.env[tensor.name] = Blocked(onnx.NodeProto(name=tensor.name, op_type="initializer"))
    for sparse in graph.sparse_initializer:
        if sparse.values.name in ctx.used:
            problems.append(("initializer", sparse.values.name, "sparse initializers are not supported"))
            ctx.env[sparse.values.name] = Blocked(onnx.NodeProto(name=sparse.values.name, op_type="initializer"))
    batch_params = {_first_dim_param(vi) for vi in graph.input} - {None}
    for vi in graph.input:
        if vi.name in weights:
            continue
        if vi.name in known:
            ctx.env[vi.name] = Folded(_as_declared(vi, known[vi.name]), vi.name)
            continue
        try:
            ctx.env[vi.name] = _graph_input(ctx, vi, batch_params)
        except Unsupported as exc:
            if vi.name in ctx.used:
                problems.append(("input", vi.name, str(exc)))
            ctx.env[vi.name] = Blocked(onnx.NodeProto(name=vi.name, op_type="input"))
    return problems


def _as_declared(vi: onnx.ValueInfoProto, value: np.ndarray) -> np.ndarray:
    """A known input's value in the element type the graph declares for it."""
    elem = vi.type.tensor_type.elem_type
    try:
        return np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(elem) if elem else None)
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(f"known input {vi.name!r}: {exc}") from None


def _first_dim_param(vi: onnx.ValueInfoProto) -> str | None:
    dims = vi.type.tensor_type.shape.dim
    return dims[0].dim_param if dims and dims[0].dim_param else None


def _graph_input(ctx: ImportContext, vi: onnx.ValueInfoProto, batch_params: set[str]) -> Value:
    """An IR graph input: the leading dynamic dim is the batch ``N``, others keep their names."""
    if not vi.type.HasField("tensor_type"):
        raise Unsupported(f"input {vi.name!r} is not a tensor ({vi.type.WhichOneof('value')})")
    tensor_type = vi.type.tensor_type
    if not tensor_type.HasField("shape"):
        raise Unsupported(f"input {vi.name!r} has no shape (not even a rank)")
    shape: list[Dim] = []
    for i, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        elif i == 0 or dim.dim_param in batch_params:
            shape.append(BATCH)
        else:
            shape.append(dim.dim_param or "?")
    elem = tensor_type.elem_type
    if elem not in _FLOAT_INPUTS and vi.name in ctx.used:
        raise Unsupported(f"input {vi.name!r} has type {TensorProto.DataType.Name(elem)}; "
                          "fastcnn runs float32/float16 (and float64) graphs")
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name if elem else "float32"
    return ctx.graph.add_input(vi.name, tuple(shape), dtype)


def bind_outputs(ctx: ImportContext, graph: onnx.GraphProto, outputs: list[Any]) -> list[Problem]:
    """Set the IR graph's outputs in ONNX order, each value carrying its ONNX output name."""
    problems: list[Problem] = []
    for vi, x in zip(graph.output, outputs):
        try:
            value = ctx.runtime(x, f"output {vi.name!r}")
        except Unsupported as exc:
            problems.append(("output", vi.name, str(exc)))
            continue
        ctx.graph.outputs.append(_named(ctx, value, vi.name))
    return problems


def _named(ctx: ImportContext, value: Value, name: str) -> Value:
    """``value`` renamed to ``name``, or an identity node named ``name`` where renaming cannot do."""
    if value.name == name:
        return value
    if value.producer is not None and value not in ctx.graph.outputs:
        value.name = ctx.graph.fresh_name(name)  # ``name`` itself unless an IR value took it
        return value
    node = ctx.graph.add_node("identity", [value], name=name, out_names=[name])
    return node.outputs[0]
