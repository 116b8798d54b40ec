"""layout_nhwc: activations NHWC, except where memory order is meaning."""
from __future__ import annotations

from fastcnn.ir.storage import storage_of
from tests.passes.helpers import Builder, check_rewrite, rewrite


def test_activations_become_nhwc_and_inputs_stay_nchw():
    b = Builder((1, 3, 8, 8))
    y = b.node("relu", [b.conv(b.x, 4)])
    pooled = b.node("global_avg_pool", [b.conv(y, 4)])
    graph = b.output(b.node("flatten", [pooled], axis=1))
    out = check_rewrite(graph, "layout_nhwc")
    layouts = {v.name: v.layout for n in out.nodes for v in n.outputs}
    assert out.inputs[0].layout == "NCHW"
    assert [layouts[n.outputs[0].name] for n in out.nodes[:4]] == ["NHWC"] * 4  # N x C x 1 x 1 too


def test_a_flatten_of_a_spatial_tensor_keeps_it_nchw():
    b = Builder((1, 3, 8, 8))
    conv = b.conv(b.x, 4)
    graph = b.output(b.node("flatten", [conv], axis=1))
    out = rewrite(graph, "layout_nhwc")
    assert out.nodes[0].outputs[0].layout == "NCHW"


def test_a_4d_graph_output_is_nchw():
    b = Builder((1, 3, 8, 8))
    graph = b.output(b.node("relu", [b.conv(b.x, 4)]))
    out = rewrite(graph, "layout_nhwc")
    assert out.nodes[0].outputs[0].layout == "NHWC" and out.outputs[0].layout == "NCHW"


def test_a_concat_buffer_takes_one_layout_for_every_slice():
    b = Builder((1, 3, 8, 8))
    left, right = b.conv(b.x, 4), b.conv(b.x, 2)
    cat = b.node("concat", [left, right], axis=1)
    flat = b.node("reshape", [right], shape=(0, -1))  # reads one slice's memory as NCHW
    graph = b.output(b.node("relu", [cat]), flat)
    out = rewrite(graph, ["fuse_concat", "layout_nhwc"])
    members = [v for n in out.nodes for v in n.outputs if storage_of(v).buffer == out.nodes[2].outputs[0].name]
    assert len(members) == 3 and {v.layout for v in members} == {"NCHW"}
