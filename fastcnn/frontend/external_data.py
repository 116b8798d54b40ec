"""Loading a model's external tensor data without reading any file it should not.

onnx's own loader follows a tensor's ``location`` wherever it points. Here a location must
be a relative path that resolves (symlinks followed) inside the model's folder, to a regular
file with a single hard link (a second link could alias a file from anywhere), and the
``offset``/``length`` must lie inside it. The file is opened without following a final
symlink and checked again on the open descriptor, so it cannot be swapped in between.

Sizes are checked before a byte is read: the tensor's declared size (its dims times its
element size) must equal ``length`` when one is given, and ``offset`` plus that size must
lie inside the file (``fstat``), so a tiny model cannot make fastcnn read a huge neighbour.
"""
from __future__ import annotations

import os
import stat
from typing import Iterator

import onnx
from onnx import TensorProto

from fastcnn.errors import InvalidModelError
from fastcnn.frontend.tensors import declared_bytes


def all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a graph: initializers, sparse ones, Constant-like attributes, subgraphs'."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from all_tensors(sub)


def load_external_data(model: onnx.ModelProto, base_dir: str | None, source: str) -> None:
    """Read every external tensor of ``model`` into it, refusing unsafe locations."""
    for tensor in all_tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        if base_dir is None:
            raise InvalidModelError(f"{source}: tensor {tensor.name!r} keeps its data in an external "
                                    "file; load the model from its path to read it")
        tensor.raw_data = _read(tensor, base_dir, source)
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT


def _entries(tensor: onnx.TensorProto, source: str) -> tuple[str, int, int | None]:
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    if not location:
        raise InvalidModelError(f"{source}: external tensor {tensor.name!r} has no location")
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise InvalidModelError(f"{source}: external tensor {tensor.name!r} has a malformed "
                                f"offset or length ({info})") from None
    if offset < 0 or (length is not None and length < 0):
        raise InvalidModelError(f"{source}: external tensor {tensor.name!r} has a negative offset or length")
    return location, offset, length


def _resolve(tensor: onnx.TensorProto, location: str, base_dir: str, source: str) -> str:
    """The real path of ``location`` when it lies inside ``base_dir``."""
    name = tensor.name
    if os.path.isabs(location) or location.startswith(("/", "\\")) or os.path.splitdrive(location)[0]:
        raise InvalidModelError(f"{source}: external data of tensor {name!r} has the absolute path "
                                f"{location!r}; it must be relative to the model's folder")
    folder = os.path.realpath(base_dir)
    real = os.path.realpath(os.path.join(folder, location))
    if os.path.commonpath([folder, real]) != folder or real == folder:
        raise InvalidModelError(f"{source}: external data of tensor {name!r} ({location!r}) "
                                f"resolves to {real}, outside the model's folder {folder}")
    return real


def _read(tensor: onnx.TensorProto, base_dir: str, source: str) -> bytes:
    location, offset, length = _entries(tensor, source)
    path = _resolve(tensor, location, base_dir, source)
    name = tensor.name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InvalidModelError(f"{source}: cannot open the external data of tensor {name!r} "
                                f"({location!r}): {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        length = _declared_length(tensor, length, location, source)
        _check_file(info, tensor, location, offset, length, source)
        return os.pread(fd, length, offset)
    except OSError as exc:
        raise InvalidModelError(f"{source}: cannot read the external data of tensor {name!r} "
                                f"({location!r}): {exc.strerror}") from None
    finally:
        os.close(fd)


def _declared_length(tensor: onnx.TensorProto, length: int | None, location: str, source: str) -> int:
    """The bytes the tensor's dims and type promise, which ``length`` (if given) must match."""
    expected = declared_bytes(tensor)
    if expected is None:
        raise InvalidModelError(f"{source}: external tensor {tensor.name!r} ({location!r}) has a type "
                                "whose size fastcnn cannot tell, or negative dims")
    if length is not None and length != expected:
        raise InvalidModelError(f"{source}: external tensor {tensor.name!r} ({location!r}) has length "
                                f"{length} but its shape {list(tensor.dims)} needs {expected} bytes")
    return expected


def _check_file(info: os.stat_result, tensor: onnx.TensorProto, location: str, offset: int,
                length: int, source: str) -> None:
    """The opened file must be a regular file with one link, holding the requested bytes."""
    name = tensor.name
    if not stat.S_ISREG(info.st_mode):
        raise InvalidModelError(f"{source}: external data of tensor {name!r} ({location!r}) "
                                "is not a regular file")
    if info.st_nlink > 1:
        raise InvalidModelError(f"{source}: external data of tensor {name!r} ({location!r}) has "
                                f"{info.st_nlink} hard links; a hard link can alias a file outside "
                                "the model's folder, so it is refused")
    end = offset + length
    if offset > info.st_size or end > info.st_size:
        raise InvalidModelError(f"{source}: external data of tensor {name!r} asks for bytes "
                                f"{offset}..{end} of {location!r}, which has {info.st_size}")
