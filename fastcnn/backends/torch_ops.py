"""Each IR op as a small function of torch tensors: the table the reference executor runs.

``TORCH_OPS[op](inputs, attrs) -> Tensor``, where ``inputs`` follows the IR node (``None`` for
an omitted optional input) and ``attrs`` is the node's typed attribute dict. The semantics are
ONNX's wherever ONNX and PyTorch differ, since the IR comes from ONNX files:

- Paddings may be asymmetric ``(top, left, bottom, right)``; torch's ops take symmetric ones
  of at most half the kernel, so other paddings are applied with ``F.pad`` first.
- With ``ceil_mode`` the last window may hang over the padded input. ONNX (and ONNX Runtime)
  drop a window that starts past the input and its begin padding (the IR's ``window_out``);
  torch on an explicitly padded input keeps one that starts in the end padding, so that
  result is cropped to the IR's size.
- ``avg_pool`` with ``count_include_pad`` divides by the window clipped to the input plus its
  explicit pads (the ceil-mode overhang never counts); without it, by the real elements only.
- ``lrn`` sums ``size`` channels from ``c - (size-1)//2`` to ``c + ceil((size-1)/2)``.
  ``F.local_response_norm`` centres even sizes the other way, so it is not used.

NaN follows PyTorch: ``max_pool``, ``global_max_pool``, ``relu``, ``clip`` and ``softmax``
propagate a NaN to every output it reaches (ONNX Runtime's MaxPool does not; see
``fastcnn.backends.torch_backend``).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fastcnn.ir.ops import window_out
from fastcnn.tables import registrar

OpFn = Callable[[list[Any], dict[str, Any]], Tensor]
TORCH_OPS: dict[str, OpFn] = {}


register = registrar(TORCH_OPS, "torch op")


# -- windows ------------------------------------------------------------------------------
def _native_padding(padding: tuple[int, ...], kernel: tuple[int, ...]) -> tuple[int, int] | None:
    """``(pad_h, pad_w)`` when torch's own padding argument can express ``padding``, else None."""
    top, left, bottom, right = padding
    if top != bottom or left != right or top > kernel[0] // 2 or left > kernel[1] // 2:
        return None
    return top, left


def _pad_hw(x: Tensor, padding: tuple[int, ...], value: float) -> Tensor:
    top, left, bottom, right = padding
    return F.pad(x, (left, right, top, bottom), value=value)


def _crop_to_ir(y: Tensor, x: Tensor, attrs: dict[str, Any]) -> Tensor:
    """Drop the ceil-mode window torch keeps and ONNX does not (one that starts in the end pad)."""
    top, left, bottom, right = attrs["padding"]
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    dh, dw = attrs.get("dilation", (1, 1))
    h = window_out(x.shape[2], kh, sh, top, bottom, dh, attrs["ceil_mode"])
    w = window_out(x.shape[3], kw, sw, left, right, dw, attrs["ceil_mode"])
    return y if y.shape[2:] == (h, w) else y[:, :, :h, :w]


