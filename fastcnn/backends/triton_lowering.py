"""IR ops as Triton kernel launches: weights packed once, then one lowering per op.

:func:`pack_weights` turns each node's constants into what its kernel reads (convolution
weights in the implicit GEMM's layout, Gemm weights permuted to the NHWC order a folded
Flatten reads, biases and per-channel parameters as float32), once per engine.
:data:`LOWERINGS` maps each IR op to a function that binds a node of a specialized graph to
tensors (strided views of the planned arena) and returns its :class:`KernelCall` list. The
tile choice is made by the kernels' rules from the node's shapes, by the same function for
the workspace request (:func:`workspace_hook`, read by the memory planner) and the launch,
unless the autotuner chose otherwise for that node at that batch (:attr:`Lowering.choices`,
read by both as well): another config, or :data:`TORCH_CONV`. A node no kernel runs
(:func:`torch_reason` says why: ConvTranspose, Where, MaxPool's indices, ...) is lowered to
the torch backend's op on the same views (:mod:`fastcnn.backends.triton_torch_ops`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from fastcnn.backends.torch_ops import TORCH_OPS
from fastcnn.backends.triton_torch_ops import TorchOpCall, torch_op_call
from fastcnn.ir import Graph, Node, Value
from fastcnn.ir.cost import accumulated, is_view
from fastcnn.ir.fused_ops import CONV_BIAS, CONV_RESIDUAL, CONV_SCALE, CONV_SHIFT, POOL_SCALE, POOL_SHIFT, operand
from fastcnn.kernels.conv2d import MAX_OUTPUTS, ConvConfig, choose_conv_config, conv2d_calls, pack_conv_weight
from fastcnn.kernels.conv_direct import conv_direct_call, pack_direct_weight, prefers_direct
from fastcnn.kernels.conv_torch import torch_conv_call, unpack_conv_weight
from fastcnn.kernels.elementwise import elementwise_call, reduce_mean_call
from fastcnn.kernels.gemm import (
    GemmConfig,
    choose_gemm_config,
    fused_gemm_calls,
    gemm_workspace_numel,
    pack_gemm_weight,
)
from fastcnn.kernels.launch import KernelCall
from fastcnn.kernels.lrn import lrn_call
from fastcnn.kernels.pool import global_pool_call, pool2d_call
from fastcnn.kernels.softmax import softmax_call
from fastcnn.kernels.squeeze_excite import (
    GateScratch,
    gate_scratch,
    se_gate_from_sums_call,
    se_gate_from_x_call,
    se_scale_call,
)
from fastcnn.runtime.memory import WorkspaceHook, WorkspaceRequest

CONV_OPS = ("conv2d", "fused_conv2d")
INTERPRETER_CONV = ConvConfig(block_m=128, block_n=128, block_k=128, num_warps=8, split_k=1)
UNARY = ("relu", "sigmoid", "tanh", "clip", "leaky_relu")
BINARY = ("add", "sub", "mul", "div")
COPIES = ("reshape", "flatten", "identity", "dropout")  # reached only when they are not views
TORCH_CONV = "torch"  # a tuned choice: torch's convolution (cuDNN), then the epilogue as torch ops


@dataclass(frozen=True)
class Lowering:
    """What every lowering needs to know about the engine: device, dtype, the GPU's size."""

    device: torch.device
    dtype: torch.dtype
    sm_count: int
    allow_tf32: bool = False
    # Triton's interpreter (tests without a GPU) pays per program and per loop step, not per
    # FLOP: it runs the same kernels with the largest tiles, so that a whole network takes
    # seconds. Tiles change no result; the rule-picked ones are checked kernel by kernel.
    interpreted: bool = False
    # The autotuner's choices, (node name, batch) -> a ConvConfig, GemmConfig or TORCH_CONV;
    # a node not in it takes the rule's tiles. Replaced, never changed, once lowerings used it.
    choices: Mapping[tuple[str, int], Any] = field(default_factory=dict, compare=False)

    def choice(self, node: Node) -> Any:
        """The tuned choice for ``node`` of a specialized graph, or None (the rule decides)."""
        return self.choices.get((node.name, int(node.inputs[0].shape[0]))) if self.choices else None


