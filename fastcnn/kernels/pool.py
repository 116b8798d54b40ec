"""Max and average pooling, windowed and global, over strided 4-D views, with the prologue.

The prologue is ``fused_pool``'s (:mod:`fastcnn.ir.fused_ops`): ``x * scale[c] + shift[c]``,
then ReLU, applied to each element as it is loaded; the padding comes after it, so a padded
position adds 0 to an average and never wins a max, as in the torch reference.

Windowed pooling: ``kernel``, ``stride``, ``padding`` as ``(top, left, bottom, right)``,
``dilation`` (max only). ``ceil_mode`` is implied by the output size the caller passes (the
IR computes it); the window of the last row or column may then hang over the padded input.
The average divides by ONNX's count: with ``count_include_pad``, the window clipped to the
input plus its explicit pads (never the ceil-mode overhang); without it, the real elements.
A NaN in a max window gives NaN, like PyTorch.

A program covers ``BLOCK_P`` output positions (image, row, column flattened) by ``BLOCK_C``
channels. An NHWC view (channel stride 1) is read channel-fastest with 16-byte loads when
the launcher proves the alignment; an NCHW one position-fastest with few channels per tile.
The output may be a channel slice of a concat buffer: only its elements are written.

Global pooling reduces each (image, channel) over H x W, ``BLOCK_HW x BLOCK_C`` at a time,
into an ``(N, C, 1, 1)`` or ``(N, C)`` strided output.
"""
from __future__ import annotations

from typing import Sequence

import torch
import triton
import triton.language as tl

from fastcnn.kernels.elementwise import check_float, check_same_device, check_writable, pow2, vector_width
from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel

MODES = ("max", "avg")
GLOBAL_MODES = ("global_avg", "global_max")


@triton.jit
def prologue(v, scale, shift, HAS_PROLOGUE: tl.constexpr, PROLOGUE_RELU: tl.constexpr):
    """The per-channel batch norm (``scale``, ``shift`` broadcast rows) and ReLU on fp32 ``v``."""
    if HAS_PROLOGUE:
        v = v * scale + shift
    if PROLOGUE_RELU:
        v = tl.where(v < 0.0, 0.0, v)
    return v


@triton.jit
def max_nan(acc, v):
    """``max(acc, v)`` where a NaN on either side wins."""
    return tl.where((v > acc) | (v != v), v, acc)


