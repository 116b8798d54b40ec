"""Convolution and pooling: ONNX's N-d window ops, run as 2-D (NCHW) ones.

Every padding is made explicit ``(top, left, bottom, right)`` here, ``auto_pad`` included,
so nothing downstream knows about ``SAME_UPPER``. A 1-D window op (N x C x L) runs as a 2-D
one on N x C x 1 x L, between two reshapes; 3-D ones are refused with that reason.
"""
from __future__ import annotations

from typing import Sequence

import onnx

from fastcnn.errors import InvalidModelError
from fastcnn.frontend.context import Folded, ImportContext, Operand, Unsupported
from fastcnn.frontend.converters.common import reshape_to, window_padding
from fastcnn.frontend.registry import Converter, table_decorator
from fastcnn.ir import Value

CONVERTERS: dict[str, Converter] = {}
converter = table_decorator(CONVERTERS)


def _image(ctx: ImportContext, x: Operand, what: str) -> tuple[Value, bool]:
    """The NCHW input of a window op, and whether it is a 1-D input lifted to H = 1."""
    value = ctx.runtime(x)
    rank = len(value.shape)
    if rank == 3:
        n, c, length = value.shape
        return reshape_to(ctx, value, (n, c, 1, length), "as_2d"), True
    if rank != 4:
        raise Unsupported(f"{rank - 2}-D {what} (input shape {value.shape}); "
                          "fastcnn runs 1-D and 2-D ones")
    return value, False


def _lift(values: Sequence[int] | None, lifted: bool, fill: int) -> list[int] | None:
    """A 1-D op's per-axis attribute with the H axis added in front (unchanged for 2-D ops)."""
    return values if values is None or not lifted else [fill, *values]


def _lift_pads(pads: Sequence[int] | None, lifted: bool) -> list[int] | None:
    return pads if pads is None or not lifted else [0, pads[0], 0, pads[1]]


def _finish(ctx: ImportContext, y: Value, lifted: bool) -> Value:
    """Back from N x C x 1 x L to N x C x L for a lifted 1-D op."""
    if not lifted:
        return y
    return reshape_to(ctx, y, (y.shape[0], y.shape[1], y.shape[3]), out_name=ctx.output_name())


def _out_name(ctx: ImportContext, lifted: bool) -> str | None:
    return None if lifted else ctx.output_name()


def _pair(values: Sequence[int] | None, what: str, default: int = 1) -> tuple[int, int]:
    if values is None:
        return (default, default)
    if len(values) != 2:
        raise Unsupported(f"{what} {list(values)} does not fit the input's spatial rank")
    return (int(values[0]), int(values[1]))


def _kernel(node: onnx.NodeProto, kernel_shape: Sequence[int] | None) -> tuple[int, int]:
    if kernel_shape is None:
        raise InvalidModelError(f"node {node.name!r} ({node.op_type}) has no kernel_shape")
    return _pair(kernel_shape, "kernel_shape")


def _weight(ctx: ImportContext, W: Operand, lifted: bool) -> Operand:
    """A 1-D convolution's M x C x k weight as M x C x 1 x k."""
    if not lifted:
        return W
    if isinstance(W, Folded):
        return Folded(W.array[:, :, None, :], f"{W.name}_2d")
    w = ctx.runtime(W, "weight")
    return reshape_to(ctx, w, (w.shape[0], w.shape[1], 1, w.shape[2]), "weight_2d")


@converter("Conv")
def conv(ctx: ImportContext, node: onnx.NodeProto, X: Operand, W: Operand, B: Operand = None, *,
         auto_pad: str = "NOTSET", dilations: list[int] | None = None, group: int = 1,
         kernel_shape: list[int] | None = None, pads: list[int] | None = None,
         strides: list[int] | None = None) -> Value:
    x, lifted = _image(ctx, X, "convolution")
    w = _weight(ctx, W, lifted)
    w_shape = ctx.shape(w)
    if len(w_shape) != 4:
        raise InvalidModelError(f"node {node.name!r} (Conv): weight {ctx.shape(W)} does not fit "
                                f"input {ctx.shape(X)}")
    kernel = (int(w_shape[2]), int(w_shape[3]))
    if kernel_shape is not None and tuple(_lift(kernel_shape, lifted, 1)) != kernel:
        raise InvalidModelError(f"node {node.name!r} (Conv): kernel_shape {list(kernel_shape)} "
                                f"differs from the weight's {list(ctx.shape(W)[2:])}")
    stride = _pair(_lift(strides, lifted, 1), "strides")
    dilation = _pair(_lift(dilations, lifted, 1), "dilations")
    padding = window_padding(x.shape[2:], kernel, stride, dilation, auto_pad,
                             _lift_pads(pads, lifted))
    inputs = [x, w] if B is None else [x, w, B]
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": int(group)}
    return _finish(ctx, ctx.emit("conv2d", inputs, attrs, out_name=_out_name(ctx, lifted)), lifted)


