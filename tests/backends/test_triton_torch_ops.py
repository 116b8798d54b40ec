"""Ops with no Triton kernel run as torch ops inside the Triton plan (issue 8).

Small ONNX graphs mixing such ops (ConvTranspose, Where and the Less feeding it, MaxPool's
indices, a Softmax off the last axis) with convolutions run through ``fastcnn.load(path,
backend="triton")`` (under Triton's interpreter on the CPU without a GPU) and match
``backend="torch"`` within 1e-4 relative L2, with the plan's arena poisoned (every byte 0xFF,
a NaN in float and -1 in int64) before the run, so that an output the torch op never wrote
shows. The plan names each such launch ``torch:<op>`` with its reason, and the compile check
finds no kernel to compile for it.
"""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import fastcnn
from fastcnn.api import import_source
from fastcnn.cli import main
from fastcnn.passes import run_pipeline
from tests.helpers import relative_l2

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cpu" if INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(not INTERPRETED and not torch.cuda.is_available(),
                                reason="needs a CUDA GPU or Triton's interpreter (TRITON_INTERPRET=1)")
TOLERANCE = 1e-4
BATCH = 2


class _Onnx:
    """A small ONNX graph built node by node, with seeded random weights."""

    def __init__(self, channels: int = 3, size: int = 8, opset: int = 17) -> None:
        self.nodes, self.weights, self.outputs, self.opset, self.inputs = [], [], [], opset, []
        self.rng = np.random.default_rng(0)
        self.input = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, size, size])

    def const(self, name: str, array: np.ndarray) -> str:
        self.weights.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attrs) -> list[str]:
        name = f"{op.lower()}{len(self.nodes)}"
        names = [f"{name}_out{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=name, **attrs))
        return names

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, relu: bool = True) -> str:
        w = self.const(f"w{len(self.weights)}", self.rng.standard_normal((cout, cin, k, k), np.float32) / k)
        b = self.const(f"b{len(self.weights)}", self.rng.standard_normal(cout).astype(np.float32))
        (y,) = self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
        return self.node("Relu", [y])[0] if relu else y

    def output(self, name: str, shape: tuple[int, ...], dtype: int = TensorProto.FLOAT) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, dtype, ["N", *shape]))

    def save(self, path) -> str:
        graph = helper.make_graph(self.nodes, "torch_ops", [self.input, *self.inputs], self.outputs, self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(path))
        return str(path)


def _conv_transpose_into_a_concat(tmp_path) -> str:
    """A ConvTranspose upsampling next to a convolution, concatenated (a copy: fuse_concat places
    only the outputs of ops known to write slices), then a convolution."""
    g = _Onnx()
    a = g.conv("x", 3, 8)  # N x 8 x 8 x 8
    b = g.conv(a, 8, 8, stride=2)  # N x 8 x 4 x 4
    w = g.const("wt", g.rng.standard_normal((8, 4, 3, 3), np.float32) / 3)
    bias = g.const("bt", g.rng.standard_normal(4).astype(np.float32))
    (up,) = g.node("ConvTranspose", [b, w, bias], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                   output_padding=[1, 1])  # N x 4 x 8 x 8
    (cat,) = g.node("Concat", [a, up], axis=1)
    g.output(g.conv(cat, 12, 6, k=1), (6, 8, 8))
    return g.save(tmp_path / "conv_transpose.onnx")


def _dilated_avg_pool_into_a_concat(tmp_path) -> str:
    """A dilated AveragePool (opset 19; no Triton kernel) and a convolution side by side in one
    concat buffer: the torch op stores into a channel slice of an NHWC buffer."""
    g = _Onnx(opset=19)
    a = g.conv("x", 3, 8)
    (pooled,) = g.node("AveragePool", [a], kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 2, 2, 2])
    (cat,) = g.node("Concat", [g.conv(a, 8, 4), pooled], axis=1)
    g.output(g.conv(cat, 12, 6), (6, 8, 8))
    return g.save(tmp_path / "dilated_avg_pool.onnx")