@kernel
def _pool_kernel(
    x_ptr, scale_ptr, shift_ptr, out_ptr,
    C_q, H, W, OH, OW, P,
    KH, KW, SH, SW, PAD_T, PAD_L, PAD_B, PAD_R, DH, DW,
    sxn, sxc, sxh, sxw, son, soc, soh, sow,
    IS_MAX: tl.constexpr, COUNT_INCLUDE_PAD: tl.constexpr,
    HAS_PROLOGUE: tl.constexpr, PROLOGUE_RELU: tl.constexpr,
    X_C_CONTIG: tl.constexpr, O_C_CONTIG: tl.constexpr, VEC: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, PDL: tl.constexpr,
):
    """``C == C_q * VEC``; ``P = N * OH * OW`` output positions."""
    grid_dependency(PDL)
    C = C_q * VEC
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_p = p < P
    mask_c = c < C
    ow = p % OW
    t = p // OW
    oh = t % OH
    n = (t // OH).to(tl.int64)
    h0 = oh * SH - PAD_T
    w0 = ow * SW - PAD_L
    if X_C_CONTIG:
        x_c = c[None, :]
    else:
        x_c = c[None, :].to(tl.int64) * sxc
    x_n = x_ptr + n * sxn

    scale = tl.zeros((1, BLOCK_C), tl.float32)
    shift = tl.zeros((1, BLOCK_C), tl.float32)
    if HAS_PROLOGUE:
        scale = tl.load(scale_ptr + c, mask=mask_c, other=1.0)[None, :]
        shift = tl.load(shift_ptr + c, mask=mask_c, other=0.0)[None, :]

    if IS_MAX:
        acc = tl.full((BLOCK_P, BLOCK_C), float("-inf"), tl.float32)
    else:
        acc = tl.zeros((BLOCK_P, BLOCK_C), tl.float32)
    for kh in range(KH):
        h = h0 + kh * DH
        ok_h = mask_p & (h >= 0) & (h < H)
        x_h = x_n + h.to(tl.int64) * sxh
        for kw in range(KW):
            w = w0 + kw * DW
            ok = (ok_h & (w >= 0) & (w < W))[:, None] & mask_c[None, :]
            ptrs = (x_h + w.to(tl.int64) * sxw)[:, None] + x_c
            if X_C_CONTIG:
                ptrs = tl.multiple_of(ptrs, [1, VEC * (x_ptr.dtype.element_ty.primitive_bitwidth // 8)])
            v = tl.load(ptrs, mask=ok, other=0.0).to(tl.float32)
            v = prologue(v, scale, shift, HAS_PROLOGUE, PROLOGUE_RELU)
            if IS_MAX:
                acc = max_nan(acc, tl.where(ok, v, float("-inf")))
            else:
                acc += tl.where(ok, v, 0.0)

    if not IS_MAX:
        if COUNT_INCLUDE_PAD:  # the window clipped to the padded input, not the overhang
            rows = tl.minimum(h0 + KH, H + PAD_B) - h0
            cols = tl.minimum(w0 + KW, W + PAD_R) - w0
        else:  # the real elements only
            rows = tl.minimum(h0 + KH, H) - tl.maximum(h0, 0)
            cols = tl.minimum(w0 + KW, W) - tl.maximum(w0, 0)
        acc = acc / (rows * cols).to(tl.float32)[:, None]

    if O_C_CONTIG:
        o_c = c[None, :]
    else:
        o_c = c[None, :].to(tl.int64) * soc
    o = (out_ptr + n * son + oh.to(tl.int64) * soh + ow.to(tl.int64) * sow)[:, None] + o_c
    if O_C_CONTIG:
        o = tl.multiple_of(o, [1, VEC * (out_ptr.dtype.element_ty.primitive_bitwidth // 8)])
    tl.store(o, acc.to(out_ptr.dtype.element_ty), mask=mask_p[:, None] & mask_c[None, :])


@kernel
def _global_pool_kernel(
    x_ptr, scale_ptr, shift_ptr, out_ptr,
    C_q, HW, W, inv_hw,
    sxn, sxc, sxh, sxw, son, soc,
    IS_MAX: tl.constexpr, HAS_PROLOGUE: tl.constexpr, PROLOGUE_RELU: tl.constexpr,
    X_LAYOUT: tl.constexpr, VEC: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr, PDL: tl.constexpr,
):
    """One image, ``BLOCK_C`` channels. ``X_LAYOUT``: 1 channel stride 1 (NHWC; ``C == C_q * VEC``),
    2 H x W one contiguous run per channel (NCHW; ``HW`` then counts runs of VEC), 0 any."""
    grid_dependency(PDL)
    n = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    if X_LAYOUT == 1:
        C = C_q * VEC
    else:
        C = C_q
    if X_LAYOUT == 2:
        HW = HW * VEC
    mask_c = c < C
    scale = tl.zeros((1, BLOCK_C), tl.float32)
    shift = tl.zeros((1, BLOCK_C), tl.float32)
    if HAS_PROLOGUE:
        scale = tl.load(scale_ptr + c, mask=mask_c, other=1.0)[None, :]
        shift = tl.load(shift_ptr + c, mask=mask_c, other=0.0)[None, :]
    x_n = x_ptr + n * sxn
    if IS_MAX:
        acc = tl.full((BLOCK_HW, BLOCK_C), float("-inf"), tl.float32)
    else:
        acc = tl.zeros((BLOCK_HW, BLOCK_C), tl.float32)
    for p0 in range(0, HW, BLOCK_HW):
        p = p0 + tl.arange(0, BLOCK_HW)
        ok = (p < HW)[:, None] & mask_c[None, :]
        if X_LAYOUT == 1:
            ptrs = (x_n + (p // W).to(tl.int64) * sxh + (p % W).to(tl.int64) * sxw)[:, None] + c[None, :]
            ptrs = tl.multiple_of(ptrs, [1, VEC * (x_ptr.dtype.element_ty.primitive_bitwidth // 8)])
        elif X_LAYOUT == 2:
            ptrs = x_n + p[:, None] + c[None, :].to(tl.int64) * sxc
            ptrs = tl.multiple_of(ptrs, [VEC * (x_ptr.dtype.element_ty.primitive_bitwidth // 8), 1])
        else:
            ptrs = (x_n + (p // W).to(tl.int64) * sxh + (p % W).to(tl.int64) * sxw)[:, None] \
                + c[None, :].to(tl.int64) * sxc
        v = tl.load(ptrs, mask=ok, other=0.0).to(tl.float32)
        v = prologue(v, scale, shift, HAS_PROLOGUE, PROLOGUE_RELU)
        if IS_MAX:
            acc = max_nan(acc, tl.where(ok, v, float("-inf")))
        else:
            acc += tl.where(ok, v, 0.0)
    if IS_MAX:
        # a NaN anywhere in the column wins: count them, since max reductions may drop NaN
        nans = tl.sum(tl.where(acc != acc, 1.0, 0.0), axis=0)
        res = tl.where(nans > 0.0, float("nan"), tl.max(acc, axis=0))
    else:
        res = tl.sum(acc, axis=0) * inv_hw
    tl.store(out_ptr + n * son + c.to(tl.int64) * soc, res.to(out_ptr.dtype.element_ty), mask=mask_c)


def _check_prologue(x, scale, shift):
    if (scale is None) != (shift is None):
        raise ValueError("the prologue needs both scale and shift, or neither")
    if scale is not None:
        for name, t in (("scale", scale), ("shift", shift)):
            check_float(name, t, (torch.float32,))
            if tuple(t.shape) != (x.shape[1],):
                raise ValueError(f"prologue {name} must have shape ({x.shape[1]},), got {tuple(t.shape)}")
        check_same_device(x=x, scale=scale, shift=shift)


def _pair(name: str, value: Sequence[int], low: int) -> tuple[int, int]:
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < low:
        raise ValueError(f"{name} must be two integers >= {low}, got {value}")
    return value


def _window_out(size: int, kernel: int, stride: int, begin: int, end: int, dilation: int, ceil: bool) -> int:
    room = size + begin + end - (dilation * (kernel - 1) + 1)
    if room < 0:
        return 0
    out = (-(-room // stride) if ceil else room // stride) + 1
    if ceil and (out - 1) * stride >= size + begin:
        out -= 1
    return out


def pool2d_call(x: torch.Tensor, out: torch.Tensor, mode: str, kernel: Sequence[int],
                stride: Sequence[int] = (1, 1), padding: Sequence[int] = (0, 0, 0, 0),
                dilation: Sequence[int] = (1, 1), *, count_include_pad: bool = False,
                scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                prologue_relu: bool = False) -> KernelCall:
    """Windowed ``mode`` (``max`` or ``avg``) pooling of ``x`` into ``out`` (both strided 4-D)."""
    if mode not in MODES:
        raise ValueError(f"pool mode must be one of {MODES}, got {mode!r}")
    check_float("x", x)
    check_float("out", out)
    if x.dim() != 4 or out.dim() != 4:
        raise ValueError(f"pooling takes 4-D x and out, got {tuple(x.shape)} and {tuple(out.shape)}")
    kh, kw = _pair("kernel", kernel, 1)
    sh, sw = _pair("stride", stride, 1)
    dh, dw = _pair("dilation", dilation, 1)
    pads = tuple(int(v) for v in padding)
    if len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"padding must be 4 integers >= 0 (top, left, bottom, right), got {pads}")
    if mode == "avg" and (dh, dw) != (1, 1):
        raise ValueError(f"average pooling takes no dilation, got {(dh, dw)}")
    n, c, h, w = x.shape
    oh, ow = out.shape[2:]
    if tuple(out.shape[:2]) != (n, c):
        raise ValueError(f"out must have {n} images and {c} channels, got shape {tuple(out.shape)}")
    top, left, bottom, right = pads
    sizes = {(_window_out(h, kh, sh, top, bottom, dh, ceil), _window_out(w, kw, sw, left, right, dw, ceil))
             for ceil in (False, True)}
    if (oh, ow) not in sizes or oh < 1 or ow < 1:
        raise ValueError(f"out spatial size {(oh, ow)} matches no pooling of {(h, w)} with kernel {(kh, kw)}, "
                         f"stride {(sh, sw)}, padding {pads}, dilation {(dh, dw)}: expected one of {sorted(sizes)}")
    check_writable("out", out)
    _check_prologue(x, scale, shift)
    check_same_device(x=x, out=out)

    x_c, o_c = x.stride(1) == 1, out.stride(1) == 1
    views = [(t, [s for i, s in enumerate(t.stride()) if i != 1]) for t, cl in ((x, x_c), (out, o_c)) if cl]
    vec = vector_width(c, *views) if x_c and o_c else 1
    positions = n * oh * ow
    if x_c:  # NHWC: channels fastest
        block_c = min(pow2(c), 64 if x.element_size() == 4 else 128)
        block_p = max(1, min(1024 // block_c, pow2(positions)))
    else:
        block_c = min(pow2(c), 4)
        block_p = min(pow2(positions), 128)
    dummy = out
    args = (x, scale if scale is not None else dummy, shift if shift is not None else dummy, out,
            c // vec, h, w, oh, ow, positions, kh, kw, sh, sw, top, left, bottom, right, dh, dw,
            *x.stride(), *out.stride())
    constexprs = dict(IS_MAX=mode == "max", COUNT_INCLUDE_PAD=bool(count_include_pad) and mode == "avg",
                      HAS_PROLOGUE=scale is not None, PROLOGUE_RELU=bool(prologue_relu),
                      X_C_CONTIG=x_c, O_C_CONTIG=o_c, VEC=vec,
                      BLOCK_P=block_p, BLOCK_C=block_c)
    grid = (triton.cdiv(positions, block_p), triton.cdiv(c, block_c))
    return KernelCall(_pool_kernel, args, constexprs, grid, num_warps=4, num_stages=1, name=f"{mode}_pool")


def pool2d(x: torch.Tensor, out: torch.Tensor, mode: str, kernel: Sequence[int], stride: Sequence[int] = (1, 1),
           padding: Sequence[int] = (0, 0, 0, 0), dilation: Sequence[int] = (1, 1), **options) -> None:
    """Run :func:`pool2d_call` (options: count_include_pad, scale, shift, prologue_relu)."""
    call = pool2d_call(x, out, mode, kernel, stride, padding, dilation, **options)
    if out.numel():
        call()


def global_pool_call(x: torch.Tensor, out: torch.Tensor, mode: str, *, scale: torch.Tensor | None = None,
                     shift: torch.Tensor | None = None, prologue_relu: bool = False) -> KernelCall:
    """``mode`` (``global_avg`` or ``global_max``) over H x W of a strided 4-D ``x`` into an
    ``(N, C, 1, 1)`` or ``(N, C)`` strided ``out``."""
    if mode not in GLOBAL_MODES:
        raise ValueError(f"global pool mode must be one of {GLOBAL_MODES}, got {mode!r}")
    check_float("x", x)
    check_float("out", out)
    if x.dim() != 4:
        raise ValueError(f"global pooling takes a 4-D x, got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if tuple(out.shape) not in ((n, c, 1, 1), (n, c)):
        raise ValueError(f"out must have shape {(n, c, 1, 1)} or {(n, c)}, got {tuple(out.shape)}")
    if h * w == 0:
        raise ValueError(f"global pooling of an empty {h}x{w} image")
    check_writable("out", out)
    _check_prologue(x, scale, shift)
    check_same_device(x=x, out=out)
    return _global_call(x, out, mode == "global_max", scale, shift, prologue_relu)


def _global_call(x, out, is_max, scale, shift, prologue_relu) -> KernelCall:
    n, c, h, w = x.shape
    hw = h * w
    sxn, sxc, sxh, sxw = x.stride()
    if sxc == 1 and c > 1:
        layout, vec = 1, vector_width(c, (x, (sxn, sxh, sxw)))
        block_c = min(pow2(c), 64 if x.element_size() == 4 else 128)
        block_hw = max(1, min(2048 // block_c, pow2(hw)))
    else:
        flat = sxw == 1 and (h == 1 or sxh == w)
        layout, vec = (2, vector_width(hw, (x, (sxn, sxc)))) if flat else (0, 1)
        block_hw = min(pow2(hw), 512)
        block_c = max(1, min(2048 // block_hw, pow2(c), 16))
    dummy = out
    args = (x, scale if scale is not None else dummy, shift if shift is not None else dummy, out,
            c // vec if layout == 1 else c, hw // vec if layout == 2 else hw, w, 1.0 / hw,
            sxn, sxc, sxh, sxw, out.stride(0), out.stride(1))
    constexprs = dict(IS_MAX=is_max, HAS_PROLOGUE=scale is not None, PROLOGUE_RELU=bool(prologue_relu),
                      X_LAYOUT=layout, VEC=vec, BLOCK_HW=block_hw, BLOCK_C=block_c)
    return KernelCall(_global_pool_kernel, args, constexprs, (n, triton.cdiv(c, block_c)),
                      num_warps=4, num_stages=1, name="global_max_pool" if is_max else "global_avg_pool")


def global_pool(x: torch.Tensor, out: torch.Tensor, mode: str, **options) -> None:
    """Run :func:`global_pool_call` (options: scale, shift, prologue_relu)."""
    call = global_pool_call(x, out, mode, **options)
    if out.numel():
        call()
