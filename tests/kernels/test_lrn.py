"""ONNX LRN against the torch reference (fastcnn.backends.torch_ops.lrn) in float64.

Cases are drawn from a fixed seed: odd and even window sizes (the window is
``c - (size-1)//2 .. c + size//2``, clipped to the channels), windows wider than the
channels, NCHW, NHWC and channel-slice views in and out. Outputs start as NaN.
"""
from __future__ import annotations

import random

import pytest
import torch

from fastcnn.backends import torch_ops
from fastcnn.kernels import lrn
from tests.helpers import relative_l2
from tests.kernels.tensors import DEVICE, LAYOUTS, NAN, TOL, layout_view, untouched_outside


def _cases(count, seed):
    rng = random.Random(seed)
    return [dict(shape=(rng.randint(1, 2), rng.choice([3, 8, 13, 16]), rng.randint(1, 6), rng.randint(1, 6)),
                 size=rng.choice([1, 2, 3, 4, 5, 6, 9]), alpha=rng.choice([1e-4, 0.1, 0.5]),
                 beta=rng.choice([0.5, 0.75, 1.0]), bias=rng.choice([1.0, 2.0]), dtype=rng.choice(list(TOL)),
                 layout=rng.choice(LAYOUTS), out_layout=rng.choice(LAYOUTS)) for _ in range(count)]


def _ids(c):
    return f"{c['shape']}-size{c['size']}-{c['layout']}-{c['out_layout']}-{str(c['dtype'])[6:]}"


@pytest.mark.parametrize("case", _cases(12, 0), ids=_ids)
def test_lrn(case):
    gen = torch.Generator().manual_seed(1)
    _, x = layout_view(case["shape"], case["layout"], case["dtype"], gen)
    x = x * 2
    buf, out = layout_view(case["shape"], case["out_layout"], case["dtype"])
    lrn.lrn(x, out, case["size"], case["alpha"], case["beta"], case["bias"])
    attrs = {k: case[k] for k in ("size", "alpha", "beta", "bias")}
    ref = torch_ops.lrn([x.double()], attrs)
    assert relative_l2(out, ref) < TOL[case["dtype"]]
    assert untouched_outside(buf, out)


def test_alexnet_lrn():
    """AlexNet's LRN: size 5, alpha 1e-4, beta 0.75, bias 2 (as torchvision's zoo exports it)."""
    gen = torch.Generator().manual_seed(2)
    _, x = layout_view((1, 64, 5, 5), "nhwc", torch.float32, gen)
    x = x * 30
    out = torch.full((1, 64, 5, 5), NAN, device=DEVICE)
    lrn.lrn(x, out, 5, 1e-4, 0.75, 2.0)
    ref = torch_ops.lrn([x.double()], dict(size=5, alpha=1e-4, beta=0.75, bias=2.0))
    assert relative_l2(out, ref) < 1e-5


def test_launcher_refuses_bad_arguments():
    x = torch.randn(1, 4, 2, 2)
    with pytest.raises(ValueError, match="size"):
        lrn.lrn(x, torch.empty_like(x), 0)
    with pytest.raises(ValueError, match="shape"):
        lrn.lrn(x, torch.empty(1, 4, 2, 3), 3)
    with pytest.raises(ValueError, match="dtype"):
        lrn.lrn(x.double(), torch.empty_like(x), 3)