def _where_between_convs(tmp_path) -> str:
    """A leaky ReLU spelled Less/Where: a bool NHWC buffer between two torch ops."""
    g = _Onnx()
    a = g.conv("x", 3, 8, relu=False)
    (negative,) = g.node("Less", [a, g.const("zero", np.zeros((), np.float32))])
    (scaled,) = g.node("Mul", [a, g.const("slope", np.full((), 0.1, np.float32))])
    (y,) = g.node("Where", [negative, scaled, a])
    g.output(g.conv(y, 8, 5), (5, 8, 8))
    return g.save(tmp_path / "where.onnx")


def _max_pool_with_indices(tmp_path) -> str:
    """MaxPool's values feed a convolution; its int64 indices are a second graph output."""
    g = _Onnx(size=9)
    a = g.conv("x", 3, 8)
    values, indices = g.node("MaxPool", [a], outputs=2, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    g.output(g.conv(values, 8, 4), (4, 5, 5))
    g.output(indices, (8, 5, 5), TensorProto.INT64)
    return g.save(tmp_path / "max_pool_indices.onnx")


def _softmax_over_channels(tmp_path) -> str:
    """A Softmax over the channels of a 4-D map: no Triton kernel takes that axis."""
    g = _Onnx()
    (y,) = g.node("Softmax", [g.conv("x", 3, 8)], axis=1)
    g.output(g.conv(y, 8, 4), (4, 8, 8))
    return g.save(tmp_path / "softmax.onnx")


CASES = {  # graph, and the torch ops its Triton plan must list
    "conv_transpose": (_conv_transpose_into_a_concat, {"torch:conv_transpose2d"}),
    "dilated_avg_pool": (_dilated_avg_pool_into_a_concat, {"torch:avg_pool"}),
    "where": (_where_between_convs, {"torch:less", "torch:where"}),
    "max_pool_indices": (_max_pool_with_indices, {"torch:max_pool_indices"}),
    "softmax_axis": (_softmax_over_channels, {"torch:softmax"}),
}


def _load(path: str, **options) -> fastcnn.Engine:
    """``fastcnn.load(path, **options)``; a graph with two outputs is built as load builds it,
    less the image preprocessing (which load sets up from ``engine.input_spec`` and which
    refuses a graph with two outputs)."""
    graph = import_source(path)
    return fastcnn.load(path, **options) if len(graph.outputs) == 1 else fastcnn.Engine(graph, **options)


def _poisoned_run(engine: fastcnn.Engine, x: torch.Tensor) -> list[torch.Tensor]:
    """Prepare the bucket, fill the whole arena with 0xFF bytes (NaN in float, -1 in int64),
    then run: every output element must have been written by this run."""
    executor = engine._executor
    executor.prepare(x.shape[0])
    executor.arena.fill_(0xFF)
    return engine.run([x.to(DEVICE)])


@pytest.mark.parametrize("case", CASES)
def test_torch_ops_in_the_triton_plan_match_the_torch_backend(case, tmp_path):
    build, torch_ops = CASES[case]
    path = build(tmp_path)
    reference = _load(path, backend="torch", device="cpu")
    triton = _load(path, backend="triton", device=DEVICE, max_batch=BATCH)
    x = torch.randn(BATCH, *reference.input_specs[0].shape[1:], generator=torch.Generator().manual_seed(1))
    expected = reference.run([x])
    got = [t.cpu() for t in _poisoned_run(triton, x)]
    assert len(got) == len(expected)
    for out, want in zip(got, expected, strict=True):
        assert out.shape == want.shape and out.dtype == want.dtype
        if want.is_floating_point():
            assert relative_l2(out, want) < TOLERANCE
        else:
            assert torch.equal(out, want)
    launches = triton.plan.launches
    assert {launch.op for launch in launches if launch.torch_op} == torch_ops
    assert any(launch.torch_op is None and launch.kind in ("conv2d", "fused_conv2d") for launch in launches)


def _squeeze_excite_on_a_runtime_weight(tmp_path) -> str:
    """A convolution whose weight is a graph input, feeding a squeeze-excite block: it runs as a
    torch op, and fuse_se_pooling still makes it sum its output for the gate (a float32 sum
    the torch op stores as its mean times H*W, read by the Triton gate kernel)."""
    g = _Onnx()
    g.inputs = [helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 3, 3, 3])]
    (a,) = g.node("Conv", ["x", "w"], pads=[1, 1, 1, 1])
    (pooled,) = g.node("GlobalAveragePool", [a])
    hidden = g.conv(pooled, 8, 4, k=1)
    (gate,) = g.node("Sigmoid", [g.conv(hidden, 4, 8, k=1, relu=False)])
    (y,) = g.node("Mul", [a, gate])
    g.output(g.conv(y, 8, 4), (4, 8, 8))
    return g.save(tmp_path / "se_runtime_weight.onnx")


