"""The plan: the launches an engine makes for a graph at one batch size, and its memory.

:func:`make_plan` specializes the graph to the batch, then lists one :class:`Launch` per node
that is not a view (reshape, flatten, identity, dropout and concats already laid out in their
buffer run no kernel): what it computes, the ONNX nodes it covers, where its operands live
(from :func:`fastcnn.runtime.memory.plan_memory`), its FLOPs and the bytes it must move at
least (:mod:`fastcnn.ir.cost`). A zeroed workspace adds one memset launch at the start of
each run. A backend that runs some nodes as torch ops inside its plan (the Triton backend, for
ops it has no kernel for) says which through a hook, and those launches read ``torch:<op>``.
`fastcnn plan MODEL` prints :meth:`Plan.format_table`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from fastcnn.errors import InputError
from fastcnn.ir import Graph, Node, Value, dims
from fastcnn.ir.cost import is_view, node_bytes, node_flops
from fastcnn.ir.fused_ops import CONV_RESIDUAL, CONV_SCALE, POOL_SCALE, operand
from fastcnn.runtime.memory import ACCUMULATOR_ITEMSIZE, MemoryPlan, WorkspaceHook, no_workspace, plan_memory

# Symbolic input dims bound to the batch size; any other symbol makes the plan refuse.
BATCH_SYMBOLS = frozenset({"n", "b", "batch", "batch_size", "batchsize", "bs"})

# node -> why a backend runs it as a torch op inside its plan, or None (it runs a kernel).
TorchOpHook = Callable[[Node], "str | None"]


def no_torch_ops(node: Node) -> str | None:
    return None


@dataclass(frozen=True)
class Operand:
    """A tensor a launch reads or writes, and where it lives: ``region`` is ``"arena"`` or
    ``"workspace"`` (``buffer`` is a :class:`~fastcnn.runtime.memory.Buffer` id, ``offset``
    its byte offset there), or ``"input"`` or ``"constant"`` (``buffer`` names the graph
    input or weight it is a view of; no offset).
    ``channels`` is ``(start, stop, of)`` when the value is a channel slice of its buffer."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    region: str
    buffer: str
    offset: int | None = None
    channels: tuple[int, int, int] | None = None

    def __str__(self) -> str:
        where = self.buffer if self.offset is None else f"{self.buffer}@0x{self.offset:x}"
        if self.channels is not None:
            where += "[c{}:{}/{}]".format(*self.channels)
        return f"{'x'.join(map(str, self.shape))} {where}"

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "region": self.region,
               "buffer": self.buffer}
        if self.offset is not None:
            out["offset"] = self.offset
        if self.channels is not None:
            out["channels"] = list(self.channels)
        return out


@dataclass(frozen=True)
class Launch:
    """One kernel launch. ``op`` describes it (``fused_conv2d[relu+res+relu]``, or
    ``torch:conv_transpose2d`` for a node run as a torch op), ``kind`` is the IR op; ``step`` is
    its step in the memory plan (None for the workspace memset); ``torch_op`` says why the node
    runs as a torch op (None: a kernel runs it)."""

    index: int
    op: str
    kind: str
    node: str
    sources: tuple[str, ...]
    inputs: tuple[Operand, ...]
    outputs: tuple[Operand, ...]
    flops: int
    bytes: int
    step: int | None
    torch_op: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"index": self.index, "op": self.op, "kind": self.kind, "node": self.node,
               "sources": list(self.sources), "inputs": [o.to_dict() for o in self.inputs],
               "outputs": [o.to_dict() for o in self.outputs], "flops": self.flops, "bytes": self.bytes,
               "step": -1 if self.step is None else self.step}
        if self.torch_op is not None:
            out["torch_op"] = self.torch_op
        return out


