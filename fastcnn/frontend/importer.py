"""ONNX -> fastcnn IR: :func:`import_onnx`.

The walk is one pass over the nodes in their (topological) order. For each node:

1. a node that depends on an unconvertible node is not converted (its outputs are
   :class:`Blocked`), but its op type and attributes are still checked;
2. a node whose inputs are all known is folded (:mod:`fastcnn.frontend.folding`);
3. otherwise its converter from :data:`CONVERTERS` emits IR nodes or returns folded arrays.

Problems are collected, not raised, so that one :class:`UnsupportedModelError` names every
op and attribute in the way, each with its node. Only problems some graph output depends on
are reported: a branch made dead by a recognised pattern does not count.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import onnx

from fastcnn.errors import FastCNNError, InvalidModelError, UnsupportedModelError
from fastcnn.frontend.context import Blocked, Folded, ImportContext, StandIn, Unsupported
from fastcnn.frontend.converters import CONVERTERS
from fastcnn.frontend.converters.constants import numeric_array
from fastcnn.frontend.folding import SHAPE_ARITHMETIC, FoldBudget, fold
from fastcnn.frontend.graph_io import bind_inputs, bind_outputs, live_nodes, resolve_channels, used_names
from fastcnn.frontend.patterns import PATTERNS
from fastcnn.frontend.prepare import DEFAULT_DOMAINS, check_shapes, default_opset, upgrade
from fastcnn.frontend.registry import call, check_declared
from fastcnn.frontend.symbolic import simplify
from fastcnn.ir import Graph, IRError, verify

Problem = tuple[str, str, str]  # (op type, node name, reason)


def node_label(node: onnx.NodeProto) -> str:
    """A node's name, or a stand-in naming its first output when it has none."""
    return node.name or f"<unnamed {node.op_type} -> {node.output[0] if node.output else '?'}>"


