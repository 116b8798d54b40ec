"""The callable class Ray Data runs in each actor of a ``map_batches`` actor pool.

Ray builds one instance per actor and calls it once per batch, so the slow work (export,
import, passes, backend session) happens once per actor, not once per batch. Ray tells an actor
which GPUs it was given (``ray.get_gpu_ids()``, with ``CUDA_VISIBLE_DEVICES`` set to them), so
the engine goes to CUDA exactly when ``map_batches(..., num_gpus=1)`` asked for one, and stays on
the CPU otherwise, even on a GPU machine.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import ray

from fastcnn.errors import InputError
from fastcnn.ray.images import ERROR, batch_inputs
from fastcnn.ray.loading import load_everywhere_alike
from fastcnn.ray.rows import infer_rows, top_k_columns


class Predictor:
    """``dataset.map_batches(Predictor, fn_constructor_kwargs={"model": "resnet50"},
    compute=ray.data.ActorPoolStrategy(size=2))``: one engine per actor, every row answered.

    Each batch must have an id column (``id_column``, kept as it is, so that every answer can be
    joined back to its row: a stable key such as the file's path) and one of: ``bytes``, encoded
    image files (``ray.data.read_binary_files``), decoded and preprocessed here; ``image``, uint8
    H x W x C arrays (``ray.data.read_images``), preprocessed here; or ``input``, C x H x W float
    arrays already preprocessed. An ``error`` column, when present, marks rows that failed
    upstream: they are not run and keep their message.

    Returns the id column, ``error`` ("" where the row ran) and either ``logits``
    (``top_k=None``) or ``labels`` and ``scores``: the ``top_k`` likeliest classes and their
    softmax probabilities (and ``names`` for ImageNet's 1000 classes). A failed row has NaN
    logits and scores and label -1.

    Args:
        model: what ``fastcnn.load`` takes (a zoo name, an ``.onnx`` path); it is loaded in
            each actor, so it must be reachable there (a zoo name, or a path on shared storage).
            A zoo name without ``weights=`` has the same random weights (seed 0) in every actor.
        top_k: ``None`` for logits, else how many classes per row.
        id_column: the column that identifies each row.
        device: ``None``: CUDA when Ray assigned this actor a GPU, else the CPU.
        load_options: passed to ``fastcnn.load`` (``backend``, ``dtype``, ``weights``...).
    """

    def __init__(self, model: Any, top_k: int | None = None, id_column: str = "id", device: str | None = None,
                 **load_options: Any) -> None:
        if top_k is not None and top_k < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}")
        self.top_k = top_k
        self.id_column = id_column
        self.engine = load_everywhere_alike(model, device=device or assigned_device(), **load_options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.id_column not in batch:
            raise InputError(f"fastcnn.ray.Predictor needs an id column {self.id_column!r} to keep each answer "
                             f"with its row; the batch has {sorted(batch)}")
        ids = batch[self.id_column]
        inputs, errors = batch_inputs(self.engine, batch, ids)
        logits, errors = infer_rows(self.engine, inputs, errors)
        return {self.id_column: ids, ERROR: np.array(errors, dtype=object), **self._answers(logits)}

    def _answers(self, logits: np.ndarray) -> dict[str, np.ndarray]:
        if self.top_k is None:
            return {"logits": logits}
        return top_k_columns(logits, self.top_k)


def assigned_device() -> str:
    """``"cuda"`` when Ray gave this worker a GPU (visible to it as device 0), else ``"cpu"``."""
    return "cuda" if ray.get_gpu_ids() else "cpu"
