"""Convolution as an implicit GEMM over strided (NHWC) activations, every fusion in one kernel.

The GEMM view, per group ``g``: ``M = N*Ho*Wo`` output pixels (rows), ``N = Cout_g`` output
channels (columns), ``K = KH*KW*Cin_g`` reduced over, ordered ``(kh, kw, cin)`` so that ``cin``
runs fastest, as in an NHWC activation. :func:`pack_conv_weight` lays the weights out once as
``(groups, K, cols)``, output channels contiguous and padded with zeros to ``cols`` (a multiple
of 32 or 64), so that B tiles need no column mask and load 16 bytes at a time.

**The K loop** has two shapes, a compile-time choice (``GATHER_K``) the launcher makes from the
config: ``Cin_g % BLOCK_K == 0`` loops over ``(kh, kw)`` and over channel blocks, one masked row
per pixel and a contiguous channel run per row (vectorised when the channel stride is 1,
``X_C1``, and the launcher proves the alignment, ``X_ALIGN``); any other ``Cin_g`` (the RGB stem,
``Cin_g = 3``) runs over the flattened ``(kh, kw, cin)`` index in blocks of ``BLOCK_K``, each
column gathered on its own (offsets split into a per-row and a per-column part, so only the
bounds test is two-dimensional). The stem's ``K = 7*7*3 = 147`` then fills 147 of 160
tensor-core columns (``BLOCK_K`` 32 in 16-bit, 16 in fp32), where a channel loop padded to 16
would multiply zeros 13 times in 16; gathering reads the plain NCHW network input (channel
stride ``H*W``) directly too.

**Prologue** (``HAS_PROLOGUE``, ``PROLOGUE_RELU``): ``relu(x*scale[c] + shift[c])`` as A is
loaded, in fp32, then the padded and out-of-range positions are zeroed (the graph pads after
the prologue, so a padded zero is 0, not ``relu(shift)``).

**Epilogue** (:func:`conv_epilogue`, shared with the split-K reduction and the direct kernel):
bias, activation (``ACTIVATIONS``; ``clip`` with runtime bounds, ``leaky_relu`` with a runtime
slope), residual add from any strided tensor, ReLU after it, then the store. Output channels
``[0, Cout)`` may go to up to four views (``NUM_OUTS``, sibling convolutions merged into one),
split at three runtime channel bounds: one masked store per view, each with its own strides,
so a view may be a channel slice of a concat buffer. ``POOLED`` adds each tile's per-channel
column sums of the final values into an fp32 ``(N, Cout)`` buffer with one atomic per channel
per tile: pooled launches tile each image's pixels apart, so no tile spans two images.

**Vectors**: fastcnn's kernels are not specialized on pointer alignment (see
:mod:`fastcnn.kernels.launch`), so the launcher proves it and says so in constexprs:
``X_ALIGN``/``W_ALIGN``/``RES_ALIGN``/``OUT_ALIGN``/``WS_ALIGN`` (bytes; 0 for a view whose
channel stride is not 1) become ``tl.multiple_of`` hints, and ``EVEN_N``/``FULL_N`` drop
column masks. Without them every residual and output element needs its own 64-bit address
in the accumulator's layout, which spills a 128x128 tile.

**Split-K** (``config.split_k > 1``): the K iterations are cut into ``split_k`` near-equal
ranges (grid axis 2); each writes its fp32 partial sums to a workspace ``(split_k, M, Cout)``,
and :data:`_conv2d_epilogue_kernel` adds them in a fixed order (deterministic, no atomics) and
runs the epilogue once per output element. At batch 1 most of ResNet-50's layers have fewer
output tiles than the GPU has multiprocessors; this fills it.

**Precision**: fp32 dots are exact (``ieee``) unless the launcher is asked for TF32; fp16 and
bf16 activations and weights multiply on the tensor cores with fp32 accumulation. Bias,
scale, shift and the clip bounds are fp32. Offsets are 32-bit: the launcher refuses views whose
extent reaches 2**31 elements.

:func:`choose_conv_config` picks the tiles by rule, so the first run needs no tuning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from fastcnn.kernels.elementwise import ACTIVATIONS, FLOAT_DTYPES, activate, activation_args
from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel

__all__ = ["ACTIVATIONS", "ConvConfig", "choose_conv_config", "epilogue_vectorizes", "pack_conv_weight",
           "packed_columns", "conv2d", "conv2d_calls", "conv2d_call", "conv2d_epilogue_call", "conv_output_size"]

POST_ACTIVATIONS = ("none", "relu")
MAX_OUTPUTS = 4
_INT32_LIMIT = 2**31
_FAR: tl.constexpr = tl.constexpr(1 << 24)  # an input row no window reaches (sizes are < 2**24)


# -- device functions shared with the split-K reduction and the direct kernel ----------------
@triton.jit
def output_rows(pid_m, M, HoWo, Wo, BLOCK_M: tl.constexpr, PER_IMAGE: tl.constexpr):
    """One tile of output pixels: ``(image, oh, ow, m, valid, tile_image)``, vectors but the last.

    ``PER_IMAGE`` tiles each image apart (for pooled sums), ``tile_image`` being the image of
    the whole tile; otherwise rows run over the flattened ``N*Ho*Wo`` and ``tile_image`` is 0.
    """
    if PER_IMAGE:
        tiles = tl.cdiv(HoWo, BLOCK_M)
        tile_image = pid_m // tiles
        p = (pid_m - tile_image * tiles) * BLOCK_M + tl.arange(0, BLOCK_M)
        valid = p < HoWo
        image = tl.zeros([BLOCK_M], dtype=tl.int32) + tile_image
        m = tile_image * HoWo + p
    else:
        tile_image = 0
        m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        valid = m < M
        image = m // HoWo
        p = m - image * HoWo
    oh = p // Wo
    ow = p - oh * Wo
    return image, oh, ow, m, valid, tile_image


@triton.jit
def view_ptrs(ptr, image, oh, ow, channel, s_n, s_c, s_h, s_w, ALIGN: tl.constexpr):
    """Pointers to a (pixels x channels) tile of a strided NCHW view. ``ALIGN`` > 0 says the
    channel stride is 1 and each pixel's run of channels starts on ``ALIGN`` bytes, so that the
    compiler moves whole vectors (0: any channel stride)."""
    rows = image * s_n + oh * s_h + ow * s_w
    if ALIGN == 0:
        ptrs = ptr + rows[:, None] + (channel * s_c)[None, :]
    else:
        ptrs = ptr + rows[:, None] + channel[None, :]
        if ALIGN > 1:
            ptrs = tl.multiple_of(ptrs, [1, ALIGN])
    return ptrs


@triton.jit
def conv_epilogue(acc, image, oh, ow, m_valid, co, co_valid, tile_image,
                  bias_ptr, res_ptr, out0_ptr, out1_ptr, out2_ptr, out3_ptr, pool_ptr,
                  s_rn, s_rc, s_rh, s_rw,
                  s_0n, s_0c, s_0h, s_0w, s_1n, s_1c, s_1h, s_1w,
                  s_2n, s_2c, s_2h, s_2w, s_3n, s_3c, s_3h, s_3w,
                  split1, split2, split3, s_pn, s_pc,
                  clip_min, clip_max, alpha,
                  HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
                  POST_RELU: tl.constexpr, NUM_OUTS: tl.constexpr, POOLED: tl.constexpr,
                  FULL_N: tl.constexpr, RES_ALIGN: tl.constexpr, OUT_ALIGN: tl.constexpr):
    """Bias, activation, residual, post-ReLU on fp32 ``acc`` (pixels x channels ``co``), then
    the stores into up to four channel ranges and the pooled column sums. ``FULL_N``: every
    channel of the tile exists (no column mask, so that stores can be vectors)."""
    if FULL_N:
        mask = m_valid[:, None]
    else:
        mask = m_valid[:, None] & co_valid[None, :]
    y = acc
    if HAS_BIAS:
        if FULL_N:
            y += tl.load(bias_ptr + co)[None, :]
        else:
            y += tl.load(bias_ptr + co, mask=co_valid, other=0.0)[None, :]
    y = activate(y, ACTIVATION, alpha, clip_min, clip_max)
    if HAS_RESIDUAL:
        res = tl.load(view_ptrs(res_ptr, image, oh, ow, co, s_rn, s_rc, s_rh, s_rw, RES_ALIGN), mask=mask, other=0.0)
        y += res.to(tl.float32)
    if POST_RELU:
        y = tl.where(y < 0.0, 0.0, y)
    if NUM_OUTS == 1:
        tl.store(view_ptrs(out0_ptr, image, oh, ow, co, s_0n, s_0c, s_0h, s_0w, OUT_ALIGN),
                 y.to(out0_ptr.dtype.element_ty), mask=mask)
    else:  # one masked store per view, each in its own channel range
        tl.store(view_ptrs(out0_ptr, image, oh, ow, co, s_0n, s_0c, s_0h, s_0w, OUT_ALIGN),
                 y.to(out0_ptr.dtype.element_ty), mask=mask & (co < split1)[None, :])
        tl.store(view_ptrs(out1_ptr, image, oh, ow, co - split1, s_1n, s_1c, s_1h, s_1w, OUT_ALIGN),
                 y.to(out1_ptr.dtype.element_ty), mask=mask & ((co >= split1) & (co < split2))[None, :])
        if NUM_OUTS > 2:
            tl.store(view_ptrs(out2_ptr, image, oh, ow, co - split2, s_2n, s_2c, s_2h, s_2w, OUT_ALIGN),
                     y.to(out2_ptr.dtype.element_ty), mask=mask & ((co >= split2) & (co < split3))[None, :])
        if NUM_OUTS > 3:
            tl.store(view_ptrs(out3_ptr, image, oh, ow, co - split3, s_3n, s_3c, s_3h, s_3w, OUT_ALIGN),
                     y.to(out3_ptr.dtype.element_ty), mask=mask & (co >= split3)[None, :])
    if POOLED:  # the tile holds one image's pixels: one atomic per channel
        sums = tl.sum(tl.where(mask, y, 0.0), axis=0)
        tl.atomic_add(pool_ptr + tile_image * s_pn + co * s_pc, sums, mask=co_valid)


# -- the implicit GEMM ------------------------------------------------------------------------
@kernel
def _conv2d_kernel(
    # tensors (a flag off: any tensor stands in)
    x_ptr, w_ptr, bias_ptr, scale_ptr, shift_ptr, res_ptr,
    out0_ptr, out1_ptr, out2_ptr, out3_ptr, pool_ptr, ws_ptr,
    # geometry
    M, H, W, Wo, HoWo, Cin_g, Cout_g, Cout, K, KW,
    stride_h, stride_w, pad_top, pad_left, dil_h, dil_w,
    # strides, in elements
    s_xn, s_xc, s_xh, s_xw, s_wg, s_wk,
    s_rn, s_rc, s_rh, s_rw,
    s_0n, s_0c, s_0h, s_0w, s_1n, s_1c, s_1h, s_1w,
    s_2n, s_2c, s_2h, s_2w, s_3n, s_3c, s_3h, s_3w,
    split1, split2, split3, s_pn, s_pc,
    # epilogue parameters
    clip_min, clip_max, alpha,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    SPLIT_K: tl.constexpr, GATHER_K: tl.constexpr, X_C1: tl.constexpr, X_ALIGN: tl.constexpr,
    W_ALIGN: tl.constexpr, EVEN_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
    HAS_PROLOGUE: tl.constexpr, PROLOGUE_RELU: tl.constexpr,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    POST_RELU: tl.constexpr, NUM_OUTS: tl.constexpr, POOLED: tl.constexpr,
    FULL_N: tl.constexpr, RES_ALIGN: tl.constexpr, OUT_ALIGN: tl.constexpr, WS_ALIGN: tl.constexpr, PDL: tl.constexpr,
):
    grid_dependency(PDL)
    pid = tl.program_id(0)
    group = tl.program_id(1)
    pid_k = tl.program_id(2)
    if POOLED:
        num_pid_m = (M // HoWo) * tl.cdiv(HoWo, BLOCK_M)
    else:
        num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(Cout_g, BLOCK_N)
    # GROUP_M row tiles side by side share their B tiles in L2 (Triton's matmul tutorial)
    width = GROUP_M * num_pid_n
    first_m = (pid // width) * GROUP_M
    rows_in_group = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % rows_in_group
    pid_n = (pid % width) // rows_in_group

    image, oh, ow, m, m_valid, tile_image = output_rows(pid_m, M, HoWo, Wo, BLOCK_M, POOLED)
    ih0 = oh * stride_h - pad_top
    iw0 = ow * stride_w - pad_left
    ih0_masked = tl.where(m_valid, ih0, -_FAR)  # rows past M: a window no image reaches
    x_rows = image * s_xn + group * Cin_g * s_xc
    n_local = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_valid = n_local < Cout_g
    offs_k = tl.arange(0, BLOCK_K)
    w_base = w_ptr + group * s_wg
    if GATHER_K:
        a_rows = x_ptr + (x_rows + ih0 * s_xh + iw0 * s_xw)[:, None]

    k_tiles = tl.cdiv(K, BLOCK_K)
    per_split = tl.cdiv(k_tiles, SPLIT_K)
    t_begin = pid_k * per_split
    t_end = tl.minimum(t_begin + per_split, k_tiles)
    c_blocks = Cin_g // BLOCK_K  # channel blocks per (kh, kw) when not GATHER_K
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for t in range(t_begin, t_end):
        k = t * BLOCK_K + offs_k
        if GATHER_K:  # column by column: (kh, kw, c) of each k; offsets are row + column
            k_valid = k < K
            c = k % Cin_g
            rs = k // Cin_g
            kh = rs // KW
            dh = (kh * dil_h)
            dw = (rs - kh * KW) * dil_w
            cols = c * s_xc + dh * s_xh + dw * s_xw
            ih = ih0_masked[:, None] + tl.where(k_valid, dh, -_FAR)[None, :]  # columns past K too
            iw = iw0[:, None] + dw[None, :]
            a_mask = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            a = tl.load(a_rows + cols[None, :], mask=a_mask, other=0.0)
            cin = group * Cin_g + c
        else:  # one (kh, kw) and BLOCK_K channels: a contiguous run per pixel
            rs = t // c_blocks
            c = (t - rs * c_blocks) * BLOCK_K + offs_k
            kh = rs // KW
            kw = rs - kh * KW
            ih = ih0_masked + kh * dil_h
            iw = iw0 + kw * dil_w
            row_valid = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            rows = x_rows + (ih0 + kh * dil_h) * s_xh + iw * s_xw
            if X_C1:
                a_ptrs = x_ptr + rows[:, None] + c[None, :]
            else:
                a_ptrs = x_ptr + rows[:, None] + (c * s_xc)[None, :]
            if X_ALIGN > 1:
                a_ptrs = tl.multiple_of(a_ptrs, [1, X_ALIGN])
            a_mask = row_valid[:, None]
            a = tl.load(a_ptrs, mask=a_mask, other=0.0)
            cin = group * Cin_g + c
        if HAS_PROLOGUE:
            if GATHER_K:
                scale = tl.load(scale_ptr + cin, mask=k_valid, other=0.0)
                shift = tl.load(shift_ptr + cin, mask=k_valid, other=0.0)
            else:
                scale = tl.load(scale_ptr + cin)
                shift = tl.load(shift_ptr + cin)
            a_f = a.to(tl.float32) * scale[None, :] + shift[None, :]
            if PROLOGUE_RELU:
                a_f = tl.where(a_f < 0.0, 0.0, a_f)
            a = tl.where(a_mask, a_f, 0.0).to(x_ptr.dtype.element_ty)  # pad after the prologue
        elif PROLOGUE_RELU:
            a = tl.where(a < 0.0, 0.0, a)
        b_ptrs = w_base + k[:, None] * s_wk + n_local[None, :]
        if W_ALIGN > 1:
            b_ptrs = tl.multiple_of(b_ptrs, [1, W_ALIGN])
        if GATHER_K:
            if EVEN_N:
                b = tl.load(b_ptrs, mask=k_valid[:, None], other=0.0)
            else:
                b = tl.load(b_ptrs, mask=k_valid[:, None] & n_valid[None, :], other=0.0)
        else:
            if EVEN_N:
                b = tl.load(b_ptrs)
            else:
                b = tl.load(b_ptrs, mask=n_valid[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)

    co = group * Cout_g + n_local
    if SPLIT_K == 1:
        conv_epilogue(acc, image, oh, ow, m_valid, co, n_valid, tile_image,
                      bias_ptr, res_ptr, out0_ptr, out1_ptr, out2_ptr, out3_ptr, pool_ptr,
                      s_rn, s_rc, s_rh, s_rw, s_0n, s_0c, s_0h, s_0w, s_1n, s_1c, s_1h, s_1w,
                      s_2n, s_2c, s_2h, s_2w, s_3n, s_3c, s_3h, s_3w,
                      split1, split2, split3, s_pn, s_pc, clip_min, clip_max, alpha,
                      HAS_BIAS, ACTIVATION, HAS_RESIDUAL, POST_RELU, NUM_OUTS, POOLED,
                      FULL_N, RES_ALIGN, OUT_ALIGN)
    else:  # partial sums; _conv2d_epilogue_kernel finishes
        ws_ptrs = ws_ptr + pid_k * M * Cout + m[:, None] * Cout + co[None, :]
        if WS_ALIGN > 1:
            ws_ptrs = tl.multiple_of(ws_ptrs, [1, WS_ALIGN])
        if FULL_N:
            tl.store(ws_ptrs, acc, mask=m_valid[:, None])
        else:
            tl.store(ws_ptrs, acc, mask=m_valid[:, None] & n_valid[None, :])


@kernel
def _conv2d_epilogue_kernel(
    # tensors
    ws_ptr, bias_ptr, res_ptr, out0_ptr, out1_ptr, out2_ptr, out3_ptr, pool_ptr,
    # geometry
    M, Wo, HoWo, Cout,
    # strides
    s_rn, s_rc, s_rh, s_rw,
    s_0n, s_0c, s_0h, s_0w, s_1n, s_1c, s_1h, s_1w,
    s_2n, s_2c, s_2h, s_2w, s_3n, s_3c, s_3h, s_3w,
    split1, split2, split3, s_pn, s_pc,
    # epilogue parameters
    clip_min, clip_max, alpha,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SPLIT_K: tl.constexpr,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    POST_RELU: tl.constexpr, NUM_OUTS: tl.constexpr, POOLED: tl.constexpr,
    FULL_N: tl.constexpr, RES_ALIGN: tl.constexpr, OUT_ALIGN: tl.constexpr, WS_ALIGN: tl.constexpr, PDL: tl.constexpr,
):
    """Sums the ``SPLIT_K`` partials of each output element in order, then the epilogue."""
    grid_dependency(PDL)
    image, oh, ow, m, m_valid, tile_image = output_rows(tl.program_id(0), M, HoWo, Wo, BLOCK_M, POOLED)
    co = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    co_valid = co < Cout
    if FULL_N:
        mask = m_valid[:, None]
    else:
        mask = m_valid[:, None] & co_valid[None, :]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for s in range(SPLIT_K):
        ptrs = ws_ptr + s * M * Cout + m[:, None] * Cout + co[None, :]
        if WS_ALIGN > 1:
            ptrs = tl.multiple_of(ptrs, [1, WS_ALIGN])
        acc += tl.load(ptrs, mask=mask, other=0.0)
    conv_epilogue(acc, image, oh, ow, m_valid, co, co_valid, tile_image,
                  bias_ptr, res_ptr, out0_ptr, out1_ptr, out2_ptr, out3_ptr, pool_ptr,
                  s_rn, s_rc, s_rh, s_rw, s_0n, s_0c, s_0h, s_0w, s_1n, s_1c, s_1h, s_1w,
                  s_2n, s_2c, s_2h, s_2w, s_3n, s_3c, s_3h, s_3w,
                  split1, split2, split3, s_pn, s_pc, clip_min, clip_max, alpha,
                  HAS_BIAS, ACTIVATION, HAS_RESIDUAL, POST_RELU, NUM_OUTS, POOLED,
                  FULL_N, RES_ALIGN, OUT_ALIGN)


# -- configs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvConfig:
    """Tiles and launch shape of one convolution; ``split_k`` > 1 needs a workspace."""

    block_m: int = 64
    block_n: int = 64
    block_k: int = 32
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1
    group_m: int = 8
    epilogue_block_m: int = 32  # the split-K reduction's tiles
    epilogue_block_n: int = 64

    def __post_init__(self) -> None:
        for name in ("block_m", "block_n", "block_k", "epilogue_block_m", "epilogue_block_n"):
            value = getattr(self, name)
            if value < 16 or value & (value - 1):
                raise ValueError(f"ConvConfig.{name} must be a power of two >= 16, got {value}")
        if self.split_k < 1 or self.group_m < 1 or self.num_warps not in (1, 2, 4, 8, 16) or self.num_stages < 1:
            raise ValueError(f"invalid ConvConfig {self}")


def packed_columns(cout_g: int) -> int:
    """Columns of a packed weight for ``cout_g`` output channels per group: a multiple of 32
    (up to 32 channels) or 64, so B tiles of 32, 64 (and 128 where it divides) need no mask."""
    return 32 * math.ceil(cout_g / 32) if cout_g <= 32 else 64 * math.ceil(cout_g / 64)


def _gather_block_k(k: int, candidates: Sequence[int]) -> int:
    """The BLOCK_K that wastes the fewest padded columns of ``k``, the first on a tie."""
    return min(candidates, key=lambda b: (math.ceil(k / b) * b - k, candidates.index(b)))


def choose_conv_config(batch: int, in_channels: int, out_channels: int, out_size: Sequence[int],
                       kernel_size: Sequence[int], groups: int = 1, dtype: torch.dtype = torch.float32,
                       *, pooled: bool = False, vector_epilogue: bool = True, prologue: bool = False,
                       sm_count: int = 132) -> ConvConfig:
    """The tiles for one layer, by rule (no tuning run needed).

    - BLOCK_K: the largest of 64/32/16 (16-bit) or 32/16 (fp32) dividing ``Cin_g`` (the channel
      loop); otherwise the flattened K is gathered, in the block that pads it least, at most
      16 deep (fp32) or 32 (16-bit).
    - BLOCK_N: 128 (16-bit) where it divides the packed columns, else 64, or 32 for thin layers;
      at most 64 unless ``vector_epilogue`` (every output view and the residual channel-contiguous
      and 16-byte aligned, see :func:`epilogue_vectorizes`): element-wise epilogue accesses of
      a 128x128 tile spill.
    - BLOCK_M: 128 if that still gives every multiprocessor a tile, else 64.
    - split_k: when even 64-row tiles leave multiprocessors idle and K is long, enough splits to
      fill them, each split keeping at least 4 K iterations, at most 16 splits; a 16-bit split
      layer with a ``prologue`` steps 32 deep where it would step 64 with at most 64 columns.
    Tiles stay at most 128x64x32 (fp32; 128x32 with a 16-deep K step) and 128x128x64 (16-bit;
    64x64 with a 16-deep K step; 32 deep where K is gathered),
    with :func:`conv_warps`, which compile without spills on sm_80 and sm_90 with the heaviest
    epilogue (prologue, residual, post-ReLU, pooled sums, 4 output views); the tuner's
    candidates stay inside the same bounds (:func:`fit_conv_config`).
    """
    wide = dtype != torch.float32
    (ho, wo), (kh, kw) = out_size, kernel_size
    cin_g, cout_g = in_channels // groups, out_channels // groups
    k = kh * kw * cin_g
    ks = (64, 32, 16) if wide else (32, 16)
    block_k = next((b for b in ks if cin_g % b == 0), None)
    if block_k is None:
        block_k = _gather_block_k(k, [b for b in ks if b <= _gather_max_block_k(dtype)])
    cols = packed_columns(cout_g)
    block_n = 128 if wide and vector_epilogue and cols % 128 == 0 else (64 if cols % 64 == 0 else 32)
    if block_k == 16:
        block_n = min(block_n, _k16_max_tile(dtype)[1])

    def tiles(block_m: int) -> int:
        rows = batch * math.ceil(ho * wo / block_m) if pooled else math.ceil(batch * ho * wo / block_m)
        return rows * math.ceil(cout_g / block_n) * groups

    block_m = 128 if tiles(128) >= sm_count and (block_k > 16 or _k16_max_tile(dtype)[0] >= 128) else 64

    def splits(block_k: int) -> int:
        k_tiles = math.ceil(k / block_k)
        if tiles(block_m) < sm_count and k_tiles >= 8:
            return max(1, min(sm_count // tiles(block_m), k_tiles // 4, 16))
        return 1

    split_k = splits(block_k)
    if wide and prologue and split_k > 1 and block_k == 64 and block_n <= 64:
        # a 16-bit 64x64x64 tile with a prologue, split, spilled 24 bytes on sm_80 (ptxas 12.9)
        block_k = 32
        split_k = splits(block_k)
    return ConvConfig(block_m, block_n, block_k, conv_warps(block_m, block_n, block_k, dtype), 3, split_k)


def _gather_max_block_k(dtype: torch.dtype) -> int:
    """The deepest K step of a gathered K loop (``Cin_g`` not a multiple of BLOCK_K), whose A
    tile is loaded element by element. fp32: 16 (32 spilled up to 280 bytes on sm_80 with
    128-row tiles). 16-bit: 32 (64 spilled on sm_80 and sm_90: 128x32x64 at 4 warps 1.2 KB,
    128x128x64 at 8 warps 32 bytes, with a prologue 120; ptxas 12.9, Triton 3.9)."""
    return 16 if dtype == torch.float32 else 32


def _k16_max_tile(dtype: torch.dtype) -> tuple[int, int]:
    """The largest tile (rows, columns) with a 16-deep K step. Exact fp32 (FMA): 128 x 32 (64
    columns spilled 8-36 bytes on sm_80 at 64 rows and, gathered with a prologue and split-K,
    12 bytes at 128 rows). 16-bit: 64 x 64 (on sm_80 64x128x16 at 8 warps spilled 18-24 bytes
    with a residual, 128x64x16 at 8 warps 12 bytes with no epilogue at all, 128x32x16 at 4
    warps 6; ptxas heuristics there, at 80 registers, not register pressure). ptxas 12.9,
    Triton 3.9."""
    return (128, 32) if dtype == torch.float32 else (64, 64)


def fit_conv_config(config: ConvConfig, cin_g: int, dtype: torch.dtype, prologue: bool = False) -> ConvConfig:
    """``config`` brought inside the bounds :func:`choose_conv_config` keeps so that no tile
    spills, for the tuner's candidates; every config the rules pick is unchanged by it. The
    warps are always :func:`conv_warps`'s (at 4 warps 16-bit 128x128 tiles spilled up to 516
    bytes; at 8, 64x64x64 spilled 24). A gathered K loop (``cin_g`` not a multiple of BLOCK_K)
    steps at most :func:`_gather_max_block_k` deep, a 16-deep step's tile is at most
    :func:`_k16_max_tile`, and in 16-bit a split tile of at most 64 columns with a
    ``prologue`` steps at most 32 deep."""
    if cin_g % config.block_k:
        config = replace(config, block_k=min(config.block_k, _gather_max_block_k(dtype)))
    if config.block_k == 16:
        rows, cols = _k16_max_tile(dtype)
        config = replace(config, block_m=min(config.block_m, rows), block_n=min(config.block_n, cols))
    if dtype != torch.float32 and prologue and config.split_k > 1 and config.block_n <= 64 and config.block_k > 32:
        config = replace(config, block_k=32)
    return replace(config, num_warps=conv_warps(config.block_m, config.block_n, config.block_k, dtype))


def conv_warps(block_m: int, block_n: int, block_k: int, dtype: torch.dtype) -> int:
    """The warps of a tile, chosen so that it does not spill on sm_80 or sm_90.

    16-bit: 8 from 64x128 up (a thread's share of a 128x128 tile is 64 accumulators at 8
    warps), 4 below (tiles with a 16-deep K step stay at 64x64, see :func:`_k16_max_tile`).
    Exact fp32 runs ``tl.dot`` on FMA with the A and B tiles in registers beside the
    accumulators, and ptxas is less regular there (ptxas 12.9, Triton 3.9, sm_80/sm_90, the
    heaviest epilogues): 8 warps for 128-row tiles (128x32x32 at 4 took 255 registers and
    spilled 24-40 bytes on sm_80) and for 16-deep K steps (64x32x16 at 4 spilled 8-12 bytes
    with a prologue on sm_90), 4 otherwise (64x64x32 at 8 spilled 12-20 bytes with a prologue
    on sm_90; at 4 it did not on either).
    """
    if dtype == torch.float32:
        return 8 if block_m >= 128 or block_k == 16 else 4
    return 8 if block_m * block_n >= 64 * 128 else 4


# -- weights ------------------------------------------------------------------------------------
def pack_conv_weight(w: Tensor, groups: int, dtype: torch.dtype) -> Tensor:
    """``(Cout, Cin_g, KH, KW)`` -> ``(groups, KH*KW*Cin_g, packed_columns(Cout_g))`` in ``dtype``:
    K ordered ``(kh, kw, cin)``, output channels contiguous, padded columns zero."""
    if w.dim() != 4 or w.shape[0] % groups:
        raise ValueError(f"pack_conv_weight: expected (Cout, Cin/groups, KH, KW) with Cout divisible by "
                         f"groups={groups}, got {tuple(w.shape)}")
    cout, cin_g, kh, kw = w.shape
    cout_g = cout // groups
    packed = w.reshape(groups, cout_g, cin_g, kh, kw).permute(0, 3, 4, 2, 1).reshape(groups, kh * kw * cin_g, cout_g)
    out = torch.zeros(groups, kh * kw * cin_g, packed_columns(cout_g), dtype=dtype, device=w.device)
    out[:, :, :cout_g] = packed
    return out


# -- argument checks, shared with the direct kernel -------------------------------------------------
def pair(value: int | Sequence[int], name: str, minimum: int) -> tuple[int, int]:
    pair_ = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair_) != 2 or any(not isinstance(v, int) or v < minimum for v in pair_):
        raise ValueError(f"{name} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return pair_


def padding4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` from an int, ``(pad_h, pad_w)`` or the four."""
    pads = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if len(pads) == 2:
        pads = pads * 2
    if len(pads) != 4 or any(not isinstance(p, int) or p < 0 for p in pads):
        raise ValueError(f"padding must be (top, left, bottom, right) of ints >= 0, got {padding!r}")
    return pads


