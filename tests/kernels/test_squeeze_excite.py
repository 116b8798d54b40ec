"""Squeeze-excite gate and scale against the torch reference (fastcnn.backends.torch_ops) in float64.

Gates from the kernel's own pooling of a strided x and from fp32 sums with a count; scales
with and without residual and ReLU, NCHW, NHWC and channel-slice views. Cases are drawn from
a fixed seed; outputs start as NaN.

The gate tiles images (``BLOCK_N`` rows per program) and both reductions (C, then Cr): its
cases cover one image, batches that do not fill the last tile, C and Cr that do not fill
their blocks, Cr over one ``BLOCK_R`` chunk, and every input a view into a NaN-filled buffer
(a NaN that reaches the interpreter's dot is an error here), at SE-ResNet-50's last stage too.

Triton 3.9's interpreter multiplies bf16 operands of ``tl.dot`` as their raw 16-bit patterns;
every test here uses the ``bf16_dot`` fixture (conftest.py), which upcasts them first, so the
bf16 gate runs here too.
"""
from __future__ import annotations

import inspect
import random
import time

import pytest
import torch
import triton

from fastcnn.backends import torch_ops
from fastcnn.kernels import squeeze_excite as se
from tests.helpers import relative_l2
from tests.kernels.tensors import (
    DEVICE,
    LAYOUTS,
    NAN,
    NAN_IN_DOT_IS_AN_ERROR,
    TOL,
    layout_view,
    untouched_outside,
)

pytestmark = [NAN_IN_DOT_IS_AN_ERROR, pytest.mark.usefixtures("bf16_dot")]


def _weights(c, cr, gen, dtype=torch.float32):
    w1 = (torch.randn(cr, c, generator=gen) / c ** 0.5).to(DEVICE, dtype)
    w2 = (torch.randn(c, cr, generator=gen) / cr ** 0.5).to(DEVICE, dtype)
    return w1, torch.randn(cr, generator=gen).to(DEVICE), w2, torch.randn(c, generator=gen).to(DEVICE)


def _reference(x, w1, b1, w2, b2):
    return torch_ops.se_gate([x.double(), w1.double(), b1.double(), w2.double(), b2.double()], {})


def _gate_cases(count, seed):
    rng = random.Random(seed)
    return [dict(shape=(rng.randint(1, 3), rng.choice([4, 13, 40]), rng.randint(1, 9), rng.randint(1, 9)),
                 cr=rng.choice([1, 3, 10]), dtype=rng.choice(list(TOL)), layout=rng.choice(LAYOUTS),
                 weights_dtype=rng.choice([torch.float32, None]), out_4d=rng.random() < 0.5) for _ in range(count)]


def _gate_ids(c):
    return f"{c['shape']}-cr{c['cr']}-{c['layout']}-{str(c['dtype'])[6:]}"


def _gate_out(n, c, dtype, four_d):
    buf = torch.full((n, c + 2), NAN, dtype=dtype, device=DEVICE)
    return buf, (buf[:, 1:1 + c, None, None] if four_d else buf[:, 1:1 + c])


@pytest.mark.parametrize("case", _gate_cases(8, 0), ids=_gate_ids)
def test_gate_from_x(case):
    gen = torch.Generator().manual_seed(1)
    _, x = layout_view(case["shape"], case["layout"], case["dtype"], gen)
    n, c = case["shape"][:2]
    weights = _weights(c, case["cr"], gen, case["weights_dtype"] or case["dtype"])
    buf, out = _gate_out(n, c, case["dtype"], case["out_4d"])
    se.se_gate_from_x(x, *weights, out)
    assert relative_l2(out, _reference(x, *weights).view(out.shape)) < TOL[case["dtype"]]
    assert untouched_outside(buf, out)


@pytest.mark.parametrize("case", _gate_cases(6, 1), ids=_gate_ids)
def test_gate_from_sums(case):
    """Sums as a convolution's epilogue leaves them: fp32, (N, C) or (N, C, 1, 1), maybe strided."""
    gen = torch.Generator().manual_seed(2)
    _, x = layout_view(case["shape"], case["layout"], case["dtype"], gen)
    n, c, h, w = case["shape"]
    sums_buf = torch.full((n, c + 3), NAN, device=DEVICE)
    sums = sums_buf[:, :c]
    sums.copy_(x.double().sum(dim=(2, 3)))
    weights = _weights(c, case["cr"], gen)
    buf, out = _gate_out(n, c, case["dtype"], case["out_4d"])
    se.se_gate_from_sums(sums if case["out_4d"] else sums[:, :, None, None], h * w, *weights, out)
    assert relative_l2(out, _reference(x, *weights).view(out.shape)) < TOL[case["dtype"]]


