"""A ``POST /predict`` body -> one model input, or an :class:`InputError` that says what is wrong.

The body is read in chunks and refused as soon as it passes the limit, after a first refusal on
its declared Content-Length, so that an oversized upload never sits whole in the replica's
memory. A body is a JSON array when the request says ``application/json`` (or starts with ``[``),
in the model's input shape with or without the batch dim; anything else is an image file, decoded
by Pillow (whose own size guard refuses decompression bombs) and preprocessed as the model wants.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator, Mapping

import numpy as np

from fastcnn.errors import InputError
from fastcnn.preprocess import decode_image
from fastcnn.ray.rows import shape_problem

MAX_BODY_BYTES = 20 * 2**20  # a large photo, or a 3 x 299 x 299 JSON array written out in full


class BodyTooLargeError(InputError):
    """A request body past the server's limit (refused before it is read whole)."""


async def read_body(headers: Mapping[str, str], chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, read chunk by chunk, refused as soon as it is known to pass ``limit``."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"request body too large: {declared} bytes declared, the limit is {limit}")
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"request body too large: more than {limit} bytes")
        parts.append(chunk)
    if size == 0:
        raise InputError("empty request body: send an image file or a JSON array")
    return b"".join(parts)


def body_to_input(engine: Any, body: bytes, content_type: str) -> np.ndarray:
    """One C x H x W float32 input for ``engine`` from a JSON array or an image file."""
    if content_type.startswith("application/json") or body.lstrip()[:1] == b"[":
        return _from_json(engine, body)
    image = decode_image(body, name="the request body")  # InputError: "... is not an image ..."
    return engine.preprocess([image])[0].numpy()


def _from_json(engine: Any, body: bytes) -> np.ndarray:
    try:
        array = np.asarray(json.loads(body), dtype=np.float32)
    except (ValueError, TypeError) as exc:  # bad JSON, ragged or non-numeric arrays
        raise InputError(f"the body is not a JSON array of numbers in the model's input shape: {exc}") from None
    expected = tuple(engine.input_spec.shape[1:])
    if array.ndim == len(expected) + 1 and array.shape[0] == 1:
        array = array[0]  # a batch of one, as engine.infer would take it
    problem = shape_problem(engine, tuple(array.shape))
    if problem:
        raise InputError(problem)
    return array
