"""Squeeze-and-excitation: the gate ``sigmoid(relu(mean @ W1.T + b1) @ W2.T + b2)`` and the scale.

The gate, per image: ``mean`` is either pooled by the kernel itself from a strided 4-D
``x`` (:func:`se_gate_from_x`), or fp32 per-(image, channel) sums that a convolution's
epilogue produced, divided by a count given as an argument (:func:`se_gate_from_sums`).
Both are one kernel, one launch: sums are an ``x`` of 1 x 1 pixels. ``W1`` is ``(Cr, C)``,
``W2`` ``(C, Cr)`` (any float dtype, any strides), the biases fp32; the gate is written
``(N, C)`` (or ``(N, C, 1, 1)``) in ``out``'s dtype.

**Tiling.** A program takes a tile of ``BLOCK_N`` = 16 image rows (``images`` of them its
own, the rest masked) and the channel blocks ``j, j + P, j + 2P, ...`` of ``BLOCK_CO`` = 64
gate channels, P (the grid's second axis) at most :data:`MAX_CHANNEL_PROGRAMS` = 8. In three
steps:

1. from ``x`` only: it pools its images into an fp32 ``(N, C)`` scratch of sums, ``x`` read
   once, ``BLOCK_HW x BLOCK_P`` at a time;
2. ``hidden[BLOCK_N, Cr] = relu(mean @ W1.T + b1)``, ``BLOCK_R`` = 128 reduced channels at a
   time, each a ``tl.dot`` over C in ``BLOCK_C`` = 32 chunks (mean = sums / count), into the
   program's slot of a ``BLOCK_N x Cr`` scratch (in W2's dtype);
3. per channel block, ``gate[BLOCK_N, BLOCK_CO] = sigmoid(hidden @ W2[co].T + b2[co])``, a
   ``tl.dot`` over Cr in ``BLOCK_K`` = 16 chunks read back from the scratch.

A ``tl.debug_barrier`` ends steps 1 and 2, whose scratch rows other threads of the program
read (``.cg`` loads, from L2). The scratch is what lets both reductions be tiled: registers
hold one chunk, never the whole hidden vector, so Cr is bounded only by :data:`MAX_REDUCED`
(which keeps the scratch small), and the P programs of an image tile recompute the tile's
hidden once each, not once per channel block. Both scratches (``grid x 16 x Cr`` elements, and
``N x C`` fp32 from ``x``) come from the caller's memory plan (:func:`gate_scratch` sizes them),
or the launcher allocates them with the call.

The dots take their operands in the weights' dtype: fp32 weights give an exact fp32 dot
(``input_precision="ieee"``, FMA units), 16-bit weights a 16-bit dot (tensor cores, ``mean``
and ``hidden`` rounded to it) with fp32 accumulation; pooling, biases, ReLU and the sigmoid
are fp32. fp32's tl.dot holds its operands whole in registers, which is why the reductions
are chunked short; one set of tiles compiles without spills for fp32, fp16 and bf16 on sm_80
and sm_90 (``test_default_configs_compile_without_spills``).

**Reads from sums** (16 images a program, P = min(8, cdiv(C, 64))): a program reads its
images' sums (once when Cr <= 128), all of W1 and b1, and the W2 rows and b2 of its channels.
At SE-ResNet-50's last stage, C = 2048 and Cr = 128: P = 8, 256 channels a program; with
16-bit weights (fp32 weights in brackets):

* batch 1: 8 programs read 8 x 8 KB of sums, 8 x 512 KB of W1 and 512 KB of W2 in all, plus
  0.2 MB of scratch: about 4.7 MB (9.4 MB);
* batch 256: 16 x 8 = 128 programs read 128 x 128 KB of sums (16 MB), 128 x 512 KB of W1
  (64 MB), 16 x 512 KB of W2 (8 MB) and 2.5 MB of scratch: about 91 MB (165 MB), nearly
  all from L2 (the weights are 1 MB (2 MB)); DRAM sees the 2 MB of sums, the weights, the gate.

The kernel before this one had a program per (image, 32 channels) recompute the hidden
vector from all of W1: 64 MB of reads per image, 16 GB at batch 256.

**Reads pooling x** (P = 1, so ``x`` is read exactly once): a program takes ``images =
clamp(ceil(Cr * W1 itemsize / (H*W * x itemsize)), 1, 16)`` images, enough that its share of
``x`` outweighs its read of W1, few enough to keep N / images programs busy. It reads all of
W1 and W2: at the last stage (7 x 7) that is 3 images, so 86 programs at batch 256 read
86 x 1 MB of 16-bit weights, from L2, next to the 51 MB of ``x``; at 56 x 56, one image a
program.

The scale, ``out = post_activation(x * gate[n, c] + residual)``, is the elementwise kernel
of :mod:`fastcnn.kernels.elementwise` with the gate broadcast over H and W through strides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from fastcnn.kernels.elementwise import check_float, check_same_device, check_writable, elementwise_call, pow2
from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel

MAX_REDUCED = 1024  # the largest Cr the gate accepts (the kernel tiles Cr: the bound keeps the scratch small)
BLOCK_N = 16  # image rows of a program's tile (tl.dot takes at least 16)
MAX_CHANNEL_PROGRAMS = 8  # the most programs that share (and each recompute) a tile's hidden
# The widest tiles (narrower for smaller C and Cr: tl.dot takes 16 at least), the same for every
# dtype. fp32's tl.dot is an FMA loop holding its operands whole in registers, so its reductions
# (BLOCK_C, BLOCK_K) stay short; with BLOCK_K = 32, 16-bit dots let ptxas trade a few bytes of
# spills for occupancy on sm_80 and sm_90.
BLOCK_C, BLOCK_R, BLOCK_CO, BLOCK_K = 32, 128, 64, 16


@kernel
def _se_gate_kernel(
    x_ptr, sums_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, hid_ptr,
    N, C, CR, HW, W, inv_count, images, co_step,
    sxn, sxc, sxh, sxw, ssn, ssc, sw1r, sw1c, sw2c, sw2r, son, soc,
    POOL: tl.constexpr, FLAT_HW: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_HW: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_CO: tl.constexpr,
    BLOCK_K: tl.constexpr, PDL: tl.constexpr,
):
    grid_dependency(PDL)
    n0 = tl.program_id(0) * images
    i = tl.arange(0, BLOCK_N)
    rows = (n0 + i).to(tl.int64)
    mask_n = (i < images) & (n0 + i < N)

    # 1. pooling from x: the sums of this program's images into their rows of sums (fp32)
    if POOL:
        for j in range(0, tl.minimum(images, N - n0)):
            x_n = x_ptr + (n0 + j).to(tl.int64) * sxn
            for c0 in range(0, C, BLOCK_P):
                c = c0 + tl.arange(0, BLOCK_P)
                mask_c = c < C
                acc = tl.zeros((BLOCK_HW, BLOCK_P), tl.float32)
                for p0 in range(0, HW, BLOCK_HW):
                    p = p0 + tl.arange(0, BLOCK_HW)
                    if FLAT_HW:  # pixel p at p * sxw
                        ptrs = (x_n + p.to(tl.int64) * sxw)[:, None] + c.to(tl.int64)[None, :] * sxc
                    else:
                        ptrs = (x_n + (p // W).to(tl.int64) * sxh + (p % W).to(tl.int64) * sxw)[:, None] \
                            + c.to(tl.int64)[None, :] * sxc
                    acc += tl.load(ptrs, mask=(p < HW)[:, None] & mask_c[None, :], other=0.0).to(tl.float32)
                tl.store(sums_ptr + (n0 + j).to(tl.int64) * ssn + c.to(tl.int64) * ssc, tl.sum(acc, axis=0),
                         mask=mask_c)
        tl.debug_barrier()

    # 2. hidden = relu(mean @ W1.T + b1), BLOCK_R reduced channels at a time (each a tl.dot over
    # C in BLOCK_C chunks), into this program's slot of the scratch hid (BLOCK_N x CR, W2's dtype)
    hid = hid_ptr + (tl.program_id(0) * tl.num_programs(1) + tl.program_id(1)).to(tl.int64) * (BLOCK_N * CR)
    for r0 in range(0, CR, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        mask_r = r < CR
        h = tl.zeros((BLOCK_N, BLOCK_R), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            mask_c = c < C
            mean = tl.load(sums_ptr + rows[:, None] * ssn + c.to(tl.int64)[None, :] * ssc,
                           mask=mask_n[:, None] & mask_c[None, :], other=0.0, cache_modifier=".cg").to(tl.float32)
            w1 = tl.load(w1_ptr + r.to(tl.int64)[None, :] * sw1r + c.to(tl.int64)[:, None] * sw1c,
                         mask=mask_c[:, None] & mask_r[None, :], other=0.0)  # W1.T[c, r]
            h = tl.dot((mean * inv_count).to(w1_ptr.dtype.element_ty), w1, h, input_precision="ieee")
        h += tl.load(b1_ptr + r, mask=mask_r, other=0.0)[None, :]
        h = tl.where(h < 0.0, 0.0, h)
        tl.store(hid + i[:, None] * CR + r[None, :], h.to(hid_ptr.dtype.element_ty), mask=mask_r[None, :])
    tl.debug_barrier()

    # 3. gate = sigmoid(hidden @ W2.T + b2) for this program's channel blocks, a tl.dot over Cr in
    # BLOCK_K chunks of the scratch
    for co0 in range(tl.program_id(1) * BLOCK_CO, C, co_step):
        co = co0 + tl.arange(0, BLOCK_CO)
        mask_co = co < C
        g = tl.zeros((BLOCK_N, BLOCK_CO), tl.float32)
        for k0 in range(0, CR, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            mask_k = k < CR
            h = tl.load(hid + i[:, None] * CR + k[None, :], mask=mask_k[None, :], other=0.0, cache_modifier=".cg")
            w2 = tl.load(w2_ptr + k.to(tl.int64)[:, None] * sw2r + co.to(tl.int64)[None, :] * sw2c,
                         mask=mask_k[:, None] & mask_co[None, :], other=0.0)  # W2.T[k, co]
            g = tl.dot(h.to(w2_ptr.dtype.element_ty), w2, g, input_precision="ieee")
        g += tl.load(b2_ptr + co, mask=mask_co, other=0.0)[None, :]
        g = 1.0 / (1.0 + tl.exp(-g))
        tl.store(out_ptr + rows[:, None] * son + co.to(tl.int64)[None, :] * soc, g.to(out_ptr.dtype.element_ty),
                 mask=mask_n[:, None] & mask_co[None, :])


def _check_gate(src, w1, b1, w2, b2, out):
    n, c = src.shape[:2]
    for name, t in (("w1", w1), ("w2", w2)):
        check_float(name, t)
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    cr = w1.shape[0]
    if tuple(w1.shape) != (cr, c) or tuple(w2.shape) != (c, cr):
        raise ValueError(f"w1 must be (Cr, {c}) and w2 ({c}, Cr), got {tuple(w1.shape)} and {tuple(w2.shape)}")
    if not 1 <= cr <= MAX_REDUCED:
        raise ValueError(f"the gate holds at most {MAX_REDUCED} reduced channels, got {cr}")
    for name, t, size in (("b1", b1, cr), ("b2", b2, c)):
        check_float(name, t, (torch.float32,))
        if tuple(t.shape) != (size,):
            raise ValueError(f"{name} must have shape ({size},), got {tuple(t.shape)}")
    check_float("out", out)
    if tuple(out.shape) not in ((n, c), (n, c, 1, 1)):
        raise ValueError(f"out must have shape {(n, c)} or {(n, c, 1, 1)}, got {tuple(out.shape)}")
    check_writable("out", out)
    check_same_device(x=src, w1=w1, b1=b1, w2=w2, b2=b2, out=out)
    return n, c, cr


@dataclass(frozen=True)
class GateScratch:
    """The gate's two scratch sizes in elements: fp32 per-(image, channel) sums (0 when the
    gate reads sums a convolution made), and the hidden rows, in W2's dtype."""

    sums: int
    hidden: int


