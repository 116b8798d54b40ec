"""The fused ops the passes make, defined once: inputs, typed attributes, shape inference.

Each fused op is what one kernel launch computes. Every backend implements it (the torch
reference composes the plain reference ops; the ONNX writer decomposes it into standard
ONNX nodes; the Triton backend runs one kernel), and a test checks the three tables agree.

``fused_conv2d(x, w, bias?, residual?, scale?, shift?)``::

    x' = x * scale[c] + shift[c]        if scale/shift are given     (the prologue: a batch
    x' = relu(x')                       if prologue_relu              norm + ReLU that could
    y  = conv2d(x', w, bias)            zero padding applied to x'    not fold backwards)
    y  = activation(y)                  relu, clip, sigmoid, tanh, leaky_relu (the epilogue)
    y  = y + residual                   if residual is given
    y  = post_activation(y)             relu after the residual add
    outputs: y split into out_splits channel ranges (sibling convolutions merged into one),
             or y whole; then, if pooled_output, mean(y) over H and W (N, C, 1, 1), for a
             squeeze-excite gate.

``fused_gemm(a, w, bias?)``: ``activation(flatten(a, 1) @ w' + bias)``, ``w' = w.T`` if
``trans_b``. A Flatten or Reshape before a Gemm is folded into it this way.

``fused_pool(x, scale?, shift?)``: the same prologue, then a max, average, global average or
global max pool (``mode``); the window attributes are those of ``max_pool``/``avg_pool``.

``se_gate(x, w1, b1, w2, b2)``: ``sigmoid(relu(mean(x) @ w1.T + b1) @ w2.T + b2)`` as
``(N, C, 1, 1)``; ``mean`` is over H and W (the identity on an already pooled ``x``).

``se_scale(x, gate, residual?)``: ``post_activation(x * gate + residual)``.
"""
from __future__ import annotations

from fastcnn.ir.core import Node, Value
from fastcnn.ir.ops import DILATION, OPT_FLOAT, PADDING, STRIDE, _check_pool_padding, _conv2d, _spatial, _x
from fastcnn.ir.schema import Attr, IRError, Spec, schema_table

FUSED_OPS, op = schema_table()

ACTIVATIONS = ("none", "relu", "clip", "sigmoid", "tanh", "leaky_relu")
POST_ACTIVATIONS = ("none", "relu")
POOL_MODES = ("max", "avg", "global_avg", "global_max")

EPILOGUE = dict(activation=Attr(str, "none", ACTIVATIONS), alpha=Attr(float, 0.01),
                clip_min=OPT_FLOAT, clip_max=OPT_FLOAT)
PROLOGUE = dict(prologue_relu=Attr(bool, False))

# Input positions of the optional operands, so passes and backends agree.
CONV_BIAS, CONV_RESIDUAL, CONV_SCALE, CONV_SHIFT = 2, 3, 4, 5
POOL_SCALE, POOL_SHIFT = 1, 2


def operand(node: Node, index: int) -> Value | None:
    """Input ``index`` of ``node``, or None when it is left out or past the end."""
    return node.inputs[index] if index < len(node.inputs) else None


def _expect_shape(node: Node, value: Value | None, shape: tuple, what: str) -> None:
    if value is not None and tuple(value.shape) != tuple(shape):
        raise IRError(f"{node.name}: {node.op} {what} must have shape {tuple(shape)}, got {value.shape}")


def _check_prologue(node: Node, scale_at: int, channels) -> None:
    scale, shift = operand(node, scale_at), operand(node, scale_at + 1)
    if (scale is None) != (shift is None):
        raise IRError(f"{node.name}: {node.op} prologue needs both scale and shift, or neither")
    _expect_shape(node, scale, (channels,), "prologue scale")
    _expect_shape(node, shift, (channels,), "prologue shift")


@op("fused_conv2d", inputs=(2, 6), stride=STRIDE, padding=PADDING, dilation=DILATION, groups=Attr(int, 1),
    **EPILOGUE, post_activation=Attr(str, "none", POST_ACTIVATIONS), **PROLOGUE,
    out_splits=Attr(tuple, ()), pooled_output=Attr(bool, False))