def conv_output_size(size: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                     padding: Sequence[int], dilation: Sequence[int]) -> tuple[int, int]:
    """``(Ho, Wo)`` of a convolution over ``size = (H, W)``."""
    top, left, bottom, right = padding
    ho = (size[0] + top + bottom - dilation[0] * (kernel_size[0] - 1) - 1) // stride[0] + 1
    wo = (size[1] + left + right - dilation[1] * (kernel_size[1] - 1) - 1) // stride[1] + 1
    return ho, wo


def check_extent(t: Tensor, name: str) -> None:
    """Strided views only, every offset within 32 bits (the kernels' index type)."""
    if any(s < 0 for s in t.stride()):
        raise ValueError(f"{name} has a negative stride {t.stride()}")
    if sum((n - 1) * s for n, s in zip(t.shape, t.stride()) if n) + t.storage_offset() >= _INT32_LIMIT:
        raise ValueError(f"{name} spans 2**31 elements or more; split the batch")


def check_tensor(t: Tensor | None, name: str, shape: tuple, dtypes: Sequence[torch.dtype],
                 device: torch.device) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.dtype not in dtypes:
        raise ValueError(f"{name} must be one of {[str(d) for d in dtypes]}, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device}, the input on {device}")
    check_extent(t, name)


@dataclass(frozen=True)
class Epilogue:
    """The epilogue's options, checked; :meth:`scalars` are its runtime arguments."""

    activation: str = "none"
    clip_min: float | None = None
    clip_max: float | None = None
    alpha: float = 0.01
    post_activation: str = "none"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.post_activation not in POST_ACTIVATIONS:
            raise ValueError(f"post_activation must be one of {POST_ACTIVATIONS}, got {self.post_activation!r}")

    def scalars(self) -> tuple[float, float, float]:
        """``(clip_min, clip_max, alpha)``, a missing bound as an infinity."""
        alpha, low, high = activation_args(self.activation, self.alpha, self.clip_min, self.clip_max)
        return low, high, alpha


