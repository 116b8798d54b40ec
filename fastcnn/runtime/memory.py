"""Activation memory: buffers placed by lifetime in one arena, and a zeroed workspace.

A *step* is one launch: the graph's nodes that are not views (:func:`fastcnn.ir.cost.is_view`),
numbered 0, 1, ... in graph order, which the planner never changes.

Buffers. Every activation value a launch writes lives in one buffer, named by its root:

- a value with :class:`~fastcnn.ir.core.Storage` lives in ``storage.buffer``, so a concat's
  buffer is one allocation holding all its slices;
- the output of a view (reshape, flatten, identity, dropout, a concat that is a view) lives
  where its input does;
- any other value is a buffer of its own.

Graph inputs and constants belong to the caller and are not in the arena, nor are views of
them. A buffer is alive from the first step writing any of its values to the last step
reading any of them, both included (graph outputs: to the last step), so a kernel never
writes over what it reads. Two buffers alive at one step must not overlap.

Zeroed workspace. A ``fused_conv2d`` with ``pooled_output`` accumulates its ``(N, C, 1, 1)``
pooled output as float32 sums by atomic adds, so that value must hold zeros when each run
starts. All such values get a slot of their own (float32-sized, whatever the graph's dtype)
in a workspace region that one memset clears at the start of every run; no slot is reused.
A backend may ask for more per launch through a :data:`WorkspaceHook` (split-K partial
sums): a zeroed request takes a workspace slot, any other is scratch in the arena, alive
during its launch only.

Placement: buffers largest first (ties by first step, then name), each at the lowest
256-byte-aligned offset where it overlaps no placed buffer alive at a common step. Reported
sizes, each including the workspace: the *peak* (arena + workspace), the *naive sum* (every
buffer its own 256-byte-aligned allocation, which greedy placement never exceeds) and the
*lower bound* (the largest total size of buffers alive at one step, which no placement of
these buffers in one arena beats).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastcnn.ir import Graph, Node, Value
from fastcnn.ir.cost import accumulated, is_view, nbytes, numel

ALIGNMENT = 256
ACCUMULATOR_ITEMSIZE = 4  # the pooled sums are float32


class MemoryPlanError(AssertionError):
    """A memory plan breaks its invariant: a bug in the planner (or a plan edited by hand)."""


@dataclass(frozen=True)
class WorkspaceRequest:
    """Memory a launch needs besides its outputs. ``zeroed``: the kernel accumulates into it,
    so it must hold zeros when each run starts (a slot in the zeroed workspace); otherwise it
    is scratch in the arena, alive during that launch only."""

    name: str
    nbytes: int
    zeroed: bool = False


# What a backend needs per launch besides the graph's values (the Triton backend's hook).
WorkspaceHook = Callable[[Node], Sequence[WorkspaceRequest]]


def no_workspace(node: Node) -> Sequence[WorkspaceRequest]:
    return ()


@dataclass(frozen=True)
class Buffer:
    """One allocation: ``id`` is ``b0, b1...`` in the arena, ``w0, w1...`` in the zeroed
    workspace (numbered by first step); ``root`` names the value (or workspace request) it
    is; ``values`` are the activation values living in it; ``offset`` is in its region."""

    id: str
    root: str
    nbytes: int
    first: int
    last: int
    offset: int
    values: tuple[str, ...] = ()
    zeroed: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.nbytes

    def alive_with(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "root": self.root, "nbytes": self.nbytes, "offset": self.offset,
                "first": self.first, "last": self.last, "values": list(self.values)}


@dataclass(frozen=True)
class MemoryPlan:
    """Where every activation value of a static graph lives; see the module docstring."""

    buffers: tuple[Buffer, ...]  # the arena's, by first step
    workspace: tuple[Buffer, ...]  # the zeroed workspace's
    arena_bytes: int
    workspace_bytes: int
    naive_bytes: int
    lower_bound_bytes: int
    steps: int
    external: Mapping[str, str] = field(default_factory=dict, repr=False)  # value -> input/constant
    _where: dict[str, Buffer] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = {v: b for b in (*self.buffers, *self.workspace) for v in b.values}
        object.__setattr__(self, "_where", where)

    @property
    def peak_bytes(self) -> int:
        return self.arena_bytes + self.workspace_bytes

    def buffer_of(self, value: str) -> Buffer | None:
        """The buffer holding the activation value named ``value``; None for the caller's
        tensors (graph inputs, constants, views of them: see :attr:`external`)."""
        return self._where.get(value)

    def request(self, node: str, name: str) -> Buffer:
        """Where the :class:`WorkspaceRequest` ``name`` of launch ``node`` was placed."""
        root = f"{node}:{name}"
        return next(b for b in (*self.buffers, *self.workspace) if b.root == root)

    def to_dict(self) -> dict[str, Any]:
        return {"alignment": ALIGNMENT, "peak_bytes": self.peak_bytes, "arena_bytes": self.arena_bytes,
                "workspace_bytes": self.workspace_bytes, "naive_bytes": self.naive_bytes,
                "lower_bound_bytes": self.lower_bound_bytes, "steps": self.steps,
                "buffers": [b.to_dict() for b in self.buffers],
                "workspace": [b.to_dict() for b in self.workspace]}


def align(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


# -- collecting the buffers --------------------------------------------------------------
@dataclass
class _Item:
    root: str
    nbytes: int
    zeroed: bool
    first: int = -1  # -1 until a launch touches it
    last: int = -1
    values: list[str] = field(default_factory=list)

    def touch(self, step: int) -> None:
        self.first = step if self.first < 0 else min(self.first, step)
        self.last = max(self.last, step)


def is_accumulated(value: Value) -> bool:
    """Whether ``value`` is a pooled output that its kernel sums into by atomic adds."""
    return value.producer is not None and any(value is v for v in accumulated(value.producer))


class _Roots:
    """The value whose allocation each value lives in (see the module docstring)."""

    def __init__(self, graph: Graph) -> None:
        self.by_name = {v.name: v for v in graph.values()}
        self.external = {id(v) for v in graph.inputs}
        self._memo: dict[int, Value] = {}

    def __call__(self, value: Value) -> Value:
        if id(value) not in self._memo:
            node = value.producer
            if value.storage is not None:
                root = self(self.by_name[value.storage.buffer])
            elif node is not None and is_view(node) and node.op != "concat":
                root = self(node.inputs[0])
            else:
                root = value
            self._memo[id(value)] = root
        return self._memo[id(value)]

    def is_external(self, root: Value) -> bool:
        return root.is_const or id(root) in self.external


def _collect(graph: Graph, workspace: WorkspaceHook) -> tuple[list[_Item], dict[str, str], int]:
    """The buffers with their lifetimes, the caller's values by root, and the step count."""
    roots = _Roots(graph)
    items: dict[str, _Item] = {}
    external: dict[str, str] = {v.name: v.name for v in graph.inputs}

    def item(value: Value) -> _Item | None:
        root = roots(value)
        if roots.is_external(root):
            external[value.name] = root.name
            return None
        if root.name not in items:
            zeroed = is_accumulated(root)
            size = numel(root) * ACCUMULATOR_ITEMSIZE if zeroed else nbytes(root)
            items[root.name] = _Item(root.name, size, zeroed)
        found = items[root.name]
        if value.name not in found.values:
            found.values.append(value.name)
        return found

    step = -1
    for node in graph.nodes:
        if is_view(node):
            for out in node.outputs:
                item(out)
            continue
        step += 1
        for value in node.inputs:
            if value is not None and not value.is_const and (found := item(value)) is not None:
                found.touch(step)
        for out in node.outputs:
            item(out).touch(step)  # a launch output is never the caller's
        for request in workspace(node):
            scratch = _Item(f"{node.name}:{request.name}", request.nbytes, request.zeroed)
            scratch.touch(step)
            items[scratch.root] = scratch
    for value in graph.outputs:
        if not value.is_const and (found := item(value)) is not None:
            found.touch(step)
    return [i for i in items.values() if i.last >= 0], external, step + 1


