"""The IR as a plain ONNX model: what ONNX Runtime runs and what ``engine.save_onnx`` writes.

One small writer per IR op in :data:`WRITERS`, each returning standard ONNX nodes; constants
become initializers, and the values an ONNX op takes as inputs but the IR keeps as attributes
(Reshape's shape, Pad's pads, Clip's bounds, ReduceMean's axes from opset 18) become small
initializers named after the node. Symbolic dims (the batch ``"N"``) are written as
``dim_param``; the result passes ``onnx.checker.check_model(full_check=True)``.

``float_dtype`` rewrites every float tensor (inputs, outputs, constants) to another float
type, so an ONNX Runtime session can run the graph in float16.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fastcnn.ir import Graph, Node, Value
from fastcnn.tables import registrar

MIN_OPSET = 13  # Softmax's axis semantics and Clip's min/max inputs are 13's
FLOAT_TYPES = ("float16", "float32", "float64")


class _Writer:
    """What the per-op writers share: the opset, dtype mapping and extra initializers."""

    def __init__(self, graph: Graph, opset: int, float_dtype: str | None) -> None:
        self.opset = opset
        self.float_dtype = float_dtype
        self.initializers: list[onnx.TensorProto] = []
        self._used = {v.name for v in graph.values()} | {n.name for n in graph.nodes}

    def dtype(self, value: Value) -> str:
        if self.float_dtype is not None and value.dtype in FLOAT_TYPES:
            return self.float_dtype
        return value.dtype

    def fresh(self, hint: str) -> str:
        """A value name used nowhere in the graph yet."""
        name, k = hint, 0
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._used.add(name)
        return name

    def initializer(self, array: np.ndarray, hint: str) -> str:
        """Add ``array`` as an initializer under a fresh name and return the name."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
        return name

    def scalar(self, number: float, like: Value, hint: str) -> str:
        return self.initializer(np.array(number, dtype=self.dtype(like)), hint)


NodeWriter = Callable[[_Writer, Node, list[str], str], list[onnx.NodeProto]]
WRITERS: dict[str, NodeWriter] = {}


writes = registrar(WRITERS, "ONNX writer for")