@dataclass(frozen=True)
class Totals:
    launches: int
    flops: int
    bytes_moved: int
    peak_bytes: int  # activation memory: arena + zeroed workspace
    naive_bytes: int  # every buffer its own allocation
    lower_bound_bytes: int  # the most bytes alive at one step

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """The launches of ``name`` at ``batch`` in ``dtype``, their memory plan, and totals."""

    name: str
    batch: int
    dtype: str
    launches: tuple[Launch, ...]
    memory: MemoryPlan
    totals: Totals

    def format_table(self) -> str:
        return format_table(self)

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON types (dicts, lists, ints, strings)."""
        return {"name": self.name, "batch": self.batch, "dtype": self.dtype,
                "launches": [launch.to_dict() for launch in self.launches],
                "memory": self.memory.to_dict(), "totals": self.totals.to_dict()}


def make_plan(graph: Graph, batch: int = 1, *, name: str | None = None,
              workspace: WorkspaceHook = no_workspace, torch_ops: TorchOpHook = no_torch_ops) -> Plan:
    """The plan of ``graph`` (already rewritten by the passes it will run with) at ``batch``.

    Args:
        name: the model's name for the report (default: the graph's).
        workspace: what each launch needs besides its outputs (a backend's hook, see
            :mod:`fastcnn.runtime.memory`).
        torch_ops: which nodes the backend runs as torch ops, and why (a backend's hook).
    Raises:
        InputError: ``batch`` below 1, a graph input with a symbolic dim that is not a batch,
            or a graph whose fixed batch is not ``batch``.
    """
    static = specialize_batch(graph, batch)
    memory = plan_memory(static, workspace)
    launches = []
    if memory.workspace_bytes:
        words = (memory.workspace_bytes // ACCUMULATOR_ITEMSIZE,)
        area = Operand("workspace", words, "float32", "workspace", "workspace", 0)
        launches.append(Launch(0, "memset", "memset", "", (), (), (area,), 0, memory.workspace_bytes, None))
    inputs = frozenset(v.name for v in static.inputs)
    for step, node in enumerate(n for n in static.nodes if not is_view(n)):
        launches.append(_launch(len(launches), step, node, memory, inputs, torch_ops(node)))
    totals = Totals(len(launches), sum(x.flops for x in launches), sum(x.bytes for x in launches),
                    memory.peak_bytes, memory.naive_bytes, memory.lower_bound_bytes)
    return Plan(name or graph.name, batch, _dtype(static), tuple(launches), memory, totals)


def specialize_batch(graph: Graph, batch: int) -> Graph:
    """A static copy of ``graph`` with its batch dims bound to ``batch``; see :func:`make_plan`."""
    if batch < 1:
        raise InputError(f"the batch size must be at least 1, got {batch}")
    symbols: set[str] = set()
    for value in graph.inputs:
        for dim in value.shape:
            parts = set(dims.symbols(dim))
            others = sorted(p for p in parts if p.lower() not in BATCH_SYMBOLS)
            if others:
                raise InputError(f"cannot plan {graph.name!r}: input %{value.name} has shape {value.shape}, "
                                 f"whose dim {others[0]!r} is not a batch size; a plan needs every "
                                 "size but the batch fixed (export the model with a static input size)")
            symbols |= parts
    fixed = [v.shape[0] for v in graph.inputs if v.shape and isinstance(v.shape[0], int)]
    if not symbols and fixed and fixed[0] != batch:
        raise InputError(f"cannot plan {graph.name!r} at batch {batch}: its inputs have a fixed batch "
                         f"of {fixed[0]}")
    return graph.specialize(**{s: batch for s in symbols})


def _dtype(graph: Graph) -> str:
    values = [*graph.inputs, *graph.outputs]
    return values[0].dtype if values else "float32"


# -- rows -----------------------------------------------------------------------------------
def _launch(index: int, step: int, node: Node, memory: MemoryPlan, inputs: frozenset[str],
            torch_op: str | None) -> Launch:
    reads = {id(v): v for v in node.inputs if v is not None and not v.is_const}.values()
    op = describe(node) if torch_op is None else f"torch:{describe(node)}"
    return Launch(index, op, node.op, node.name, node.sources or (node.name,),
                  tuple(_operand(v, memory, inputs) for v in reads),
                  tuple(_operand(v, memory, inputs) for v in node.outputs),
                  node_flops(node), node_bytes(node), step, torch_op)


def _operand(value: Value, memory: MemoryPlan, inputs: frozenset[str]) -> Operand:
    shape = tuple(int(d) for d in value.shape)
    slot = value.storage
    channels = None if slot is None else (slot.channel_offset, slot.channel_offset + shape[1], slot.channel_stride)
    buffer = memory.buffer_of(value.name)
    if buffer is None:
        root = memory.external.get(value.name, value.name)
        return Operand(value.name, shape, value.dtype, "input" if root in inputs else "constant", root)
    region = "workspace" if buffer.zeroed else "arena"
    return Operand(value.name, shape, value.dtype, region, buffer.id, buffer.offset, channels)


def describe(node: Node) -> str:
    """The op with what it fuses, in the order it applies; a prologue ends in ``>``:
    ``fused_conv2d[bn+relu>relu+res+relu]`` is a channel affine and a ReLU on the input, then
    the convolution, a ReLU, the residual add and a ReLU."""
    attrs = node.attrs
    scale_at = {"fused_conv2d": CONV_SCALE, "fused_pool": POOL_SCALE}.get(node.op)
    prologue = [name for name, present in (("bn", scale_at is not None and operand(node, scale_at) is not None),
                                           ("relu", attrs.get("prologue_relu", False))) if present]
    epilogue = [attrs["mode"]] if node.op == "fused_pool" else []
    if len(attrs.get("out_splits", ())) > 1:
        epilogue.append(f"split{len(attrs['out_splits'])}")
    if attrs.get("activation", "none") != "none":
        epilogue.append(attrs["activation"])
    residual_at = {"fused_conv2d": CONV_RESIDUAL, "se_scale": 2}.get(node.op)
    if residual_at is not None and operand(node, residual_at) is not None:
        epilogue.append("res")
    if attrs.get("post_activation", "none") != "none":
        epilogue.append(attrs["post_activation"])
    if attrs.get("pooled_output"):
        epilogue.append("pool")
    text = "+".join(prologue) + (">" if prologue else "") + "+".join(epilogue)
    return f"{node.op}[{text}]" if text else node.op


# -- the table ------------------------------------------------------------------------------
def format_table(plan: Plan) -> str:
    """One row per launch, then totals and the memory plan, in `fastcnn summary`'s style."""
    header = ("#", "op", "onnx nodes", "inputs", "outputs", "FLOPs", "bytes")
    body = [(str(x.index), x.op, _sources(x.sources), ", ".join(map(str, x.inputs)),
             ", ".join(map(str, x.outputs)), f"{x.flops:,}", f"{x.bytes:,}") for x in plan.launches]
    t = plan.totals
    footer = [("", "total", f"{t.launches} launches", "", "", f"{t.flops:,}", f"{t.bytes_moved:,}")]
    widths = [max(len(row[i]) for row in [header, *body, *footer]) for i in range(len(header))]
    right = (True, False, False, False, False, True, True)

    def line(row: tuple[str, ...]) -> str:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    m = plan.memory
    workspace = f" + zeroed workspace {_size(m.workspace_bytes)}" if m.workspace_bytes else ""
    memory = (f"activation memory: peak {_size(m.peak_bytes)} (arena {_size(m.arena_bytes)} in "
              f"{len(m.buffers)} buffers{workspace}), naive sum {_size(m.naive_bytes)}, "
              f"lower bound {_size(m.lower_bound_bytes)}")
    return "\n".join([line(header), rule, *map(line, body), rule, *map(line, footer), memory])


def _sources(sources: tuple[str, ...]) -> str:
    """Every ONNX node a launch covers, their common path said once:
    ``/layer1/layer1.0/{conv3/Conv, Add, relu_2/Relu}``."""
    if len(sources) <= 1:
        return "".join(sources)
    parts = [s.split("/") for s in sources]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    prefix = "/".join(parts[0][:common])
    rests = ", ".join("/".join(p[common:]) for p in parts)
    return f"{prefix}/{{{rests}}}" if common else rests


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