# -- placing them --------------------------------------------------------------------------
def _place(items: list[_Item]) -> dict[str, int]:
    """Offsets: largest first, each at the lowest aligned offset free over its lifetime."""
    placed: list[tuple[int, _Item]] = []
    offsets: dict[str, int] = {}
    for item in sorted(items, key=lambda i: (-i.nbytes, i.first, i.root)):
        busy = sorted((off, off + other.nbytes) for off, other in placed
                      if other.first <= item.last and item.first <= other.last)
        offset = 0
        for start, end in busy:
            if offset + item.nbytes <= start:
                break
            offset = max(offset, align(end))
        placed.append((offset, item))
        offsets[item.root] = offset
    return offsets


def _lower_bound(items: list[_Item], steps: int) -> int:
    """The largest total size of the buffers alive at one step."""
    delta = [0] * (steps + 1)
    for item in items:
        delta[item.first] += item.nbytes
        delta[item.last + 1] -= item.nbytes
    alive = best = 0
    for change in delta:
        alive += change
        best = max(best, alive)
    return best


def _freeze(items: list[_Item], offsets: dict[str, int], prefix: str) -> tuple[Buffer, ...]:
    ordered = sorted(items, key=lambda i: (i.first, i.root))
    return tuple(Buffer(f"{prefix}{n}", i.root, i.nbytes, i.first, i.last, offsets[i.root],
                        tuple(i.values), i.zeroed) for n, i in enumerate(ordered))