def output_views(out: Tensor | Sequence[Tensor], batch: int, out_hw: tuple[int, int],
                 device: torch.device) -> tuple[list[Tensor], int]:
    """The 1 to 4 output views and their total channel count."""
    outs = [out] if isinstance(out, Tensor) else list(out)
    if not 1 <= len(outs) <= MAX_OUTPUTS:
        raise ValueError(f"out must be a tensor or 1 to {MAX_OUTPUTS} tensors, got {len(outs)}")
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor) or o.dim() != 4:
            raise ValueError(f"out[{i}] must be a 4-D tensor")
        check_tensor(o, f"out[{i}]", (batch, o.shape[1], *out_hw), FLOAT_DTYPES, device)
    return outs, sum(o.shape[1] for o in outs)


def epilogue_tensor_args(outs: list[Tensor], residual: Tensor | None, pooled: Tensor | None,
                         bias: Tensor | None, dummy: Tensor) -> tuple[list, list]:
    """(tensors, ints) of the epilogue in the kernels' order: bias, residual, 4 outputs, pool;
    then the residual's and the outputs' strides, the split bounds and the pool's strides."""
    cout = sum(o.shape[1] for o in outs)
    padded = outs + [outs[0]] * (MAX_OUTPUTS - len(outs))
    tensors = [dummy if bias is None else bias, dummy if residual is None else residual, *padded,
               dummy if pooled is None else pooled]
    ints = list(residual.stride()) if residual is not None else [0, 0, 0, 0]
    for o in padded:
        ints += o.stride()
    bounds = [sum(o.shape[1] for o in outs[:i]) for i in range(1, len(outs))]
    ints += bounds + [cout] * (MAX_OUTPUTS - 1 - len(bounds))
    ints += list(pooled.stride()) if pooled is not None else [0, 0]
    return tensors, ints


