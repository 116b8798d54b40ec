"""Running a batch whose rows may each be broken, so that one bad row never fails the others.

Ray Data jobs and Ray Serve batches both hand the engine rows gathered from many sources: a
corrupt file, an array of the wrong shape or a request that failed to decode must cost only its
own answer. Rows that came with an error, or whose shape the model cannot take, get no logits
(NaN) and keep their error message; the rest run in one ``engine.infer`` per distinct shape.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import torch

from fastcnn.errors import FastCNNError, UnsupportedModelError
from fastcnn.labels import IMAGENET_CLASSES, top_classes


def infer_rows(engine: Any, inputs: Sequence[Any], errors: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Logits for every row (N x classes, float32; NaN where the row failed) and each row's error
    ("" where it ran). ``inputs[i]`` is one C x H x W array, ignored where ``errors[i]`` is set."""
    errors = [str(error or "") for error in errors]
    logits = np.full((len(inputs), num_classes(engine)), np.nan, dtype=np.float32)
    for shape, indices in _group_by_shape(inputs, errors).items():
        problem = shape_problem(engine, shape)
        if problem:
            _set_error(errors, indices, problem)
            continue
        try:
            batch = np.stack([np.asarray(inputs[i]) for i in indices])
            logits[indices] = engine.infer(batch).float().cpu().numpy()
        except FastCNNError as exc:  # a dtype the model refuses: every row of this shape has it
            _set_error(errors, indices, str(exc))
    return logits, errors


def num_classes(engine: Any) -> int:
    """The width of the engine's output (its last dim), fixed for classifiers."""
    size = engine.graph.outputs[0].shape[-1]
    if not isinstance(size, int):
        raise UnsupportedModelError(f"fastcnn.ray needs a model whose output width is fixed; this one is {size!r}")
    return size


def shape_problem(engine: Any, shape: tuple[int, ...]) -> str:
    """Why one row of ``shape`` (no batch dim) cannot run on ``engine``, or "" when it can."""
    expected = tuple(engine.input_spec.shape[1:])
    fixed = [(e, s) for e, s in zip(expected, shape, strict=False) if isinstance(e, int)]
    if len(shape) == len(expected) and all(e == s for e, s in fixed):
        return ""
    return (f"wrong shape: got {' x '.join(map(str, shape)) or 'a scalar'}, "
            f"the model takes {' x '.join(map(str, expected))}")


def top_k_columns(logits: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """``labels`` (int64) and ``scores`` (softmax probabilities, float32), N x k, likeliest first,
    from :func:`fastcnn.labels.top_classes`, plus ``names`` (N lists of k class names) where the
    model has ImageNet's 1000 classes. A failed row (NaN logits) has labels -1 and NaN scores."""
    k = min(k, logits.shape[1])
    labels = np.full((len(logits), k), -1, dtype=np.int64)
    scores = np.full((len(logits), k), np.nan, dtype=np.float32)
    names = np.empty(len(logits), dtype=object)  # 1-D, of lists: Arrow's list<string>, not pickled objects
    names[:] = [[""] * k for _ in range(len(logits))]
    ran = np.flatnonzero(~np.isnan(logits).any(axis=1))
    for row, predictions in zip(ran, top_classes(torch.from_numpy(logits[ran]), k) if len(ran) else [], strict=True):
        labels[row] = [p.index for p in predictions]
        scores[row] = [p.probability for p in predictions]
        names[row] = [p.name or "" for p in predictions]
    columns = {"labels": labels, "scores": scores}
    return {**columns, "names": names} if logits.shape[1] == IMAGENET_CLASSES else columns


def _group_by_shape(inputs: Sequence[Any], errors: Sequence[str]) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, (row, error) in enumerate(zip(inputs, errors, strict=True)):
        if not error:
            groups[tuple(np.shape(row))].append(index)
    return groups


def _set_error(errors: list[str], indices: Sequence[int], message: str) -> None:
    for index in indices:
        errors[index] = message
