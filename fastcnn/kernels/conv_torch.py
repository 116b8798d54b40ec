"""A fused convolution through torch's own (cuDNN on CUDA), then the epilogue as torch ops.

The autotuner offers this as one more candidate for each implicit-GEMM convolution: where
cuDNN is faster (large-batch 3x3 convolutions), the Triton plan is then never slower than the
torch backend on that layer. It computes what :func:`fastcnn.kernels.conv2d.conv2d_calls`
computes, from the same tensors: the input prologue (``x*scale + shift``, ReLU) in fp32 before
padding, the convolution in the data dtype (fp32 with TF32 only if asked, as the kernel), then
in fp32 the bias, activation, residual, post-ReLU, the stores into the output views (channel
slices of a concat buffer included, split across up to four views) and the pooled sums added
into their zeroed fp32 buffer. Temporaries come from torch's allocator, which CUDA graph
capture handles. This module imports nothing else from fastcnn but the kernels' own helpers.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fastcnn.kernels.conv2d import Epilogue, padding4, pair


def unpack_conv_weight(packed: Tensor, groups: int, out_channels: int, kernel_size: Sequence[int]) -> Tensor:
    """The ``(Cout, Cin_g, KH, KW)`` weight back from :func:`~fastcnn.kernels.conv2d.pack_conv_weight`'s
    ``(groups, KH*KW*Cin_g, cols)``, channels-last in memory (what cuDNN prefers with NHWC data)."""
    kh, kw = kernel_size
    cout_g = out_channels // groups
    cin_g = packed.shape[1] // (kh * kw)
    w = packed[:, :, :cout_g].reshape(groups, kh, kw, cin_g, cout_g).permute(0, 4, 3, 1, 2)
    return w.reshape(out_channels, cin_g, kh, kw).contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class TorchConvCall:
    """One convolution as torch ops into the plan's views: call it to run."""

    x: Tensor
    weight: Tensor  # (Cout, Cin_g, KH, KW) in x's dtype
    outs: tuple[Tensor, ...]
    bias: Tensor | None
    residual: Tensor | None
    scale: Tensor | None
    shift: Tensor | None
    pooled: Tensor | None
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int
    epilogue: Epilogue
    prologue_relu: bool
    allow_tf32: bool
    name: str = "torch_conv2d"

    def __call__(self) -> None:
        y = self._convolve(self._prologue()).float()
        y = self._activate(y if self.bias is None else y + self.bias.view(1, -1, 1, 1))
        if self.residual is not None:
            y = y + self.residual.float()
        if self.epilogue.post_activation == "relu":
            y = torch.relu(y)
        start = 0
        for out in self.outs:
            out.copy_(y[:, start:start + out.shape[1]])
            start += out.shape[1]
        if self.pooled is not None:
            self.pooled.add_(y.sum(dim=(2, 3)))

    def key(self) -> tuple:
        """What the autotuner's cache key needs besides the kernel launches."""
        shapes = [(tuple(t.shape), t.stride(), str(t.dtype)) for t in (self.x, self.weight, *self.outs)]
        return (self.name, shapes, self.stride, self.padding, self.dilation, self.groups, self.epilogue,
                self.prologue_relu, self.allow_tf32, self.residual is not None, self.pooled is not None)

    def _prologue(self) -> Tensor:
        x = self.x
        if self.scale is not None:
            x = x.float() * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)
        if self.prologue_relu:
            x = torch.relu(x)
        x = x.to(self.weight.dtype).contiguous(memory_format=torch.channels_last)
        top, left, bottom, right = self.padding
        return F.pad(x, (left, right, top, bottom)) if any(self.padding) else x

    def _convolve(self, x: Tensor) -> Tensor:
        tf32 = self.allow_tf32 and x.dtype == torch.float32
        flags = torch.backends.cudnn.flags(enabled=True, allow_tf32=tf32) if x.is_cuda else contextlib.nullcontext()
        with flags:
            return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)

    def _activate(self, y: Tensor) -> Tensor:
        e = self.epilogue
        low, high, alpha = e.scalars()
        if e.activation == "relu":
            return torch.relu(y)
        if e.activation == "clip":
            return torch.clamp(y, low, high)
        if e.activation == "sigmoid":
            return torch.sigmoid(y)
        if e.activation == "tanh":
            return torch.tanh(y)
        if e.activation == "leaky_relu":
            return F.leaky_relu(y, alpha)
        return y


def torch_conv_call(x: Tensor, weight: Tensor, out: Tensor | Sequence[Tensor], bias: Tensor | None = None,
                    residual: Tensor | None = None, scale: Tensor | None = None, shift: Tensor | None = None,
                    pooled: Tensor | None = None, *, kernel_size: int | Sequence[int] = 1,
                    stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                    dilation: int | Sequence[int] = 1, groups: int = 1, activation: str = "none",
                    clip_min: float | None = None, clip_max: float | None = None, alpha: float = 0.01,
                    post_activation: str = "none", prologue_relu: bool = False,
                    allow_tf32: bool = False) -> TorchConvCall:
    """The arguments of :func:`~fastcnn.kernels.conv2d.conv2d_calls` (``kernel_size`` is read
    from ``weight``, here ``(Cout, Cin_g, KH, KW)``, see :func:`unpack_conv_weight`), as one call."""
    outs = (out,) if isinstance(out, Tensor) else tuple(out)
    if tuple(weight.shape[2:]) != pair(kernel_size, "kernel_size", 1) or weight.dtype != x.dtype:
        raise ValueError(f"weight {tuple(weight.shape)} {weight.dtype} does not match kernel_size "
                         f"{kernel_size} and x's {x.dtype}")
    return TorchConvCall(x, weight, outs, bias, residual, scale, shift, pooled, pair(stride, "stride", 1),
                         padding4(padding), pair(dilation, "dilation", 1), groups,
                         Epilogue(activation, clip_min, clip_max, alpha, post_activation), bool(prologue_relu),
                         bool(allow_tf32))
