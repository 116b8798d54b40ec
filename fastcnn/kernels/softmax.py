"""Softmax along the last axis of a strided 2-D ``(M, N)`` tensor, numerically stable.

A program covers ``BLOCK_M`` rows. When a row fits one ``BLOCK_N`` tile (N up to 4096: the
1000 classes of ImageNet fit) it is read once: max, ``exp2((x - max) * log2 e)``, sum,
divide. Longer rows take two passes: an online max and rescaled sum kept per lane, then the
output. A row containing NaN or +inf gives NaN everywhere, like ``torch.softmax``: a NaN
reaches the sum, and ``+inf - max`` is NaN (a row of -inf gives NaN too).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastcnn.kernels.elementwise import check_float, check_same_device, check_writable, pow2, vector_width
from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel

_LOG2E = tl.constexpr(1.4426950408889634)
MAX_BLOCK_N = 4096


@triton.jit
def _row_ptrs(ptr, rows, cols, s_row, s_col, CONTIG: tl.constexpr, VEC: tl.constexpr):
    if CONTIG:
        p = ptr + (rows.to(tl.int64) * s_row)[:, None] + cols[None, :]
        p = tl.multiple_of(p, [1, VEC * (ptr.dtype.element_ty.primitive_bitwidth // 8)])
    else:
        p = ptr + (rows.to(tl.int64) * s_row)[:, None] + (cols.to(tl.int64) * s_col)[None, :]
    return p


@kernel
def _softmax_kernel(
    x_ptr, out_ptr,
    M, N_q, sxm, sxn, som, son,
    X_CONTIG: tl.constexpr, O_CONTIG: tl.constexpr, VEC: tl.constexpr, ONE_PASS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PDL: tl.constexpr,
):
    """``N == N_q * VEC``."""
    grid_dependency(PDL)
    N = N_q * VEC
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = rows < M
    cols = tl.arange(0, BLOCK_N)
    if ONE_PASS:
        mask = mask_m[:, None] & (cols < N)[None, :]
        x = tl.load(_row_ptrs(x_ptr, rows, cols, sxm, sxn, X_CONTIG, VEC), mask=mask,
                    other=float("-inf")).to(tl.float32)
        mx = tl.max(x, axis=1)
        e = tl.exp2((x - mx[:, None]) * _LOG2E)
        y = e / tl.sum(e, axis=1)[:, None]
        tl.store(_row_ptrs(out_ptr, rows, cols, som, son, O_CONTIG, VEC), y.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        m_lane = tl.full((BLOCK_M, BLOCK_N), float("-inf"), tl.float32)
        s_lane = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        for n0 in range(0, N, BLOCK_N):
            c = n0 + cols
            mask = mask_m[:, None] & (c < N)[None, :]
            x = tl.load(_row_ptrs(x_ptr, rows, c, sxm, sxn, X_CONTIG, VEC), mask=mask,
                        other=float("-inf")).to(tl.float32)
            m_new = tl.where((x > m_lane) | (x != x), x, m_lane)  # a NaN must not be dropped
            empty = m_new == float("-inf")  # nothing but -inf so far in this lane: keep 0
            s_lane = s_lane * tl.where(empty, 0.0, tl.exp2((m_lane - m_new) * _LOG2E)) \
                + tl.where(empty, 0.0, tl.exp2((x - m_new) * _LOG2E))
            m_lane = m_new
        mx = tl.max(m_lane, axis=1)
        lane_scale = tl.where(m_lane == float("-inf"), 0.0, tl.exp2((m_lane - mx[:, None]) * _LOG2E))
        inv = 1.0 / tl.sum(s_lane * lane_scale, axis=1)
        for n0 in range(0, N, BLOCK_N):
            c = n0 + cols
            mask = mask_m[:, None] & (c < N)[None, :]
            x = tl.load(_row_ptrs(x_ptr, rows, c, sxm, sxn, X_CONTIG, VEC), mask=mask,
                        other=float("-inf")).to(tl.float32)
            y = tl.exp2((x - mx[:, None]) * _LOG2E) * inv[:, None]
            tl.store(_row_ptrs(out_ptr, rows, c, som, son, O_CONTIG, VEC), y.to(out_ptr.dtype.element_ty), mask=mask)


def softmax_call(x: torch.Tensor, out: torch.Tensor, *, block_n: int | None = None) -> KernelCall:
    """Softmax of each row of a strided 2-D ``x`` into ``out`` (same shape); ``block_n``
    overrides the tile width (a power of two), which decides between one pass and two."""
    check_float("x", x)
    check_float("out", out)
    if x.dim() != 2 or tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"softmax takes a 2-D x and an out of its shape, got {tuple(x.shape)} and {tuple(out.shape)}")
    check_writable("out", out)
    check_same_device(x=x, out=out)
    m, n = x.shape
    if n == 0:
        raise ValueError("softmax over an empty axis")
    if block_n is not None and (block_n < 1 or block_n & (block_n - 1)):
        raise ValueError(f"block_n must be a power of two, got {block_n}")
    x_c, o_c = x.stride(1) == 1 or n == 1, out.stride(1) == 1 or n == 1
    vec = vector_width(n, *[(t, (t.stride(0),)) for t, cl in ((x, x_c), (out, o_c)) if cl])
    block_n = block_n or min(pow2(n), MAX_BLOCK_N)
    block_n = max(block_n, vec)
    block_m = max(1, min(pow2(m), 1024 // block_n))
    warps = 8 if block_m * block_n >= 4096 else 4
    args = (x, out, m, n // vec, x.stride(0), x.stride(1), out.stride(0), out.stride(1))
    constexprs = dict(X_CONTIG=x_c, O_CONTIG=o_c, VEC=vec, ONE_PASS=n <= block_n, BLOCK_M=block_m, BLOCK_N=block_n)
    return KernelCall(_softmax_kernel, args, constexprs, (triton.cdiv(m, block_m),), num_warps=warps,
                      num_stages=1, name="softmax")


def softmax(x: torch.Tensor, out: torch.Tensor, **options) -> None:
    call = softmax_call(x, out, **options)
    if out.numel():
        call()