def _fused_conv2d(node: Node) -> list[Spec]:
    x = _x(node)
    conv_attrs = {k: node.attrs[k] for k in ("stride", "padding", "dilation", "groups")}
    (shape, dtype), = _conv2d(Node("conv2d", node.inputs[:2], [], conv_attrs, node.name))
    channels = shape[1]
    _expect_shape(node, operand(node, CONV_BIAS), (channels,), "bias")
    _expect_shape(node, operand(node, CONV_RESIDUAL), shape, "residual")
    _check_prologue(node, CONV_SCALE, x.shape[1])
    splits = node.attrs["out_splits"]
    if not splits:
        outputs = [(shape, dtype)]
    else:
        if any(not isinstance(s, int) or s <= 0 for s in splits) or sum(splits) != channels:
            raise IRError(f"{node.name}: out_splits {splits} must be positive and add up to {channels}")
        if operand(node, CONV_RESIDUAL) is not None or node.attrs["pooled_output"]:
            raise IRError(f"{node.name}: a split fused_conv2d takes no residual and no pooled output")
        outputs = [((shape[0], s, *shape[2:]), dtype) for s in splits]
    if node.attrs["pooled_output"]:
        outputs.append(((shape[0], channels, 1, 1), dtype))
    return outputs


@op("fused_gemm", inputs=(2, 3), trans_b=Attr(bool, False), **EPILOGUE)
def _fused_gemm(node: Node) -> list[Spec]:
    a, w = _x(node, 0), _x(node, 1)
    if len(a.shape) < 2 or len(w.shape) != 2:
        raise IRError(f"{node.name}: fused_gemm takes an input of rank >= 2 and a 2-D weight, "
                      f"got {a.shape} and {w.shape}")
    k_w, n = (w.shape[1], w.shape[0]) if node.attrs["trans_b"] else w.shape
    k = 1
    for d in a.shape[1:]:
        k = k * d if isinstance(d, int) and isinstance(k, int) else None
    if k is not None and k != k_w:
        raise IRError(f"{node.name}: fused_gemm input has {k} features per row, the weight takes {k_w}")
    _expect_shape(node, operand(node, 2), (n,), "bias")
    return [((a.shape[0], n), a.dtype)]


@op("fused_pool", inputs=(1, 3), mode=Attr(str, choices=POOL_MODES), kernel=Attr(tuple, ()), stride=STRIDE,
    padding=PADDING, dilation=DILATION, ceil_mode=Attr(bool, False), count_include_pad=Attr(bool, False),
    **PROLOGUE)
def _fused_pool(node: Node) -> list[Spec]:
    x = _x(node)
    if len(x.shape) != 4:
        raise IRError(f"{node.name}: fused_pool expects a 4-D NCHW input, got shape {x.shape}")
    _check_prologue(node, POOL_SCALE, x.shape[1])
    if node.attrs["mode"].startswith("global"):
        return [((x.shape[0], x.shape[1], 1, 1), x.dtype)]
    if len(node.attrs["kernel"]) != 2:
        raise IRError(f"{node.name}: fused_pool mode {node.attrs['mode']!r} needs a 2-D kernel")
    _check_pool_padding(node)
    return _spatial(node, x.shape[1], node.attrs["ceil_mode"])


@op("se_gate", inputs=(5, 5))
def _se_gate(node: Node) -> list[Spec]:
    x, w1, b1, w2, b2 = (_x(node, i) for i in range(5))
    if len(x.shape) != 4 or len(w1.shape) != 2:
        raise IRError(f"{node.name}: se_gate takes a 4-D input and 2-D weights, got {x.shape}, {w1.shape}")
    channels, reduced = x.shape[1], w1.shape[0]
    _expect_shape(node, w1, (reduced, channels), "first weight")
    _expect_shape(node, b1, (reduced,), "first bias")
    _expect_shape(node, w2, (channels, reduced), "second weight")
    _expect_shape(node, b2, (channels,), "second bias")
    return [((x.shape[0], channels, 1, 1), x.dtype)]


@op("se_scale", inputs=(2, 3), post_activation=Attr(str, "none", POST_ACTIVATIONS))
def _se_scale(node: Node) -> list[Spec]:
    x, gate = _x(node, 0), _x(node, 1)
    if len(x.shape) != 4:
        raise IRError(f"{node.name}: se_scale expects a 4-D input, got {x.shape}")
    _expect_shape(node, gate, (x.shape[0], x.shape[1], 1, 1), "gate")
    _expect_shape(node, operand(node, 2), x.shape, "residual")
    return [(x.shape, x.dtype)]
