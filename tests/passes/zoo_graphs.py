"""Zoo models as imported IR graphs, each exported once per test session.

Batch norm statistics are randomized first (so a folding or eps mistake shows in the
numbers), and ``keep_batch_norm=True`` writes every BatchNormalization as a node, as files
from other tools have them, so the passes' own folding is what removes them. ``default``
exports the way ``fastcnn.load(name)`` does (torch folds conv + BN itself).
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch

import fastcnn
from fastcnn.frontend import import_onnx, read_onnx
from fastcnn.ir import Graph
from tests.helpers import randomize_batchnorm


@functools.lru_cache(maxsize=4)
def zoo_graph(name: str, keep_batch_norm: bool = True) -> Graph:
    """The imported graph of zoo model ``name`` (never rewrite it in place: clone it)."""
    model = randomize_batchnorm(fastcnn.create_model(name, seed=0))
    with tempfile.TemporaryDirectory(prefix="fastcnn-test-") as folder:
        path = fastcnn.export_onnx(model, Path(folder) / f"{name}.onnx",
                                   input_size=fastcnn.model_info(name).input_size,
                                   keep_batch_norm=keep_batch_norm)
        return import_onnx(read_onnx(path))


def zoo_batch(name: str, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    size = fastcnn.model_info(name).input_size
    return torch.randn(batch, *size, generator=torch.Generator().manual_seed(3), dtype=dtype)
