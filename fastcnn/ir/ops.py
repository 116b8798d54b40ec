"""The IR's operations: for each, its inputs, its typed attributes, and its shape inference.

A plain dict from op name to :class:`~fastcnn.ir.schema.OpSchema` (the full table, with the
fused ops, is :data:`fastcnn.ir.op_table.OPS`). The op set is what the classic CNNs need,
in a canonical form that the importer normalises ONNX into (explicit 4-value paddings,
resolved reshape targets, ``Gemm`` kept whole); backends implement exactly these ops. The
fused ops the passes make are defined the same way, in :mod:`fastcnn.ir.fused_ops`.

Paddings are ``(top, left, bottom, right)`` for 2-D ops, like ONNX's
``(begin..., end...)`` order for two spatial axes.
"""
from __future__ import annotations

import math

from fastcnn.ir import dims
from fastcnn.ir.core import Dim, Node, Shape
from fastcnn.ir.schema import Attr, IRError, Spec, schema_table

PLAIN_OPS, op = schema_table()

# -- shape arithmetic -------------------------------------------------------------------
def _x(node: Node, i: int = 0):
    value = node.inputs[i]
    if value is None:
        raise IRError(f"{node.name}: input {i} of {node.op} is required")
    return value


def broadcast(a: Shape, b: Shape, where: str = "") -> Shape:
    """NumPy broadcasting of two shapes whose dims may be symbols."""
    out: list[Dim] = []
    for da, db in zip(reversed((1,) * (len(b) - len(a)) + tuple(a)),
                      reversed((1,) * (len(a) - len(b)) + tuple(b))):
        if da == db or db == 1 or dims.canonical(da) == dims.canonical(db):
            out.append(da)
        elif da == 1:
            out.append(db)
        elif isinstance(da, str) or isinstance(db, str):
            out.append(db if isinstance(da, str) else da)
        else:
            raise IRError(f"{where}: shapes {tuple(a)} and {tuple(b)} do not broadcast")
    return tuple(reversed(out))


