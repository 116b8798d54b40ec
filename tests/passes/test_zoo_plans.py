"""What the full pipeline makes of the zoo, asserted on the plans (the launches an engine runs).

The graphs are exported the way ``fastcnn.load(name)`` exports them (torch folds conv + BN
itself); resnet50 is also checked with every BatchNormalization kept as a node.
"""
from __future__ import annotations

from collections import Counter

import pytest

from fastcnn.passes import run_pipeline
from fastcnn.runtime import make_plan
from tests.passes.zoo_graphs import zoo_graph


def _plan(name: str, keep_batch_norm: bool = False):
    graph = zoo_graph(name, keep_batch_norm=keep_batch_norm).clone()
    run_pipeline(graph, "full")
    return graph, make_plan(graph, batch=1)


def _kinds(plan) -> Counter:
    return Counter(launch.kind for launch in plan.launches)


@pytest.mark.parametrize("keep_batch_norm", [False, True])
def test_resnet50_has_no_batch_norm_relu_or_add_launch(keep_batch_norm):
    _, plan = _plan("resnet50", keep_batch_norm)
    kinds = _kinds(plan)
    assert not kinds.keys() & {"batch_norm", "relu", "add"}, kinds
    assert kinds["fused_conv2d"] + kinds["conv2d"] == 53  # every convolution, nothing else per block
    assert sum(1 for launch in plan.launches if "res+relu" in launch.op) == 16  # one per block


@pytest.mark.parametrize("name", ["googlenet", "bn_inception", "inception_v3", "inception_v4", "densenet121",
                                  "squeezenet1_1"])
def test_no_launch_copies_a_concat(name):
    graph, plan = _plan(name)
    assert sum(node.op == "concat" for node in graph.nodes) > 0
    assert "concat" not in _kinds(plan)


def test_densenet121_layers_read_prefixes_of_one_buffer_per_block():
    graph, plan = _plan("densenet121")
    block_buffers = {node.outputs[0].storage.buffer if node.outputs[0].storage else node.outputs[0].name
                     for node in graph.nodes if node.op == "concat"}
    assert len(block_buffers) == 4  # one buffer per dense block, however many concats it has


def test_se_resnet50_squeeze_excite_costs_two_launches_beyond_its_convolutions():
    _, plan = _plan("se_resnet50")
    kinds = _kinds(plan)
    assert kinds["se_gate"] == kinds["se_scale"] == 16
    assert not kinds.keys() & {"reduce_mean", "sigmoid", "mul", "add", "relu"}, kinds
    assert kinds["global_avg_pool"] == 1  # the classifier's, not a squeeze's
    pooling = [launch for launch in plan.launches if launch.op.endswith("pool]")]
    assert len(pooling) == 16  # each gate's input is summed by the convolution that makes it
    gates = [launch for launch in plan.launches if launch.kind == "se_gate"]
    assert all(gate.inputs[0].region == "workspace" for gate in gates)
    others = set(kinds) - {"fused_conv2d", "conv2d", "se_gate", "se_scale"}
    assert sum(kinds[k] for k in others) == 4, kinds  # the stem's max pool, global pool, classifier, memset


@pytest.mark.parametrize("name", ["densenet121", "preact_resnet50"])
def test_no_standalone_batch_norm_or_relu_and_the_last_one_is_the_pools_prologue(name):
    graph, plan = _plan(name)
    kinds = _kinds(plan)
    assert not kinds.keys() & {"batch_norm", "relu"}, kinds
    last_pool = [node for node in graph.nodes if node.op == "fused_pool"][-1]
    assert last_pool.attrs["mode"] == "global_avg" and last_pool.attrs["prologue_relu"]
    assert last_pool.inputs[1] is not None and last_pool.inputs[2] is not None  # its scale and shift