class _Walk:
    """One import: the context plus the problems found so far, keyed by node."""

    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        # id(node) -> (order found, problem, node); holding the node keeps its id unique.
        self.problems: dict[int, tuple[int, Problem, onnx.NodeProto]] = {}
        ctx.inline = self.inline

    def problem(self, node: onnx.NodeProto, reason: str) -> None:
        self.problems.setdefault(id(node), (len(self.problems), (node.op_type, node_label(node), reason), node))

    def run(self, nodes: Iterable[onnx.NodeProto]) -> None:
        for node in nodes:
            self.ctx.node = node
            inputs = [self.ctx.operand(name) for name in node.input]
            outputs = self.convert(node, inputs)
            for name, out in zip(node.output, outputs):
                if name:
                    if name in self.ctx.env:
                        raise InvalidModelError(f"{name!r} is defined twice (node {node_label(node)!r})")
                    self.ctx.env[name] = out
        self.ctx.node = None

    def inline(self, branch: onnx.GraphProto) -> list[Any]:
        """Convert an If's taken branch in the current scope and return its outputs.

        A branch that defines (as an initializer or a node output) a name the outer graph
        also defines is refused: ONNX wants names unique across a graph and its subgraphs,
        and runtimes disagree on which value such a name means (onnxruntime reads the
        outer weight ``W`` where the branch has its own ``W``), so any answer could be wrong.
        """
        outer = self.ctx.node
        clash = sorted(set(_local_names(branch)) & (set(self.ctx.env) | set(self.ctx.producers)))
        if clash:
            raise InvalidModelError(f"node {node_label(outer)!r} (If): its branch {branch.name!r} redefines "
                                    f"{clash[:5]}, also defined outside it; ONNX names must be unique across "
                                    "a graph and its subgraphs, and runtimes disagree on which one a reader sees")
        for tensor in branch.initializer:
            array = numeric_array(tensor, f"initializer {tensor.name!r}")
            self.ctx.env[tensor.name] = Folded(array, tensor.name)
        if len(branch.sparse_initializer):
            raise Unsupported("a branch has sparse initializers, which fastcnn does not support")
        self.run(list(branch.node))
        self.ctx.node = outer
        results = [self.ctx.operand(o.name) for o in branch.output]
        for name in _local_names(branch):  # the branch's names end with it (a later If may reuse them)
            self.ctx.env.pop(name, None)
        return results

    # -- one node -----------------------------------------------------------------------
    def convert(self, node: onnx.NodeProto, inputs: list[Any]) -> list[Any]:
        pattern = PATTERNS.get(node.op_type) if node.domain in DEFAULT_DOMAINS else None
        matched = pattern(self.ctx, node) if pattern is not None else None
        if matched is not None:
            return [matched]
        blocked = tuple(x for x in inputs if isinstance(x, Blocked))
        if blocked:
            self.check_blocked(node, inputs)
            return [Blocked(node, blocked)] * len(node.output)
        if node.domain not in DEFAULT_DOMAINS:
            return self.refuse(node, f"operator domain {node.domain!r} is not supported")
        present = [x for x in inputs if x is not None]
        if present and all(isinstance(x, Folded) for x in present):
            arrays = [x.array if isinstance(x, Folded) else None for x in inputs]
            folded = fold(node, arrays, self.ctx.opset, self.ctx.fold_budget)
            if folded is not None:
                return [Folded(simplify(a), name) for a, name in zip(folded, node.output)]
        fn = CONVERTERS.get(node.op_type)
        if fn is None:
            return self.refuse(node, _no_converter_reason(node, present))
        try:
            result = call(fn, self.ctx, node, inputs)
        except Unsupported as exc:
            return self.refuse(node, str(exc))
        except FastCNNError:
            raise
        except IRError as exc:
            raise InvalidModelError(f"node {node_label(node)!r} ({node.op_type}): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a malformed node must not crash the import
            raise InvalidModelError(f"node {node_label(node)!r} ({node.op_type}) could not be "
                                    f"imported: {type(exc).__name__}: {exc}") from exc
        return self.outputs(node, result)

    def check_blocked(self, node: onnx.NodeProto, inputs: list[Any]) -> None:
        """Find the problems of a node whose inputs are blocked, so the error lists them too.

        Its op type and attribute names are checked; then, where onnx's shape inference knows
        the blocked inputs' types, the converter runs on stand-ins for them into a scratch
        graph, which finds refused attribute values (a pad mode, a dilation...).
        """
        fn = CONVERTERS.get(node.op_type)
        if node.domain not in DEFAULT_DOMAINS:
            self.problem(node, f"operator domain {node.domain!r} is not supported")
        elif fn is None and node.op_type not in SHAPE_ARITHMETIC:
            self.problem(node, f"op {node.op_type} is not supported")
        elif fn is not None:
            try:
                check_declared(fn, node)
                self.probe(fn, node, inputs)
            except Unsupported as exc:
                self.problem(node, str(exc))

    def probe(self, fn: Any, node: onnx.NodeProto, inputs: list[Any]) -> None:
        """Run converter ``fn`` on stand-ins for blocked inputs; only Unsupported escapes."""
        types = self.ctx.onnx_types
        if node.op_type == "If" or any(isinstance(x, Blocked) and n not in types
                                        for x, n in zip(inputs, node.input)):
            return
        stand_ins = [StandIn(n, *types[n]) if isinstance(x, Blocked) else x for x, n in zip(inputs, node.input)]
        unmade = [x for x in inputs if isinstance(x, Folded) and x.value is None]
        graph, self.ctx.graph = self.ctx.graph, Graph("probe")
        try:
            call(fn, self.ctx, node, stand_ins)
        except Unsupported:
            raise
        except Exception:  # noqa: BLE001 - NeedsBlockedValue and the like: nothing about the node
            pass
        finally:
            self.ctx.graph = graph
            for folded in unmade:  # constants made in the scratch graph are not the real graph's
                folded.value = None

    def refuse(self, node: onnx.NodeProto, reason: str) -> list[Any]:
        self.problem(node, reason)
        return [Blocked(node)] * len(node.output)

    def outputs(self, node: onnx.NodeProto, result: Any) -> list[Any]:
        """A converter's result as one operand per node output (arrays become Folded)."""
        results = list(result) if isinstance(result, (list, tuple)) else [result]
        out = []
        for i, name in enumerate(node.output):
            if i < len(results):
                r = results[i]
                out.append(Folded(simplify(r), name) if isinstance(r, np.ndarray) else r)
            elif self.ctx.is_used(name):
                return self.refuse(node, f"output {i} ({name!r}) is not supported")
            else:
                out.append(None)
        return out

    def report(self, outputs: list[Any], extra: list[Problem]) -> None:
        """Raise one UnsupportedModelError for every problem a graph output depends on."""
        found: dict[int, tuple[int, Problem, onnx.NodeProto]] = {}
        seen: set[int] = set()
        stack = [x for x in outputs if isinstance(x, Blocked)]
        while stack:
            b = stack.pop()
            if id(b) in seen:
                continue
            seen.add(id(b))
            if id(b.node) in self.problems:
                found[id(b.node)] = self.problems[id(b.node)]
            stack.extend(b.upstream)
        problems = extra + [p for _, p, _ in sorted(found.values(), key=lambda f: f[0])]
        if problems:
            lines = "\n".join(f"  - {op} {name!r}: {reason}" for op, name, reason in problems)
            raise UnsupportedModelError(
                f"the model uses {len(problems)} op(s) or attribute(s) fastcnn cannot run:\n{lines}",
                problems)


def _local_names(graph: onnx.GraphProto) -> list[str]:
    """The names a (sub)graph defines itself: inputs, initializers, node outputs."""
    return [*(i.name for i in graph.input), *(t.name for t in graph.initializer),
            *(t.values.name for t in graph.sparse_initializer),
            *(o for node in graph.node for o in node.output if o)]


def _no_converter_reason(node: onnx.NodeProto, present: list[Any]) -> str:
    if not present:
        return f"op {node.op_type} is not supported"
    if not all(isinstance(x, Folded) for x in present):
        return f"op {node.op_type} is not supported on run-time values"
    if any(x.symbolic for x in present):
        return (f"op {node.op_type} computes with the run-time batch size in a way that cannot be "
                "folded at import time")
    return f"op {node.op_type} could not be evaluated at import time"


def import_onnx(model: onnx.ModelProto, known_inputs: dict[str, np.ndarray] | None = None) -> Graph:
    """Convert a (checked) ONNX model into a verified fastcnn IR graph.

    ``known_inputs`` optionally fixes the values of some graph inputs (shapes, axes or pads
    fed as inputs, as ONNX's node tests do); they are folded like initializers.

    Raises:
        UnsupportedModelError: listing every unsupported op/attribute with its node name.
        InvalidModelError: a malformed graph (undefined names, inconsistent shapes, ...).
        InputError: ``known_inputs`` naming something that is not a graph input.
    """
    if not isinstance(model, onnx.ModelProto):
        raise InvalidModelError(f"import_onnx takes an onnx.ModelProto, got {type(model).__name__}")
    model = upgrade(model)
    types = check_shapes(model)
    graph = Graph(model.graph.name or "graph")
    ctx = ImportContext(graph, default_opset(model), onnx_types=types, fold_budget=FoldBudget.for_model(model))
    nodes = live_nodes(model.graph)
    ctx.used = used_names(model.graph, nodes)
    ctx.producers = {out: node for node in nodes for out in node.output if out}
    extra = bind_inputs(ctx, model.graph, known_inputs)
    walk = _Walk(ctx)
    walk.run(nodes)
    outputs = [ctx.operand(o.name) for o in model.graph.output]
    walk.report(outputs, extra)
    extra = bind_outputs(ctx, model.graph, outputs)
    walk.report([], extra)
    graph.remove_dead_nodes()
    walk.report([], resolve_channels(graph))
    try:
        verify(graph)
    except IRError as exc:
        raise InvalidModelError(f"the imported graph does not verify: {exc}") from None
    return graph
