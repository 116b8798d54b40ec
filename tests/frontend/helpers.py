"""Helpers for the frontend tests: ONNX models from text, the IR run, and the ONNX oracle."""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from fastcnn.backends import BACKENDS
from fastcnn.frontend import import_onnx, read_onnx
from fastcnn.ir import Graph
from onnx.reference.op_run import OpRun
from tests.backends.oracle import LRN, spec_pad

CPU = torch.device("cpu")


def parse(text: str, **initializers: np.ndarray) -> onnx.ModelProto:
    """A model from ONNX's text syntax, with initializers added from arrays by name."""
    model = onnx.parser.parse_model(text)
    for name, array in initializers.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
    return model


def import_text(text: str, **initializers: np.ndarray) -> Graph:
    """Parse, check (full) and import a model written as ONNX text."""
    return import_onnx(read_onnx(parse(text, **initializers)))


def run_graph(graph: Graph, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """The IR graph run by the torch reference executor on the CPU."""
    executor = BACKENDS["torch"](graph, CPU, None)
    return [t.numpy() for t in executor.run([torch.from_numpy(x.copy()) for x in feeds])]


class Pad(OpRun):
    """ONNX Pad with negative pads (crops) and ``axes``, which onnx.reference refuses."""

    op_domain = ""

    def _run(self, data, pads, constant_value=None, axes=None, mode=None):
        rank = data.ndim
        pads = [int(p) for p in pads]
        if axes is not None:
            axes = [int(a) % rank for a in axes]
            full = [0] * (2 * rank)
            for j, axis in enumerate(axes):
                full[axis], full[axis + rank] = pads[j], pads[j + len(axes)]
            pads = full
        value = 0 if constant_value is None else constant_value
        return (spec_pad(data, pads, mode or "constant", value).astype(data.dtype),)


def onnxruntime_outputs(model: onnx.ModelProto, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """ONNX Runtime's outputs: the oracle where onnx.reference gets old opsets wrong."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [np.asarray(r) for r in session.run(None, dict(zip(names, feeds)))]


def reference(model: onnx.ModelProto, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """What ONNX's spec says the model computes (onnx.reference, LRN and Pad fixed)."""
    weights = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in weights]
    evaluator = ReferenceEvaluator(model, new_ops=[LRN, Pad])
    return [np.asarray(r) for r in evaluator.run(None, dict(zip(names, feeds)))]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Relative L2 error in float64; NaN or a shape mismatch gives inf."""
    if actual.shape != expected.shape or not np.isfinite(actual).all():
        return float("inf")
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-30))


def ops(graph: Graph) -> list[str]:
    return [node.op for node in graph.nodes]
