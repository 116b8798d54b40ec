"""The edges of an imported graph: which nodes matter, graph inputs, weights, graph outputs.

Old exporters list every weight among the graph inputs too (before IR version 4 an
initializer had to be an input); an input that an initializer backs is a weight, a
constant of the IR, and not an input of the engine.
"""
from __future__ import annotations

import keyword
import re
from typing import Any, Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper

from fastcnn.errors import InputError, InvalidModelError
from fastcnn.frontend.context import Blocked, Folded, ImportContext, Unsupported
from fastcnn.frontend.converters.constants import numeric_array
from fastcnn.ir import Dim, Graph, IRError, Node, Value

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
    symbols = InputSymbols([vi for vi in graph.input if vi.name not in weights and vi.name not in known])
    for vi in graph.input:
        if vi.name in weights:
            continue
        if vi.name in known:
            ctx.env[vi.name] = Folded(_as_declared(vi, known[vi.name]), vi.name)
            continue
        try:
            ctx.env[vi.name] = _graph_input(ctx, vi, symbols)
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


class InputSymbols:
    """The IR symbol of each dynamic dim of the graph inputs.

    The batch is ``N``: a leading dim with no name, or with the name the first named leading
    dim has. Every other ``dim_param`` keeps its name (the same name is the same size, on any
    input), made an identifier where it is not one; and every other unnamed dim gets a symbol of
    its own, ``H`` and ``W`` for a 4-D input's spatial axes (``H_2``... when taken), ``D<axis>``
    elsewhere, so that ``(N, 3, ?, ?)`` takes a 4x8 image.
    """

    def __init__(self, inputs: list[onnx.ValueInfoProto]) -> None:
        params = [[d.dim_param if not d.HasField("dim_value") or d.dim_value <= 0 else None
                   for d in vi.type.tensor_type.shape.dim] for vi in inputs if vi.type.HasField("tensor_type")]
        self.batch = next((p[0] for p in params if p and p[0]), None)
        self.taken = {BATCH} | {p for dims in params for p in dims if p}
        self.named: dict[str, str] = {}

    def symbol(self, axis: int, rank: int, param: str) -> str:
        if param and param == self.batch or not param and axis == 0:
            return BATCH
        if param:
            if param not in self.named:
                self.named[param] = param if param.isidentifier() and not keyword.iskeyword(param) \
                    and param != BATCH else self._fresh(re.sub(r"\W", "_", param).lstrip("_") or "D")
            return self.named[param]
        return self._fresh(("H", "W")[axis - 2] if rank == 4 and axis >= 2 else f"D{axis}")

    def _fresh(self, base: str) -> str:
        base = base if base.isidentifier() and not keyword.iskeyword(base) else f"D_{base}"
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


def _graph_input(ctx: ImportContext, vi: onnx.ValueInfoProto, symbols: InputSymbols) -> Value:
    """An IR graph input, its dynamic dims named by ``symbols`` (the batch is ``N``)."""
    if not vi.type.HasField("tensor_type"):
        raise Unsupported(f"input {vi.name!r} is not a tensor ({vi.type.WhichOneof('value')})")
    tensor_type = vi.type.tensor_type
    if not tensor_type.HasField("shape"):
        raise Unsupported(f"input {vi.name!r} has no shape (not even a rank)")
    shape: list[Dim] = []
    rank = len(tensor_type.shape.dim)
    for i, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        else:
            shape.append(symbols.symbol(i, rank, dim.dim_param))
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


def resolve_channels(graph: Graph) -> list[Problem]:
    """Fix each 4-D graph input's symbolic channel count from the layer that reads it, or refuse it.

    A convolution (or batch norm) that reads the input, or a value that still has the input's
    channel symbol, says how many channels it takes; the symbol becomes that number on every
    input and the shapes are inferred anew. A channel count nothing fixes is refused (an
    ``("input", name, reason)`` problem): the backends run NCHW tensors of known channels.
    """
    wanted = {v.shape[1]: v.name for v in graph.inputs
              if len(v.shape) == 4 and isinstance(v.shape[1], str) and v.shape[1].isidentifier()}
    if not wanted:
        return []
    found: dict[str, int] = {}
    for node in graph.nodes:
        x = node.inputs[0] if node.inputs else None
        if x is None or len(x.shape) != 4 or x.shape[1] not in wanted or x.shape[1] in found:
            continue
        channels = _channels_taken(node)
        if channels is not None:
            found[x.shape[1]] = channels
    reason = ("input {!r} has a symbolic channel count {!r} that no layer fixes; fastcnn needs the channel "
              "count known at load (export the model with a static one)")
    problems = [("input", name, reason.format(name, symbol)) for symbol, name in wanted.items() if symbol not in found]
    if problems or not found:
        return problems
    for value in graph.inputs:
        value.shape = tuple(found.get(d, d) if isinstance(d, str) else d for d in value.shape)
    try:
        graph.infer_shapes()
    except IRError as exc:
        raise InvalidModelError(f"the model's channel counts disagree: {exc}") from None
    return []


def _channels_taken(node: Node) -> int | None:
    """How many input channels ``node`` takes, when its weights say."""
    w = node.inputs[1] if len(node.inputs) > 1 else None
    if w is None or not all(isinstance(d, int) for d in w.shape):
        return None
    if node.op == "conv2d" and len(w.shape) == 4:
        return w.shape[1] * node.attrs.get("groups", 1)
    if node.op == "conv_transpose2d" and len(w.shape) == 4:
        return w.shape[0]
    if node.op == "batch_norm" and len(w.shape) == 1:
        return w.shape[0]
    return None
