"""Softmax along the last axis against float64 torch.softmax.

Cases are drawn from a fixed seed: odd N up to 1500, contiguous, transposed and sliced
views in and out, one-pass rows and two-pass rows (a forced narrow tile). Rows holding NaN,
+inf or only -inf give NaN everywhere, like the reference. Outputs start as NaN.
"""
from __future__ import annotations

import random

import pytest
import torch

from fastcnn.kernels import softmax
from tests.helpers import relative_l2
from tests.kernels.tensors import DEVICE, MASKED_LANE_WARNINGS_IGNORED, NAN, TOL, strided, untouched_outside

INF = float("inf")
pytestmark = MASKED_LANE_WARNINGS_IGNORED


def _view(m, n, layout, dtype, gen=None):
    """(buffer, view) of an m x n matrix: ``contiguous``, ``transposed`` or ``slice`` (columns 3..
    of a buffer 7 columns wider); N(0, 16) logits, or NaN without ``gen``."""
    order = (1, 0) if layout == "transposed" else (0, 1)
    return strided((m, n), order, dtype, gen, widen=7 if layout == "slice" else 0, start=3, scale=4)


def _cases(count, seed):
    rng = random.Random(seed)
    layouts = ("contiguous", "transposed", "slice")
    return [dict(m=rng.choice([1, 2, 5]), n=rng.choice([1, 10, 37, 1000, 1500]), dtype=rng.choice(list(TOL)),
                 layout=rng.choice(layouts), out_layout=rng.choice(layouts),
                 block_n=rng.choice([None, None, 16, 256])) for _ in range(count)]


def _ids(c):
    return f"{c['m']}x{c['n']}-{c['layout']}-{c['out_layout']}-b{c['block_n']}-{str(c['dtype'])[6:]}"


@pytest.mark.parametrize("case", _cases(12, 0), ids=_ids)
def test_softmax(case):
    gen = torch.Generator().manual_seed(1)
    _, x = _view(case["m"], case["n"], case["layout"], case["dtype"], gen)
    buf, out = _view(case["m"], case["n"], case["out_layout"], case["dtype"])
    softmax.softmax(x, out, block_n=case["block_n"])
    assert relative_l2(out, torch.softmax(x.double(), dim=1)) < TOL[case["dtype"]]
    assert untouched_outside(buf, out)


@pytest.mark.parametrize("block_n", [None, 16])  # one pass, and the online two-pass loop
def test_nan_and_inf_rows(block_n):
    x = torch.randn(6, 100, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    x[1, 7] = NAN
    x[2, 50] = INF
    x[3] = -INF
    x[4, :90] = -INF  # -inf before the first finite value: the online sum must not become NaN
    x[5, 99] = NAN  # a NaN in the last tile only
    out = torch.zeros_like(x)
    softmax.softmax(x, out, block_n=block_n)
    ref = torch.softmax(x, dim=1)
    assert torch.equal(torch.isnan(out).all(dim=1), torch.isnan(ref).all(dim=1))
    assert torch.isnan(ref[[1, 2, 3, 5]]).all()
    assert relative_l2(out[[0, 4]], ref[[0, 4]].double()) < 1e-5


def test_imagenet_row_is_one_pass():
    call = softmax.softmax_call(torch.empty(8, 1000, device=DEVICE), torch.empty(8, 1000, device=DEVICE))
    assert call.constexprs["ONE_PASS"] and call.constexprs["BLOCK_N"] == 1024


def test_launcher_refuses_bad_arguments():
    x = torch.randn(2, 5)
    with pytest.raises(ValueError, match="shape"):
        softmax.softmax(x, torch.empty(2, 6))
    with pytest.raises(ValueError, match="power of two"):
        softmax.softmax(x, torch.empty(2, 5), block_n=12)
    with pytest.raises(ValueError, match="2-D"):
        softmax.softmax(torch.randn(2, 3, 4), torch.empty(2, 3, 4))
