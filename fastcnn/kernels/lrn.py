"""ONNX LocalResponseNormalization across channels, over strided 4-D views.

``out = x / (bias + alpha / size * sum of x^2 over channels c - (size-1)//2 .. c + size//2) ** beta``,
the window clipped to the real channels (missing channels add 0; the divisor stays ``size``),
as :func:`fastcnn.backends.torch_ops.lrn`. The power is ``exp2(-beta * log2(d))`` in fp32.

A program covers ``BLOCK_P`` positions (image, row, column) by ``BLOCK_C`` channels and reads
the ``size`` shifted channel tiles of its window; the shifts overlap, so all but the first
come from cache. NHWC views are read channel-fastest, NCHW ones position-fastest.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastcnn.kernels.elementwise import check_float, check_same_device, check_writable, pow2, vector_width
from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel


@kernel
def _lrn_kernel(
    x_ptr, out_ptr,
    C_q, H, W, P, size, before, alpha_over_size, beta, bias,
    sxn, sxc, sxh, sxw, son, soc, soh, sow,
    X_C_CONTIG: tl.constexpr, O_C_CONTIG: tl.constexpr, VEC: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, PDL: tl.constexpr,
):
    """``C == C_q * VEC``; ``P = N * H * W``; the window is ``c - before .. c - before + size - 1``."""
    grid_dependency(PDL)
    C = C_q * VEC
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_p = p < P
    mask_c = c < C
    w = p % W
    t = p // W
    h = t % H
    n = t // H
    x_pos = (x_ptr + n.to(tl.int64) * sxn + h.to(tl.int64) * sxh + w.to(tl.int64) * sxw)[:, None]
    if X_C_CONTIG:
        x_tile = x_pos + c[None, :]
        x_tile = tl.multiple_of(x_tile, [1, VEC * (x_ptr.dtype.element_ty.primitive_bitwidth // 8)])
    else:
        x_tile = x_pos + c[None, :].to(tl.int64) * sxc
    mask = mask_p[:, None] & mask_c[None, :]
    x = tl.load(x_tile, mask=mask, other=0.0).to(tl.float32)

    squares = tl.zeros((BLOCK_P, BLOCK_C), tl.float32)
    for j in range(size):
        cj = c + (j - before)
        ok = mask_p[:, None] & ((cj >= 0) & (cj < C))[None, :]
        if X_C_CONTIG:
            v = tl.load(x_pos + cj[None, :], mask=ok, other=0.0).to(tl.float32)
        else:
            v = tl.load(x_pos + cj[None, :].to(tl.int64) * sxc, mask=ok, other=0.0).to(tl.float32)
        squares += v * v
    d = bias + alpha_over_size * squares
    y = x * tl.exp2(-beta * tl.log2(d))

    o_pos = (out_ptr + n.to(tl.int64) * son + h.to(tl.int64) * soh + w.to(tl.int64) * sow)[:, None]
    if O_C_CONTIG:
        o = tl.multiple_of(o_pos + c[None, :], [1, VEC * (out_ptr.dtype.element_ty.primitive_bitwidth // 8)])
    else:
        o = o_pos + c[None, :].to(tl.int64) * soc
    tl.store(o, y.to(out_ptr.dtype.element_ty), mask=mask)


def lrn_call(x: torch.Tensor, out: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
             bias: float = 1.0) -> KernelCall:
    """ONNX LRN of a strided 4-D ``x`` into ``out`` (same shape, any strides)."""
    check_float("x", x)
    check_float("out", out)
    if x.dim() != 4 or tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"lrn takes a 4-D x and an out of its shape, got {tuple(x.shape)} and {tuple(out.shape)}")
    if int(size) != size or size < 1:
        raise ValueError(f"lrn size must be a positive integer, got {size}")
    check_writable("out", out)
    check_same_device(x=x, out=out)
    n, c, h, w = x.shape
    x_c, o_c = x.stride(1) == 1, out.stride(1) == 1
    vec = 1
    if x_c and o_c:
        vec = vector_width(c, *[(t, [s for i, s in enumerate(t.stride()) if i != 1]) for t in (x, out)])
    positions = n * h * w
    if x_c:
        block_c = min(pow2(c), 64)
        block_p = max(1, min(1024 // block_c, pow2(positions)))
    else:
        block_c = min(pow2(c), 4)
        block_p = min(pow2(positions), 128)
    args = (x, out, c // vec, h, w, positions, int(size), (int(size) - 1) // 2, float(alpha) / size,
            float(beta), float(bias), *x.stride(), *out.stride())
    constexprs = dict(X_C_CONTIG=x_c, O_C_CONTIG=o_c, VEC=vec, BLOCK_P=block_p, BLOCK_C=block_c)
    grid = (triton.cdiv(positions, block_p), triton.cdiv(c, block_c))
    return KernelCall(_lrn_kernel, args, constexprs, grid, num_warps=4, num_stages=1, name="lrn")


def lrn(x: torch.Tensor, out: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
        bias: float = 1.0) -> None:
    call = lrn_call(x, out, size, alpha, beta, bias)
    if out.numel():
        call()