def _gate_tiles(n: int, c: int, cr: int, hw: int, w1_itemsize: int, x_itemsize: int) -> tuple[bool, int, int]:
    """(pool, images per program, channel programs) of one gate launch."""
    pool = hw > 1
    if pool:  # x read once: one channel program, images enough that x outweighs W1
        return True, max(1, min(BLOCK_N, math.ceil(cr * w1_itemsize / (hw * x_itemsize)))), 1
    block_co = min(BLOCK_CO, max(16, pow2(c)))
    return False, BLOCK_N, min(MAX_CHANNEL_PROGRAMS, triton.cdiv(c, block_co))


def gate_scratch(n: int, c: int, cr: int, hw: int, w1_itemsize: int, x_itemsize: int) -> GateScratch:
    """What one gate launch needs besides its output: the memory planner asks this, the
    launcher takes the buffers back (``scratch=``)."""
    pool, images, programs = _gate_tiles(n, c, cr, hw, w1_itemsize, x_itemsize)
    return GateScratch(n * c if pool else 0, triton.cdiv(n, images) * programs * BLOCK_N * cr)


def _gate_call(x4, w1, b1, w2, b2, out, n, c, cr, inv_count, scratch=None) -> KernelCall:
    """``x4``: an (N, C, H, W) view (sums as 1 x 1 pixels); ``scratch``: (sums, hidden) flat
    buffers of at least :func:`gate_scratch`'s sizes, or ``None`` to allocate them here."""
    h, w = x4.shape[2:]
    hw = h * w
    pool, images, programs = _gate_tiles(n, c, cr, hw, w1.element_size(), x4.element_size())
    block_c, block_co = min(BLOCK_C, max(16, pow2(c))), min(BLOCK_CO, max(16, pow2(c)))
    block_r, block_k = min(BLOCK_R, max(16, pow2(cr))), min(BLOCK_K, max(16, pow2(cr)))
    block_p = max(16, min(pow2(c), 32))
    block_hw = max(1, min(pow2(hw), 1024 // block_p)) if pool else 1
    grid = (triton.cdiv(n, images), programs)
    need = gate_scratch(n, c, cr, hw, w1.element_size(), x4.element_size())
    sums_buf, hid = _scratch_buffers(scratch, need, w2.dtype, x4.device)
    sums = sums_buf[:n * c].view(n, c) if pool else x4[:, :, 0, 0]
    sxn, sxc, sxh, sxw = x4.stride()
    flat = pool and (w == 1 or h == 1 or sxh == w * sxw)  # pixels one axis: p at p * sxw
    if flat and w == 1:
        sxw = sxh
    args = (x4, sums, w1, b1, w2, b2, out, hid, n, c, cr, hw, w, inv_count, images, programs * block_co,
            sxn, sxc, sxh, sxw, *sums.stride(), w1.stride(0), w1.stride(1), w2.stride(0), w2.stride(1),
            out.stride(0), out.stride(1))
    constexprs = dict(POOL=pool, FLAT_HW=flat, BLOCK_N=BLOCK_N, BLOCK_HW=block_hw, BLOCK_P=block_p,
                      BLOCK_C=block_c, BLOCK_R=block_r, BLOCK_CO=block_co, BLOCK_K=block_k)
    return KernelCall(_se_gate_kernel, args, constexprs, grid, num_warps=8, num_stages=1, name="se_gate")


def _scratch_buffers(scratch, need: GateScratch, hidden_dtype: torch.dtype,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(sums fp32, hidden) flat buffers: the caller's, checked, or fresh ones."""
    if scratch is None:
        return (torch.empty(need.sums, dtype=torch.float32, device=device),
                torch.empty(need.hidden, dtype=hidden_dtype, device=device))
    sums, hidden = scratch
    for name, t, dtype, numel in (("sums", sums, torch.float32, need.sums), ("hidden", hidden, hidden_dtype,
                                                                           need.hidden)):
        if t.dtype != dtype or t.dim() != 1 or not t.is_contiguous() or t.numel() < numel or t.device != device:
            raise ValueError(f"scratch {name} must be a contiguous 1-D {dtype} of at least {numel} elements on "
                             f"{device}, got {t.dtype} {tuple(t.shape)} on {t.device}")
    return sums, hidden


def se_gate_from_x_call(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                        b2: torch.Tensor, out: torch.Tensor, scratch=None) -> KernelCall:
    """The gate of a strided 4-D ``x``, pooling it over H x W (``scratch``: see :func:`gate_scratch`)."""
    check_float("x", x)
    if x.dim() != 4 or x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"x must be a non-empty 4-D tensor, got shape {tuple(x.shape)}")
    n, c, cr = _check_gate(x, w1, b1, w2, b2, out)
    return _gate_call(x, w1, b1, w2, b2, out, n, c, cr, 1.0 / (x.shape[2] * x.shape[3]), scratch)


def se_gate_from_sums_call(sums: torch.Tensor, count: int | float, w1: torch.Tensor, b1: torch.Tensor,
                           w2: torch.Tensor, b2: torch.Tensor, out: torch.Tensor, scratch=None) -> KernelCall:
    """The gate from fp32 per-(image, channel) ``sums`` ((N, C) or (N, C, 1, 1)), mean = sums / count."""
    check_float("sums", sums, (torch.float32,))
    if sums.dim() == 4 and tuple(sums.shape[2:]) == (1, 1):
        sums = sums[:, :, 0, 0]
    if sums.dim() != 2:
        raise ValueError(f"sums must be (N, C) or (N, C, 1, 1), got shape {tuple(sums.shape)}")
    if not count > 0:
        raise ValueError(f"count must be positive, got {count}")
    n, c, cr = _check_gate(sums, w1, b1, w2, b2, out)
    return _gate_call(sums[:, :, None, None], w1, b1, w2, b2, out, n, c, cr, 1.0 / float(count), scratch)


def se_gate_from_x(x, w1, b1, w2, b2, out) -> None:
    call = se_gate_from_x_call(x, w1, b1, w2, b2, out)
    if out.numel():
        call()


def se_gate_from_sums(sums, count, w1, b1, w2, b2, out) -> None:
    call = se_gate_from_sums_call(sums, count, w1, b1, w2, b2, out)
    if out.numel():
        call()


def se_scale_call(x: torch.Tensor, gate: torch.Tensor, out: torch.Tensor, residual: torch.Tensor | None = None,
                  *, post_relu: bool = False) -> KernelCall:
    """``out = post(x * gate[n, c] + residual)`` over strided 4-D views; ``gate`` (N, C) or (N, C, 1, 1)."""
    check_float("x", x)
    check_float("gate", gate)
    if x.dim() != 4 or tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"se_scale takes a 4-D x and an out of its shape, got {tuple(x.shape)} and {tuple(out.shape)}")
    n, c = x.shape[:2]
    if tuple(gate.shape) == (n, c):
        gate = gate[:, :, None, None]
    if tuple(gate.shape) != (n, c, 1, 1):
        raise ValueError(f"gate must have shape {(n, c)} or {(n, c, 1, 1)}, got {tuple(gate.shape)}")
    if residual is not None and tuple(residual.shape) != tuple(x.shape):
        raise ValueError(f"residual must have x's shape {tuple(x.shape)}, got {tuple(residual.shape)}")
    return elementwise_call(out, x, gate, residual, binary="mul", activation="relu" if post_relu else "none")


def se_scale(x: torch.Tensor, gate: torch.Tensor, out: torch.Tensor, residual: torch.Tensor | None = None,
             *, post_relu: bool = False) -> None:
    call = se_scale_call(x, gate, out, residual, post_relu=post_relu)
    if out.numel():
        call()
