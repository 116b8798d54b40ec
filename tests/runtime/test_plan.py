"""The plan: one launch per non-view node, operands placed by the memory plan, totals, the
workspace memset, batch binding, the table and the JSON form."""
from __future__ import annotations

import json

import pytest

import fastcnn
from fastcnn.api import import_source
from fastcnn.errors import InputError
from fastcnn.ir import Graph, Storage
from fastcnn.ir.cost import is_view, node_bytes, node_flops
from fastcnn.passes import run_pipeline
from fastcnn.runtime.memory import check_memory_plan
from fastcnn.runtime.plan import Plan, describe, make_plan, specialize_batch
from tests.passes.helpers import Builder
from tests.runtime.test_memory import _se_graph


def _kinds(plan: Plan) -> list[str]:
    return [launch.kind for launch in plan.launches]


def test_views_are_not_launches():
    b = Builder((1, 8, 6, 6))
    conv = b.node("relu", [b.conv(b.x, 8)])
    flat = b.node("flatten", [b.node("dropout", [b.node("identity", [conv])])], axis=1)
    out = b.node("gemm", [b.node("reshape", [flat], shape=(0, -1)), b.weight(8 * 36, 5)])
    plan = make_plan(b.output(out))
    assert _kinds(plan) == ["conv2d", "relu", "gemm"] and plan.totals.launches == 3
    gemm = plan.launches[-1]
    assert gemm.inputs[0].buffer == plan.launches[1].outputs[0].buffer  # the reshape is the relu's buffer
    assert gemm.inputs[0].shape == (1, 288)


def _placed_concat() -> Graph:
    b = Builder((1, 8, 6, 6))
    left, right = b.conv(b.x, 8), b.conv(b.x, 4)
    cat = b.node("concat", [left, right], axis=1)
    left.storage, right.storage = Storage(cat.name, 0, 12), Storage(cat.name, 8, 12)
    return b.output(b.conv(cat, 8))


def test_a_view_concat_is_no_launch_and_its_inputs_are_slices_of_one_buffer():
    plan = make_plan(_placed_concat())
    assert _kinds(plan) == ["conv2d", "conv2d", "conv2d"]
    left, right, last = plan.launches
    assert left.outputs[0].channels == (0, 8, 12) and right.outputs[0].channels == (8, 12, 12)
    assert left.outputs[0].buffer == right.outputs[0].buffer == last.inputs[0].buffer
    assert left.outputs[0].offset == last.inputs[0].offset and last.inputs[0].channels is None
    assert "[c8:12/12]" in str(right.outputs[0])


def test_operands_say_where_they_live():
    plan = make_plan(_placed_concat())
    first = plan.launches[0]
    assert (first.inputs[0].region, first.inputs[0].buffer, first.inputs[0].offset) == ("input", "x", None)
    assert first.outputs[0].region == "arena" and first.outputs[0].shape == (1, 8, 6, 6)
    buffers = {b.id: b for b in plan.memory.buffers}
    assert first.outputs[0].offset == buffers[first.outputs[0].buffer].offset


def test_pooled_outputs_add_one_memset_launch():
    plan = make_plan(_se_graph())
    assert _kinds(plan) == ["memset", "fused_conv2d", "se_gate", "se_scale"]
    memset, conv, gate, _ = plan.launches
    assert memset.bytes == plan.memory.workspace_bytes > 0 and memset.step is None
    assert memset.outputs[0].region == "workspace" and memset.flops == 0
    pooled = conv.outputs[1]
    assert pooled.region == "workspace" and pooled.buffer == "w0"
    assert gate.inputs[0] == pooled
    assert conv.op == "fused_conv2d[relu+pool]"
    assert [launch.step for launch in plan.launches[1:]] == [0, 1, 2]


def test_without_a_zeroed_workspace_there_is_no_memset():
    plan = make_plan(_placed_concat())
    assert "memset" not in _kinds(plan) and plan.memory.workspace_bytes == 0


def test_describe_names_prologue_and_epilogue():
    b = Builder((1, 8, 6, 6))
    w, bias = b.weight(8, 8, 3, 3), b.weight(8)
    conv = {"padding": (1, 1, 1, 1)}
    residual = b.node("fused_conv2d", [b.x, w, bias, b.x], activation="relu", post_activation="relu", **conv)
    nodes = {n.outputs[0].name: n for n in b.graph.nodes}
    assert describe(nodes[residual.name]) == "fused_conv2d[relu+res+relu]"
    scale, shift = b.weight(8, positive=True), b.weight(8)
    pro = b.node("fused_conv2d", [b.x, w, None, None, scale, shift], prologue_relu=True, **conv)
    pool = b.node("fused_pool", [b.x, scale, shift], mode="max", kernel=(2, 2), stride=(2, 2))
    split = b.node("fused_conv2d", [b.x, w], out_splits=(3, 5), activation="clip", clip_min=0.0, **conv)
    nodes = {n.outputs[0].name: n for n in b.graph.nodes}
    assert describe(nodes[pro.name]) == "fused_conv2d[bn+relu>]"
    assert describe(nodes[pool.name]) == "fused_pool[bn>max]"
    assert describe(nodes[split.name]) == "fused_conv2d[split2+clip]"
    assert describe(b.graph.nodes[0]) == "fused_conv2d[relu+res+relu]"
    assert describe(b.graph.add_node("relu", [b.x])) == "relu"


