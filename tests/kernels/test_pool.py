"""Windowed and global pooling against the torch reference (fastcnn.backends.torch_ops) in float64.

Cases are drawn from a fixed seed: max and average, odd kernels and strides, asymmetric
pads, dilation (max), ceil_mode, both count_include_pad settings, the prologue with a
positive shift (so that a wrongly padded ``relu(shift)`` would show), NCHW, NHWC and
channel-slice views in and out. Outputs start as NaN and a slice's buffer must keep its NaN
outside the slice. A NaN in a max window gives NaN, like PyTorch.
"""
from __future__ import annotations

import random

import pytest
import torch

from fastcnn.backends import torch_ops
from fastcnn.ir.ops import window_out
from fastcnn.kernels import pool
from tests.helpers import relative_l2
from tests.kernels.tensors import DEVICE, LAYOUTS, NAN, TOL, layout_view, untouched_outside


def _prologue(c, on, gen):
    if not on:
        return None, None
    return (torch.rand(c, generator=gen) + 0.5).to(DEVICE), (torch.rand(c, generator=gen) + 0.1).to(DEVICE)


def _window_cases(count, seed):
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        mode = ("max", "avg")[len(cases) % 2]
        k = (rng.randint(1, 3), rng.randint(1, 3))
        d = (rng.randint(1, 2), rng.randint(1, 2)) if mode == "max" else (1, 1)
        spans = [d[i] * (k[i] - 1) + 1 for i in range(2)]
        pads = tuple(rng.randint(0, spans[i % 2] - 1) for i in range(4))  # (top, left, bottom, right)
        shape = (rng.randint(1, 2), rng.choice([3, 8, 13]), rng.randint(4, 9), rng.randint(4, 9))
        case = dict(mode=mode, shape=shape, kernel=k, stride=(rng.randint(1, 3), rng.randint(1, 3)), padding=pads,
                    dilation=d, ceil_mode=rng.random() < 0.5, count_include_pad=rng.random() < 0.5,
                    prologue=rng.random() < 0.5, relu=rng.random() < 0.5, dtype=rng.choice(list(TOL)),
                    layout=rng.choice(LAYOUTS), out_layout=rng.choice(LAYOUTS))
        cases.append(case)
    return cases


def _ids(c):
    return (f"{c['mode']}-k{c['kernel'][0]}{c['kernel'][1]}s{c['stride'][0]}{c['stride'][1]}"
            f"p{''.join(map(str, c['padding']))}{'-ceil' if c['ceil_mode'] else ''}"
            f"{'-cip' if c['count_include_pad'] and c['mode'] == 'avg' else ''}{'-pro' if c['prologue'] else ''}"
            f"-{c['layout']}-{c['out_layout']}-{str(c['dtype'])[6:]}")


def _attrs(case):
    return dict(mode=case["mode"], kernel=case["kernel"], stride=case["stride"], padding=case["padding"],
                dilation=case["dilation"], ceil_mode=case["ceil_mode"],
                count_include_pad=case["count_include_pad"], prologue_relu=case["relu"])


def _run_window(case, x, gen):
    n, c, h, w = x.shape
    top, left, bottom, right = case["padding"]
    oh = window_out(h, case["kernel"][0], case["stride"][0], top, bottom, case["dilation"][0], case["ceil_mode"])
    ow = window_out(w, case["kernel"][1], case["stride"][1], left, right, case["dilation"][1], case["ceil_mode"])
    scale, shift = _prologue(c, case["prologue"], gen)
    buf, out = layout_view((n, c, oh, ow), case["out_layout"], case["dtype"])
    pool.pool2d(x, out, case["mode"], case["kernel"], case["stride"], case["padding"], case["dilation"],
                count_include_pad=case["count_include_pad"], scale=scale, shift=shift, prologue_relu=case["relu"])
    ref = torch_ops.fused_pool([x.double(), None if scale is None else scale.double(),
                                None if shift is None else shift.double()], _attrs(case))
    return buf, out, ref


@pytest.mark.parametrize("case", _window_cases(16, 0), ids=_ids)
def test_pool2d(case):
    gen = torch.Generator().manual_seed(1)
    _, x = layout_view(case["shape"], case["layout"], case["dtype"], gen)
    buf, out, ref = _run_window(case, x, gen)
    assert out.shape == ref.shape
    assert relative_l2(out, ref) < TOL[case["dtype"]]
    assert untouched_outside(buf, out)


def test_inception_reduction_max_pool_into_a_concat_slice():
    """3x3 stride-2 max pool writing channels [2, 2+C) of an NHWC concat buffer, ceil mode."""
    case = dict(mode="max", kernel=(3, 3), stride=(2, 2), padding=(0, 0, 0, 0), dilation=(1, 1), ceil_mode=True,
                count_include_pad=False, prologue=False, relu=False, dtype=torch.float16, out_layout="slice")
    gen = torch.Generator().manual_seed(2)
    _, x = layout_view((2, 16, 8, 8), "nhwc", torch.float16, gen)
    buf, out, ref = _run_window(case, x, gen)
    assert out.shape == (2, 16, 4, 4) and relative_l2(out, ref) < 1e-2 and untouched_outside(buf, out)


