"""The independent oracle: ``onnx.reference`` on the graph as the ONNX writer writes it.

Two of its ops are replaced by the ONNX spec written out in NumPy, for reasons in the code:

- LRN: onnx 1.23's ``op_lrn.py`` loops ``for c in range(x.shape[0])``, over the batch rather
  than the channels, so every channel from the batch size on gets a zero square sum.
- Pad: its ``np.pad`` call refuses negative pads, which ONNX defines as crops.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from fastcnn.backends.onnx_writer import graph_to_onnx
from fastcnn.ir import Graph


def spec_lrn(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX LRN, literally: channels ``c - floor((size-1)/2) .. c + ceil((size-1)/2)``."""
    channels = x.shape[1]
    square_sum = np.zeros_like(x)
    for c in range(channels):
        low = max(0, c - math.floor((size - 1) / 2))
        high = min(channels - 1, c + math.ceil((size - 1) / 2))
        square_sum[:, c] = (x[:, low:high + 1] ** 2).sum(axis=1)
    return (x / (bias + alpha / size * square_sum) ** beta).astype(x.dtype)


def spec_pad(x: np.ndarray, pads, mode: str, value: float) -> np.ndarray:
    """ONNX Pad: positive widths pad (``edge`` is NumPy's ``edge``), negative ones crop."""
    rank = x.ndim
    begins, ends = list(pads[:rank]), list(pads[rank:])
    crop = tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in enumerate(zip(begins, ends)))
    widths = [(max(0, b), max(0, e)) for b, e in zip(begins, ends)]
    if mode == "constant":
        return np.pad(x[crop], widths, mode="constant", constant_values=value)
    return np.pad(x[crop], widths, mode=mode)


class LRN(OpRun):
    op_domain = ""

    def _run(self, x, alpha=None, beta=None, bias=None, size=None):
        return (spec_lrn(x, size, alpha, beta, bias),)


class Pad(OpRun):
    op_domain = ""

    def _run(self, data, pads, constant_value=None, axes=None, mode=None):
        assert axes is None, "the writer never sets Pad's axes"
        value = 0 if constant_value is None else constant_value
        return (spec_pad(data, [int(p) for p in pads], mode or "constant", value).astype(data.dtype),)


def reference_outputs(graph: Graph, feeds: list[np.ndarray], opset: int = 17) -> list[torch.Tensor]:
    """What ONNX's spec says ``graph`` computes, as torch tensors."""
    evaluator = ReferenceEvaluator(graph_to_onnx(graph, opset), new_ops=[LRN, Pad])
    results = evaluator.run(None, {v.name: x for v, x in zip(graph.inputs, feeds)})
    return [torch.from_numpy(np.asarray(r)) for r in results]


def torch_inputs(feeds: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(x.copy()) for x in feeds]