# -- which ops run, and how ----------------------------------------------------------------------
# Operands a kernel reads as packed constants (weights, biases, per-channel parameters).
_PACKED = {"conv2d": (1, CONV_BIAS), "fused_conv2d": (1, CONV_BIAS, CONV_SCALE, CONV_SHIFT), "fused_gemm": (1, 2),
           "se_gate": (1, 2, 3, 4), "fused_pool": (POOL_SCALE, POOL_SHIFT), "batch_norm": (1, 2, 3, 4)}
_MAX_RANK = 4  # of the elementwise, copy and pooling kernels' tensors


def torch_reason(node: Node) -> str | None:
    """Why ``node`` runs as its torch op inside the Triton plan, or None when a Triton kernel runs
    it: an op with no kernel, or a form of one the kernel does not take (issue 8: never a silent
    fallback of the whole model; `engine.plan` shows each such launch as ``torch:<op>``)."""
    if node.op not in LOWERINGS:
        return "no Triton kernel for this op"
    values = [v for v in (*node.inputs, *node.outputs) if v is not None]
    if not all(v.dtype.startswith(("float", "bfloat")) for v in values):
        return "the Triton kernels compute on floating-point tensors only"
    if any(len(v.shape) > _MAX_RANK for v in values):
        return f"the Triton kernels take tensors of rank {_MAX_RANK} at most"
    if any(v is not None and not v.is_const for v in (operand(node, i) for i in _PACKED.get(node.op, ()))):
        return "its weights or parameters are computed at run time"
    if node.op == "softmax" and (len(node.inputs[0].shape) != 2 or node.attrs["axis"] not in (-1, 1)):
        return "the softmax kernel runs along the last axis of a 2-D tensor only"
    dilated = tuple(node.attrs.get("dilation", (1, 1))) != (1, 1)
    if (node.op == "avg_pool" or node.attrs.get("mode") == "avg") and dilated:
        return "no Triton kernel for dilated average pooling"
    if len(node.attrs.get("out_splits", ())) > MAX_OUTPUTS:
        return f"a merged convolution writes at most {MAX_OUTPUTS} outputs"
    return None


def runs_as_torch(node: Node) -> bool:
    return not is_view(node) and torch_reason(node) is not None


def unsupported_nodes(graph: Graph) -> list[tuple[str, str, str]]:
    """``(op, node, reason)`` for every node the Triton backend cannot run: no kernel, no torch op."""
    return [(node.op, node.name, "no Triton kernel and no torch op for this op") for node in graph.nodes
            if runs_as_torch(node) and node.op not in TORCH_OPS]


