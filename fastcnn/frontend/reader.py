"""Reading an ONNX model: onnx's full check first, then a load that trusts nothing in the file.

Order matters: a file is validated by ``onnx.checker`` (full check, by path, which also
works past protobuf's 2 GB limit) before anything else parses it. Then the protobuf is
loaded without its external data, that data is read by
:mod:`fastcnn.frontend.external_data` (never outside the model's folder), and every tensor
is checked to hold exactly the data its shape promises. A model given as bytes or as a
ModelProto has its external data (if any, and only from ``base_dir``) loaded the same safe
way first, then gets the same full check. Every failure is an
:class:`~fastcnn.errors.InvalidModelError` naming the file and the problem.
"""
from __future__ import annotations

import os
import stat

import onnx

from fastcnn.errors import InvalidModelError
from fastcnn.frontend.external_data import all_tensors, load_external_data
from fastcnn.frontend.tensors import check_tensor_data

Source = str | os.PathLike | bytes | onnx.ModelProto


def read_onnx(source: Source, base_dir: str | os.PathLike | None = None) -> onnx.ModelProto:
    """Load and validate an ONNX model from a path, serialized bytes, or a ModelProto.

    ``base_dir`` is where external data of bytes/ModelProto sources lives (a path source
    uses its own folder); without it such a model must carry all its data inline.

    Raises:
        InvalidModelError: missing or unreadable file, truncated or corrupted protobuf, a graph
            onnx's checker refuses (cycle, undefined input, bad types), unsafe or short
            external data, tensor data that does not match its shape.
    """
    if isinstance(source, (str, os.PathLike)):
        return _read_path(os.fspath(source))
    folder = None if base_dir is None else os.fspath(base_dir)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _read_in_memory(_parse(bytes(source), "the model bytes"), folder, "the model bytes")
    if isinstance(source, onnx.ModelProto):
        if _has_external_data(source):  # loading it fills the tensors: work on a copy
            copy = onnx.ModelProto()
            copy.CopyFrom(source)
            source = copy
        return _read_in_memory(source, folder, "the model")
    raise InvalidModelError(f"read_onnx takes a path, bytes or an onnx.ModelProto, "
                            f"got {type(source).__name__}")


def _read_path(path: str) -> onnx.ModelProto:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InvalidModelError(f"cannot read ONNX file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidModelError(f"{path} is not a regular file")
    _check(path, path)
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise InvalidModelError(f"{path} is not a readable ONNX model: {exc}") from None
    return _finish(model, os.path.dirname(os.path.abspath(path)), path)


def _read_in_memory(model: onnx.ModelProto, folder: str | None, source: str) -> onnx.ModelProto:
    """A model already in memory: its external data first (onnx's checker would look for it
    relative to the working directory), then the full check on the complete model."""
    model = _finish(model, folder, source)
    _check(model, source)
    return model


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in all_tensors(model.graph))


def _check(model: str | bytes | onnx.ModelProto, source: str) -> None:
    """onnx's full check (structure, topological order, types, strict shape inference)."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError, DecodeError, OSError...
        message = str(exc).strip() or type(exc).__name__
        raise InvalidModelError(f"{source} fails onnx's full check: {message}") from None


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001
        raise InvalidModelError(f"{source} is not a readable ONNX model: {exc}") from None


def _finish(model: onnx.ModelProto, folder: str | None, source: str) -> onnx.ModelProto:
    """Load external data safely, then check every tensor's data against its shape."""
    load_external_data(model, folder, source)
    for tensor in all_tensors(model.graph):
        try:
            check_tensor_data(tensor, f"tensor {tensor.name!r}")
        except InvalidModelError as exc:
            raise InvalidModelError(f"{source}: {exc}") from None
    return model
