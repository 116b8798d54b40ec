"""``fused_gemm``: ``out = activation(A @ W + bias)``, with split-K for the memory-bound case.

``A`` is an ``(M, K)`` strided view (the caller flattens a 4-D activation; for an NHWC one
in (H, W, C) order, having permuted ``W``'s K axis to match when it packed it). ``W`` is
packed once at build time by :func:`pack_gemm_weight`: ``N`` rows of ``K`` contiguous
elements in the data dtype, zero-padded along K to a multiple of ``PACK_K`` (128), so that
every K block the kernel loads from ``W`` is in bounds and 16-byte aligned, and the rows
hold K contiguous for the tensor cores (K-major ``B``, which tf32 needs on Hopper).

Classic CNNs run their fully connected layers at small batch, where the product is a
matrix-vector product bound by reading ``W`` (VGG-16's first layer reads 400 MB at fp32).
Two paths, a compile-time choice of the config:

- ``block_m == 1``: a matrix-vector kernel without ``tl.dot`` (which pads M to 16): each
  program streams a ``BLOCK_N x BLOCK_K`` tile of ``W`` (16 KB) per step with 16-byte loads
  and reduces ``w * a`` along K in fp32 at once, which keeps registers low (56 at fp32, 96 at
  16 bits on sm_90) so that many programs per multiprocessor keep loads in flight.
- ``block_m >= 16``: a tiled ``tl.dot`` kernel (tensor cores for fp16/bf16 and tf32;
  ``input_precision="ieee"`` for exact fp32).

Either splits K into ``split_k`` slices of a multiple of ``BLOCK_K`` (the last one may be
shorter) when the output tiles alone cannot occupy the GPU: each slice writes its fp32
partial sum to a workspace ``(splits, M, N)`` that the caller provides
(:func:`gemm_workspace_numel`), and a second kernel sums the slices, adds the bias and
applies the activation. :func:`choose_gemm_config` picks tiles and split by rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from fastcnn.kernels.elementwise import (
    activate,
    activation_args,
    check_float,
    check_same_device,
    check_writable,
    vector_width,
)
from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel

PACK_K = 128  # W's rows are padded to a multiple of this many elements (any BLOCK_K divides it)
_GEMM_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class GemmConfig:
    """Tiles and split of one GEMM. ``block_m == 1`` selects the matrix-vector kernel."""

    block_m: int
    block_n: int
    block_k: int
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3

    def k_per_split(self, k: int) -> int:
        """K elements per slice: a multiple of ``block_k``."""
        return triton.cdiv(triton.cdiv(k, self.split_k), self.block_k) * self.block_k

    def splits(self, k: int) -> int:
        """The number of K slices actually launched (at most ``split_k``)."""
        return triton.cdiv(k, self.k_per_split(k))


def choose_gemm_config(m: int, n: int, k: int, dtype: torch.dtype, sm_count: int = 132) -> GemmConfig:
    """Rule-based tiles and split-K.

    Tiles: ``M == 1`` takes the matrix-vector kernel, 64 output columns per program and 16 KB
    of ``W`` per K step; larger ``M`` a ``tl.dot`` tile whose M side fits the batch (16..128;
    fp32 stays at 64 x 64, and 128 x 128 drops to 64 x 64 when it would fill under half the GPU).
    Split: when the tiles number fewer than the multiprocessors, K is cut so that about four
    programs per multiprocessor stream ``W``, each slice keeping at least four K steps, and
    the fp32 partials (written and read back: ``8 * M * N`` bytes per slice) staying under a
    quarter of the bytes of ``W``.
    """
    size = torch.empty((), dtype=dtype).element_size()
    if m == 1:
        bm, bn, bk, warps = 1, 64, 16384 // (64 * size), 4
    else:
        bm = 16 if m <= 16 else 32 if m <= 32 else 64 if m <= 64 or size == 4 else 128
        bn = 64 if bm <= 64 else 128
        if bm == 128 and 2 * triton.cdiv(m, 128) * triton.cdiv(n, 128) < sm_count:
            bm, bn = 64, 64
        bk = 64 if size == 2 else 32
        warps = 8 if bm * bn >= 128 * 128 else 4
    tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    split = 1
    if 0 < tiles < sm_count:
        split = max(1, min(triton.cdiv(4 * sm_count, tiles), k // (4 * bk), k * size // (32 * m)))
    return GemmConfig(bm, bn, bk, GemmConfig(bm, bn, bk, split).splits(k), warps, 3)


def gemm_config_fits(config: GemmConfig, dtype: torch.dtype) -> bool:
    """Whether a ``tl.dot`` tile stays inside the bounds :func:`choose_gemm_config` keeps so that
    it does not spill (the tuner's candidates keep them too). Exact fp32 runs on FMA with A and
    B in registers, and stays at 64 x 64 x 32 with 4 warps (ptxas 12.9, Triton 3.9: on sm_80
    64x128x32 and 128x64x32 spilled 24-28 bytes, 64x64x64 up to 13.9 KB; on sm_90 64x128x32
    spilled 32-76 bytes and 64x64x32 at 8 warps 28). 16-bit tiles of 128 rows take 8 warps
    (128x64x64 at 4 spilled 152 bytes on sm_80 with a tanh epilogue; at 8, none; 64x128 at 4
    did not)."""
    if config.block_m == 1:
        return True
    if dtype != torch.float32:
        return config.num_warps == 8 or config.block_m < 128
    return config.block_m * config.block_n <= 64 * 64 and config.block_k <= 32 and config.num_warps == 4


def pack_gemm_weight(w: torch.Tensor, trans_b: bool, dtype: torch.dtype) -> torch.Tensor:
    """``W`` as the kernels read it: ``(N, K_pad)`` contiguous in ``dtype``, row ``n`` holding
    ``W'[:, n]`` (``W' = w.T`` if ``trans_b``, else ``w``), zeros past ``K``."""
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise ValueError(f"pack_gemm_weight takes a 2-D weight tensor, got {getattr(w, 'shape', w)}")
    if dtype not in _GEMM_DTYPES:
        raise ValueError(f"pack_gemm_weight dtype must be one of {_GEMM_DTYPES}, got {dtype}")
    nk = w if trans_b else w.t()  # (N, K)
    n, k = nk.shape
    packed = torch.zeros((n, triton.cdiv(max(k, 1), PACK_K) * PACK_K), dtype=dtype, device=w.device)
    packed[:, :k] = nk.to(dtype)
    return packed


def gemm_workspace_numel(m: int, n: int, k: int, config: GemmConfig) -> int:
    """fp32 elements of the split-K workspace (0 without a split)."""
    splits = config.splits(k)
    return splits * m * n if splits > 1 else 0


@kernel
def _gemm_kernel(
    a_ptr, w_ptr, bias_ptr, out_ptr, ws_ptr,
    M, N, K, K_q, k_per_split,
    stride_am, stride_ak, stride_wn, stride_om, stride_on,
    alpha, clip_lo, clip_hi,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    A_VEC: tl.constexpr, EVEN_K: tl.constexpr, SPLIT: tl.constexpr,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, PRECISION: tl.constexpr, PDL: tl.constexpr,
):
    """One ``BLOCK_M x BLOCK_N`` output tile over one K slice. ``A_VEC > 0``: A's rows are
    contiguous and ``A_VEC``-element aligned, and ``K == K_q * A_VEC`` (0: any strides)."""
    grid_dependency(PDL)
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    pid_m = pid % num_m  # M fastest: the programs sharing a W tile run together
    pid_n = pid // num_m
    pid_k = tl.program_id(1)
    if A_VEC > 0:
        K = K_q * A_VEC
    k_lo = pid_k * k_per_split
    k_hi = tl.minimum(k_lo + k_per_split, K)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    a_rows = a_ptr + offs_m.to(tl.int64) * stride_am
    w_rows = w_ptr + offs_n.to(tl.int64) * stride_wn  # W's K axis is contiguous and padded

    if BLOCK_M == 1:
        acc1 = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for k in range(k_lo, k_hi, BLOCK_K):
            kk = k + offs_k
            if A_VEC > 0:
                a_p = tl.multiple_of(a_rows + kk, [A_VEC * (a_ptr.dtype.element_ty.primitive_bitwidth // 8)])
            else:
                a_p = a_rows + kk.to(tl.int64) * stride_ak
            if EVEN_K:
                a = tl.load(a_p, mask=mask_m, other=0.0)
            else:
                a = tl.load(a_p, mask=mask_m & (kk < K), other=0.0)
            w_p = tl.multiple_of(w_rows[:, None] + kk[None, :], [1, 16])
            w = tl.load(w_p, mask=mask_n[:, None], other=0.0)
            acc1 += tl.sum(w.to(tl.float32) * a.to(tl.float32)[None, :], axis=1)
        acc = acc1[None, :]
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(k_lo, k_hi, BLOCK_K):
            kk = k + offs_k
            if A_VEC > 0:
                a_p = tl.multiple_of(a_rows[:, None] + kk[None, :],
                                     [1, A_VEC * (a_ptr.dtype.element_ty.primitive_bitwidth // 8)])
            else:
                a_p = a_rows[:, None] + kk.to(tl.int64)[None, :] * stride_ak
            if EVEN_K:
                a = tl.load(a_p, mask=mask_m[:, None], other=0.0)
            else:
                a = tl.load(a_p, mask=mask_m[:, None] & (kk < K)[None, :], other=0.0)
            w_p = tl.multiple_of(w_rows[None, :] + kk[:, None], [16, 1])
            w = tl.load(w_p, mask=mask_n[None, :], other=0.0)
            acc = tl.dot(a, w, acc, input_precision=PRECISION)

    mask = mask_m[:, None] & mask_n[None, :]
    if SPLIT:
        ws = ws_ptr + (pid_k * M + offs_m[:, None]).to(tl.int64) * N + offs_n[None, :]
        tl.store(ws, acc, mask=mask)
    else:
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0)[None, :]
        acc = activate(acc, ACTIVATION, alpha, clip_lo, clip_hi)
        o = out_ptr + offs_m.to(tl.int64)[:, None] * stride_om + offs_n.to(tl.int64)[None, :] * stride_on
        tl.store(o, acc.to(out_ptr.dtype.element_ty), mask=mask)


@kernel
def _gemm_reduce_kernel(
    ws_ptr, bias_ptr, out_ptr,
    M, N, splits, stride_om, stride_on,
    alpha, clip_lo, clip_hi,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, BLOCK: tl.constexpr, PDL: tl.constexpr,
):
    """Sum the ``splits`` fp32 partials of ``BLOCK`` outputs, then bias and activation."""
    grid_dependency(PDL)
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mn = M * N
    mask = idx < mn
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    partial = ws_ptr + idx
    for _ in range(splits):
        acc += tl.load(partial, mask=mask, other=0.0)
        partial += mn
    m = idx // N
    n = idx % N
    if HAS_BIAS:
        acc += tl.load(bias_ptr + n, mask=mask, other=0.0)
    acc = activate(acc, ACTIVATION, alpha, clip_lo, clip_hi)
    o = out_ptr + m.to(tl.int64) * stride_om + n.to(tl.int64) * stride_on
    tl.store(o, acc.to(out_ptr.dtype.element_ty), mask=mask)


def _check_gemm(a, w, bias, out, workspace, config, k):
    check_float("a", a, _GEMM_DTYPES)
    check_float("out", out, _GEMM_DTYPES)
    if a.dim() != 2 or w.dim() != 2 or out.dim() != 2:
        raise ValueError(f"fused_gemm takes a 2-D a, packed w and out, got {tuple(a.shape)}, "
                         f"{tuple(w.shape)}, {tuple(out.shape)}")
    m, n = a.shape[0], w.shape[0]
    if w.dtype != a.dtype:
        raise ValueError(f"packed w has dtype {w.dtype}, a has {a.dtype}: pack the weight in the data dtype")
    k_pad = triton.cdiv(max(k, 1), PACK_K) * PACK_K
    if tuple(w.shape) != (n, k_pad) or w.stride() != (k_pad, 1) or w.data_ptr() % 16:
        raise ValueError(f"w must come from pack_gemm_weight: ({n}, {k_pad}) contiguous and 16-byte "
                         f"aligned for K={k}, got shape {tuple(w.shape)}, strides {w.stride()}")
    if tuple(out.shape) != (m, n):
        raise ValueError(f"out must have shape ({m}, {n}), got {tuple(out.shape)}")
    check_writable("out", out)
    if bias is not None:
        check_float("bias", bias, (torch.float32,))
        if tuple(bias.shape) != (n,):
            raise ValueError(f"bias must have shape ({n},), got {tuple(bias.shape)}")
    if config.block_m not in (1, 16, 32, 64, 128, 256):
        raise ValueError(f"config.block_m must be 1 (the matrix-vector kernel) or 16..256, got {config.block_m}")
    if PACK_K % config.block_k or config.block_k < 16:
        raise ValueError(f"config.block_k must divide {PACK_K} and be at least 16, got {config.block_k}")
    need = gemm_workspace_numel(m, n, k, config)
    if need:
        if workspace is None:
            raise ValueError(f"split-K over {config.splits(k)} slices needs an fp32 workspace of {need} "
                             "elements (gemm_workspace_numel)")
        check_float("workspace", workspace, (torch.float32,))
        if workspace.numel() < need or not workspace.is_contiguous():
            raise ValueError(f"workspace must be contiguous with at least {need} fp32 elements, "
                             f"got {workspace.numel()}")
    check_same_device(a=a, w=w, bias=bias, out=out, workspace=workspace if need else None)


def fused_gemm_calls(a: torch.Tensor, w: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None = None,
                     *, activation: str = "none", alpha: float = 0.01, clip_min: float | None = None,
                     clip_max: float | None = None, tf32: bool = False, config: GemmConfig | None = None,
                     workspace: torch.Tensor | None = None, sm_count: int = 132) -> list[KernelCall]:
    """The launches of ``out = activation(a @ W + bias)``: one, or two with split-K."""
    act = activation_args(activation, alpha, clip_min, clip_max)
    if not isinstance(a, torch.Tensor) or a.dim() != 2:
        raise ValueError(f"a must be a 2-D tensor, got {getattr(a, 'shape', a)}")
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise ValueError(f"w must be a 2-D packed weight (pack_gemm_weight), got {getattr(w, 'shape', w)}")
    m, k = a.shape
    n = w.shape[0]
    config = config or choose_gemm_config(m, n, k, a.dtype, sm_count)
    _check_gemm(a, w, bias, out, workspace, config, k)
    kps, splits = config.k_per_split(k), config.splits(k)
    a_vec = vector_width(k, (a, (a.stride(0),))) if a.stride(1) == 1 or k == 1 else 0
    dummy = out
    split = splits > 1
    ws = workspace if split else dummy
    precision = "tf32" if tf32 and a.dtype == torch.float32 else "ieee"
    main = KernelCall(
        _gemm_kernel,
        (a, w, bias if bias is not None else dummy, out, ws, m, n, k, k // max(a_vec, 1), kps,
         a.stride(0), a.stride(1), w.stride(0), out.stride(0), out.stride(1), *act),
        dict(BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k, A_VEC=a_vec,
             EVEN_K=k % config.block_k == 0, SPLIT=split, HAS_BIAS=bias is not None,
             ACTIVATION=activation, PRECISION=precision),
        (triton.cdiv(m, config.block_m) * triton.cdiv(n, config.block_n), splits),
        num_warps=config.num_warps, num_stages=config.num_stages, name="gemm")
    if not split:
        return [main]
    block = 1024
    reduce = KernelCall(
        _gemm_reduce_kernel,
        (workspace, bias if bias is not None else dummy, out, m, n, splits, out.stride(0), out.stride(1), *act),
        dict(HAS_BIAS=bias is not None, ACTIVATION=activation, BLOCK=block),
        (triton.cdiv(m * n, block),), num_warps=4, num_stages=1, name="gemm_reduce")
    return [main, reduce]


def fused_gemm(a: torch.Tensor, w: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None = None,
               **options) -> None:
    """``out = activation(a @ W + bias)`` with ``w`` from :func:`pack_gemm_weight`; options as
    :func:`fused_gemm_calls` (activation, alpha, clip_min, clip_max, tf32, config, workspace)."""
    calls = fused_gemm_calls(a, w, out, bias, **options)
    if out.numel():
        for call in calls:
            call()
