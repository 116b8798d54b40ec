"""The graph edits passes rely on: use lists, insertion, redirection, fusion, ordering, copies."""
from __future__ import annotations

import random

import numpy as np
import pytest

from fastcnn.ir import Graph, IRError, Storage, verify

CONV = dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)


def _chain():
    """x -> conv -> relu -> sigmoid (the output)."""
    g = Graph("chain")
    x = g.add_input("x", ("N", 3, 8, 8), "float32")
    w = g.constant(np.ones((4, 3, 3, 3), np.float32), "w")
    conv = g.add_node("conv2d", [x, w], CONV, name="conv", sources=["/conv/Conv"])
    relu = g.add_node("relu", conv.outputs, name="relu", out_names=["relu_out"], sources=["/relu/Relu"])
    sig = g.add_node("sigmoid", relu.outputs, name="sig", sources=["/sig/Sigmoid"])
    g.outputs = list(sig.outputs)
    return g, x, w, conv, relu, sig


def test_uses_are_node_and_slot_pairs():
    g = Graph()
    x = g.add_input("x", (2, 3), "float32")
    both = g.add_node("mul", [x, x])
    assert x.uses == [(both, 0), (both, 1)] and x.users == [both]
    g.set_input(both, 1, g.constant(np.ones(3, np.float32)))
    assert x.uses == [(both, 0)]
    g.outputs = list(both.outputs)
    verify(g)


def test_insert_after_then_redirect_other_readers():
    """The classic trap: insert X after v, redirect v's readers to X; X must still read v."""
    g, x, w, conv, relu, sig = _chain()
    v = conv.outputs[0]
    tanh = g.insert_after(conv, g.make_node("tanh", [v], name="tanh"))
    g.replace_all_uses(v, tanh.outputs[0], exclude=[tanh])
    assert tanh.inputs == [v] and relu.inputs == [tanh.outputs[0]]
    assert [n.op for n in g.nodes] == ["conv2d", "tanh", "relu", "sigmoid"]
    verify(g)


def test_insert_before_and_replace_graph_outputs():
    g, x, w, conv, relu, sig = _chain()
    neg = g.insert_before(sig, g.make_node("tanh", relu.outputs, name="t"))
    g.replace_all_uses(sig.outputs[0], neg.outputs[0])
    assert g.outputs == neg.outputs
    assert g.remove_dead_nodes() == 1 and [n.op for n in g.nodes] == ["conv2d", "relu", "tanh"]
    verify(g)


