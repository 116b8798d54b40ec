"""Building small graphs for the pass tests, and checking a rewrite on structure and numbers.

``check_rewrite(graph, "pass_name")`` is the usual oracle: it casts a copy of the graph to
float64 (so the folds themselves run in float64), runs the passes with the verifier after
each, and compares the outputs of the torch reference backend before and after on fresh
random inputs (relative L2 < 1e-10); then it runs the rewritten graph through the ONNX
writer and ONNX Runtime in float32 (< 1e-5), so the fused ops' ONNX decompositions are
checked too. It returns the rewritten float64 graph for structure assertions.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from fastcnn.backends import OrtExecutor, TorchExecutor
from fastcnn.ir import Graph, Value, verify
from fastcnn.passes import run_pipeline

FLOAT64_TOLERANCE = 1e-10
FLOAT32_TOLERANCE = 1e-5


class Builder:
    """A graph under construction with seeded random weights: ``b = Builder((1, 8, 6, 6))``."""

    def __init__(self, *input_shapes: tuple, seed: int = 0, name: str = "test") -> None:
        self.graph = Graph(name)
        self.rng = np.random.default_rng(seed)
        self.inputs = [self.graph.add_input(f"x{i}" if i else "x", ("N", *shape[1:]), "float32")
                       for i, shape in enumerate(input_shapes)]
        self.x = self.inputs[0]

    def weight(self, *shape: int, scale: float = 0.5, positive: bool = False, name: str = "w") -> Value:
        array = self.rng.uniform(0.5, 1.5, shape) if positive else self.rng.standard_normal(shape) * scale
        return self.graph.constant(array.astype(np.float32), name)

    def node(self, op: str, inputs: Iterable, **attrs) -> Value:
        """Append ``op`` and return its first output."""
        return self.graph.add_node(op, list(inputs), attrs, name=op).outputs[0]

    def conv(self, x: Value, out_channels: int, kernel: int = 3, padding: int = 1, stride: int = 1,
             groups: int = 1, bias: bool = True) -> Value:
        cin = x.shape[1] // groups
        inputs = [x, self.weight(out_channels, cin, kernel, kernel, scale=1 / np.sqrt(cin * kernel * kernel))]
        if bias:
            inputs.append(self.weight(out_channels, scale=0.1, name="b"))
        return self.node("conv2d", inputs, stride=(stride, stride), padding=(padding,) * 4,
                         dilation=(1, 1), groups=groups)

    def batch_norm(self, x: Value, eps: float = 1e-5) -> Value:
        c = x.shape[1]
        return self.node("batch_norm", [x, self.weight(c, positive=True, name="gamma"),
                                        self.weight(c, scale=0.3, name="beta"),
                                        self.weight(c, scale=0.3, name="mean"),
                                        self.weight(c, positive=True, name="var")], eps=eps)

    def output(self, *values: Value) -> Graph:
        self.graph.outputs = list(values)
        verify(self.graph)
        return self.graph


def to_float64(graph: Graph) -> Graph:
    """A clone whose float inputs and constants are float64, every shape and dtype re-inferred."""
    copy = graph.clone()
    for value in copy.inputs:
        if value.dtype.startswith("float"):
            value.dtype = "float64"
    for value in copy.constants():
        if value.dtype.startswith("float"):
            wide = copy.constant(value.const.astype(np.float64), value.name + "_f64")
            copy.replace_all_uses(value, wide)
    copy.infer_shapes()
    return copy


def random_inputs(graph: Graph, batch: int = 2, seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn([batch if isinstance(d, str) else d for d in v.shape], generator=gen,
                        dtype=getattr(torch, v.dtype)) for v in graph.inputs]


def run_torch(graph: Graph, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return TorchExecutor(graph, "cpu").run(inputs)


def relative_l2(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.double(), expected.double()
    if a.shape != e.shape or not torch.isfinite(a).all():
        return float("inf")
    return float((a - e).norm() / e.norm().clamp_min(1e-300))


def rewrite(graph: Graph, passes: str | Iterable[str]) -> Graph:
    """A clone of ``graph`` after ``passes`` (a pass name, names, or a pipeline), verified after each."""
    names = [passes] if isinstance(passes, str) and passes not in ("full", "torch", "onnxruntime") else passes
    copy = graph.clone()
    run_pipeline(copy, names, after_each=lambda name, g: verify(g))
    return copy


def check_rewrite(graph: Graph, passes: str | Iterable[str], batch: int = 2, seed: int = 1) -> Graph:
    """Run ``passes`` on a float64 copy of ``graph`` and check it computes the same; see module doc."""
    wide = to_float64(graph)
    rewritten = rewrite(wide, passes)
    inputs = random_inputs(wide, batch, seed)
    for before, after in zip(run_torch(wide, inputs), run_torch(rewritten, inputs), strict=True):
        assert relative_l2(after, before) < FLOAT64_TOLERANCE, "torch reference, float64"
    narrow = [t.float() for t in inputs]
    expected = run_torch(graph, narrow)
    ort = OrtExecutor(rewrite(graph, passes), "cpu").run(narrow)
    for got, want in zip(ort, expected, strict=True):
        assert relative_l2(got, want) < FLOAT32_TOLERANCE, "ONNX decomposition through ONNX Runtime"
    return rewritten


def ops(graph: Graph) -> list[str]:
    return [node.op for node in graph.nodes]