def plan_memory(graph: Graph, workspace: WorkspaceHook = no_workspace) -> MemoryPlan:
    """Place every activation buffer of ``graph`` (specialized: static shapes) in one arena
    and the zeroed values and requests in the workspace; see the module docstring.
    ``workspace(node)`` lists what each launch needs besides its outputs."""
    items, external, steps = _collect(graph, workspace)
    arena = [i for i in items if not i.zeroed]
    zeroed = sorted((i for i in items if i.zeroed), key=lambda i: (i.first, i.root))
    offsets = _place(arena)
    arena_bytes = align(max((offsets[i.root] + i.nbytes for i in arena), default=0))
    slots, workspace_bytes = {}, 0
    for item in zeroed:
        slots[item.root] = workspace_bytes
        workspace_bytes += align(item.nbytes)
    return MemoryPlan(
        buffers=_freeze(arena, offsets, "b"), workspace=_freeze(zeroed, slots, "w"),
        arena_bytes=arena_bytes, workspace_bytes=workspace_bytes,
        naive_bytes=sum(align(i.nbytes) for i in arena) + workspace_bytes,
        lower_bound_bytes=_lower_bound(arena, steps) + workspace_bytes, steps=steps, external=external)


# -- the invariant ---------------------------------------------------------------------------
def check_memory_plan(plan: MemoryPlan, graph: Graph | None = None) -> None:
    """Raise :class:`MemoryPlanError` naming the first broken invariant of ``plan``: every
    buffer aligned and inside its region; no two arena buffers alive at a common step
    overlap; no two workspace slots overlap. With ``graph`` (the one planned), also: every
    value a launch reads or writes is in a buffer that is alive at that step and large
    enough, and graph outputs stay alive to the last step."""
    for region, buffers, size in (("arena", plan.buffers, plan.arena_bytes),
                                  ("workspace", plan.workspace, plan.workspace_bytes)):
        for b in buffers:
            if b.offset < 0 or b.offset % ALIGNMENT or b.end > size:
                raise MemoryPlanError(f"{b.id} (%{b.root}) at [{b.offset}, {b.end}) is not an aligned "
                                      f"range inside the {region} of {size} bytes")
        _check_disjoint(buffers, region == "arena")
    if graph is not None:
        _check_lifetimes(plan, graph)


def _check_disjoint(buffers: Sequence[Buffer], by_lifetime: bool) -> None:
    ordered = sorted(buffers, key=lambda b: b.offset)
    for i, first in enumerate(ordered):
        for second in ordered[i + 1:]:
            if second.offset >= first.end:
                break
            if not by_lifetime or first.alive_with(second):
                raise MemoryPlanError(
                    f"{first.id} (%{first.root}, steps {first.first}..{first.last}) and {second.id} "
                    f"(%{second.root}, steps {second.first}..{second.last}) overlap at "
                    f"[{second.offset}, {min(first.end, second.end)})")


def _check_lifetimes(plan: MemoryPlan, graph: Graph) -> None:
    def check(value: Value, step: int, what: str) -> None:
        if value.name in plan.external:
            return
        b = plan.buffer_of(value.name)
        if b is None:
            raise MemoryPlanError(f"%{value.name}, {what} at step {step}, has no buffer")
        if not b.first <= step <= b.last:
            raise MemoryPlanError(f"%{value.name}, {what} at step {step}, lives in {b.id} "
                                  f"(%{b.root}), alive only at steps {b.first}..{b.last}")
        size = numel(value) * ACCUMULATOR_ITEMSIZE if b.zeroed else nbytes(value)
        if size > b.nbytes:
            raise MemoryPlanError(f"%{value.name} ({size} bytes) does not fit in {b.id} ({b.nbytes} bytes)")

    launches = [n for n in graph.nodes if not is_view(n)]
    for step, node in enumerate(launches):
        for value in node.inputs:
            if value is not None and not value.is_const:
                check(value, step, f"read by {node.name}")
        for value in node.outputs:
            check(value, step, f"written by {node.name}")
    for value in graph.outputs:
        if not value.is_const:
            check(value, len(launches) - 1, "a graph output")