# -- tiles, shared by the workspace request and the launch --------------------------------------
def uses_direct(node: Node) -> bool:
    """Whether a convolution runs on the direct kernel rather than the implicit GEMM."""
    w = node.inputs[1]
    return prefers_direct(w.shape[1], w.shape[0] // node.attrs["groups"])


def conv_config(node: Node, lowering: Lowering) -> ConvConfig | None:
    """The implicit GEMM's tiles for a convolution node of a specialized graph (None: it runs
    on the direct kernel)."""
    x, w = node.inputs[0], node.inputs[1]
    groups = node.attrs["groups"]
    if uses_direct(node):
        return None
    choice = lowering.choice(node)
    if choice is not None:
        return choice if isinstance(choice, ConvConfig) else None  # None: TORCH_CONV, no tiles
    if lowering.interpreted:
        return INTERPRETER_CONV
    return choose_conv_config(x.shape[0], x.shape[1], w.shape[0], node.outputs[0].shape[2:], w.shape[2:],
                              groups, lowering.dtype, pooled=bool(node.attrs.get("pooled_output")),
                              vector_epilogue=_vector_epilogue(node, lowering.dtype), prologue=has_prologue(node),
                              sm_count=lowering.sm_count)


def has_prologue(node: Node) -> bool:
    """Whether a convolution applies a prologue (channel affine, ReLU) as it loads its input."""
    return node.op == "fused_conv2d" and (operand(node, CONV_SCALE) is not None or node.attrs["prologue_relu"])


def _vector_epilogue(node: Node, dtype: torch.dtype) -> bool:
    """Whether every output and the residual will be channel-contiguous and 16-byte aligned."""
    itemsize = dtype.itemsize
    values = [v for v in node.outputs if v not in accumulated(node)]
    residual = operand(node, CONV_RESIDUAL) if node.op == "fused_conv2d" else None
    values += [residual] if residual is not None else []
    for value in values:
        slot = value.storage
        offset, stride = (slot.channel_offset, slot.channel_stride) if slot else (0, value.shape[1])
        if value.layout != "NHWC" or (offset * itemsize) % 16 or (stride * itemsize) % 16:
            return False
    return True


def gemm_config(node: Node, lowering: Lowering) -> GemmConfig:
    choice = lowering.choice(node)
    if isinstance(choice, GemmConfig):
        return choice
    m, k = node.inputs[0].shape[0], int(np.prod(node.inputs[0].shape[1:]))
    return choose_gemm_config(m, node.outputs[0].shape[1], k, lowering.dtype, lowering.sm_count)


def workspace_hook(lowering: Lowering) -> WorkspaceHook:
    """Split-K partial sums and the squeeze-excite gate's scratch each launch needs, for the
    memory planner (scratch in the arena, not zeroed)."""

    def requests(node: Node) -> list[WorkspaceRequest]:
        if runs_as_torch(node):
            return []
        if node.op in CONV_OPS:
            config = conv_config(node, lowering)
            if config is not None and config.split_k > 1:
                rows = node.inputs[0].shape[0] * int(np.prod(node.outputs[0].shape[2:]))
                return [WorkspaceRequest("partials", 4 * config.split_k * rows * node.inputs[1].shape[0])]
        if node.op == "fused_gemm":
            a = node.inputs[0]
            numel = gemm_workspace_numel(a.shape[0], node.outputs[0].shape[1], int(np.prod(a.shape[1:])),
                                         gemm_config(node, lowering))
            if numel:
                return [WorkspaceRequest("partials", 4 * numel)]
        if node.op == "se_gate":
            need = se_gate_scratch(node, lowering)
            return [WorkspaceRequest(name, nbytes) for name, nbytes in
                    (("se_sums", 4 * need.sums), ("se_hidden", lowering.dtype.itemsize * need.hidden)) if nbytes]
        return []

    return requests


def _gate_reads_sums(node: Node) -> bool:
    """Whether the gate's input is per-channel sums a convolution's epilogue accumulated."""
    x = node.inputs[0]
    return x.producer is not None and any(x is v for v in accumulated(x.producer))


def se_gate_scratch(node: Node, lowering: Lowering) -> GateScratch:
    """The gate launch's scratch sizes, as :func:`~fastcnn.kernels.squeeze_excite.gate_scratch`
    computes them from the shapes and dtypes the launcher will see."""
    x, w1 = node.inputs[0], node.inputs[1]
    itemsize = lowering.dtype.itemsize
    hw, x_itemsize = (1, 4) if _gate_reads_sums(node) else (int(np.prod(x.shape[2:])), itemsize)
    return gate_scratch(int(x.shape[0]), int(x.shape[1]), int(w1.shape[0]), hw, itemsize, x_itemsize)


# -- weights, once per engine --------------------------------------------------------------------
Packed = dict[str, dict[str, Tensor]]


def pack_weights(graph: Graph, lowering: Lowering) -> Packed:
    """Every node's constants as its kernel reads them, keyed by node name, then by role."""
    packed: Packed = {}
    for node in graph.nodes:
        if runs_as_torch(node):
            packed[node.name] = _pack_torch_op(node, lowering)
        elif not is_view(node) and node.op in PACKERS:
            packed[node.name] = PACKERS[node.op](node, lowering)
    return packed


def _tensor(value: Value | None, lowering: Lowering, dtype: torch.dtype = torch.float32) -> Tensor | None:
    if value is None:
        return None
    return torch.from_numpy(np.array(value.const)).to(device=lowering.device, dtype=dtype)


def _pack_conv(node: Node, lowering: Lowering) -> dict[str, Tensor]:
    w = torch.from_numpy(np.array(node.inputs[1].const))
    groups = node.attrs["groups"]
    direct = uses_direct(node)
    weight = pack_direct_weight(w, lowering.dtype) if direct else pack_conv_weight(w, groups, lowering.dtype)
    packed = {"weight": weight.to(lowering.device)}
    for role, index in (("bias", CONV_BIAS), ("scale", CONV_SCALE), ("shift", CONV_SHIFT)):
        value = operand(node, index)
        if value is not None:
            packed[role] = _tensor(value, lowering)
    return packed


def _pack_gemm(node: Node, lowering: Lowering) -> dict[str, Tensor]:
    """The weight as (out, in) rows, its inputs reordered to the NHWC order the input is read in."""
    w = torch.from_numpy(np.array(node.inputs[1].const))
    w = w if node.attrs["trans_b"] else w.t()
    a = node.inputs[0]
    if len(a.shape) == 4 and a.layout == "NHWC" and tuple(a.shape[2:]) != (1, 1):
        c, h, wd = a.shape[1:]
        w = w.reshape(w.shape[0], c, h, wd).permute(0, 2, 3, 1).reshape(w.shape[0], -1)
    packed = {"weight": pack_gemm_weight(w.contiguous(), True, lowering.dtype).to(lowering.device)}
    if operand(node, 2) is not None:
        packed["bias"] = _tensor(node.inputs[2], lowering)
    return packed


def _pack_pool(node: Node, lowering: Lowering) -> dict[str, Tensor]:
    return {role: _tensor(operand(node, index), lowering)
            for role, index in (("scale", POOL_SCALE), ("shift", POOL_SHIFT)) if operand(node, index) is not None}


def _pack_se_gate(node: Node, lowering: Lowering) -> dict[str, Tensor]:
    w1, b1, w2, b2 = node.inputs[1:]
    return {"w1": _tensor(w1, lowering, lowering.dtype), "b1": _tensor(b1, lowering),
            "w2": _tensor(w2, lowering, lowering.dtype), "b2": _tensor(b2, lowering)}


def _pack_batch_norm(node: Node, lowering: Lowering) -> dict[str, Tensor]:
    gamma, beta, mean, var = (np.asarray(v.const, np.float64) for v in node.inputs[1:])
    scale = gamma / np.sqrt(var + node.attrs["eps"])
    shape = (1, -1) + (1,) * (len(node.inputs[0].shape) - 2)
    to = lambda a: torch.from_numpy(a.reshape(shape)).to(lowering.device, lowering.dtype)  # noqa: E731
    return {"scale": to(scale), "shift": to(beta - mean * scale)}


def _pack_constants(node: Node, lowering: Lowering) -> dict[str, Tensor]:
    """Constant operands of elementwise ops, in the run dtype."""
    return {f"in{i}": _tensor(v, lowering, lowering.dtype) for i, v in enumerate(node.inputs)
            if v is not None and v.is_const}


def _pack_torch_op(node: Node, lowering: Lowering) -> dict[str, Tensor]:
    """Constant operands of a node run as a torch op: floats in the run dtype, the rest (a
    bool condition, int64) as they are, as the torch backend casts them."""
    packed = {}
    for i, value in enumerate(node.inputs):
        if value is not None and value.is_const:
            tensor = torch.from_numpy(np.array(value.const))
            dtype = lowering.dtype if tensor.is_floating_point() else tensor.dtype
            packed[f"in{i}"] = tensor.to(device=lowering.device, dtype=dtype)
    return packed


PACKERS: dict[str, Callable[[Node, Lowering], dict[str, Tensor]]] = {
    "conv2d": _pack_conv, "fused_conv2d": _pack_conv, "fused_gemm": _pack_gemm, "fused_pool": _pack_pool,
    "se_gate": _pack_se_gate, "batch_norm": _pack_batch_norm,
    **{op: _pack_constants for op in BINARY},
}


# -- launches, per bucket -----------------------------------------------------------------------
@dataclass
class Bound:
    """A node of a specialized graph with its tensors at hand."""

    node: Node
    views: Any  # the executor's views: .tensor(value), .workspace_for(node, request)
    packed: dict[str, Tensor]
    lowering: Lowering

    def input(self, index: int) -> Tensor | None:
        value = self.node.inputs[index]
        if value is None:
            return None
        if value.is_const:
            return self.packed[f"in{index}"]
        return self.views.tensor(value)

    def output(self, index: int = 0) -> Tensor:
        return self.views.tensor(self.node.outputs[index])

    def workspace(self) -> Tensor:
        return self.views.workspace_for(self.node.name, "partials")


Lower = Callable[[Bound], list[KernelCall]]


def lower_node(node: Node, views: Any, packed: Packed, lowering: Lowering) -> list[KernelCall | TorchOpCall]:
    """The launches of ``node`` (of a specialized graph) with its tensors bound."""
    bound = Bound(node, views, packed.get(node.name, {}), lowering)
    reason = torch_reason(node)
    return [_torch_op(bound, reason)] if reason is not None else LOWERINGS[node.op](bound)


def _torch_op(b: Bound, reason: str) -> TorchOpCall:
    """The node run by the torch backend's op on its views; a pooled output the plan keeps as
    a sum (for a squeeze-excite gate) is stored as the mean times the count it stands for."""
    node, summed = b.node, {id(v) for v in accumulated(b.node)}
    sums = [int(np.prod(node.outputs[0].shape[2:])) if id(v) in summed else None for v in node.outputs]
    return torch_op_call(node.op, [b.input(i) for i in range(len(node.inputs))], node.attrs,
                         [b.output(i) for i in range(len(node.outputs))], sums, reason)


def _epilogue(attrs: dict[str, Any]) -> dict[str, Any]:
    return dict(activation=attrs.get("activation", "none"), alpha=attrs.get("alpha", 0.01),
                clip_min=attrs.get("clip_min"), clip_max=attrs.get("clip_max"))


def _conv(b: Bound) -> list[KernelCall]:
    node, a, p = b.node, b.node.attrs, b.packed
    splits = a.get("out_splits") or ()
    outs = [b.output(i) for i in range(max(1, len(splits)))]
    pooled = b.output(len(node.outputs) - 1)[:, :, 0, 0] if a.get("pooled_output") else None
    residual = b.input(CONV_RESIDUAL) if operand(node, CONV_RESIDUAL) is not None else None
    kw = node.inputs[1].shape[2:]
    options = dict(kernel_size=tuple(kw), stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                   groups=a["groups"], post_activation=a.get("post_activation", "none"),
                   prologue_relu=a.get("prologue_relu", False), **_epilogue(a))
    tensors = (b.input(0), p["weight"], outs if len(outs) > 1 else outs[0], p.get("bias"), residual,
               p.get("scale"), p.get("shift"), pooled)
    if not uses_direct(node) and b.lowering.choice(node) == TORCH_CONV:
        weight = p.get("oihw")
        if weight is None:  # unpacked once per engine, on first use
            weight = p["oihw"] = unpack_conv_weight(p["weight"], a["groups"], node.inputs[1].shape[0], kw)
        return [torch_conv_call(tensors[0], weight, *tensors[2:], allow_tf32=b.lowering.allow_tf32, **options)]
    config = conv_config(node, b.lowering)
    if config is None:
        return [conv_direct_call(*tensors, **options)]
    workspace = b.workspace() if config.split_k > 1 else None
    return conv2d_calls(*tensors, workspace, allow_tf32=b.lowering.allow_tf32, config=config,
                        sm_count=b.lowering.sm_count, **options)


def _gemm_input(x: Tensor) -> Tensor:
    """A fused Gemm's input as (N, K) in memory order: channel-contiguous (NHWC) data is read in
    (H, W, C) order, which :func:`_pack_gemm` permuted the weight to match. ``view`` never
    copies, so a layout that is not one block fails loudly here rather than reading stale data."""
    if x.dim() == 4 and x.stride(1) == 1:
        return x.permute(0, 2, 3, 1).view(x.shape[0], -1)
    return x if x.dim() == 2 else x.view(x.shape[0], -1)


def _gemm(b: Bound) -> list[KernelCall]:
    config = gemm_config(b.node, b.lowering)
    a = _gemm_input(b.input(0))
    workspace = b.workspace() if config.split_k > 1 else None
    return fused_gemm_calls(a, b.packed["weight"], b.output(), b.packed.get("bias"),
                            tf32=b.lowering.allow_tf32, config=config, workspace=workspace,
                            sm_count=b.lowering.sm_count, **_epilogue(b.node.attrs))


_POOL_MODES = {"max_pool": "max", "avg_pool": "avg", "global_avg_pool": "global_avg", "global_max_pool": "global_max"}


def _pool(b: Bound) -> list[KernelCall]:
    a = b.node.attrs
    mode = a["mode"] if b.node.op == "fused_pool" else _POOL_MODES[b.node.op]
    prologue = dict(scale=b.packed.get("scale"), shift=b.packed.get("shift"),
                    prologue_relu=a.get("prologue_relu", False))
    if mode.startswith("global"):
        return [global_pool_call(b.input(0), b.output(), mode, **prologue)]
    return [pool2d_call(b.input(0), b.output(), mode, a["kernel"], a["stride"], a["padding"], a.get("dilation", (1, 1)),
                        count_include_pad=a.get("count_include_pad", False), **prologue)]


def _se_gate(b: Bound) -> list[KernelCall]:
    x, p, out = b.node.inputs[0], b.packed, b.output()[:, :, 0, 0]
    weights = (p["w1"], p["b1"], p["w2"], p["b2"])
    need = se_gate_scratch(b.node, b.lowering)
    sums = b.views.workspace_for(b.node.name, "se_sums") if need.sums else torch.empty(0, device=out.device)
    hidden = b.views.workspace_for(b.node.name, "se_hidden").view(b.lowering.dtype)
    scratch = (sums, hidden)
    if _gate_reads_sums(b.node):
        count = int(np.prod(x.producer.outputs[0].shape[2:]))
        return [se_gate_from_sums_call(b.input(0)[:, :, 0, 0], count, *weights, out, scratch=scratch)]
    return [se_gate_from_x_call(b.input(0), *weights, out, scratch=scratch)]


def _se_scale(b: Bound) -> list[KernelCall]:
    residual = b.input(2) if operand(b.node, 2) is not None else None
    return [se_scale_call(b.input(0), b.input(1), b.output(), residual,
                          post_relu=b.node.attrs["post_activation"] == "relu")]


def _unary(b: Bound) -> list[KernelCall]:
    a = b.node.attrs
    if b.node.op == "clip":
        return [elementwise_call(b.output(), b.input(0), activation="clip", clip_min=a["min"], clip_max=a["max"])]
    return [elementwise_call(b.output(), b.input(0), activation=b.node.op, alpha=a.get("alpha", 0.01))]


def _binary(b: Bound) -> list[KernelCall]:
    return [elementwise_call(b.output(), b.input(0), b.input(1), binary=b.node.op)]


def _copy(b: Bound) -> list[KernelCall]:
    """A reshape (flatten, identity) of a strided slice: its elements in NCHW order, copied."""
    source = b.input(0)
    return [elementwise_call(b.output().view(source.shape), source)]


def _transpose(b: Bound) -> list[KernelCall]:
    return [elementwise_call(b.output(), b.input(0).permute(b.node.attrs["perm"]))]


def _concat(b: Bound) -> list[KernelCall]:
    """A concat that could not be a view: each input copied into its part of the output."""
    out, axis, calls, offset = b.output(), b.node.attrs["axis"] % len(b.node.outputs[0].shape), [], 0
    for index, value in enumerate(b.node.inputs):
        size = int(value.shape[axis])
        calls.append(elementwise_call(out.narrow(axis, offset, size), b.input(index)))
        offset += size
    return calls


def _batch_norm(b: Bound) -> list[KernelCall]:
    return [elementwise_call(b.output(), b.input(0), b.packed["scale"], b.packed["shift"], binary="mul")]


def _lrn(b: Bound) -> list[KernelCall]:
    a = b.node.attrs
    return [lrn_call(b.input(0), b.output(), a["size"], a["alpha"], a["beta"], a["bias"])]


def _softmax(b: Bound) -> list[KernelCall]:
    return [softmax_call(b.input(0), b.output())]


def _reduce_mean(b: Bound) -> list[KernelCall]:
    return [reduce_mean_call(b.input(0), b.output(), b.node.attrs["axes"])]


LOWERINGS: dict[str, Lower] = {
    "conv2d": _conv, "fused_conv2d": _conv, "fused_gemm": _gemm,
    **{op: _pool for op in ("max_pool", "avg_pool", "global_avg_pool", "global_max_pool", "fused_pool")},
    "se_gate": _se_gate, "se_scale": _se_scale, "batch_norm": _batch_norm, "lrn": _lrn, "softmax": _softmax,
    "reduce_mean": _reduce_mean, "concat": _concat, "transpose": _transpose,
    **{op: _unary for op in UNARY}, **{op: _binary for op in BINARY}, **{op: _copy for op in COPIES},
}