def window_out(size: Dim, kernel: int, stride: int, pad_begin: int, pad_end: int,
               dilation: int = 1, ceil_mode: bool = False) -> Dim:
    """Output length of a convolution or pooling window along one axis.

    With ``ceil_mode`` the last window must start inside the input or its left padding,
    as in PyTorch and ONNX (opset 19 clarified it), else it is dropped.

    A symbolic ``size`` gives an expression (``(H+1)//2`` for a stride-2 3x3 window padded
    by 1); it is checked once the size is known (at ``infer``, by the engine).
    """
    span = dilation * (kernel - 1) + 1
    if isinstance(size, str):
        room = dims.parse(size) + dims.Expr.const(pad_begin + pad_end - span)
        if not ceil_mode:
            return dims.to_dim(room.floordiv(stride) + dims.Expr.const(1))
        # Ceil mode: ceil(room / stride) + 1 windows, less the last when it starts at or past
        # size + pad_begin; pools keep pad_end < span, so that is min(ceil(room / stride),
        # floor((size + pad_begin - 1) / stride)) + 1, and which one is smaller is known.
        if pad_end - span + stride <= 0:
            return dims.to_dim(room.ceildiv(stride) + dims.Expr.const(1))
        starts = dims.parse(size) + dims.Expr.const(pad_begin - 1)
        return dims.to_dim(starts.floordiv(stride) + dims.Expr.const(1))
    room = size + pad_begin + pad_end - span
    if room < 0:
        raise ValueError(f"window {span} is larger than the padded input {size + pad_begin + pad_end}")
    out = (math.ceil(room / stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _spatial(node: Node, channels: Dim, ceil_mode: bool = False) -> list[Spec]:
    x = _x(node)
    if len(x.shape) != 4:
        raise IRError(f"{node.name}: {node.op} expects a 4-D NCHW input, got shape {x.shape}")
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["stride"]
    top, left, bottom, right = node.attrs["padding"]
    dh, dw = node.attrs.get("dilation", (1, 1))
    try:
        h = window_out(x.shape[2], kh, sh, top, bottom, dh, ceil_mode)
        w = window_out(x.shape[3], kw, sw, left, right, dw, ceil_mode)
    except ValueError as exc:
        raise IRError(f"{node.name}: {exc}") from None
    return [((x.shape[0], channels, h, w), x.dtype)]


def _same_dim(a: Dim, b: Dim) -> bool:
    """Whether two dims are the same size as written (``"2*N"`` and ``"N*2"`` are)."""
    return a == b or (isinstance(a, str) and isinstance(b, str) and dims.canonical(a) == dims.canonical(b))


def _same(node: Node) -> list[Spec]:
    x = _x(node)
    return [(x.shape, x.dtype)]


def _elementwise(node: Node) -> list[Spec]:
    shape = _x(node, 0).shape
    for value in node.inputs[1:]:
        shape = broadcast(shape, value.shape, node.name)
    return [(shape, _x(node).dtype)]


# -- the ops ----------------------------------------------------------------------------
INTS = tuple
OPT_FLOAT = Attr((float, type(None)), None)
STRIDE = Attr(tuple, (1, 1))
PADDING = Attr(tuple, (0, 0, 0, 0))
DILATION = Attr(tuple, (1, 1))


@op("conv2d", inputs=(2, 3), stride=STRIDE, padding=PADDING, dilation=DILATION, groups=Attr(int, 1))
def _conv2d(node: Node) -> list[Spec]:
    x, w = _x(node, 0), _x(node, 1)
    if len(w.shape) != 4:
        raise IRError(f"{node.name}: conv2d weight must be 4-D, got {w.shape}")
    groups = node.attrs["groups"]
    if isinstance(x.shape[1], int) and x.shape[1] != w.shape[1] * groups:
        raise IRError(f"{node.name}: conv2d input has {x.shape[1]} channels, weight expects "
                      f"{w.shape[1]} x {groups} groups")
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if bias is not None and tuple(bias.shape) != (w.shape[0],):
        raise IRError(f"{node.name}: conv2d bias must have shape ({w.shape[0]},), got {bias.shape}")
    node_attrs = {**node.attrs, "kernel": tuple(w.shape[2:])}
    view = Node(node.op, node.inputs, node.outputs, node_attrs, node.name)
    return _spatial(view, w.shape[0])


def _check_pool_padding(node: Node) -> None:
    """Each pad must be smaller than the window, as ONNX Runtime requires: a larger pad makes a
    window that lies wholly in the padding (a max of nothing, an average dividing by zero)."""
    kh, kw = node.attrs["kernel"]
    dh, dw = node.attrs.get("dilation", (1, 1))
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    top, left, bottom, right = node.attrs["padding"]
    if any(pad >= span for pad, span in zip((top, left, bottom, right), spans * 2)):
        raise IRError(f"{node.name}: {node.op} padding {node.attrs['padding']} (top, left, bottom, right) "
                      f"must be smaller than the {spans[0]}x{spans[1]} window on every side")


@op("max_pool", inputs=(1, 1), kernel=INTS, stride=STRIDE, padding=PADDING, dilation=DILATION,
    ceil_mode=Attr(bool, False))
def _max_pool(node: Node) -> list[Spec]:
    _check_pool_padding(node)
    return _spatial(node, _x(node).shape[1], node.attrs["ceil_mode"])


@op("avg_pool", inputs=(1, 1), kernel=INTS, stride=STRIDE, padding=PADDING, ceil_mode=Attr(bool, False),
    count_include_pad=Attr(bool, False), dilation=DILATION)
def _avg_pool(node: Node) -> list[Spec]:
    _check_pool_padding(node)
    return _spatial(node, _x(node).shape[1], node.attrs["ceil_mode"])


@op("global_avg_pool", inputs=(1, 1))
def _global_avg_pool(node: Node) -> list[Spec]:
    x = _x(node)
    return [((*x.shape[:2], *([1] * (len(x.shape) - 2))), x.dtype)]


op("global_max_pool", inputs=(1, 1))(_global_avg_pool)


@op("batch_norm", inputs=(5, 5), eps=Attr(float, 1e-5))
def _batch_norm(node: Node) -> list[Spec]:
    return _same(node)


@op("lrn", inputs=(1, 1), size=int, alpha=Attr(float, 1e-4), beta=Attr(float, 0.75), bias=Attr(float, 1.0))
def _lrn(node: Node) -> list[Spec]:
    return _same(node)


op("relu", "sigmoid", "tanh", "identity", inputs=(1, 1))(_same)
op("dropout", inputs=(1, 1), ratio=Attr(float, 0.5))(_same)  # inference: the identity
op("clip", inputs=(1, 1), min=OPT_FLOAT, max=OPT_FLOAT)(_same)
op("leaky_relu", inputs=(1, 1), alpha=Attr(float, 0.01))(_same)
op("softmax", inputs=(1, 1), axis=int)(_same)
op("add", "sub", "mul", "div", inputs=(2, 2))(_elementwise)


@op("gemm", inputs=(2, 3), alpha=Attr(float, 1.0), beta=Attr(float, 1.0), trans_a=Attr(bool, False),
    trans_b=Attr(bool, False))
def _gemm(node: Node) -> list[Spec]:
    a, b = _x(node, 0), _x(node, 1)
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise IRError(f"{node.name}: gemm takes 2-D operands, got {a.shape} and {b.shape}")
    m = a.shape[1] if node.attrs["trans_a"] else a.shape[0]
    k = a.shape[0] if node.attrs["trans_a"] else a.shape[1]
    kb, n = (b.shape[1], b.shape[0]) if node.attrs["trans_b"] else b.shape
    if isinstance(k, int) and isinstance(kb, int) and k != kb:
        raise IRError(f"{node.name}: gemm inner sizes differ ({k} vs {kb})")
    shape = (m, n)
    if len(node.inputs) == 3 and node.inputs[2] is not None:
        broadcast(shape, node.inputs[2].shape, node.name)
    return [(shape, a.dtype)]


@op("matmul", inputs=(2, 2))
def _matmul(node: Node) -> list[Spec]:
    a, b = _x(node, 0).shape, _x(node, 1).shape
    if not a or not b:
        raise IRError(f"{node.name}: matmul operands must have rank >= 1")
    a2 = a if len(a) > 1 else (1, *a)
    b2 = b if len(b) > 1 else (*b, 1)
    if isinstance(a2[-1], int) and isinstance(b2[-2], int) and a2[-1] != b2[-2]:
        raise IRError(f"{node.name}: matmul inner sizes differ: {a} @ {b}")
    batch = broadcast(a2[:-2], b2[:-2], node.name)
    shape = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        shape = (*shape[:-2], shape[-1])
    if len(b) == 1:
        shape = shape[:-1]
    return [(shape, _x(node).dtype)]


@op("concat", inputs=(1, -1), axis=int)
def _concat(node: Node) -> list[Spec]:
    first = _x(node).shape
    axis = node.attrs["axis"]
    if not -len(first) <= axis < len(first):
        raise IRError(f"{node.name}: concat axis {axis} is out of range for rank {len(first)}")
    axis %= len(first)
    total: Dim = 0
    for value in node.inputs:
        if len(value.shape) != len(first) or any(
                i != axis and not _same_dim(d1, d2) for i, (d1, d2) in enumerate(zip(value.shape, first))):
            raise IRError(f"{node.name}: concat inputs {first} and {value.shape} differ off axis {axis}")
        total = dims.add(total, value.shape[axis])
    return [((*first[:axis], total, *first[axis + 1:]), _x(node).dtype)]


@op("flatten", inputs=(1, 1), axis=Attr(int, 1))
def _flatten(node: Node) -> list[Spec]:
    x = _x(node)
    axis = node.attrs["axis"]
    return [((_product(x.shape[:axis]), _product(x.shape[axis:])), x.dtype)]


def _product(dims_: Shape) -> Dim:
    """The product of dims, symbolic where any dim is: ("N", 16, 5, 5) -> "N*400"."""
    return dims.product(tuple(dims_))


@op("reshape", inputs=(1, 1), shape=INTS, allowzero=Attr(int, 0, (0, 1)))
def _reshape(node: Node) -> list[Spec]:
    """``shape`` is resolved at import: ints, at most one -1, and 0 only to copy the batch.

    With ``allowzero=1`` (ONNX's attribute) a 0 is a dim of size 0 instead, copied from
    nowhere: the reshape of an empty tensor to another empty shape (then no -1, as in ONNX).
    """
    x = _x(node)
    target = list(node.attrs["shape"])
    allowzero = node.attrs["allowzero"]
    if allowzero and 0 in target and -1 in target:
        raise IRError(f"{node.name}: reshape target {target} has both a 0 and a -1 with allowzero=1")
    out: list[Dim] = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    if out.count(-1) > 1:
        raise IRError(f"{node.name}: reshape target {target} has more than one -1")
    if -1 in out:
        known = [d for d in out if d != -1]
        total, rest = _product(x.shape), _product(tuple(known))
        out[out.index(-1)] = _divide(total, rest, node)
    elif all(isinstance(d, int) for d in (*out, *x.shape)) and _product(tuple(out)) != _product(x.shape):
        raise IRError(f"{node.name}: cannot reshape {x.shape} to {target}")
    return [(tuple(out), x.dtype)]


def _divide(total: Dim, known: Dim, node: Node) -> Dim:
    """``total / known`` for symbolic products, e.g. "N*400" / 16 -> "N*25"; exact or refused."""
    quotient = dims.divide_exact(total, known) if known != 0 else None
    if quotient is None:
        raise IRError(f"{node.name}: cannot infer the -1 of reshape from {total} / {known}")
    return quotient


@op("transpose", inputs=(1, 1), perm=INTS)
def _transpose(node: Node) -> list[Spec]:
    x = _x(node)
    perm = node.attrs["perm"]
    if sorted(perm) != list(range(len(x.shape))):
        raise IRError(f"{node.name}: transpose perm {perm} does not fit rank {len(x.shape)}")
    return [(tuple(x.shape[p] for p in perm), x.dtype)]


@op("pad", inputs=(1, 2), pads=INTS, mode=Attr(str, "constant"), value=Attr(float, 0.0))
def _pad(node: Node) -> list[Spec]:
    """An optional second input is the constant fill computed at run time (then ``value`` is unused)."""
    x = _x(node)
    if len(node.inputs) > 1 and node.inputs[1] is not None and _product(node.inputs[1].shape) != 1:
        raise IRError(f"{node.name}: pad's run-time fill value must be one number, got shape {node.inputs[1].shape}")
    pads = node.attrs["pads"]
    rank = len(x.shape)
    if len(pads) != 2 * rank:
        raise IRError(f"{node.name}: pad needs {2 * rank} pads for rank {rank}, got {len(pads)}")
    if node.attrs["mode"] not in ("constant", "reflect", "edge"):
        raise IRError(f"{node.name}: pad mode {node.attrs['mode']!r} is not supported")
    shape = tuple(dims.add(d, pads[i], pads[i + rank]) for i, d in enumerate(x.shape))
    if any(isinstance(d, int) and d < 1 for d in shape):
        raise IRError(f"{node.name}: pads {pads} crop {x.shape} to nothing (a dim at or below zero)")
    if node.attrs["mode"] == "reflect":
        for i, d in enumerate(x.shape):
            widest = max(pads[i], pads[i + rank])
            if isinstance(d, int) and widest >= d:
                raise IRError(f"{node.name}: reflect pads {pads} must be smaller than the dims of {x.shape} "
                              f"(axis {i} has {d})")
    return [(shape, x.dtype)]


@op("reduce_mean", inputs=(1, 1), axes=INTS, keepdims=Attr(bool, True))
def _reduce_mean(node: Node) -> list[Spec]:
    x = _x(node)
    rank = len(x.shape)
    axes = {a % rank for a in node.attrs["axes"]} or set(range(rank))
    keep = node.attrs["keepdims"]
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    return [(shape, x.dtype)]


# -- ops met in ONNX's function bodies (expanded Softmax, LeakyRelu, Relu, Clip) and the
# -- rarer forms of CNN ops (ConvTranspose, MaxPool indices, Dropout mask) -------------------
op("exp", inputs=(1, 1))(_same)
op("max", "min", inputs=(2, 2))(_elementwise)


@op("less", inputs=(2, 2))
def _less(node: Node) -> list[Spec]:
    """``a < b`` with broadcasting: a bool tensor."""
    return [(_elementwise(node)[0][0], "bool")]


@op("where", inputs=(3, 3))
def _where(node: Node) -> list[Spec]:
    """``cond ? x : y`` with the three operands broadcast; ``cond`` is bool."""
    cond, x, y = _x(node, 0), _x(node, 1), _x(node, 2)
    if cond.dtype != "bool":
        raise IRError(f"{node.name}: where's condition must be bool, got {cond.dtype}")
    shape = broadcast(broadcast(cond.shape, x.shape, node.name), y.shape, node.name)
    return [(shape, x.dtype)]


op("reduce_max", inputs=(1, 1), axes=INTS, keepdims=Attr(bool, True))(_reduce_mean)


@op("dropout_mask", inputs=(1, 1))
def _dropout_mask(node: Node) -> list[Spec]:
    """Inference Dropout's mask output: all true, in the input's shape."""
    return [(_x(node).shape, "bool")]


@op("max_pool_indices", inputs=(1, 1), kernel=INTS, stride=STRIDE, padding=PADDING, dilation=DILATION,
    ceil_mode=Attr(bool, False), storage_order=Attr(int, 0, (0, 1)))
def _max_pool_indices(node: Node) -> list[Spec]:
    """MaxPool with its Indices output: the max, and where it is (int64), ONNX's flat index into
    the whole N x C x H x W input (``storage_order`` 1: as if H and W were stored transposed)."""
    (shape, dtype), = _max_pool(node)
    return [(shape, dtype), (shape, "int64")]


@op("conv_transpose2d", inputs=(2, 3), stride=STRIDE, padding=PADDING, output_padding=Attr(tuple, (0, 0)),
    dilation=DILATION, groups=Attr(int, 1))
def _conv_transpose2d(node: Node) -> list[Spec]:
    """A transposed convolution; the weight is C x M/groups x kH x kW, ``padding`` crops the full
    output ``(in - 1) * stride + dilation * (k - 1) + 1 + output_padding``."""
    x, w = _x(node, 0), _x(node, 1)
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise IRError(f"{node.name}: conv_transpose2d takes a 4-D input and weight, got {x.shape} and {w.shape}")
    groups = node.attrs["groups"]
    if isinstance(x.shape[1], int) and x.shape[1] != w.shape[0]:
        raise IRError(f"{node.name}: conv_transpose2d input has {x.shape[1]} channels, weight expects {w.shape[0]}")
    if groups < 1 or w.shape[0] % groups:
        raise IRError(f"{node.name}: conv_transpose2d groups {groups} do not divide {w.shape[0]} channels")
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    channels = w.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (channels,):
        raise IRError(f"{node.name}: conv_transpose2d bias must have shape ({channels},), got {bias.shape}")
    top, left, bottom, right = node.attrs["padding"]
    sizes: list[Dim] = []
    for size, k, s, d, extra, begin, end in zip(x.shape[2:], w.shape[2:], node.attrs["stride"],
                                                 node.attrs["dilation"], node.attrs["output_padding"],
                                                 (top, left), (bottom, right)):
        out = dims.add(dims.mul(dims.sub(size, 1), s), d * (k - 1) + 1 + extra - begin - end)
        if isinstance(out, int) and out < 1:
            raise IRError(f"{node.name}: conv_transpose2d output size {out} is empty")
        sizes.append(out)
    return [((x.shape[0], channels, *sizes), x.dtype)]