@converter("MaxPool")
def max_pool(ctx: ImportContext, node: onnx.NodeProto, X: Operand, *, auto_pad: str = "NOTSET",
             ceil_mode: int = 0, dilations: list[int] | None = None,
             kernel_shape: list[int] | None = None, pads: list[int] | None = None,
             storage_order: int = 0, strides: list[int] | None = None) -> Value:
    x, lifted = _image(ctx, X, "max pooling")
    kernel = _kernel(node, _lift(kernel_shape, lifted, 1))
    stride = _pair(_lift(strides, lifted, 1), "strides")
    dilation = _pair(_lift(dilations, lifted, 1), "dilations")
    padding = window_padding(x.shape[2:], kernel, stride, dilation, auto_pad,
                             _lift_pads(pads, lifted))
    attrs = {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation,
             "ceil_mode": bool(ceil_mode)}
    if len(node.output) > 1 and ctx.is_used(node.output[1]):
        return _max_pool_indices(ctx, x, lifted, {**attrs, "storage_order": int(storage_order)})
    return _finish(ctx, ctx.emit("max_pool", [x], attrs, out_name=_out_name(ctx, lifted)), lifted)


def _max_pool_indices(ctx: ImportContext, x: Value, lifted: bool, attrs: dict) -> list[Value]:
    """MaxPool with its Indices output (flat positions in the input; a lifted 1-D input has
    H = 1, so its positions are the same)."""
    if attrs["storage_order"] not in (0, 1):
        raise Unsupported(f"storage_order={attrs['storage_order']}")
    names = [None, "indices"] if lifted else [ctx.output_name(0), ctx.output_name(1)]
    y, indices = ctx.emit_outputs("max_pool_indices", [x], attrs, out_names=names)
    if not lifted:
        return [y, indices]
    return [_finish(ctx, y, True),
            reshape_to(ctx, indices, (y.shape[0], y.shape[1], y.shape[3]), out_name=ctx.output_name(1))]


@converter("AveragePool")
def average_pool(ctx: ImportContext, node: onnx.NodeProto, X: Operand, *, auto_pad: str = "NOTSET",
                 ceil_mode: int = 0, count_include_pad: int = 0, dilations: list[int] | None = None,
                 kernel_shape: list[int] | None = None, pads: list[int] | None = None,
                 strides: list[int] | None = None) -> Value:
    x, lifted = _image(ctx, X, "average pooling")
    kernel = _kernel(node, _lift(kernel_shape, lifted, 1))
    stride = _pair(_lift(strides, lifted, 1), "strides")
    dilation = _pair(_lift(dilations, lifted, 1), "dilations")
    padding = window_padding(x.shape[2:], kernel, stride, dilation, auto_pad,
                             _lift_pads(pads, lifted))
    attrs = {"kernel": kernel, "stride": stride, "padding": padding, "ceil_mode": bool(ceil_mode),
             "count_include_pad": bool(count_include_pad), "dilation": dilation}
    return _finish(ctx, ctx.emit("avg_pool", [x], attrs, out_name=_out_name(ctx, lifted)), lifted)


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx: ImportContext, node: onnx.NodeProto, X: Operand) -> Value:
    x = ctx.runtime(X)
    if len(x.shape) < 3:
        raise Unsupported(f"input of rank {len(x.shape)}; global pooling needs N x C x spatial")
    op = "global_avg_pool" if node.op_type == "GlobalAveragePool" else "global_max_pool"
    return ctx.emit(op, [x], out_name=ctx.output_name())