def test_avg_pool_divisors_with_overhang():
    """Ceil mode, pads (top 1, left 1, bottom 1, right 0): the last column's window hangs one
    column past the input, which no divisor counts; the pads count with count_include_pad."""
    x = torch.ones(1, 1, 5, 5, device=DEVICE)
    for include, corner, last_column in ((True, 4 / 9, 4 / 6), (False, 1.0, 1.0)):
        out = torch.full((1, 1, 3, 3), NAN, device=DEVICE)
        pool.pool2d(x, out, "avg", (3, 3), (2, 2), (1, 1, 1, 0), count_include_pad=include)
        ref = torch_ops.avg_pool([x.double()], dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 0),
                                                    ceil_mode=True, count_include_pad=include))
        assert torch.allclose(out.double(), ref)
        assert abs(out[0, 0, 0, 0].item() - corner) < 1e-6 and abs(out[0, 0, 0, 2].item() - last_column) < 1e-6


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_max_pool_propagates_nan(layout):
    gen = torch.Generator().manual_seed(3)
    _, x = layout_view((1, 3, 6, 6), layout, torch.float32, gen)
    x[0, 1, 2, 3] = NAN
    out = torch.full((1, 3, 3, 3), 0.0, device=DEVICE)
    pool.pool2d(x, out, "max", (2, 2), (2, 2))
    ref = torch_ops.max_pool([x.double()], dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0, 0, 0),
                                                 dilation=(1, 1), ceil_mode=False))
    assert torch.equal(torch.isnan(out), torch.isnan(ref)) and torch.isnan(out[0, 1, 1, 1])
    finite = ~torch.isnan(ref)
    assert torch.equal(out[finite].double(), ref[finite])


def _global_cases(count, seed):
    rng = random.Random(seed)
    return [dict(mode=("global_avg", "global_max")[i % 2], shape=(rng.randint(1, 3), rng.choice([3, 8, 13]),
                 rng.randint(1, 9), rng.randint(1, 9)), prologue=rng.random() < 0.6, relu=rng.random() < 0.5,
                 dtype=rng.choice(list(TOL)), layout=rng.choice(LAYOUTS), flat_out=rng.random() < 0.5)
            for i in range(count)]


@pytest.mark.parametrize("case", _global_cases(10, 4),
                         ids=lambda c: f"{c['mode']}-{c['shape']}-{c['layout']}-{'pro' if c['prologue'] else 'plain'}")
def test_global_pool(case):
    gen = torch.Generator().manual_seed(5)
    _, x = layout_view(case["shape"], case["layout"], case["dtype"], gen)
    n, c = case["shape"][:2]
    scale, shift = _prologue(c, case["prologue"], gen)
    out_buf = torch.full((n, c + 3), NAN, dtype=case["dtype"], device=DEVICE)
    out = out_buf[:, 1:1 + c] if case["flat_out"] else out_buf[:, 1:1 + c, None, None]
    pool.global_pool(x, out, case["mode"], scale=scale, shift=shift, prologue_relu=case["relu"])
    ref = torch_ops.fused_pool([x.double(), None if scale is None else scale.double(),
                                None if shift is None else shift.double()],
                               dict(mode=case["mode"], prologue_relu=case["relu"]))
    assert relative_l2(out, ref.view(out.shape)) < TOL[case["dtype"]]
    assert untouched_outside(out_buf, out)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_global_max_propagates_nan(layout):
    gen = torch.Generator().manual_seed(6)
    _, x = layout_view((2, 4, 5, 5), layout, torch.float32, gen)
    x[1, 2, 4, 0] = NAN
    out = torch.zeros(2, 4, device=DEVICE)
    pool.global_pool(x, out, "global_max")
    assert torch.isnan(out[1, 2]) and torch.isnan(out).sum() == 1


def test_launchers_refuse_bad_arguments():
    x = torch.randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match="matches no pooling"):
        pool.pool2d(x, torch.empty(1, 2, 4, 4), "max", (2, 2), (2, 2))
    with pytest.raises(ValueError, match="dilation"):
        pool.pool2d(x, torch.empty(1, 2, 3, 3), "avg", (2, 2), (1, 1), dilation=(2, 2))
    with pytest.raises(ValueError, match="both scale and shift"):
        pool.pool2d(x, torch.empty(1, 2, 2, 2), "max", (2, 2), (2, 2), scale=torch.ones(2))
    with pytest.raises(ValueError, match="shape"):
        pool.global_pool(x, torch.empty(1, 3), "global_avg")
    with pytest.raises(ValueError, match="mode"):
        pool.pool2d(x, torch.empty(1, 2, 2, 2), "min", (2, 2), (2, 2))
    with pytest.raises(ValueError, match="padding"):
        pool.pool2d(x, torch.empty(1, 2, 2, 2), "max", (2, 2), (2, 2), (0, 0, 0))