def alignment_bytes(t: Tensor, strides: Sequence[int], extra: Sequence[int] = ()) -> int:
    """The largest of 16/8 bytes dividing ``t``'s address and ``strides``/``extra`` (in
    elements) times the element size; 1 if neither (no hint). Narrower hints buy no vector
    access worth having, and ptxas 13 spilled the direct kernel's fp16 epilogue under a 4-byte
    hint on sm_90 (a 6-channel NHWC output: 24 bytes spilled, none with 8 or none)."""
    size = t.element_size()
    for align in (16, 8):
        if align >= size and t.data_ptr() % align == 0 and all((v * size) % align == 0 for v in (*strides, *extra)):
            return align
    return 1


def view_align(t: Tensor, extra: Sequence[int]) -> int:
    """A view's ``*_ALIGN`` flag: 0 unless its channel stride is 1 (or it has one channel), else
    the byte alignment of each pixel's channel run (channel offsets ``extra`` included)."""
    if t.shape[1] != 1 and t.stride(1) != 1:
        return 0
    return alignment_bytes(t, (t.stride(0), t.stride(2), t.stride(3)), extra)


def epilogue_flags(epilogue: Epilogue, outs: list[Tensor], bias: Tensor | None, residual: Tensor | None,
                   pooled: Tensor | None, full_n: bool, extra: Sequence[int]) -> dict:
    """The constexprs of :func:`conv_epilogue`; ``extra``: channel offsets a tile may start at."""
    bounds = [sum(o.shape[1] for o in outs[:i]) for i in range(1, len(outs))]
    aligns = [view_align(o, (*extra, *bounds)) for o in outs]
    return dict(HAS_BIAS=bias is not None, ACTIVATION=epilogue.activation,
                HAS_RESIDUAL=residual is not None, POST_RELU=epilogue.post_activation == "relu",
                NUM_OUTS=len(outs), POOLED=pooled is not None, FULL_N=full_n,
                RES_ALIGN=0 if residual is None else view_align(residual, extra),
                OUT_ALIGN=0 if 0 in aligns else min(aligns))