@converter("ConvTranspose")
def conv_transpose(ctx: ImportContext, node: onnx.NodeProto, X: Operand, W: Operand, B: Operand = None, *,
                   auto_pad: str = "NOTSET", dilations: list[int] | None = None, group: int = 1,
                   kernel_shape: list[int] | None = None, output_padding: list[int] | None = None,
                   output_shape: list[int] | None = None, pads: list[int] | None = None,
                   strides: list[int] | None = None) -> Value:
    """A 1-D or 2-D transposed convolution with explicit ``(top, left, bottom, right)`` crops.

    ``output_shape`` (or ``auto_pad`` SAME_*, whose output is ``input * stride``) sets the total
    crop per axis; it is split as ONNX's spec says: the odd pixel at the end with SAME_UPPER,
    at the beginning otherwise.
    """
    x, lifted = _image(ctx, X, "transposed convolution")
    w = _weight(ctx, W, lifted)
    w_shape = ctx.shape(w)
    if len(w_shape) != 4 or (isinstance(x.shape[1], int) and w_shape[0] != x.shape[1]):
        raise InvalidModelError(f"node {node.name!r} (ConvTranspose): weight {ctx.shape(W)} does not fit "
                                f"input {ctx.shape(X)}")
    kernel = (int(w_shape[2]), int(w_shape[3]))
    if kernel_shape is not None and tuple(_lift(kernel_shape, lifted, 1)) != kernel:
        raise InvalidModelError(f"node {node.name!r} (ConvTranspose): kernel_shape {list(kernel_shape)} "
                                f"differs from the weight's {list(ctx.shape(W)[2:])}")
    stride = _pair(_lift(strides, lifted, 1), "strides")
    dilation = _pair(_lift(dilations, lifted, 1), "dilations")
    extra = _pair(_lift(output_padding, lifted, 0), "output_padding", 0)
    if auto_pad not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad={auto_pad!r}")
    wanted = _lift(output_shape, lifted, 1)
    if wanted is not None and len(wanted) == 4:  # the full N x C x H x W shape, as some exporters write
        wanted = wanted[2:]
    if wanted is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if not all(isinstance(d, int) for d in x.shape[2:]):
            raise Unsupported(f"auto_pad={auto_pad} needs static spatial sizes, got {x.shape}")
        wanted = [int(d) * s for d, s in zip(x.shape[2:], stride)]
    if wanted is not None:
        padding, extra = _transpose_crops(x.shape[2:], _pair(wanted, "output_shape"), kernel, stride, dilation,
                                          extra, auto_pad == "SAME_UPPER")
    elif auto_pad == "VALID":
        padding = (0, 0, 0, 0)
    else:
        padding = window_padding(x.shape[2:], kernel, stride, dilation, "NOTSET", _lift_pads(pads, lifted))
    inputs = [x, w] if B is None else [x, w, B]
    attrs = {"stride": stride, "padding": padding, "output_padding": extra, "dilation": dilation,
             "groups": int(group)}
    return _finish(ctx, ctx.emit("conv_transpose2d", inputs, attrs, out_name=_out_name(ctx, lifted)), lifted)


def _transpose_crops(spatial: Sequence, wanted: tuple[int, int], kernel: tuple[int, int],
                     stride: tuple[int, int], dilation: tuple[int, int], extra: tuple[int, int],
                     upper: bool) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """The crops (and output paddings) that give the ``wanted`` size; larger than the full
    output, the rest is added at the end (zeros plus the bias), as ONNX Runtime does."""
    begins, ends, extras = [], [], []
    for size, out, k, s, d, e in zip(spatial, wanted, kernel, stride, dilation, extra):
        if not isinstance(size, int):
            raise Unsupported(f"output_shape needs static spatial sizes, got {tuple(spatial)}")
        total = (size - 1) * s + e + d * (k - 1) + 1 - out
        if total < 0:
            begins.append(0)
            ends.append(0)
            extras.append(e - total)
            continue
        begins.append(total // 2 if upper else total - total // 2)
        ends.append(total - total // 2 if upper else total // 2)
        extras.append(e)
    return (*begins, *ends), (extras[0], extras[1])
