"""The memory planner: buffers by root, lifetimes, greedy placement, the zeroed workspace,
and the invariant checker (which must catch a broken plan)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastcnn.ir import Graph, Storage, verify
from fastcnn.ir.cost import nbytes
from fastcnn.runtime.memory import (
    ALIGNMENT,
    MemoryPlan,
    MemoryPlanError,
    WorkspaceRequest,
    align,
    check_memory_plan,
    plan_memory,
)
from tests.passes.helpers import Builder

SIZE = 8 * 6 * 6 * 4  # bytes of one (1, 8, 6, 6) float32 activation


def _plan(graph: Graph, **kwargs) -> tuple[MemoryPlan, Graph]:
    static = graph.specialize(N=1)
    plan = plan_memory(static, **kwargs)
    check_memory_plan(plan, static)
    return plan, static


def _chain() -> Graph:
    """a = conv(x); b = conv(a); c = conv(b); d = a + c: ``a`` must outlive ``b`` and ``c``."""
    b = Builder((1, 8, 6, 6))
    a = b.conv(b.x, 8)
    c = b.conv(b.conv(a, 8), 8)
    return b.output(b.node("add", [a, c]))


def _by_root(plan: MemoryPlan) -> dict[str, object]:
    return {buffer.root: buffer for buffer in plan.buffers}


def test_lifetimes_span_first_write_to_last_read():
    graph = _chain()
    plan, static = _plan(graph)
    a, b, c, d = (plan.buffer_of(node.outputs[0].name) for node in static.nodes)
    assert [(x.first, x.last) for x in (a, b, c, d)] == [(0, 3), (1, 2), (2, 3), (3, 3)]
    assert plan.steps == 4 and all(x.nbytes == SIZE for x in (a, b, c, d))


def test_a_buffer_is_reused_only_after_its_last_read():
    plan, static = _plan(_chain())
    a, b, c, d = (plan.buffer_of(node.outputs[0].name) for node in static.nodes)
    assert a.offset not in (b.offset, c.offset, d.offset)  # a is read by the last launch
    assert d.offset == b.offset  # b's last reader came before d is written
    assert plan.arena_bytes == align(2 * align(SIZE) + SIZE)
    assert plan.lower_bound_bytes == 3 * SIZE <= plan.peak_bytes <= plan.naive_bytes == 4 * align(SIZE)


def test_graph_outputs_live_to_the_end():
    b = Builder((1, 8, 6, 6))
    first = b.conv(b.x, 8)
    last = b.conv(b.conv(first, 8), 8)
    plan, _ = _plan(b.output(first, last))
    kept = plan.buffer_of(first.name)
    assert (kept.first, kept.last) == (0, plan.steps - 1)


def test_graph_inputs_and_views_of_them_are_not_in_the_arena():
    b = Builder((1, 4, 2, 2))
    flat = b.node("flatten", [b.x], axis=1)
    out = b.node("gemm", [flat, b.weight(16, 3)])
    plan, _ = _plan(b.output(out))
    assert plan.buffer_of("x") is None and plan.buffer_of(flat.name) is None
    assert plan.external[flat.name] == "x"
    assert [buffer.values for buffer in plan.buffers] == [(out.name,)]


def test_views_alias_their_input_buffer():
    b = Builder((1, 8, 6, 6))
    conv = b.conv(b.x, 8)
    same = b.node("dropout", [b.node("identity", [conv])])
    flat = b.node("flatten", [same], axis=1)
    out = b.node("gemm", [flat, b.weight(8 * 36, 5)])
    plan, _ = _plan(b.output(out))
    buffer = plan.buffer_of(conv.name)
    assert plan.buffer_of(flat.name) is buffer and plan.buffer_of(same.name) is buffer
    assert (buffer.first, buffer.last) == (0, 1)  # read by the gemm through the views
    assert len(plan.buffers) == 2 and plan.steps == 2


def _concat_graph(placed: bool) -> tuple[Graph, list]:
    b = Builder((1, 8, 6, 6))
    left, right = b.conv(b.x, 8), b.conv(b.x, 4)
    cat = b.node("concat", [left, right], axis=1)
    if placed:
        left.storage, right.storage = Storage(cat.name, 0, 12), Storage(cat.name, 8, 12)
    out = b.conv(cat, 8)
    return b.output(out), [left, right, cat, out]


def test_a_view_concat_is_one_allocation_holding_its_slices():
    graph, (left, right, cat, _) = _concat_graph(placed=True)
    plan, static = _plan(graph)
    buffer = plan.buffer_of(cat.name)
    assert plan.buffer_of(left.name) is buffer and plan.buffer_of(right.name) is buffer
    assert set(buffer.values) == {left.name, right.name, cat.name}
    assert buffer.nbytes == nbytes(static.nodes[2].outputs[0]) == 12 * 36 * 4
    assert (buffer.first, buffer.last) == (0, 2) and plan.steps == 3
    assert len(plan.buffers) == 2


def test_a_copying_concat_has_a_buffer_per_input():
    graph, (left, right, cat, _) = _concat_graph(placed=False)
    plan, _ = _plan(graph)
    assert len({plan.buffer_of(v.name).id for v in (left, right, cat)}) == 3 and plan.steps == 4


def _se_graph(dtype: str = "float32") -> Graph:
    """conv with a pooled output -> se_gate -> se_scale, in ``dtype``."""
    graph = Graph("se")
    rng = np.random.default_rng(0)
    x = graph.add_input("x", ("N", 8, 6, 6), dtype)

    def const(*shape: int):
        return graph.constant(rng.standard_normal(shape).astype(dtype), "w")

    conv = graph.add_node("fused_conv2d", [x, const(16, 8, 3, 3), const(16)],
                          {"padding": (1, 1, 1, 1), "activation": "relu", "pooled_output": True})
    y, pooled = conv.outputs
    gate = graph.add_node("se_gate", [pooled, const(4, 16), const(4), const(16, 4), const(16)]).outputs[0]
    graph.outputs = [graph.add_node("se_scale", [y, gate]).outputs[0]]
    verify(graph)
    return graph


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_pooled_outputs_live_in_the_zeroed_float32_workspace(dtype):
    plan, static = _plan(_se_graph(dtype))
    pooled = static.nodes[0].outputs[1]
    slot = plan.buffer_of(pooled.name)
    assert plan.workspace == (slot,) and slot.zeroed and slot.id == "w0"
    assert slot.nbytes == 16 * 4  # float32 sums, whatever the graph's dtype
    assert slot not in plan.buffers and plan.workspace_bytes == ALIGNMENT
    assert plan.peak_bytes == plan.arena_bytes + plan.workspace_bytes
    assert plan.lower_bound_bytes <= plan.peak_bytes <= plan.naive_bytes


def test_workspace_requests_from_the_hook():
    def hook(node):
        if node.op != "conv2d":
            return ()
        return (WorkspaceRequest("partials", 1000, zeroed=True), WorkspaceRequest("scratch", 5000))

    plan, static = _plan(_chain(), workspace=hook)
    assert len(plan.workspace) == 3 and plan.workspace_bytes == 3 * align(1000)
    scratch = [b for b in plan.buffers if b.root.endswith(":scratch")]
    assert [(b.first, b.last, b.nbytes) for b in scratch] == [(0, 0, 5000), (1, 1, 5000), (2, 2, 5000)]
    assert [b.offset for b in plan.workspace] == [0, align(1000), 2 * align(1000)]  # never shared
    assert plan.request(static.nodes[1].name, "partials") is plan.workspace[1]


def _moved(plan: MemoryPlan, buffer_id: str, **changes) -> MemoryPlan:
    buffers = tuple(dataclasses.replace(b, **changes) if b.id == buffer_id else b for b in plan.buffers)
    return dataclasses.replace(plan, buffers=buffers)


def test_check_catches_overlapping_live_buffers():
    plan, static = _plan(_chain())
    a, b = (plan.buffer_of(node.outputs[0].name) for node in static.nodes[:2])
    with pytest.raises(MemoryPlanError, match="overlap"):
        check_memory_plan(_moved(plan, b.id, offset=a.offset))
    with pytest.raises(MemoryPlanError, match="overlap"):
        check_memory_plan(_moved(plan, b.id, offset=a.offset + ALIGNMENT))


def test_check_catches_buffers_outside_the_arena_or_misaligned():
    plan, _ = _plan(_chain())
    with pytest.raises(MemoryPlanError, match="inside the arena"):
        check_memory_plan(_moved(plan, "b0", offset=plan.arena_bytes))
    with pytest.raises(MemoryPlanError, match="aligned"):
        check_memory_plan(_moved(plan, "b0", offset=plan.buffers[0].offset + 4))


def test_check_catches_a_lifetime_that_ends_too_early():
    plan, static = _plan(_chain())
    a = plan.buffer_of(static.nodes[0].outputs[0].name)
    broken = _moved(plan, a.id, last=1)
    check_memory_plan(broken)  # placement alone cannot tell
    with pytest.raises(MemoryPlanError, match=r"alive only at steps 0\.\.1"):
        check_memory_plan(broken, static)


def test_check_catches_shared_workspace_slots():
    plan, _ = _plan(_chain(), workspace=lambda node: (WorkspaceRequest("acc", 64, zeroed=True),))
    slots = tuple(dataclasses.replace(w, offset=0) for w in plan.workspace)
    with pytest.raises(MemoryPlanError, match="overlap"):
        check_memory_plan(dataclasses.replace(plan, workspace=slots))


def _random_graph(seed: int) -> Graph:
    """Relus, adds and copying concats over a random DAG of (N, C, 4, 4) values."""
    rng = np.random.default_rng(seed)
    graph = Graph(f"random{seed}")
    values = [graph.add_input("x", ("N", 4, 4, 4), "float32")]
    for _ in range(int(rng.integers(5, 40))):
        u = values[int(rng.integers(len(values)))]
        twins = [v for v in values if v.shape == u.shape]
        small = [v for v in values if v.shape[1] + u.shape[1] <= 64]  # keeps concats bounded
        kind = rng.choice(["relu", "add", "concat"])
        if kind == "add":
            node = graph.add_node("add", [u, twins[int(rng.integers(len(twins)))]])
        elif kind == "concat" and small:
            node = graph.add_node("concat", [u, small[int(rng.integers(len(small)))]], {"axis": 1})
        else:
            node = graph.add_node("relu", [u])
        values.append(node.outputs[0])
    graph.outputs = [values[-1], *(values[i] for i in rng.integers(1, len(values), 2))]
    graph.outputs = list({id(v): v for v in graph.outputs}.values())
    graph.remove_dead_nodes()
    return graph


@pytest.mark.parametrize("seed", range(25))
def test_random_graphs_keep_the_invariant_and_the_bounds(seed):
    plan, _ = _plan(_random_graph(seed))
    assert plan.lower_bound_bytes <= plan.peak_bytes <= plan.naive_bytes
    assert {v for b in plan.buffers for v in b.values} >= {b.root for b in plan.buffers}
