"""Direct convolution for depthwise and very thin grouped layers, where a GEMM would be all padding.

With one (or a few) input channels per group there is nothing for a tensor core to reduce
over: each output channel sums ``KH*KW*Cin_g`` products. The kernel tiles (pixels x output
channels) and accumulates, window position by window position, fp32 products of an input
tile (one input channel per output column: ``group(co)*Cin_g + ci``) and a row of weights.
Over NHWC activations a depthwise layer's input tile is a contiguous run of channels per
pixel (``DEPTHWISE``: ``Cin_g = Cout_g = 1``, so the input channel is the output channel).

Prologue, padding, epilogue, output views, out_splits and pooled sums are those of
:mod:`fastcnn.kernels.conv2d` (the same device function runs the epilogue). Weights are packed
once by :func:`pack_direct_weight` as ``(KH*KW*Cin_g, Cout)``, output channels contiguous.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import triton.language as tl
from torch import Tensor

from fastcnn.kernels.conv2d import (
    FLOAT_DTYPES,
    Epilogue,
    check_extent,
    check_tensor,
    conv_epilogue,
    conv_output_size,
    epilogue_flags,
    epilogue_tensor_args,
    output_rows,
    output_views,
    padding4,
    pair,
    view_align,
)
from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel

__all__ = ["DirectConfig", "choose_direct_config", "prefers_direct", "pack_direct_weight", "conv_direct_call",
           "conv_direct"]


@kernel
def _conv_direct_kernel(
    # tensors (a flag off: any tensor stands in)
    x_ptr, w_ptr, bias_ptr, scale_ptr, shift_ptr, res_ptr,
    out0_ptr, out1_ptr, out2_ptr, out3_ptr, pool_ptr,
    # geometry
    M, H, W, Wo, HoWo, Cin_g, Cout_g, Cout, KH, KW,
    stride_h, stride_w, pad_top, pad_left, dil_h, dil_w,
    # strides, in elements
    s_xn, s_xc, s_xh, s_xw, s_wk,
    s_rn, s_rc, s_rh, s_rw,
    s_0n, s_0c, s_0h, s_0w, s_1n, s_1c, s_1h, s_1w,
    s_2n, s_2c, s_2h, s_2w, s_3n, s_3c, s_3h, s_3w,
    split1, split2, split3, s_pn, s_pc,
    # epilogue parameters
    clip_min, clip_max, alpha,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, DEPTHWISE: tl.constexpr, X_ALIGN: tl.constexpr,
    HAS_PROLOGUE: tl.constexpr, PROLOGUE_RELU: tl.constexpr,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    POST_RELU: tl.constexpr, NUM_OUTS: tl.constexpr, POOLED: tl.constexpr,
    FULL_N: tl.constexpr, RES_ALIGN: tl.constexpr, OUT_ALIGN: tl.constexpr, PDL: tl.constexpr,
):
    grid_dependency(PDL)
    image, oh, ow, m, m_valid, tile_image = output_rows(tl.program_id(0), M, HoWo, Wo, BLOCK_M, POOLED)
    co = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    co_valid = co < Cout
    if DEPTHWISE:
        cin0 = co
    else:
        cin0 = (co // Cout_g) * Cin_g
    ih0 = tl.where(m_valid, oh * stride_h - pad_top, -(1 << 24))  # rows past M: no image there
    iw0 = ow * stride_w - pad_left
    x_rows = image * s_xn
    if HAS_PROLOGUE and DEPTHWISE:
        scale = tl.load(scale_ptr + co, mask=co_valid, other=0.0)[None, :]
        shift = tl.load(shift_ptr + co, mask=co_valid, other=0.0)[None, :]
    acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    for kh in range(KH):
        ih = ih0 + kh * dil_h
        for kw in range(KW):
            iw = iw0 + kw * dil_w
            row_valid = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            if FULL_N:
                mask = row_valid[:, None]
            else:
                mask = row_valid[:, None] & co_valid[None, :]
            rows = x_rows + tl.where(row_valid, ih, 0) * s_xh + iw * s_xw
            for ci in range(Cin_g):
                if X_ALIGN > 0:
                    ptrs = x_ptr + rows[:, None] + (cin0 + ci)[None, :]
                    if X_ALIGN > 1:
                        ptrs = tl.multiple_of(ptrs, [1, X_ALIGN])
                else:
                    ptrs = x_ptr + rows[:, None] + ((cin0 + ci) * s_xc)[None, :]
                a = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
                if HAS_PROLOGUE:
                    if not DEPTHWISE:
                        scale = tl.load(scale_ptr + cin0 + ci, mask=co_valid, other=0.0)[None, :]
                        shift = tl.load(shift_ptr + cin0 + ci, mask=co_valid, other=0.0)[None, :]
                    a = a * scale + shift
                    if PROLOGUE_RELU:
                        a = tl.where(a < 0.0, 0.0, a)
                    a = tl.where(mask, a, 0.0)  # the padding comes after the prologue
                elif PROLOGUE_RELU:
                    a = tl.where(a < 0.0, 0.0, a)
                w_row = w_ptr + ((kh * KW + kw) * Cin_g + ci) * s_wk + co
                if FULL_N:
                    wv = tl.load(w_row)
                else:
                    wv = tl.load(w_row, mask=co_valid, other=0.0)
                acc += a * wv.to(tl.float32)[None, :]
    conv_epilogue(acc, image, oh, ow, m_valid, co, co_valid, tile_image,
                  bias_ptr, res_ptr, out0_ptr, out1_ptr, out2_ptr, out3_ptr, pool_ptr,
                  s_rn, s_rc, s_rh, s_rw, s_0n, s_0c, s_0h, s_0w, s_1n, s_1c, s_1h, s_1w,
                  s_2n, s_2c, s_2h, s_2w, s_3n, s_3c, s_3h, s_3w,
                  split1, split2, split3, s_pn, s_pc, clip_min, clip_max, alpha,
                  HAS_BIAS, ACTIVATION, HAS_RESIDUAL, POST_RELU, NUM_OUTS, POOLED,
                  FULL_N, RES_ALIGN, OUT_ALIGN)


@dataclass(frozen=True)
class DirectConfig:
    """Tiles of the direct kernel: pixels x output channels."""

    block_m: int = 64
    block_c: int = 64
    num_warps: int = 8

    def __post_init__(self) -> None:
        for value in (self.block_m, self.block_c):
            if value < 16 or value & (value - 1):
                raise ValueError(f"DirectConfig tiles must be powers of two >= 16, got {self}")


def prefers_direct(in_channels_per_group: int, out_channels_per_group: int) -> bool:
    """Whether a layer suits the direct kernel better than the implicit GEMM: fewer than 16
    output channels per group would leave most of a tensor-core tile's columns idle."""
    return out_channels_per_group < 16


