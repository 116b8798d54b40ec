"""The IR: building, shape inference, rewriting helpers, the verifier and the dump."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.ir import Graph, IRError, verify
from fastcnn.ir.ops import broadcast, window_out

CONV = dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)


def _small_graph():
    g = Graph("small")
    x = g.add_input("input", ("N", 3, 8, 8), "float32")
    w = g.constant(np.ones((4, 3, 3, 3), np.float32), "w")
    conv = g.add_node("conv2d", [x, w], CONV)
    relu = g.add_node("relu", conv.outputs)
    g.outputs = list(relu.outputs)
    return g, x, conv, relu


def test_shapes_are_inferred_with_a_symbolic_batch():
    g, _, conv, relu = _small_graph()
    assert conv.outputs[0].shape == ("N", 4, 8, 8)
    assert relu.outputs[0].dtype == "float32"
    verify(g)


@pytest.mark.parametrize("size, kernel, stride, pads, ceil, expected", [
    (112, 3, 2, (0, 0), False, 55),
    (112, 3, 2, (0, 0), True, 56),   # GoogLeNet's Caffe pools round up
    (6, 3, 2, (1, 1), True, 4),      # the last window starts in the right padding: dropped
    (5, 2, 2, (0, 0), True, 3),
    (227, 11, 4, (0, 0), False, 55),
])
def test_window_arithmetic_matches_pytorch(size, kernel, stride, pads, ceil, expected):
    import torch

    assert window_out(size, kernel, stride, *pads, ceil_mode=ceil) == expected
    pool = torch.nn.MaxPool1d(kernel, stride, padding=pads[0], ceil_mode=ceil)
    assert pool(torch.zeros(1, 1, size)).shape[-1] == expected


def test_broadcasting_with_symbols():
    assert broadcast(("N", 4, 1, 1), (4, 8, 8)) == ("N", 4, 8, 8)
    with pytest.raises(IRError, match="do not broadcast"):
        broadcast((2, 3), (4, 3))


def test_schema_violations_are_refused():
    g = Graph()
    x = g.add_input("x", ("N", 3, 8, 8), "float32")
    w = g.constant(np.ones((4, 5, 3, 3), np.float32))
    with pytest.raises(IRError, match="channels"):
        g.add_node("conv2d", [x, w], CONV)
    with pytest.raises(IRError, match="needs attribute"):
        g.add_node("max_pool", [x], {"stride": (2, 2)})  # the kernel has no default
    with pytest.raises(IRError, match="must be"):
        g.add_node("flatten", [x], {"axis": 1.0})
    with pytest.raises(IRError, match="unknown op"):
        g.add_node("frobnicate", [x])


@pytest.mark.parametrize("op, extra", [("max_pool", {"dilation": (1, 1)}), ("avg_pool", {"count_include_pad": True})])
def test_pool_padding_must_be_smaller_than_the_window(op, extra):
    g = Graph()
    x = g.add_input("x", ("N", 3, 8, 8), "float32")
    attrs = {"kernel": (3, 2), "stride": (1, 1), "ceil_mode": False, **extra}
    ok = g.add_node(op, [x], {**attrs, "padding": (2, 1, 2, 1)})  # pads one less than the window
    assert ok.outputs[0].shape == ("N", 3, 10, 9)
    for padding in [(3, 0, 0, 0), (0, 2, 0, 0), (0, 0, 3, 0), (0, 0, 0, 2)]:
        with pytest.raises(IRError, match="smaller than the 3x2 window"):
            g.add_node(op, [x], {**attrs, "padding": padding})


def test_reshape_resolves_batch_copies_and_minus_one():
    g = Graph()
    x = g.add_input("x", ("N", 16, 5, 5), "float32")
    assert g.add_node("reshape", [x], {"shape": (0, -1)}).outputs[0].shape == ("N", 400)
    assert g.add_node("reshape", [x], {"shape": (-1, 400)}).outputs[0].shape == ("N", 400)
    assert g.add_node("flatten", [x], {"axis": 1}).outputs[0].shape == ("N", 400)
    with pytest.raises(IRError):
        g.add_node("reshape", [x], {"shape": (0, 7, -1)})


def test_replace_all_uses_and_dead_code_removal_keep_the_graph_valid():
    g, x, conv, relu = _small_graph()
    sig = g.add_node("sigmoid", conv.outputs)
    g.replace_all_uses(relu.outputs[0], sig.outputs[0])
    assert g.outputs == sig.outputs and not relu.outputs[0].uses
    assert g.remove_dead_nodes() == 1 and relu not in g.nodes
    verify(g)
    with pytest.raises(ValueError, match="still used"):
        g.remove_node(conv)


def test_verifier_catches_a_node_out_of_order():
    g, _, conv, relu = _small_graph()
    g.nodes.reverse()
    with pytest.raises(IRError, match="before it is defined"):
        verify(g)


def test_verifier_catches_a_stale_shape():
    g, _, conv, _ = _small_graph()
    conv.outputs[0].shape = ("N", 5, 8, 8)
    with pytest.raises(IRError, match="the op gives"):
        verify(g)


def test_verifier_catches_a_broken_use_list():
    g, x, conv, _ = _small_graph()
    x.uses.clear()
    with pytest.raises(IRError, match="use list"):
        verify(g)


def test_dump_is_readable():
    g, *_ = _small_graph()
    text = str(g)
    assert "graph small(%input: float32[N, 3, 8, 8])" in text
    assert "@w: float32[4, 3, 3, 3]" in text
    assert "conv2d(%input, @w) {stride=(1, 1), padding=(1, 1, 1, 1)" in text
    assert text.rstrip().endswith("}")


def test_reshape_divides_symbolic_products():
    g = Graph()
    x = g.add_input("x", ("N", 4, 5, 5), "float32")
    assert g.add_node("reshape", [x], {"shape": (0, 2, -1, 5)}).outputs[0].shape == ("N", 2, 10, 5)
    assert g.add_node("reshape", [x], {"shape": (-1, 5)}).outputs[0].shape == ("N*20", 5)
    flat = g.add_node("flatten", [x], {"axis": 0}).outputs[0]
    assert flat.shape == (1, "N*100")
    assert g.add_node("reshape", [flat], {"shape": (-1, 4, 25)}).outputs[0].shape == ("N", 4, 25)


def test_concat_takes_a_negative_axis():
    g = Graph()
    a = g.add_input("a", (2, 3, 4), "float32")
    b = g.add_input("b", (2, 3, 5), "float32")
    assert g.add_node("concat", [a, b], {"axis": -1}).outputs[0].shape == (2, 3, 9)
    with pytest.raises(IRError, match="differ off axis"):
        g.add_node("concat", [a, b], {"axis": 1})