def _simple(onnx_op: str, **rename: str) -> NodeWriter:
    """A writer for an op whose inputs and attributes map one to one (renamed as given)."""

    def write(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
        attrs = {rename.get(k, k): _onnx_attr(v) for k, v in node.attrs.items()}
        return [helper.make_node(onnx_op, inputs, [out], name=node.name, **attrs)]

    return write


def _onnx_attr(value: Any) -> Any:
    """ONNX has no bool attribute: flags are ints; tuples become lists."""
    if isinstance(value, bool):
        return int(value)
    return list(value) if isinstance(value, tuple) else value


for _ir, _onnx in {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "identity": "Identity",
                   "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "matmul": "MatMul",
                   "global_avg_pool": "GlobalAveragePool", "global_max_pool": "GlobalMaxPool"}.items():
    writes(_ir)(_simple(_onnx))
writes("batch_norm")(_simple("BatchNormalization", eps="epsilon"))


@writes("dropout")
def _dropout(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    """Inference dropout: an Identity (its ratio is only a record)."""
    return [helper.make_node("Identity", inputs, [out], name=node.name)]


writes("lrn")(_simple("LRN"))
writes("leaky_relu")(_simple("LeakyRelu"))
writes("softmax")(_simple("Softmax"))
writes("concat")(_simple("Concat"))
writes("flatten")(_simple("Flatten"))
writes("transpose")(_simple("Transpose"))
writes("gemm")(_simple("Gemm", trans_a="transA", trans_b="transB"))
writes("conv2d")(_simple("Conv", stride="strides", padding="pads", dilation="dilations", groups="group"))


def _pool(onnx_op: str, **rename: str) -> NodeWriter:
    """A pooling writer that crops where ONNX's shape inference keeps a window ONNX drops.

    In ceil mode a last window starting in the end padding is dropped by ONNX Runtime and
    the reference (the IR's ``window_out``), yet ``onnx.shape_inference`` still counts it,
    which the full check then reports as a conflict. A Slice to the IR's size makes the two
    agree; it is written only in that corner case.
    """
    write_pool = _simple(onnx_op, **rename)

    def write(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
        size = _onnx_inferred_size(node)
        if size is None or size == node.outputs[0].shape[2:]:
            return write_pool(w, node, inputs, out)
        pooled = w.fresh(f"{out}_uncropped")
        starts = w.initializer(np.zeros(2, dtype=np.int64), f"{node.name}_starts")
        ends = w.initializer(np.array(node.outputs[0].shape[2:], dtype=np.int64), f"{node.name}_ends")
        axes = w.initializer(np.array([2, 3], dtype=np.int64), f"{node.name}_axes")
        return [*write_pool(w, node, inputs, pooled),
                helper.make_node("Slice", [pooled, starts, ends, axes], [out], name=f"{node.name}_crop")]

    return write


def _onnx_inferred_size(node: Node) -> tuple[int, int] | None:
    """The spatial output size ``onnx.shape_inference`` gives (no dropped window), if static."""
    spatial = node.inputs[0].shape[2:]
    if not all(isinstance(d, int) for d in spatial):
        return None
    a = node.attrs
    top, left, bottom, right = a["padding"]
    sizes = []
    for size, k, s, d, begin, end in zip(spatial, a["kernel"], a["stride"], a.get("dilation", (1, 1)),
                                         (top, left), (bottom, right)):
        room = size + begin + end - (d * (k - 1) + 1)
        sizes.append((-(-room // s) if a["ceil_mode"] else room // s) + 1)
    return tuple(sizes)


writes("max_pool")(_pool("MaxPool", kernel="kernel_shape", stride="strides", padding="pads",
                         dilation="dilations"))
_write_avg_pool = _pool("AveragePool", kernel="kernel_shape", stride="strides", padding="pads",
                        dilation="dilations")


@writes("avg_pool")
def _avg_pool(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    """Undilated: AveragePool. Dilated (an opset-19 attribute): AveragePool at opset 19 and
    later, before that window sums as a depthwise Conv of ones divided by each window's count."""
    dilation = tuple(node.attrs.get("dilation", (1, 1)))
    if dilation == (1, 1):
        plain = Node(node.op, node.inputs, node.outputs,
                     {k: v for k, v in node.attrs.items() if k != "dilation"}, node.name)
        return _write_avg_pool(w, plain, inputs, out)
    if w.opset >= 19:
        return _write_avg_pool(w, node, inputs, out)
    return _dilated_avg_pool(w, node, inputs, out)


def _dilated_avg_pool(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    a = node.attrs
    x, y = node.inputs[0], node.outputs[0]
    if not all(isinstance(d, int) for d in (*x.shape[1:], *y.shape[2:])):
        raise ValueError(f"{node.name}: a dilated avg_pool before opset 19 needs static C, H and W")
    (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["stride"], a["dilation"]
    top, left, bottom, right = a["padding"]
    (height, width), (h, wd) = x.shape[2:], y.shape[2:]
    extra_h = max(0, (h - 1) * sh + dh * (kh - 1) + 1 - (height + top + bottom))
    extra_w = max(0, (wd - 1) * sw + dw * (kw - 1) + 1 - (width + left + right))
    cells = np.zeros((height + top + bottom + extra_h, width + left + right + extra_w))
    if a["count_include_pad"]:
        cells[:height + top + bottom, :width + left + right] = 1
    else:
        cells[top:top + height, left:left + width] = 1
    counts = sum(cells[i * dh:i * dh + (h - 1) * sh + 1:sh, j * dw:j * dw + (wd - 1) * sw + 1:sw]
                 for i in range(kh) for j in range(kw))
    dtype = w.dtype(x)
    pads = w.initializer(np.array([0, 0, top, left, 0, 0, bottom + extra_h, right + extra_w], np.int64),
                         f"{node.name}_pads")
    ones = w.initializer(np.ones((x.shape[1], 1, kh, kw), dtype), f"{node.name}_ones")
    divisor = w.initializer(counts.reshape(1, 1, h, wd).astype(dtype), f"{node.name}_counts")
    padded, sums = w.fresh(f"{node.name}/padded"), w.fresh(f"{node.name}/sums")
    return [helper.make_node("Pad", [inputs[0], pads], [padded], name=padded),
            helper.make_node("Conv", [padded, ones], [sums], name=sums, strides=[sh, sw], dilations=[dh, dw],
                             group=x.shape[1]),
            helper.make_node("Div", [sums, divisor], [out], name=node.name)]


for _ir, _onnx in {"exp": "Exp", "max": "Max", "min": "Min", "less": "Less", "where": "Where"}.items():
    writes(_ir)(_simple(_onnx))
writes("conv_transpose2d")(_simple("ConvTranspose", stride="strides", padding="pads", dilation="dilations",
                                   groups="group"))


@writes("reduce_max")
def _reduce_max(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    """Like ``reduce_mean``: the axes an attribute before opset 18, an input from then on."""
    axes, keep = list(node.attrs["axes"]), int(node.attrs["keepdims"])
    if w.opset < 18:
        extra = {"axes": axes} if axes else {}
        return [helper.make_node("ReduceMax", inputs, [out], name=node.name, keepdims=keep, **extra)]
    args = [inputs[0]]
    if axes:
        args.append(w.initializer(np.array(axes, dtype=np.int64), f"{node.name}_axes"))
    return [helper.make_node("ReduceMax", args, [out], name=node.name, keepdims=keep)]


@writes("dropout_mask")
def _dropout_mask(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    """All true in the input's shape: ConstantOfShape of its Shape."""
    shape = w.fresh(f"{node.name}/shape")
    true = helper.make_tensor("value", onnx.TensorProto.BOOL, [1], [True])
    return [helper.make_node("Shape", [inputs[0]], [shape], name=shape),
            helper.make_node("ConstantOfShape", [shape], [out], name=node.name, value=true)]


@writes("max_pool_indices")
def _max_pool_indices(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    a = node.attrs
    attrs = {"kernel_shape": list(a["kernel"]), "strides": list(a["stride"]), "pads": list(a["padding"]),
             "dilations": list(a["dilation"]), "ceil_mode": int(a["ceil_mode"]),
             "storage_order": a["storage_order"]}
    return [helper.make_node("MaxPool", inputs, [v.name for v in node.outputs], name=node.name, **attrs)]


@writes("reshape")
def _reshape(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    shape = w.initializer(np.array(node.attrs["shape"], dtype=np.int64), f"{node.name}_shape")
    if node.attrs.get("allowzero") and 0 in node.attrs["shape"]:  # a 0 that is a size, not a copy
        if w.opset < 14:
            raise ValueError(f"{node.name}: a reshape to a dim of size 0 (allowzero=1) needs opset 14 or later")
        return [helper.make_node("Reshape", [inputs[0], shape], [out], name=node.name, allowzero=1)]
    return [helper.make_node("Reshape", [inputs[0], shape], [out], name=node.name)]


@writes("pad")
def _pad(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    pads = w.initializer(np.array(node.attrs["pads"], dtype=np.int64), f"{node.name}_pads")
    args = [inputs[0], pads]
    if node.attrs["mode"] == "constant" and len(inputs) > 1:  # the fill, computed at run time
        args.append(inputs[1])
    elif node.attrs["mode"] == "constant":
        args.append(w.scalar(node.attrs["value"], node.inputs[0], f"{node.name}_value"))
    return [helper.make_node("Pad", args, [out], name=node.name, mode=node.attrs["mode"])]


@writes("clip")
def _clip(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    low, high = node.attrs["min"], node.attrs["max"]
    args = [inputs[0],
            "" if low is None else w.scalar(low, node.inputs[0], f"{node.name}_min"),
            "" if high is None else w.scalar(high, node.inputs[0], f"{node.name}_max")]
    while args[-1] == "":  # trailing omitted optional inputs are left out
        args.pop()
    return [helper.make_node("Clip", args, [out], name=node.name)]


@writes("reduce_mean")
def _reduce_mean(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    """Empty ``axes`` reduces everything: the axes are left out, as ONNX means it."""
    axes, keep = list(node.attrs["axes"]), int(node.attrs["keepdims"])
    if w.opset < 18:
        extra = {"axes": axes} if axes else {}
        return [helper.make_node("ReduceMean", inputs, [out], name=node.name, keepdims=keep, **extra)]
    args = [inputs[0]]
    if axes:
        args.append(w.initializer(np.array(axes, dtype=np.int64), f"{node.name}_axes"))
    return [helper.make_node("ReduceMean", args, [out], name=node.name, keepdims=keep)]


# -- fused ops (fastcnn.ir.fused_ops), decomposed into standard ONNX nodes ------------------
class _Chain:
    """Standard ONNX nodes applied one after another to a value; the last one writes ``out``."""

    def __init__(self, w: _Writer, node: Node, start: str) -> None:
        self.w, self.node, self.current = w, node, start
        self.protos: list[onnx.NodeProto] = []
        self.last: onnx.NodeProto | None = None

    def side(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        """A node off the chain (a reshaped operand, say); returns its output's name."""
        out = self.w.fresh(f"{self.node.name}/{op_type}")
        self.protos.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def then(self, op_type: str, *extra: str, **attrs: Any) -> "_Chain":
        self.current = self.side(op_type, [self.current, *extra], **attrs)
        self.last = self.protos[-1]
        return self

    def activation(self, kind: str, attrs: dict[str, Any]) -> "_Chain":
        if kind in ("relu", "sigmoid", "tanh"):
            return self.then(kind.capitalize())
        if kind == "leaky_relu":
            return self.then("LeakyRelu", alpha=attrs["alpha"])
        low, high = attrs.get("clip_min"), attrs.get("clip_max")
        if kind == "clip" and (low is not None or high is not None):
            like = self.node.inputs[0]
            bounds = ["" if low is None else self.w.scalar(low, like, f"{self.node.name}_min"),
                      "" if high is None else self.w.scalar(high, like, f"{self.node.name}_max")]
            return self.then("Clip", *(bounds if high is not None else bounds[:1]))
        return self

    def prologue(self, scale: Value | None, shift: Value | None, relu: bool) -> "_Chain":
        """``x * scale + shift`` per channel (the 1-D operands reshaped to C x 1 x 1), then ReLU."""
        if scale is not None:
            per_channel = self.w.initializer(np.array([-1, 1, 1], dtype=np.int64), f"{self.node.name}_cshape")
            self.then("Mul", self.side("Reshape", [scale.name, per_channel]))
            self.then("Add", self.side("Reshape", [shift.name, per_channel]))
        return self.then("Relu") if relu else self

    def nodes(self, out: str) -> list[onnx.NodeProto]:
        """The chain's nodes, the last one writing ``out`` (an Identity when the chain is empty)."""
        if self.last is None:
            self.then("Identity")
        self.last.output[0] = out
        return self.protos


def _optional(node: Node, index: int) -> Value | None:
    return node.inputs[index] if index < len(node.inputs) else None


@writes("fused_conv2d")
def _fused_conv2d(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    a = node.attrs
    chain = _Chain(w, node, node.inputs[0].name).prologue(_optional(node, 4), _optional(node, 5), a["prologue_relu"])
    bias = [node.inputs[2].name] if _optional(node, 2) is not None else []
    chain.then("Conv", node.inputs[1].name, *bias, strides=list(a["stride"]), pads=list(a["padding"]),
               dilations=list(a["dilation"]), group=a["groups"])
    chain.activation(a["activation"], a)
    if _optional(node, 3) is not None:
        chain.then("Add", node.inputs[3].name)
    chain.activation(a["post_activation"], a)
    splits, pooled = a["out_splits"], a["pooled_output"]
    whole = out if not splits and not pooled else w.fresh(f"{node.name}/conv_out")
    nodes = chain.nodes(whole)
    if splits:
        sizes = w.initializer(np.array(splits, dtype=np.int64), f"{node.name}_splits")
        names = [v.name for v in node.outputs[:len(splits)]]
        nodes.append(helper.make_node("Split", [whole, sizes], names, name=w.fresh(f"{node.name}/Split"), axis=1))
    elif pooled:
        nodes.append(helper.make_node("Identity", [whole], [out], name=w.fresh(f"{node.name}/out")))
    if pooled:
        nodes.append(helper.make_node("GlobalAveragePool", [whole], [node.outputs[-1].name],
                                      name=w.fresh(f"{node.name}/pooled")))
    return nodes


@writes("fused_gemm")
def _fused_gemm(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    chain = _Chain(w, node, inputs[0])
    if len(node.inputs[0].shape) > 2:
        chain.then("Flatten", axis=1)
    chain.then("Gemm", *inputs[1:], transB=int(node.attrs["trans_b"]))
    return chain.activation(node.attrs["activation"], node.attrs).nodes(out)


_POOL_WRITERS = {"max": "max_pool", "avg": "avg_pool"}


@writes("fused_pool")
def _fused_pool(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    a = node.attrs
    chain = _Chain(w, node, inputs[0]).prologue(_optional(node, 1), _optional(node, 2), a["prologue_relu"])
    mode = a["mode"]
    if mode.startswith("global"):
        return chain.then("GlobalAveragePool" if mode == "global_avg" else "GlobalMaxPool").nodes(out)
    pooled_input = w.fresh(f"{node.name}/pool_in")
    plain_op = _POOL_WRITERS[mode]
    keys = ("kernel", "stride", "padding", "ceil_mode", "dilation") + (() if mode == "max" else ("count_include_pad",))
    plain = Node(plain_op, [node.inputs[0]], node.outputs, {k: a[k] for k in keys}, node.name)
    return chain.nodes(pooled_input) + WRITERS[plain_op](w, plain, [pooled_input], out)


@writes("se_gate")
def _se_gate(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    x, w1, b1, w2, b2 = inputs
    shape = w.initializer(np.array([0, -1, 1, 1], dtype=np.int64), f"{node.name}_shape")
    chain = _Chain(w, node, x).then("GlobalAveragePool").then("Flatten", axis=1)
    chain.then("Gemm", w1, b1, transB=1).then("Relu").then("Gemm", w2, b2, transB=1).then("Sigmoid")
    return chain.then("Reshape", shape).nodes(out)


@writes("se_scale")
def _se_scale(w: _Writer, node: Node, inputs: list[str], out: str) -> list[onnx.NodeProto]:
    chain = _Chain(w, node, inputs[0]).then("Mul", inputs[1])
    if len(inputs) > 2:
        chain.then("Add", inputs[2])
    return chain.activation(node.attrs["post_activation"], node.attrs).nodes(out)


# -- the model ------------------------------------------------------------------------------
def graph_to_onnx(graph: Graph, opset: int = 17, *, float_dtype: str | None = None) -> onnx.ModelProto:
    """``graph`` as an ONNX model of the default domain at ``opset``, with the IR's names.

    The IR version is the oldest that ``opset`` allows, so older ONNX Runtimes load it too.
    """
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset {opset} is not supported: use {MIN_OPSET}..{newest}")
    if float_dtype is not None and float_dtype not in FLOAT_TYPES:
        raise ValueError(f"float_dtype must be one of {FLOAT_TYPES}, got {float_dtype!r}")
    missing = sorted({n.op for n in graph.nodes if n.op not in WRITERS})
    if missing:
        raise ValueError(f"no ONNX writer for IR op(s) {', '.join(missing)}")
    w = _Writer(graph, opset, float_dtype)
    initializers = [_constant(w, v) for v in graph.constants()]
    nodes = [proto for node in graph.nodes
             for proto in WRITERS[node.op](w, node, _input_names(node), node.outputs[0].name)]
    nodes += _output_copies(w, graph)
    onnx_graph = helper.make_graph(
        nodes, graph.name, [_value_info(w, v, v.name) for v in graph.inputs],
        [_value_info(w, v, name) for v, name in zip(graph.outputs, _output_names(graph))],
        initializer=initializers + w.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="fastcnn",
                              ir_version=helper.find_min_ir_version_for(opsets))
    return model


def _input_names(node: Node) -> list[str]:
    """Input names, ``""`` for an omitted optional input; trailing omitted ones are left out."""
    names = ["" if v is None else v.name for v in node.inputs]
    while names and names[-1] == "":
        names.pop()
    return names


def _constant(w: _Writer, value: Value) -> onnx.TensorProto:
    array = np.asarray(value.const.astype(w.dtype(value), copy=False), order="C")  # keeps 0-d
    return numpy_helper.from_array(array, value.name)


def _value_info(w: _Writer, value: Value, name: str) -> onnx.ValueInfoProto:
    """A typed value; ``"?"`` is an unknown dim, any other symbol a ``dim_param``."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(w.dtype(value)))
    dims = [None if d == "?" else d for d in value.shape]
    return helper.make_tensor_value_info(name, elem, dims)


def _output_names(graph: Graph) -> list[str]:
    """The IR's output names, except where one cannot be an ONNX node output as it is:
    an output that is a graph input or constant, or that is listed twice, gets a copy."""
    names, seen = [], {v.name for v in graph.inputs} | {v.name for v in graph.constants()}
    for i, value in enumerate(graph.outputs):
        if value.name in seen:
            names.append(f"{value.name}_output{i}")
        else:
            names.append(value.name)
            seen.add(value.name)
    return names


def _output_copies(w: _Writer, graph: Graph) -> list[onnx.NodeProto]:
    copies = []
    for value, name in zip(graph.outputs, _output_names(graph)):
        if name != value.name:
            copies.append(helper.make_node("Identity", [value.name], [name], name=f"{name}_copy"))
    return copies
