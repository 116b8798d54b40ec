"""Elementwise kernels, the strided copy and the strided mean, against float64 torch.

Cases are drawn from a fixed seed: ranks 1..4, odd sizes, contiguous, permuted (NHWC-like)
and sliced views, NumPy broadcasting through stride-0 operands, every activation. Outputs
start as NaN; a sliced output's wider buffer must keep its NaN outside the slice.
"""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from fastcnn.kernels import elementwise as ew
from tests.helpers import relative_l2
from tests.kernels.tensors import DEVICE, MASKED_LANE_WARNINGS_IGNORED, NAN, TOL, strided, untouched_outside

DTYPES = list(TOL)
pytestmark = MASKED_LANE_WARNINGS_IGNORED


def _view(shape, layout, dtype, gen=None):
    """(buffer, view): ``shape`` laid out ``contiguous``, ``permuted`` (axis 1 fastest, like NHWC)
    or as ``slice`` 2.. of axis 1 in a buffer 3 wider; rank 1 is contiguous. Random unless ``gen`` is None."""
    rank = len(shape)
    if layout == "permuted" and rank >= 2:
        return strided(shape, (0, *range(2, rank), 1), dtype, gen)
    return strided(shape, range(rank), dtype, gen, widen=3 if layout == "slice" and rank >= 2 else 0, start=2)


def _ref_activation(x, act, alpha, lo, hi):
    if act == "clip":
        return x if lo is None and hi is None else torch.clamp(x, lo, hi)
    return {"none": lambda: x, "relu": lambda: torch.relu(x), "sigmoid": lambda: torch.sigmoid(x),
            "tanh": lambda: torch.tanh(x), "leaky_relu": lambda: F.leaky_relu(x, alpha)}[act]()


def _cases(kind, count, seed):
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        rank = rng.randint(1, 4)
        shape = tuple(rng.choice([1, 2, 3, 5, 7, 8, 13]) for _ in range(rank))
        case = dict(shape=shape, dtype=rng.choice(DTYPES), layout=rng.choice(["contiguous", "permuted", "slice"]),
                    out_layout=rng.choice(["contiguous", "permuted", "slice"]))
        if kind == "unary":
            case.update(activation=ew.ACTIVATIONS[i % len(ew.ACTIVATIONS)], alpha=rng.uniform(0.01, 0.3),
                        clip_min=rng.choice([None, -0.5]), clip_max=rng.choice([None, 0.75]))
        elif kind == "binary":
            case.update(op=ew.BINARY_OPS[1 + i % 4],
                        b_shape=tuple(d if rng.random() < 0.5 else 1 for d in shape)[rng.randint(0, rank - 1):])
        cases.append(case)
    return cases


@pytest.mark.parametrize("case", _cases("unary", 12, 0), ids=lambda c: f"{c['activation']}-{c['shape']}-{c['layout']}")
def test_unary(case):
    gen = torch.Generator().manual_seed(1)
    dtype = case["dtype"]
    _, x = _view(case["shape"], case["layout"], dtype, gen)
    x = x * 3
    buf, out = _view(case["shape"], case["out_layout"], dtype)
    ew.unary(x, out, case["activation"], alpha=case["alpha"], clip_min=case["clip_min"], clip_max=case["clip_max"])
    ref = _ref_activation(x.double(), case["activation"], case["alpha"], case["clip_min"], case["clip_max"])
    assert relative_l2(out, ref) < TOL[dtype]
    assert untouched_outside(buf, out)


@pytest.mark.parametrize("case", _cases("binary", 10, 1), ids=lambda c: f"{c['op']}-{c['shape']}-{c['b_shape']}")
def test_binary_broadcast(case):
    gen = torch.Generator().manual_seed(2)
    dtype = case["dtype"]
    _, a = _view(case["shape"], case["layout"], dtype, gen)
    b = torch.randn(case["b_shape"], generator=gen).to(DEVICE, dtype)
    if case["op"] == "div":
        b = (b.abs() + 0.5) * b.sign().where(b != 0, torch.ones_like(b))
    buf, out = _view(case["shape"], case["out_layout"], dtype)
    ew.binary(case["op"], a, b, out)
    ref = getattr(torch, case["op"])(a.double(), b.double())
    assert relative_l2(out, ref) < TOL[dtype]
    assert untouched_outside(buf, out)


def test_binary_broadcasts_the_first_operand_too():
    gen = torch.Generator().manual_seed(7)
    a, b = torch.randn(1, 3, generator=gen).to(DEVICE), torch.randn(4, 1, generator=gen).to(DEVICE)
    out = torch.full((4, 3), NAN, device=DEVICE)
    ew.binary("sub", a, b, out)
    assert relative_l2(out, a.double() - b.double()) < 1e-6