def test_a_runtime_weight_convolution_feeding_a_squeeze_excite_gate(tmp_path):
    path = _squeeze_excite_on_a_runtime_weight(tmp_path)
    graph = import_source(path)
    reference = fastcnn.Engine(graph, backend="torch", device="cpu")
    triton = fastcnn.Engine(graph, backend="triton", device=DEVICE, max_batch=4)
    generator = torch.Generator().manual_seed(2)
    w = torch.randn(8, 3, 3, 3, generator=generator) / 3
    for batch in (3, 5):  # a padded bucket, then two parts (4 + 1) sharing the one weight
        x = torch.randn(batch, 3, 8, 8, generator=generator)
        executor = triton._executor
        executor.prepare(4)
        executor.arena.fill_(0xFF)
        (got,) = triton.run([x.to(DEVICE), w.to(DEVICE)])
        assert relative_l2(got.cpu(), reference.run([x, w])[0]) < TOLERANCE
    ops = [launch.op for launch in triton.plan.launches]
    assert "torch:fused_conv2d[pool]" in ops and "se_gate" in ops


def test_a_torch_op_reads_and_writes_nhwc_buffers(tmp_path):
    """The layout pass lays the torch op's input and output NHWC like any other activation, and
    fuse_concat places its output in a channel slice (what the comparison above then checks)."""
    triton = _load(_dilated_avg_pool_into_a_concat(tmp_path), backend="triton", device=DEVICE, max_batch=1)
    (node,) = [n for n in triton.graph.nodes if n.op == "avg_pool"]
    assert node.inputs[0].layout == "NHWC" and node.outputs[0].layout == "NHWC"
    assert node.outputs[0].storage is not None and node.outputs[0].storage.channel_offset == 4


def test_fastcnn_plan_names_the_torch_ops(tmp_path, capsys):
    path, saved = _max_pool_with_indices(tmp_path), tmp_path / "plan.json"
    assert main(["plan", path, "--json", str(saved)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [row[1] for row in rows if len(row) > 1 and row[1].startswith("torch:")] == ["torch:max_pool_indices"]
    reasons = {launch["op"]: launch.get("torch_op") for launch in json.loads(saved.read_text())["launches"]}
    assert reasons["torch:max_pool_indices"] == "no Triton kernel for this op"
    assert reasons["fused_conv2d[relu]"] is None


def test_the_compile_check_has_nothing_to_compile_for_a_torch_op(tmp_path):
    """On the meta device (no GPU, no memory) the plan binds; only Triton kernels are variants."""
    from fastcnn.backends.triton_backend import kernel_variants, planned_launches
    from fastcnn.kernels.launch import KernelCall

    graph = import_source(_where_between_convs(tmp_path)).clone()
    run_pipeline(graph, "triton")
    calls = planned_launches(graph, 1)
    assert sorted(call.name for call in calls if not isinstance(call, KernelCall)) == ["torch:less", "torch:where"]
    assert all(isinstance(call, KernelCall) for call in kernel_variants([graph], [1], torch.float32))