def test_gate_shares_channels_among_programs():
    """From sums, the channels of an image are split over several programs: C = 70, Cr = 65."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 70, 1, 1, generator=gen).to(DEVICE)
    weights = _weights(70, 65, gen)
    call = se.se_gate_from_sums_call(x[:, :, 0, 0], 1, *weights, torch.empty(2, 70, device=DEVICE))
    assert call.grid[1] > 1
    out = torch.full((2, 70), NAN, device=DEVICE)
    se.se_gate_from_sums(x[:, :, 0, 0], 1, *weights, out)
    assert relative_l2(out, _reference(x, *weights).view(2, 70)) < 1e-4


# -- the tiled gate: poison all around every input and output -----------------------------------
STRICT = {torch.float32: 1e-6, torch.float16: 1e-2, torch.bfloat16: 1e-2}
# Inputs sit in buffers of +inf: a masked lane that reads one gives inf - inf in the dot, which
# NumPy reports (a NaN operand it does not), and the pytestmark makes that an error.
POISON = float("inf")


def _poisoned(t, transposed=False):
    """``t`` (1-D or 2-D) copied into the middle of a larger buffer of POISON, optionally stored transposed."""
    if t.dim() == 1:
        buf = torch.full((t.shape[0] + 3,), POISON, dtype=t.dtype, device=DEVICE)
        view = buf[1:1 + t.shape[0]]
    elif transposed:
        buf = torch.full((t.shape[1] + 2, t.shape[0] + 3), POISON, dtype=t.dtype, device=DEVICE)
        view = buf[1:1 + t.shape[1], 2:2 + t.shape[0]].t()
    else:
        buf = torch.full((t.shape[0] + 2, t.shape[1] + 3), POISON, dtype=t.dtype, device=DEVICE)
        view = buf[1:1 + t.shape[0], 2:2 + t.shape[1]]
    view.copy_(t)
    return view


def _poisoned_x(x, layout):
    """``x`` (N, C, H, W) as a view into a buffer of POISON: ``nhwc`` (a channel slice of a wider
    NHWC buffer, as a concat leaves it) or ``crop`` (an NCHW window: H and W are not one axis)."""
    n, c, h, w = x.shape
    if layout == "nhwc":
        buf = torch.full((n + 1, h, w, c + 5), POISON, dtype=x.dtype, device=DEVICE)
        view = buf[:n, :, :, 2:2 + c].permute(0, 3, 1, 2)
    else:
        buf = torch.full((n + 1, c, h + 2, w + 3), POISON, dtype=x.dtype, device=DEVICE)
        view = buf[:n, :, 1:1 + h, 2:2 + w]
    view.copy_(x)
    return view


def _arg(call, name):
    """A runtime argument of ``call`` by name (the gate kernel's runtime parameters come first)."""
    return call.args[list(inspect.signature(call.fn).parameters).index(name)]


def _run_gate(path, n, c, cr, hw, dtype, weights_dtype, x_layout="nhwc", seed=0, transposed=False):
    """The gate of one case through ``path`` ("sums" or "x"), every input a view into POISON and
    the output one into NaN, against float64; returns the call (run twice: its scratch is reused)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *hw, generator=gen).to(DEVICE, dtype)
    w1 = (torch.randn(cr, c, generator=gen) / c ** 0.5).to(DEVICE, weights_dtype)
    w2 = (torch.randn(c, cr, generator=gen) / cr ** 0.5).to(DEVICE, weights_dtype)
    b1, b2 = torch.randn(cr, generator=gen).to(DEVICE), torch.randn(c, generator=gen).to(DEVICE)
    weights = (_poisoned(w1, transposed), _poisoned(b1), _poisoned(w2, transposed), _poisoned(b2))
    out_buf = torch.full((n + 2, c + 3), NAN, dtype=dtype, device=DEVICE)
    out = out_buf[1:1 + n, 1:1 + c]
    if path == "sums":
        sums = _poisoned(x.double().sum(dim=(2, 3)).float())
        call = se.se_gate_from_sums_call(sums, hw[0] * hw[1], *weights, out)
    else:
        call = se.se_gate_from_x_call(_poisoned_x(x, x_layout), *weights, out)
    for _ in range(2):
        call()
        assert relative_l2(out, _reference(x, w1, b1, w2, b2).view(n, c)) < STRICT[dtype]
        assert untouched_outside(out_buf, out)
    return call


GATE_CASES = [  # path, N, C, Cr, (H, W), data dtype, weights dtype, x layout
    ("sums", 1, 64, 16, (3, 3), torch.float32, torch.float32, None),  # batch 1
    ("x", 1, 64, 16, (3, 3), torch.float16, torch.float16, "nhwc"),
    ("sums", 17, 100, 24, (2, 2), torch.float32, torch.float32, None),  # 16 + 1 images, C = 64 + 36, Cr not 2^k
    ("sums", 35, 70, 65, (5, 5), torch.float16, torch.float16, None),  # 3 image tiles, the last of 3
    ("sums", 3, 40, 130, (4, 4), torch.float32, torch.float32, None),  # Cr over one BLOCK_R of 128
    ("sums", 5, 200, 130, (7, 7), torch.bfloat16, torch.bfloat16, None),
    ("sums", 2, 90, 1, (1, 1), torch.float16, torch.float16, None),  # Cr = 1
    ("x", 25, 48, 65, (2, 3), torch.float32, torch.float32, "nhwc"),  # 11 images a program: 11 + 11 + 3
    ("x", 19, 33, 24, (2, 2), torch.float32, torch.float32, "crop"),  # 6 images a program, H and W apart
    ("x", 5, 40, 8, (3, 1), torch.float32, torch.float32, "crop"),  # W = 1: pixels one axis, H's stride
    ("x", 3, 100, 130, (5, 4), torch.float16, torch.float16, "crop"),
    ("x", 18, 80, 10, (1, 2), torch.bfloat16, torch.bfloat16, "nhwc"),
    ("x", 4, 70, 12, (3, 3), torch.float16, torch.float32, "nhwc"),  # 16-bit x, fp32 weights
    ("x", 2, 24, 5, (1, 1), torch.bfloat16, torch.bfloat16, "nhwc"),  # x of 1 x 1 pixels: no pooling
]


@pytest.mark.parametrize("case", GATE_CASES,
                         ids=lambda c: f"{c[0]}-n{c[1]}-c{c[2]}-cr{c[3]}-{c[4][0]}x{c[4][1]}-{str(c[5])[6:]}"
                                       f"-w{str(c[6])[6:]}-{c[7]}")
def test_gate_tiles(case):
    path, n, c, cr, hw, dtype, weights_dtype, layout = case
    call = _run_gate(path, n, c, cr, hw, dtype, weights_dtype, layout, transposed=n % 2 == 1)
    assert call.grid[0] == triton.cdiv(n, _arg(call, "images"))
    pool = path == "x" and hw != (1, 1)
    assert call.constexprs["POOL"] == pool
    assert call.constexprs["FLAT_HW"] == (pool and (layout == "nhwc" or 1 in hw))


def test_gate_sums_with_16_bit_weights():
    """What the Triton backend launches in 16 bits: fp32 sums from a convolution, weights and gate fp16."""
    _run_gate("sums", 20, 96, 6, (7, 7), torch.float16, torch.float16)


def _gate_call(path, n, c, cr, hw, dtype=torch.float16):
    w1, w2 = torch.empty(cr, c, dtype=dtype), torch.empty(c, cr, dtype=dtype)
    b1, b2, out = torch.empty(cr), torch.empty(c), torch.empty(n, c, dtype=dtype)
    if path == "sums":
        return se.se_gate_from_sums_call(torch.empty(n, c), hw * hw, w1, b1, w2, b2, out)
    x = torch.empty(n, hw, hw, c, dtype=dtype).permute(0, 3, 1, 2)
    return se.se_gate_from_x_call(x, w1, b1, w2, b2, out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_gate_reads_weights_once_per_image_tile(dtype):
    """SE-ResNet-50's last stage, C = 2048, Cr = 128. From sums, 16 images a program and 8
    programs over the channels (each recomputes the tile's hidden: W1 read 8 times per 16
    images); pooling x, one program over the channels, so x is read once."""
    assert se.BLOCK_N == 16 and se.MAX_CHANNEL_PROGRAMS == 8
    for n, tiles in ((1, 1), (16, 1), (17, 2), (256, 16)):
        call = _gate_call("sums", n, 2048, 128, 7, dtype)
        assert call.grid == (tiles, 8) and call.constexprs["BLOCK_N"] == 16
        assert call.constexprs["BLOCK_R"] == 128  # Cr in one chunk: the sums are read once
    itemsize = torch.empty(0, dtype=dtype).element_size()
    images = -(-128 * itemsize // (49 * itemsize))  # x outweighs W1 in a program: 3 images
    assert _gate_call("x", 256, 2048, 128, 7, dtype).grid == (triton.cdiv(256, images), 1)
    assert _gate_call("x", 256, 256, 16, 56, dtype).grid == (256, 1)


@pytest.mark.parametrize("path", ["sums", "x"])
def test_gate_last_stage_is_quick(path):
    """N = 2, C = 2048, Cr = 128: exact in fp32, and quick under the interpreter (the gate that
    recomputed the hidden vector for each 32 gate channels took 35 s here)."""
    start = time.perf_counter()
    _run_gate(path, 2, 2048, 128, (7, 7), torch.float32, torch.float32)  # two calls
    assert time.perf_counter() - start < 12


@pytest.mark.slow
@pytest.mark.parametrize("arch", [90, 80])
def test_default_configs_compile_without_spills(arch):
    """SE-ResNet-50's four stages from sums and pooling x, in fp32 (FMA dots) and 16 bits (tensor cores)."""
    from fastcnn.kernels.compile_check import compile_calls

    calls = [_gate_call(path, 256, c, c // 16, hw, dtype)
             for dtype in (torch.float32, torch.float16, torch.bfloat16)
             for c, hw in ((256, 56), (512, 28), (1024, 14), (2048, 7)) for path in ("sums", "x")]
    calls.append(_gate_call("sums", 8, 4096, se.MAX_REDUCED, 1, torch.float16))  # Cr in 8 chunks
    for call, report in zip(calls, compile_calls(calls, arch)):
        assert report.spills == 0, f"{call.constexprs} spills on sm_{arch}"
        assert report.tensor_cores == (call.args[2].dtype != torch.float32), report.math


def _scale_cases(count, seed):
    rng = random.Random(seed)
    return [dict(shape=(rng.randint(1, 2), rng.choice([3, 8, 13]), rng.randint(1, 7), rng.randint(1, 7)),
                 dtype=rng.choice(list(TOL)), layout=rng.choice(LAYOUTS), out_layout=rng.choice(LAYOUTS),
                 residual=rng.choice([None, *LAYOUTS]), post_relu=rng.random() < 0.5, gate_4d=rng.random() < 0.5)
            for _ in range(count)]


@pytest.mark.parametrize("case", _scale_cases(8, 4),
                         ids=lambda c: f"{c['shape']}-{c['layout']}-res_{c['residual']}-relu{int(c['post_relu'])}")
def test_scale(case):
    gen = torch.Generator().manual_seed(5)
    dtype = case["dtype"]
    _, x = layout_view(case["shape"], case["layout"], dtype, gen)
    n, c = case["shape"][:2]
    gate = torch.rand(n, c, generator=gen).to(DEVICE, dtype)
    residual = layout_view(case["shape"], case["residual"], dtype, gen)[1] if case["residual"] else None
    buf, out = layout_view(case["shape"], case["out_layout"], dtype)
    se.se_scale(x, gate[:, :, None, None] if case["gate_4d"] else gate, out, residual, post_relu=case["post_relu"])
    ref = torch_ops.se_scale([x.double(), gate.double().view(n, c, 1, 1),
                              None if residual is None else residual.double()],
                             dict(post_activation="relu" if case["post_relu"] else "none"))
    assert relative_l2(out, ref) < TOL[dtype]
    assert untouched_outside(buf, out)


def test_launchers_refuse_bad_arguments():
    x = torch.randn(2, 8, 3, 3)
    w1, b1, w2, b2 = torch.randn(2, 8), torch.randn(2), torch.randn(8, 2), torch.randn(8)
    with pytest.raises(ValueError, match="w1 must be"):
        se.se_gate_from_x(x, w1.t(), b1, w2, b2, torch.empty(2, 8))
    with pytest.raises(ValueError, match="b1"):
        se.se_gate_from_x(x, w1, b1.half(), w2, b2, torch.empty(2, 8))
    with pytest.raises(ValueError, match="out must have shape"):
        se.se_gate_from_x(x, w1, b1, w2, b2, torch.empty(2, 9))
    with pytest.raises(ValueError, match="sums"):
        se.se_gate_from_sums(torch.randn(2, 8).half(), 9, w1, b1, w2, b2, torch.empty(2, 8))
    with pytest.raises(ValueError, match="count"):
        se.se_gate_from_sums(torch.randn(2, 8), 0, w1, b1, w2, b2, torch.empty(2, 8))
    with pytest.raises(ValueError, match="gate"):
        se.se_scale(x, torch.randn(2, 7), torch.empty_like(x))
    with pytest.raises(ValueError, match="residual"):
        se.se_scale(x, torch.randn(2, 8), torch.empty_like(x), torch.randn(2, 8, 3, 4))