def test_batch_is_bound_and_scales_the_activations():
    graph = _placed_concat()
    one, four = make_plan(graph, batch=1), make_plan(graph, batch=4)
    assert four.batch == 4 and four.launches[0].inputs[0].shape == (4, 8, 6, 6)
    assert four.totals.flops == 4 * one.totals.flops
    assert four.memory.lower_bound_bytes == 4 * one.memory.lower_bound_bytes
    assert graph.inputs[0].shape == ("N", 8, 6, 6)  # the graph itself is untouched


def test_a_symbolic_dim_other_than_the_batch_is_a_clear_error():
    b = Builder((1, 3, "H", 8))
    graph = b.output(b.conv(b.x, 4))
    with pytest.raises(InputError, match=r"input %x .*dim 'H' is not a batch size"):
        make_plan(graph)


def test_a_fixed_batch_must_match():
    graph = Graph("fixed")
    x = graph.add_input("x", (1, 4, 2, 2), "float32")
    graph.outputs = [graph.add_node("relu", [x]).outputs[0]]
    assert make_plan(graph).totals.launches == 1
    with pytest.raises(InputError, match="fixed batch of 1"):
        make_plan(graph, batch=2)
    with pytest.raises(InputError, match="at least 1"):
        specialize_batch(graph, 0)


def _plain(obj) -> bool:
    if isinstance(obj, dict):
        return all(type(k) is str and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return type(obj) in (int, str)


def test_to_dict_is_plain_json():
    plan = make_plan(_se_graph(), batch=2, name="se")
    data = plan.to_dict()
    assert _plain(data) and json.loads(json.dumps(data)) == data
    assert (data["name"], data["batch"], data["dtype"]) == ("se", 2, "float32")
    assert data["totals"]["launches"] == len(data["launches"]) == 4
    assert data["memory"]["workspace"][0]["id"] == "w0"


@pytest.fixture(scope="module")
def squeezenet() -> Graph:
    return import_source("squeezenet1_1")


@pytest.mark.parametrize("pipeline", ["none", "full"])
def test_zoo_model_totals_are_the_sums_of_rows(squeezenet, pipeline):
    graph = squeezenet.clone()
    run_pipeline(graph, pipeline)
    plan = make_plan(graph, batch=2, name="squeezenet1_1")
    static = graph.specialize(N=2)
    check_memory_plan(plan.memory, static)
    compute = [n for n in static.nodes if not is_view(n)]
    t = plan.totals
    assert t.launches == len(plan.launches) == len(compute) + (plan.memory.workspace_bytes > 0)
    assert t.flops == sum(x.flops for x in plan.launches) == sum(node_flops(n) for n in static.nodes)
    assert t.bytes_moved == sum(x.bytes for x in plan.launches)
    assert t.bytes_moved == sum(node_bytes(n) for n in static.nodes) + plan.memory.workspace_bytes
    assert t.lower_bound_bytes <= t.peak_bytes <= t.naive_bytes
    if pipeline == "none":
        assert "concat" in _kinds(plan)  # nothing placed the concats in their buffers


def test_fused_plan_has_no_more_launches(squeezenet):
    fused = squeezenet.clone()
    run_pipeline(fused, "full")
    assert make_plan(fused).totals.launches <= make_plan(squeezenet).totals.launches


def test_format_table_has_a_row_per_launch_and_totals():
    plan = make_plan(_se_graph(), name="se")
    lines = plan.format_table().splitlines()
    assert lines[0].split()[:3] == ["#", "op", "onnx"]
    assert len(lines) == 1 + 1 + len(plan.launches) + 1 + 1 + 1
    assert lines[-2].split()[:3] == ["total", "4", "launches"]
    assert lines[-2].endswith(f"{plan.totals.bytes_moved:,}")
    assert lines[-1].startswith("activation memory: peak") and "zeroed workspace 256 B" in lines[-1]
    assert "memset" in lines[2] and "fused_conv2d[relu+pool]" in lines[3]


def test_engine_plan_is_the_batch_one_plan():
    b = Builder((1, 8, 6, 6))
    graph = b.output(b.node("relu", [b.conv(b.x, 8)]))
    engine = fastcnn.Engine(graph, backend="torch", device="cpu", pipeline="none")
    plan = engine.plan
    assert plan.batch == 1 and plan.totals.launches == 2
    assert plan.totals == make_plan(graph).totals