def choose_direct_config(out_channels: int, dtype: torch.dtype = torch.float32) -> DirectConfig:
    """64 pixels x 64 channels on 8 warps (x 32 on 4 for narrower layers): 16 fp32 accumulators a
    thread, which leaves room for the heaviest epilogue over strided views without spilling
    (32 a thread spilled on sm_80 and sm_90)."""
    return DirectConfig(64, 64, 8) if out_channels > 32 else DirectConfig(64, 32, 4)


def pack_direct_weight(w: Tensor, dtype: torch.dtype) -> Tensor:
    """``(Cout, Cin_g, KH, KW)`` -> ``(KH*KW*Cin_g, Cout)`` in ``dtype``, output channels contiguous."""
    if w.dim() != 4:
        raise ValueError(f"pack_direct_weight: expected (Cout, Cin/groups, KH, KW), got {tuple(w.shape)}")
    cout, cin_g, kh, kw = w.shape
    return w.permute(2, 3, 1, 0).reshape(kh * kw * cin_g, cout).to(dtype).contiguous()


def conv_direct_call(x: Tensor, weight: Tensor, out: Tensor | Sequence[Tensor], bias: Tensor | None = None,
                     residual: Tensor | None = None, scale: Tensor | None = None, shift: Tensor | None = None,
                     pooled: Tensor | None = None, *,
                     kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                     padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
                     activation: str = "none", clip_min: float | None = None, clip_max: float | None = None,
                     alpha: float = 0.01, post_activation: str = "none", prologue_relu: bool = False,
                     config: DirectConfig | None = None) -> KernelCall:
    """The checked launch of one fused direct convolution; the arguments are those of
    :func:`fastcnn.kernels.conv2d.conv2d_calls`, but ``weight`` comes from
    :func:`pack_direct_weight` and there is no split-K. Raises ValueError on bad arguments."""
    if not isinstance(x, Tensor) or x.dim() != 4 or x.dtype not in FLOAT_DTYPES:
        raise ValueError("x must be a 4-D float32, float16 or bfloat16 tensor (logical NCHW)")
    check_extent(x, "x")
    n, cin, h, w = x.shape
    (kh, kw), stride = pair(kernel_size, "kernel_size", 1), pair(stride, "stride", 1)
    dilation, padding = pair(dilation, "dilation", 1), padding4(padding)
    if not isinstance(groups, int) or groups < 1 or cin % groups:
        raise ValueError(f"groups={groups} must divide the input's {cin} channels")
    ho, wo = conv_output_size((h, w), (kh, kw), stride, padding, dilation)
    if min(ho, wo) < 1:
        raise ValueError(f"the {(kh, kw)} window does not fit the padded {h}x{w} input")
    outs, cout = output_views(out, n, (ho, wo), x.device)
    if cout % groups:
        raise ValueError(f"groups={groups} must divide the {cout} output channels")
    cin_g, cout_g = cin // groups, cout // groups
    if not isinstance(weight, Tensor) or tuple(weight.shape) != (kh * kw * cin_g, cout) or weight.stride(1) != 1:
        raise ValueError(f"weight must be packed by pack_direct_weight: ({kh * kw * cin_g}, {cout}) with unit "
                         f"column stride, got {tuple(weight.shape) if isinstance(weight, Tensor) else weight}")
    check_tensor(weight, "weight", weight.shape, FLOAT_DTYPES, x.device)
    check_tensor(bias, "bias", (cout,), (torch.float32,), x.device)
    check_tensor(residual, "residual", (n, cout, ho, wo), FLOAT_DTYPES, x.device)
    if (scale is None) != (shift is None):
        raise ValueError("the prologue needs both scale and shift, or neither")
    check_tensor(scale, "scale", (cin,), (torch.float32,), x.device)
    check_tensor(shift, "shift", (cin,), (torch.float32,), x.device)
    check_tensor(pooled, "pooled", (n, cout), (torch.float32,), x.device)
    epilogue = Epilogue(activation, clip_min, clip_max, alpha, post_activation)
    cfg = config or choose_direct_config(cout, x.dtype)

    depthwise = cin_g == 1 and cout_g == 1
    tensors, ints = epilogue_tensor_args(outs, residual, pooled, bias, x)
    bias_, res_, o0, o1, o2, o3, pool_ = tensors
    args = (x, weight, bias_, x if scale is None else scale, x if shift is None else shift, res_, o0, o1, o2, o3, pool_,
            n * ho * wo, h, w, wo, ho * wo, cin_g, cout_g, cout, kh, kw, *stride, padding[0], padding[1], *dilation,
            x.stride(0), x.stride(1), x.stride(2), x.stride(3), weight.stride(0), *ints, *epilogue.scalars())
    rows = n * math.ceil(ho * wo / cfg.block_m) if pooled is not None else math.ceil(n * ho * wo / cfg.block_m)
    constexprs = dict(BLOCK_M=cfg.block_m, BLOCK_C=cfg.block_c, DEPTHWISE=depthwise,
                      X_ALIGN=view_align(x, ()) if depthwise else 0,
                      HAS_PROLOGUE=scale is not None, PROLOGUE_RELU=bool(prologue_relu),
                      **epilogue_flags(epilogue, outs, bias, residual, pooled, cout % cfg.block_c == 0, ()))
    return KernelCall(_conv_direct_kernel, args, constexprs, (rows, math.ceil(cout / cfg.block_c)),
                      cfg.num_warps, 1, name="conv_direct")


def conv_direct(*args, **kwargs) -> None:
    """Check the arguments (see :func:`conv_direct_call`) and run the convolution into ``out``."""
    conv_direct_call(*args, **kwargs)()