def test_attribute_defaults_are_filled_and_choices_enforced():
    g = Graph()
    x = g.add_input("x", ("N", 3, 8, 8), "float32")
    w = g.constant(np.ones((4, 3, 3, 3), np.float32))
    conv = g.add_node("conv2d", [x, w])
    assert conv.attrs == {"stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1), "groups": 1}
    assert conv.outputs[0].shape == ("N", 4, 6, 6)
    with pytest.raises(IRError, match="must be one of"):
        g.add_node("fused_conv2d", [x, w], {"activation": "swish"})


def test_fuse_takes_over_the_last_output_and_records_sources():
    g, x, w, conv, relu, sig = _chain()
    kept = relu.outputs[0]
    fused = g.fuse([relu, conv], "fused_conv2d", [x, w], {**CONV, "activation": "relu"})
    assert fused.outputs == [kept] and kept.producer is fused and kept.name == relu.name + "_out"
    assert fused.sources == ("/conv/Conv", "/relu/Relu")
    assert [n.op for n in g.nodes] == ["fused_conv2d", "sigmoid"] and sig.inputs == [kept]
    assert x.uses == [(fused, 0)]
    verify(g)


def test_fuse_refuses_to_swallow_a_value_read_elsewhere():
    g, x, w, conv, relu, sig = _chain()
    g.outputs.append(conv.outputs[0])
    with pytest.raises(IRError, match="read elsewhere"):
        g.fuse([conv, relu], "fused_conv2d", [x, w], {**CONV, "activation": "relu"})
    verify(g)  # nothing changed


def test_fuse_checks_the_taken_over_shape():
    g, x, w, conv, relu, sig = _chain()
    with pytest.raises(IRError, match="gives"):
        g.fuse([conv, relu], "fused_conv2d", [x, w], {**CONV, "padding": (0, 0, 0, 0)})


def test_topological_sort_restores_any_shuffle_and_finds_cycles():
    g, *_ = _chain()
    expected = [n.name for n in g.nodes]
    for seed in range(5):
        random.Random(seed).shuffle(g.nodes)
        g.topological_sort()
        assert [n.name for n in g.nodes] == expected
    verify(g)
    g.set_input(g.nodes[0], 0, g.nodes[2].outputs[0])  # conv reads sigmoid: a cycle
    with pytest.raises(IRError, match="cycle"):
        g.topological_sort()


def test_clone_is_independent_and_shares_read_only_constants():
    g, x, w, conv, relu, sig = _chain()
    copy = g.clone()
    c_conv, c_relu = copy.nodes[0], copy.nodes[1]
    copy.fuse([c_conv, c_relu], "fused_conv2d", c_conv.inputs, {**CONV, "activation": "relu"})
    assert [n.op for n in g.nodes] == ["conv2d", "relu", "sigmoid"]
    verify(g)
    verify(copy)
    assert copy.constants()[0].const is w.const
    with pytest.raises(ValueError, match="read-only"):
        w.const[0, 0, 0, 0] = 5.0


def test_specialize_binds_symbols_and_reinfers():
    g = Graph()
    x = g.add_input("x", ("N", 16, 5, 5), "float32")
    flat = g.add_node("flatten", [x], {"axis": 1})
    g.outputs = list(flat.outputs)
    static = g.specialize(N=8)
    assert static.inputs[0].shape == (8, 16, 5, 5) and static.outputs[0].shape == (8, 400)
    assert g.outputs[0].shape == ("N", 400)  # the original keeps its symbol
    with pytest.raises(IRError, match="give its size"):
        g.specialize(M=2)


def test_verifier_checks_constants_and_their_use_lists():
    g, x, w, conv, relu, sig = _chain()
    w.uses.clear()
    with pytest.raises(IRError, match="use list of %w"):
        verify(g)
    g, x, w, *_ = _chain()
    w.dtype = "float16"
    with pytest.raises(IRError, match="constant @w holds"):
        verify(g)
    g, x, w, *_ = _chain()
    w.const = np.ones((4, 3, 3, 3), np.float32)  # writable
    with pytest.raises(IRError, match="writable"):
        verify(g)


def _concat_graph():
    g = Graph()
    x = g.add_input("x", ("N", 3, 8, 8), "float32")
    a = g.add_node("relu", [x], out_names=["a"]).outputs[0]
    b = g.add_node("sigmoid", [x], out_names=["b"]).outputs[0]
    cat = g.add_node("concat", [a, b], {"axis": 1}, out_names=["cat"]).outputs[0]
    g.outputs = [cat]
    return g, a, b, cat


def test_verifier_accepts_slices_that_tile_a_concat():
    g, a, b, cat = _concat_graph()
    a.storage, b.storage = Storage("cat", 0, 6), Storage("cat", 3, 6)
    verify(g)


@pytest.mark.parametrize("slots, message", [
    (((0, 6), None), "tile"),              # only one input placed
    (((0, 6), (2, 6)), "tile"),            # overlapping slices
    (((0, 6), (4, 6)), "fit"),             # past the end of the buffer
    (((0, 7), (3, 7)), "buffer"),          # wrong channel stride
])
def test_verifier_refuses_bad_slices(slots, message):
    g, a, b, cat = _concat_graph()
    for value, slot in zip((a, b), slots):
        value.storage = None if slot is None else Storage("cat", *slot)
    with pytest.raises(IRError, match=message):
        verify(g)


def test_graph_outputs_cannot_live_in_another_buffer():
    g, a, b, cat = _concat_graph()
    a.storage, b.storage = Storage("cat", 0, 6), Storage("cat", 3, 6)
    g.outputs.append(a)
    with pytest.raises(IRError, match="graph input, output or constant"):
        verify(g)


def test_verifier_refuses_overlapping_slices():
    g, a, b, cat = _concat_graph()
    a.storage, b.storage = Storage("cat", 0, 6), Storage("cat", 3, 6)
    stray = g.add_node("tanh", [g.inputs[0]], out_names=["stray"]).outputs[0]
    stray.storage = Storage("cat", 2, 6)
    g.outputs.append(g.add_node("relu", [stray]).outputs[0])
    with pytest.raises(IRError, match="overlap"):
        verify(g)
