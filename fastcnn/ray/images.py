"""A Ray Data batch's rows as model inputs: encoded files, decoded images, or ready arrays.

Each row is decoded and preprocessed on its own, so that a corrupt or unreadable image becomes
that row's error message (naming the row's id, e.g. the file's path) instead of an exception
that would fail the batch and, after Ray's retries, the whole job.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fastcnn.errors import FastCNNError, InputError
from fastcnn.preprocess import decode_image

INPUT = "input"  # C x H x W float arrays, already preprocessed
BYTES = "bytes"  # encoded image files (ray.data.read_binary_files)
IMAGE = "image"  # decoded uint8 H x W x C arrays (ray.data.read_images)
ERROR = "error"  # a message where a row failed upstream, "" elsewhere


def batch_inputs(engine: Any, batch: dict[str, np.ndarray], ids: np.ndarray) -> tuple[list, list[str]]:
    """Each row's C x H x W input (None where it failed) and its error ("" where none)."""
    errors = [str(error or "") for error in batch.get(ERROR, [""] * len(ids))]
    if INPUT in batch:
        return list(batch[INPUT]), errors
    column = BYTES if BYTES in batch else IMAGE if IMAGE in batch else None
    if column is None:
        raise InputError(f"fastcnn.ray needs an {INPUT!r}, {BYTES!r} or {IMAGE!r} column; "
                         f"the batch has {sorted(batch)}")
    to_input = _from_file(engine) if column == BYTES else _from_image(engine)
    inputs: list = []
    for row_id, value, error in zip(ids, batch[column], errors, strict=True):
        inputs.append(None if error else _attempt(to_input, value, row_id, errors, len(inputs)))
    return inputs, errors


def _attempt(to_input: Callable[[Any], np.ndarray], value: Any, row_id: Any, errors: list[str], index: int) -> Any:
    """``to_input(value)``, or None with the row's error recorded (prefixed by its id)."""
    try:
        return to_input(value)
    except FastCNNError as exc:
        errors[index] = f"{row_id}: {exc}"
        return None


def _from_file(engine: Any) -> Callable[[Any], np.ndarray]:
    return lambda data: engine.preprocess([decode_image(bytes(data), name="the file")])[0].numpy()


def _from_image(engine: Any) -> Callable[[Any], np.ndarray]:
    return lambda array: engine.preprocess([np.asarray(array)])[0].numpy()
