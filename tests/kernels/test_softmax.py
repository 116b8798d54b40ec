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

TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}
NAN, INF = float("nan"), float("inf")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # else the interpreter
# numpy warns about the masked lanes (and the NaN rows) the interpreter computes anyway
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def _view(m, n, layout, dtype, gen=None):
    fill = (lambda s: torch.randn(s, generator=gen) * 4) if gen is not None else (lambda s: torch.full(s, NAN))
    if layout == "contiguous":
        buf = fill((m, n)).to(DEVICE, dtype)
        return buf, buf
    if layout == "transposed":
        buf = fill((n, m)).to(DEVICE, dtype)
        return buf, buf.t()
    buf = fill((m, n + 7)).to(DEVICE, dtype)
    return buf, buf[:, 3:3 + n]


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
    probe = buf.clone()
    probe.as_strided(out.shape, out.stride(), out.storage_offset()).fill_(NAN)
    assert torch.isnan(probe).all()


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