def epilogue_vectorizes(outs: Sequence[Tensor], residual: Tensor | None, cout_g: int) -> bool:
    """Whether the epilogue moves 16-byte vectors: every output view and the residual have
    channel stride 1 and 16-byte aligned channel runs (``cout_g`` channels a group)."""
    flags = epilogue_flags(Epilogue(), list(outs), None, residual, None, True, (cout_g,))
    return flags["OUT_ALIGN"] >= 16 and (residual is None or flags["RES_ALIGN"] >= 16)


# -- launchers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Problem:
    """A checked convolution: everything the two calls are built from."""

    x: Tensor
    weight: Tensor
    outs: list
    bias: Tensor | None
    residual: Tensor | None
    scale: Tensor | None
    shift: Tensor | None
    pooled: Tensor | None
    workspace: Tensor | None
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int
    out_hw: tuple[int, int]
    cout: int
    epilogue: Epilogue
    prologue_relu: bool
    allow_tf32: bool
    config: ConvConfig

    @property
    def m(self) -> int:
        return self.x.shape[0] * self.out_hw[0] * self.out_hw[1]


def _check(x, weight, out, bias, residual, scale, shift, pooled, workspace, kernel_size, stride, padding,
           dilation, groups, epilogue, prologue_relu, allow_tf32, config, sm_count) -> _Problem:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.dtype not in FLOAT_DTYPES:
        raise ValueError("x must be a 4-D float32, float16 or bfloat16 tensor (logical NCHW)")
    check_extent(x, "x")
    n, cin, h, w = x.shape
    kernel_size, stride = pair(kernel_size, "kernel_size", 1), pair(stride, "stride", 1)
    dilation, padding = pair(dilation, "dilation", 1), padding4(padding)
    if not isinstance(groups, int) or groups < 1 or cin % groups:
        raise ValueError(f"groups={groups} must divide the input's {cin} channels")
    out_hw = conv_output_size((h, w), kernel_size, stride, padding, dilation)
    if min(out_hw) < 1:
        raise ValueError(f"the {kernel_size} window does not fit the padded {h}x{w} input")
    outs, cout = output_views(out, n, out_hw, x.device)
    if cout % groups:
        raise ValueError(f"groups={groups} must divide the {cout} output channels")
    cin_g, cout_g = cin // groups, cout // groups
    k = kernel_size[0] * kernel_size[1] * cin_g
    if (not isinstance(weight, Tensor) or weight.dim() != 3 or tuple(weight.shape[:2]) != (groups, k)
            or weight.shape[2] < cout_g or weight.stride(2) != 1):
        raise ValueError(f"weight must be packed by pack_conv_weight: ({groups}, {k}, >= {cout_g}) with "
                         f"unit column stride, got {tuple(weight.shape) if isinstance(weight, Tensor) else weight}")
    check_tensor(weight, "weight", weight.shape, (x.dtype,), x.device)
    check_tensor(bias, "bias", (cout,), (torch.float32,), x.device)
    check_tensor(residual, "residual", (n, cout, *out_hw), FLOAT_DTYPES, x.device)
    if (scale is None) != (shift is None):
        raise ValueError("the prologue needs both scale and shift, or neither")
    check_tensor(scale, "scale", (cin,), (torch.float32,), x.device)
    check_tensor(shift, "shift", (cin,), (torch.float32,), x.device)
    check_tensor(pooled, "pooled", (n, cout), (torch.float32,), x.device)
    if config is None:
        config = choose_conv_config(n, cin, cout, out_hw, kernel_size, groups, x.dtype, pooled=pooled is not None,
                                    vector_epilogue=epilogue_vectorizes(outs, residual, cout // groups),
                                    sm_count=sm_count)
    if config.split_k > 1:
        need = config.split_k * n * out_hw[0] * out_hw[1] * cout
        if workspace is None:
            workspace = torch.empty(need, dtype=torch.float32, device=x.device)
        if (not isinstance(workspace, Tensor) or workspace.dtype != torch.float32 or not workspace.is_contiguous()
                or workspace.numel() < need or workspace.device != x.device):
            raise ValueError(f"split_k={config.split_k} needs a contiguous float32 workspace of {need} "
                             f"elements on {x.device}")
        if need >= _INT32_LIMIT:
            raise ValueError("the split-K workspace spans 2**31 elements or more; split the batch")
    return _Problem(x, weight, outs, bias, residual, scale, shift, pooled, workspace, kernel_size, stride, padding,
                    dilation, groups, out_hw, cout, epilogue, bool(prologue_relu), bool(allow_tf32), config)


def _main_call(p: _Problem) -> KernelCall:
    x, cfg = p.x, p.config
    n, cin, h, w = x.shape
    (kh, kw), (ho, wo) = p.kernel_size, p.out_hw
    cin_g, cout_g = cin // p.groups, p.cout // p.groups
    k = kh * kw * cin_g
    gather = cin_g % cfg.block_k != 0
    x_c1 = x.stride(1) == 1 or cin == 1
    x_align = 1
    if not gather and x_c1:
        x_align = alignment_bytes(x, (x.stride(0), x.stride(2), x.stride(3), cin_g))
    w_align = alignment_bytes(p.weight, (p.weight.stride(0), p.weight.stride(1)))
    split = cfg.split_k > 1
    tensors, ints = epilogue_tensor_args(p.outs, p.residual, None if split else p.pooled, p.bias, x)
    bias, res, o0, o1, o2, o3, pool = tensors
    s_res, s_outs, bounds, s_pool = ints[:4], ints[4:20], ints[20:23], ints[23:]
    dummy = x
    args = (x, p.weight, bias, dummy if p.scale is None else p.scale, dummy if p.shift is None else p.shift, res,
            o0, o1, o2, o3, pool, p.workspace if split else dummy,
            p.m, h, w, wo, ho * wo, cin_g, cout_g, p.cout, k, kw,
            *p.stride, p.padding[0], p.padding[1], *p.dilation,
            x.stride(0), 1 if x_c1 else x.stride(1), x.stride(2), x.stride(3), p.weight.stride(0), p.weight.stride(1),
            *s_res, *s_outs, *bounds, *s_pool, *p.epilogue.scalars())
    pooled_here = p.pooled is not None and not split
    rows = n * math.ceil(ho * wo / cfg.block_m) if pooled_here else math.ceil(p.m / cfg.block_m)
    grid = (rows * math.ceil(cout_g / cfg.block_n), p.groups, cfg.split_k)
    fp32 = x.dtype == torch.float32
    constexprs = dict(
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m, SPLIT_K=cfg.split_k,
        GATHER_K=gather, X_C1=x_c1, X_ALIGN=x_align, W_ALIGN=w_align,
        EVEN_N=p.weight.shape[2] % cfg.block_n == 0,
        DOT_PRECISION="tf32" if fp32 and p.allow_tf32 else "ieee",
        HAS_PROLOGUE=p.scale is not None, PROLOGUE_RELU=p.prologue_relu,
        **_epilogue_flags(p, not split, cout_g % cfg.block_n == 0),
        WS_ALIGN=alignment_bytes(p.workspace, (p.cout,)) if split else 0)
    return KernelCall(_conv2d_kernel, args, constexprs, grid, cfg.num_warps, cfg.num_stages, name="conv2d")


def _epilogue_flags(p: _Problem, apply: bool, full_n: bool) -> dict:
    """The epilogue's constexprs; a split-K main kernel only stores partials (``apply`` False)."""
    if not apply:
        return dict(HAS_BIAS=False, ACTIVATION="none", HAS_RESIDUAL=False, POST_RELU=False, NUM_OUTS=len(p.outs),
                    POOLED=False, FULL_N=full_n, RES_ALIGN=0, OUT_ALIGN=0)
    return epilogue_flags(p.epilogue, p.outs, p.bias, p.residual, p.pooled, full_n, (p.cout // p.groups,))


def _epilogue_call(p: _Problem) -> KernelCall:
    cfg = p.config
    n = p.x.shape[0]
    ho, wo = p.out_hw
    tensors, ints = epilogue_tensor_args(p.outs, p.residual, p.pooled, p.bias, p.workspace)
    args = (p.workspace, *tensors, p.m, wo, ho * wo, p.cout, *ints, *p.epilogue.scalars())
    bm, bn = cfg.epilogue_block_m, cfg.epilogue_block_n
    rows = n * math.ceil(ho * wo / bm) if p.pooled is not None else math.ceil(p.m / bm)
    constexprs = dict(BLOCK_M=bm, BLOCK_N=bn, SPLIT_K=cfg.split_k, **_epilogue_flags(p, True, p.cout % bn == 0),
                      WS_ALIGN=alignment_bytes(p.workspace, (p.cout,)))
    return KernelCall(_conv2d_epilogue_kernel, args, constexprs, (rows, math.ceil(p.cout / bn)), 4, 1,
                      name="conv2d_epilogue")


def conv2d_calls(x: Tensor, weight: Tensor, out: Tensor | Sequence[Tensor], bias: Tensor | None = None,
                 residual: Tensor | None = None, scale: Tensor | None = None, shift: Tensor | None = None,
                 pooled: Tensor | None = None, workspace: Tensor | None = None, *,
                 kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                 padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
                 activation: str = "none", clip_min: float | None = None, clip_max: float | None = None,
                 alpha: float = 0.01, post_activation: str = "none", prologue_relu: bool = False,
                 allow_tf32: bool = False, config: ConvConfig | None = None, sm_count: int = 132) -> list[KernelCall]:
    """The checked launches of one fused convolution: ``[conv]``, or ``[partials, epilogue]``
    when ``config.split_k`` > 1.

    Tensors: ``x`` (N, Cin, H, W) any strides; ``weight`` from :func:`pack_conv_weight` in
    ``x``'s dtype; ``out`` one view (N, Cout, Ho, Wo) or up to 4 views whose channels add up
    to Cout, in order; ``bias`` (Cout,), ``scale``/``shift`` (Cin,) fp32; ``residual`` like the
    output; ``pooled`` (N, Cout) fp32, zeroed by the caller, receives per-channel sums over
    Ho*Wo; ``workspace`` >= split_k*N*Ho*Wo*Cout fp32 elements (allocated when None).
    Geometry: ``padding`` as (top, left, bottom, right), (pad_h, pad_w) or one int.
    Raises ValueError on any inconsistent argument.
    """
    p = _check(x, weight, out, bias, residual, scale, shift, pooled, workspace, kernel_size, stride, padding,
               dilation, groups, Epilogue(activation, clip_min, clip_max, alpha, post_activation),
               prologue_relu, allow_tf32, config, sm_count)
    return [_main_call(p), _epilogue_call(p)] if p.config.split_k > 1 else [_main_call(p)]


def conv2d_call(*args, **kwargs) -> KernelCall:
    """The main launch of :func:`conv2d_calls` (all of it unless split-K)."""
    return conv2d_calls(*args, **kwargs)[0]


def conv2d_epilogue_call(*args, **kwargs) -> KernelCall:
    """The split-K reduction and epilogue launch of :func:`conv2d_calls`."""
    calls = conv2d_calls(*args, **kwargs)
    if len(calls) != 2:
        raise ValueError("conv2d_epilogue_call needs a config with split_k > 1")
    return calls[1]


def conv2d(*args, **kwargs) -> None:
    """Check the arguments (see :func:`conv2d_calls`) and run the convolution into ``out``."""
    for call in conv2d_calls(*args, **kwargs):
        call()