def test_fused_binary_residual_activation():
    gen = torch.Generator().manual_seed(3)
    x, y, z = (torch.randn(2, 5, 3, 4, generator=gen).to(DEVICE) for _ in range(3))
    out = torch.full_like(x, NAN)
    ew.elementwise_call(out, x, y[:, :, :1, :1], z, binary="mul", activation="relu")()
    assert relative_l2(out, torch.relu(x.double() * y[:, :, :1, :1].double() + z.double())) < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_copy_nhwc_to_nchw_is_exact(dtype):
    src = torch.randn(2, 5, 7, 6).to(DEVICE, dtype).permute(0, 3, 1, 2)  # NHWC storage, NCHW shape
    out = torch.full(src.shape, NAN, dtype=dtype, device=DEVICE)
    ew.strided_copy(src, out)
    assert out.is_contiguous() and torch.equal(out, src)
    buf, sliced = _view(src.shape, "slice", dtype)
    ew.strided_copy(src, sliced)
    assert torch.equal(sliced, src) and untouched_outside(buf, sliced)


def _mean_cases(count, seed):
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        rank = rng.randint(1, 4)
        shape = tuple(rng.choice([1, 2, 3, 5, 7, 10, 84]) for _ in range(rank))
        axes = [a for a in range(rank) if rng.random() < 0.5] or [rank - 1]
        if rng.random() < 0.3:
            axes = [a - rank for a in axes]  # negative axes
        cases.append(dict(shape=shape, axes=axes, keepdims=rng.random() < 0.5, dtype=rng.choice(DTYPES),
                          layout=rng.choice(["contiguous", "permuted", "slice"])))
    return cases


@pytest.mark.parametrize("case", _mean_cases(10, 4), ids=lambda c: f"{c['shape']}-{c['axes']}-{c['keepdims']}")
def test_reduce_mean(case):
    gen = torch.Generator().manual_seed(5)
    _, x = _view(case["shape"], case["layout"], case["dtype"], gen)
    ref = x.double().mean(dim=tuple(case["axes"]), keepdim=case["keepdims"])
    out = torch.full(ref.shape, NAN, dtype=case["dtype"], device=DEVICE)
    ew.reduce_mean(x, out, case["axes"])
    assert relative_l2(out, ref) < TOL[case["dtype"]]


def test_reduce_mean_lenet_rbf_axis():
    x = (torch.randn(3, 10, 84, generator=torch.Generator().manual_seed(6)) + 1).to(DEVICE)
    out = torch.full((3, 10, 1), NAN, device=DEVICE)
    ew.reduce_mean(x, out, [2])
    assert relative_l2(out, x.double().mean(2, keepdim=True)) < 1e-5
    everything = torch.full((), NAN, device=DEVICE)
    ew.reduce_mean(x, everything, [])
    assert relative_l2(everything, x.double().mean()) < 1e-5


@pytest.mark.parametrize("activation", ["relu", "clip", "leaky_relu", "sigmoid", "tanh"])
def test_activations_keep_nan(activation):
    x = torch.tensor([float("nan"), -1.0, 0.5, float("inf"), -float("inf")], device=DEVICE)
    out = torch.zeros_like(x)
    ew.unary(x, out, activation, clip_min=-0.5, clip_max=0.25)
    ref = _ref_activation(x.double(), activation, 0.01, -0.5, 0.25)
    assert torch.isnan(out[0])
    assert torch.allclose(out[1:].double(), ref[1:], atol=1e-6)


def test_coalescing_merges_contiguous_axes():
    sizes, strides = ew._coalesce((2, 3, 4, 5), [(60, 20, 5, 1), (60, 20, 5, 1)])
    assert sizes == [1, 1, 1, 120]
    nhwc = torch.empty(2, 4, 5, 3).permute(0, 3, 1, 2)  # written channel-fastest from NCHW
    sizes, strides = ew._coalesce(nhwc.shape, [nhwc.stride(), (60, 20, 5, 1)])
    assert sizes == [1, 2, 20, 3] and strides[0][3] == 1  # (h, w) merged in both operands


def test_vector_width_proves_alignment():
    x = torch.empty(64, 64)
    assert ew.vector_width(64, (x, (64,))) == 4
    assert ew.vector_width(64, (x[:, 1:], (64,))) == 1  # misaligned start
    assert ew.vector_width(62, (x, (64,))) == 2
    assert ew.vector_width(64, (x.half(), (64,))) == 8


def test_launchers_refuse_bad_arguments():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="broadcast"):
        ew.binary("add", x, torch.randn(4), torch.empty(2, 3))
    with pytest.raises(ValueError, match="stride 0"):
        ew.unary(x, torch.empty(1, 3).expand(2, 3))
    with pytest.raises(ValueError, match="activation"):
        ew.unary(x, torch.empty(2, 3), "gelu")
    with pytest.raises(ValueError, match="dtype"):
        ew.unary(x.double(), torch.empty(2, 3))
    with pytest.raises(ValueError, match="binary"):
        ew.binary("pow", x, x, torch.empty(2, 3))
    with pytest.raises(ValueError, match="gives"):
        ew.reduce_mean(x, torch.empty(3, 1), [1])
    with pytest.raises(ValueError, match="rank"):
        ew.unary(torch.randn(1, 2, 1, 2, 1), torch.empty(1, 2, 1, 2, 1))
