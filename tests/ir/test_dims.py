"""The symbolic-dimension algebra (fastcnn.ir.dims): normal forms, bounded names, evaluation."""
from __future__ import annotations

import itertools

import pytest

from fastcnn.ir import Graph, IRError, dims
from fastcnn.ir.ops import window_out


def test_products_and_sums_have_one_spelling() -> None:
    assert dims.product(("N", 16, 5, 5)) == "N*400"
    assert dims.canonical("2*N") == dims.canonical("N*2") == "N*2"
    assert dims.add("N", "N") == "N*2" and dims.sub("N", "N") == 0
    assert dims.mul("W", "H", "N") == "H*N*W"
    assert dims.add("H", 3, -3) == "H"


def test_floor_division_takes_out_what_divides() -> None:
    assert dims.floordiv("H*2+3", 2) == "H+1"
    assert dims.floordiv("H-1", 2) == "(H+1)//2-1"
    assert dims.floordiv("H*2+2", 4) == "(H+1)//2"  # common factors cancel
    assert dims.floordiv(dims.add(dims.floordiv("H+1", 2), 1), 2) == "(H+3)//4"  # nested divisions fold
    assert dims.ceildiv("H", 2) == "(H+1)//2"
    assert dims.floordiv("H", 1) == "H" and dims.floordiv(7, 2) == 3


def test_exact_division() -> None:
    assert dims.divide_exact("N*400", 16) == "N*25"
    assert dims.divide_exact("H*N*W", "H*W") == "N"
    assert dims.divide_exact("N*3", 2) is None and dims.divide_exact("N", "H") is None


def test_strings_parse_back_to_themselves() -> None:
    for text in ("N", "N*400", "(H+1)//2", "N*((H+1)//2)", "(H+31)//32", "H*W*2-1", "-N+3"):
        assert dims.canonical(text) == text, text
        assert dims.canonical(dims.canonical(text)) == dims.canonical(text)


def test_opaque_names_are_one_symbol() -> None:
    assert dims.symbols("?") == {"?"} and dims.symbols("batch size") == {"batch size"}
    assert dims.evaluate("?", {"?": 3}) == 3


def test_evaluate_and_substitute() -> None:
    assert dims.evaluate("N*((H+1)//2)", {"N": 3, "H": 5}) == 9
    assert dims.substitute("(H+W)//2", {"W": 3}) == "(H+1)//2+1"
    with pytest.raises(KeyError):
        dims.evaluate("H+1", {})


def test_expressions_are_bounded() -> None:
    dim = "N"
    with pytest.raises(dims.SymbolTooLarge):
        for _ in range(20):
            dim = dims.mul(dim, dim)


def test_many_stride_two_stages_stay_small() -> None:
    h = "H"
    for _ in range(30):
        h = window_out(h, 3, 2, 1, 1)
    assert h == f"(H+{2**30 - 1})//{2**30}"


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_window_out_agrees_with_the_integer_rule(ceil_mode: bool) -> None:
    for k, s, pb, pe, d in itertools.product(range(1, 5), range(1, 4), range(3), range(3), (1, 2)):
        span = d * (k - 1) + 1
        if pb >= span or pe >= span:
            continue
        expr = window_out("H", k, s, pb, pe, d, ceil_mode)
        for h in range(1, 20):
            try:
                want = window_out(h, k, s, pb, pe, d, ceil_mode)
            except ValueError:
                continue
            assert dims.evaluate(expr, {"H": h}) == want, (k, s, pb, pe, d, h, expr)


def test_specialize_evaluates_expressions_and_checks_windows() -> None:
    import numpy as np

    g = Graph()
    x = g.add_input("x", ("N", 3, "H", "W"), "float32")
    w = g.constant(np.zeros((4, 3, 3, 3), np.float32), "w")
    y = g.add_node("conv2d", [x, w], {"stride": (2, 2), "padding": (1, 1, 1, 1)}).outputs[0]
    g.outputs.append(y)
    assert y.shape == ("N", 4, "(H+1)//2", "(W+1)//2")
    assert g.specialize(N=2, H=7, W=4).outputs[0].shape == (2, 4, 4, 2)
    small = Graph()
    x = small.add_input("x", ("N", 3, "H", 4), "float32")
    w = small.constant(np.zeros((4, 3, 3, 3), np.float32), "w")
    small.outputs.append(small.add_node("conv2d", [x, w], {}).outputs[0])
    with pytest.raises(IRError, match="larger than the padded input"):
        small.specialize(N=1, H=2)


def test_int64_overflow_is_an_ir_error() -> None:
    g = Graph()
    x = g.add_input("x", (2**40, 2**40), "float32")
    with pytest.raises(IRError, match="2\\*\\*63"):
        g.add_node("pad", [x], {"pads": (0, 0, 2**40, 0)})