@register("conv2d")
def conv2d(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x, w, b = (inputs + [None])[:3]
    padding = attrs["padding"]
    top, left, bottom, right = padding
    if top == bottom and left == right:
        pad_arg: tuple[int, int] = (top, left)
    else:
        x, pad_arg = _pad_hw(x, padding, 0.0), (0, 0)
    return F.conv2d(x, w, b, attrs["stride"], pad_arg, attrs["dilation"], attrs["groups"])


@register("max_pool")
def max_pool(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x = inputs[0]
    kernel, stride, dilation = attrs["kernel"], attrs["stride"], attrs["dilation"]
    native = _native_padding(attrs["padding"], kernel)
    if native is not None:
        return F.max_pool2d(x, kernel, stride, native, dilation, ceil_mode=attrs["ceil_mode"])
    padded = _pad_hw(x, attrs["padding"], -math.inf)
    y = F.max_pool2d(padded, kernel, stride, 0, dilation, ceil_mode=attrs["ceil_mode"])
    return _crop_to_ir(y, x, attrs)


@register("avg_pool")
def avg_pool(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x = inputs[0]
    kernel, stride, ceil = attrs["kernel"], attrs["stride"], attrs["ceil_mode"]
    include_pad = attrs["count_include_pad"]
    if tuple(attrs.get("dilation", (1, 1))) != (1, 1):
        return _dilated_avg_pool(x, attrs)
    native = _native_padding(attrs["padding"], kernel)
    if native is not None:  # torch's divisors are ONNX's for symmetric paddings
        return F.avg_pool2d(x, kernel, stride, native, ceil, include_pad)
    # Pooled with padding 0, torch divides by the window clipped to the padded input, which
    # is ONNX's count_include_pad divisor; without it, divide by the pooled mask of real cells.
    y = F.avg_pool2d(_pad_hw(x, attrs["padding"], 0.0), kernel, stride, 0, ceil, True)
    if not include_pad:
        mask = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        y = y / F.avg_pool2d(_pad_hw(mask, attrs["padding"], 0.0), kernel, stride, 0, ceil, True)
    return _crop_to_ir(y, x, attrs)


def _dilated_avg_pool(x: Tensor, attrs: dict[str, Any]) -> Tensor:
    """Average pooling with dilated windows (torch's has none): window sums as a depthwise
    convolution with a ones kernel, divided by the count the window covers: the real cells, or
    with ``count_include_pad`` the cells of the input plus its explicit pads (never the overhang
    of the ceil-mode last window)."""
    (kh, kw), stride, dilation = attrs["kernel"], attrs["stride"], attrs["dilation"]
    top, left, bottom, right = attrs["padding"]
    h = window_out(x.shape[2], kh, stride[0], top, bottom, dilation[0], attrs["ceil_mode"])
    w = window_out(x.shape[3], kw, stride[1], left, right, dilation[1], attrs["ceil_mode"])
    # Extra end padding so that the last (ceil-mode) window fits.
    extra_h = max(0, (h - 1) * stride[0] + dilation[0] * (kh - 1) + 1 - (x.shape[2] + top + bottom))
    extra_w = max(0, (w - 1) * stride[1] + dilation[1] * (kw - 1) + 1 - (x.shape[3] + left + right))
    channels = x.shape[1]
    ones = torch.ones((channels, 1, kh, kw), dtype=x.dtype, device=x.device)
    padded = F.pad(x, (left, right + extra_w, top, bottom + extra_h))
    sums = F.conv2d(padded, ones, None, stride, 0, dilation, channels)
    cells = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    if attrs["count_include_pad"]:
        cells = F.pad(cells, (left, right, top, bottom), value=1.0)
        cells = F.pad(cells, (0, extra_w, 0, extra_h))
    else:
        cells = F.pad(cells, (left, right + extra_w, top, bottom + extra_h))
    counts = F.conv2d(cells, ones[:1], None, stride, 0, dilation)
    return (sums / counts)[:, :, :h, :w]


@register("max_pool_indices")
def max_pool_indices(inputs: list[Any], attrs: dict[str, Any]) -> list[Tensor]:
    """Max pooling and ONNX's Indices: the flat position of each max in the whole input, in
    N x C x H x W order, or with ``storage_order`` 1 in N x C x W x H order (as ONNX Runtime)."""
    x = inputs[0]
    n, c, height, width = x.shape
    top, left = attrs["padding"][:2]
    padded = _pad_hw(x, attrs["padding"], -math.inf)
    y, flat = F.max_pool2d(padded, attrs["kernel"], attrs["stride"], 0, attrs["dilation"],
                           ceil_mode=attrs["ceil_mode"], return_indices=True)
    y, flat = _crop_to_ir(y, x, attrs), _crop_to_ir(flat, x, attrs)
    row = torch.div(flat, padded.shape[3], rounding_mode="floor") - top
    col = flat % padded.shape[3] - left
    plane = torch.arange(n * c, device=x.device, dtype=torch.int64).view(n, c, 1, 1) * (height * width)
    within = col * height + row if attrs["storage_order"] else row * width + col
    return [y, plane + within]


@register("conv_transpose2d")
def conv_transpose2d(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    """The full transposed convolution, then ``output_padding`` zeros added at the end and the
    ``padding`` cropped (both in one ``F.pad``), then the bias: ONNX's ConvTranspose for any
    paddings and output paddings (torch's own takes symmetric ones below the stride)."""
    x, w, b = (inputs + [None])[:3]
    y = F.conv_transpose2d(x, w, None, attrs["stride"], 0, 0, attrs["groups"], attrs["dilation"])
    top, left, bottom, right = attrs["padding"]
    extra_h, extra_w = attrs["output_padding"]
    y = F.pad(y, (-left, extra_w - right, -top, extra_h - bottom))
    return y if b is None else y + b.view(1, -1, 1, 1)


@register("global_avg_pool")
def global_avg_pool(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x = inputs[0]
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@register("global_max_pool")
def global_max_pool(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x = inputs[0]
    return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


# -- normalisation --------------------------------------------------------------------------
@register("batch_norm")
def batch_norm(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x, scale, bias, mean, var = inputs
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=attrs["eps"])


@register("lrn")
def lrn(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    """ONNX LRN: ``x / (bias + alpha / size * sum of x^2 over size channels) ** beta``."""
    x = inputs[0]
    size = attrs["size"]
    n, c = x.shape[0], x.shape[1]
    squares = (x * x).reshape(n, 1, c, -1)  # N x 1 x C x (spatial)
    squares = F.pad(squares, (0, 0, (size - 1) // 2, size // 2))  # floor before, ceil after
    mean = F.avg_pool2d(squares, (size, 1), stride=1).reshape(x.shape)
    return x / (attrs["bias"] + attrs["alpha"] * mean).pow(attrs["beta"])


# -- elementwise ----------------------------------------------------------------------------
def _unary(fn: Callable[[Tensor], Tensor]) -> OpFn:
    return lambda inputs, attrs: fn(inputs[0])


register("relu")(_unary(torch.relu))
register("sigmoid")(_unary(torch.sigmoid))
register("tanh")(_unary(torch.tanh))
register("identity")(_unary(lambda x: x))
register("dropout")(_unary(lambda x: x))  # inference
register("dropout_mask")(_unary(lambda x: torch.ones_like(x, dtype=torch.bool)))  # inference: keep all
register("exp")(_unary(torch.exp))
def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> OpFn:
    return lambda inputs, attrs: fn(inputs[0], inputs[1])


register("add")(_binary(torch.add))
register("sub")(_binary(torch.sub))
register("mul")(_binary(torch.mul))
register("div")(_binary(torch.div))
register("max")(_binary(torch.maximum))
register("min")(_binary(torch.minimum))
register("less")(_binary(torch.lt))


@register("where")
def where(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    return torch.where(inputs[0], inputs[1], inputs[2])


@register("clip")
def clip(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    low, high = attrs["min"], attrs["max"]
    if low is None and high is None:
        return inputs[0]
    return torch.clamp(inputs[0], low, high)


@register("leaky_relu")
def leaky_relu(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    return F.leaky_relu(inputs[0], attrs["alpha"])


@register("softmax")
def softmax(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    return torch.softmax(inputs[0], dim=attrs["axis"])


# -- linear algebra -------------------------------------------------------------------------
@register("gemm")
def gemm(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    """``alpha * A' @ B' + beta * C`` with ``C`` broadcast to the product, as ONNX Gemm."""
    a, b, c = (inputs + [None])[:3]
    a = a.t() if attrs["trans_a"] else a
    b = b.t() if attrs["trans_b"] else b
    if c is None:
        product = a @ b
        return product if attrs["alpha"] == 1.0 else product * attrs["alpha"]
    return torch.addmm(c, a, b, beta=attrs["beta"], alpha=attrs["alpha"])


register("matmul")(_binary(torch.matmul))


# -- layout ---------------------------------------------------------------------------------
@register("concat")
def concat(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    return torch.cat(inputs, dim=attrs["axis"])


@register("flatten")
def flatten(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x = inputs[0]
    axis = attrs["axis"] + x.dim() if attrs["axis"] < 0 else attrs["axis"]
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@register("reshape")
def reshape(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x = inputs[0]
    if attrs.get("allowzero"):  # a 0 is a dim of size 0, as torch reads it
        return x.reshape(attrs["shape"])
    return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(attrs["shape"])])


@register("transpose")
def transpose(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    return inputs[0].permute(attrs["perm"])


@register("pad")
def pad(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    """ONNX Pad: ``pads`` is all begins then all ends; negative entries crop."""
    x, pads = inputs[0], attrs["pads"]
    rank = x.dim()
    if attrs["mode"] == "constant":
        torch_pads: list[int] = []
        for axis in reversed(range(rank)):  # F.pad starts from the last axis
            torch_pads += [pads[axis], pads[axis + rank]]
        fill = inputs[1] if len(inputs) > 1 else None
        if fill is None:
            return F.pad(x, torch_pads, value=attrs["value"])
        # A fill computed at run time: pad, then put it where a padded mask says.
        inside = F.pad(torch.ones_like(x, dtype=torch.bool), torch_pads, value=False)
        return torch.where(inside, F.pad(x, torch_pads), fill.reshape(()).to(x.dtype))
    for axis in range(rank):
        if pads[axis] or pads[axis + rank]:
            index = _pad_index(x.shape[axis], pads[axis], pads[axis + rank], attrs["mode"], x.device)
            x = x.index_select(axis, index)
    return x


def _pad_index(size: int, begin: int, end: int, mode: str, device: torch.device) -> Tensor:
    """Source positions of a padded axis: ``edge`` repeats the border, ``reflect`` mirrors it."""
    index = torch.arange(-begin, size + end, device=device)
    if mode == "edge":
        return index.clamp(0, size - 1)
    index = index.abs()  # mirror about 0, then about size - 1 (one reflection, as ONNX)
    return (size - 1) - ((size - 1) - index).abs()


@register("reduce_max")
def reduce_max(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x = inputs[0]
    axes = tuple(attrs["axes"]) or tuple(range(x.dim()))
    if x.dim() and any(x.shape[a] == 0 for a in axes):  # the max of nothing is -inf (ONNX), amax refuses
        kept = {a % x.dim() for a in axes}
        shape = [1 if i in kept else d for i, d in enumerate(x.shape) if attrs["keepdims"] or i not in kept]
        return x.new_full(shape, float("-inf"))
    return x.amax(dim=axes, keepdim=attrs["keepdims"]) if x.dim() else x


@register("reduce_mean")
def reduce_mean(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x = inputs[0]
    axes = tuple(attrs["axes"]) or tuple(range(x.dim()))
    return x.mean(dim=axes, keepdim=attrs["keepdims"])


# -- fused ops (fastcnn.ir.fused_ops), composed from the reference ops above ------------------
# Each result below is a fresh tensor made by a reference op, so the epilogue may update it in
# place; the numbers are those of the unfused graph, op for op.
def _activate_(y: Tensor, attrs: dict[str, Any], kind: str) -> Tensor:
    """Apply activation ``kind`` (``none``, ``relu``, ``clip``, ...) to ``y`` in place."""
    if kind == "relu":
        return y.relu_()
    if kind == "sigmoid":
        return y.sigmoid_()
    if kind == "tanh":
        return y.tanh_()
    if kind == "leaky_relu":
        return F.leaky_relu_(y, attrs["alpha"])
    if kind == "clip" and (attrs["clip_min"] is not None or attrs["clip_max"] is not None):
        return y.clamp_(attrs["clip_min"], attrs["clip_max"])
    return y


def _prologue(x: Tensor, scale: Tensor | None, shift: Tensor | None, relu: bool) -> Tensor:
    """The per-channel batch norm and ReLU a consumer applies while it loads ``x``; the
    consumer's zero (or -inf) padding comes after, as in the unfused graph."""
    if scale is not None:
        x = torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))
        return x.relu_() if relu else x
    return torch.relu(x) if relu else x


@register("fused_conv2d")
def fused_conv2d(inputs: list[Any], attrs: dict[str, Any]) -> Tensor | list[Tensor]:
    x, w, b, residual, scale, shift = (inputs + [None] * 6)[:6]
    y = conv2d([_prologue(x, scale, shift, attrs["prologue_relu"]), w, b], attrs)
    y = _activate_(y, attrs, attrs["activation"])
    if residual is not None:
        y = y.add_(residual)
    y = _activate_(y, attrs, attrs["post_activation"])
    outputs = list(y.split(list(attrs["out_splits"]), dim=1)) if attrs["out_splits"] else [y]
    if attrs["pooled_output"]:
        outputs.append(y.mean(dim=(2, 3), keepdim=True))
    return outputs if len(outputs) > 1 else outputs[0]


@register("fused_gemm")
def fused_gemm(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    a, w, b = (inputs + [None])[:3]
    a = a.flatten(1) if a.dim() > 2 else a
    w = w.t() if attrs["trans_b"] else w
    y = a @ w if b is None else torch.addmm(b, a, w)
    return _activate_(y, attrs, attrs["activation"])


_POOLS = {"max": max_pool, "avg": avg_pool, "global_avg": global_avg_pool, "global_max": global_max_pool}


@register("fused_pool")
def fused_pool(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x, scale, shift = (inputs + [None] * 3)[:3]
    return _POOLS[attrs["mode"]]([_prologue(x, scale, shift, attrs["prologue_relu"])], attrs)


@register("se_gate")
def se_gate(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x, w1, b1, w2, b2 = inputs
    pooled = x.mean(dim=(2, 3))
    hidden = torch.addmm(b1, pooled, w1.t()).relu_()
    return torch.addmm(b2, hidden, w2.t()).sigmoid_().view(*pooled.shape, 1, 1)


@register("se_scale")
def se_scale(inputs: list[Any], attrs: dict[str, Any]) -> Tensor:
    x, gate, residual = (inputs + [None])[:3]
    y = x * gate
    if residual is not None:
        y = y.add_(residual)
    return y.relu_() if attrs["post_activation"] == "relu" else y
