"""Writing an IR graph's ONNX model to disk, with its weights beside it when they are too big.

protobuf cannot serialise a message over 2 GiB, so a model whose weights come near that
(VGG-sized networks in float32 come within a factor of four) keeps them in a side file
(ONNX external data). ``Engine.save_onnx`` and the ONNX Runtime backend both write through here.
"""
from __future__ import annotations

import os
from pathlib import Path

import onnx

from fastcnn.errors import InputError
from fastcnn.ir import Graph

PROTOBUF_LIMIT = 2**31 - 2**26  # 2 GiB less room for the graph itself


def weight_bytes(graph: Graph) -> int:
    return sum(value.const.nbytes for value in graph.constants())


def needs_external_data(graph: Graph) -> bool:
    return weight_bytes(graph) > PROTOBUF_LIMIT


def save_model(model: onnx.ModelProto, path: str | os.PathLike, external: bool) -> Path:
    """Write ``model`` to ``path`` (weights to ``<name>.data`` beside it when ``external``).

    Raises InputError when the folder does not exist or cannot be written."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: the folder {path.parent} does not exist")
    try:
        onnx.save_model(model, str(path), save_as_external_data=external,
                        location=f"{path.name}.data" if external else None)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
