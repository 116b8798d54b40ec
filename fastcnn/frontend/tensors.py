"""Reading ONNX tensors safely: data that matches its declared shape, in a type fastcnn uses."""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fastcnn.errors import InvalidModelError

_PACKED_4BIT = {getattr(TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(TensorProto, n)}
_PACKED_2BIT = {getattr(TensorProto, n) for n in ("INT2", "UINT2") if hasattr(TensorProto, n)}

# ONNX element types that map one-to-one onto a NumPy dtype, by the IR's dtype name. Types not
# here (bfloat16, the float8/float4 families, packed ints, strings) have no NumPy equivalent, and
# older onnx releases map some of them onto float32 or uint16, so nothing may compare them by
# their NumPy stand-ins.
PLAIN_DTYPES: dict[int, str] = {
    TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64", TensorProto.FLOAT16: "float16",
    TensorProto.INT8: "int8", TensorProto.INT16: "int16", TensorProto.INT32: "int32",
    TensorProto.INT64: "int64", TensorProto.UINT8: "uint8", TensorProto.UINT16: "uint16",
    TensorProto.UINT32: "uint32", TensorProto.UINT64: "uint64", TensorProto.BOOL: "bool",
}
_COMPLEX = {TensorProto.COMPLEX64, TensorProto.COMPLEX128}


def _type_name(data_type: int) -> str:
    try:
        return TensorProto.DataType.Name(data_type)
    except ValueError:
        return str(data_type)


def check_tensor_data(tensor: onnx.TensorProto, what: str) -> None:
    """Raise InvalidModelError unless ``tensor`` holds exactly the data its dims promise."""
    if tensor.data_location == TensorProto.EXTERNAL:
        raise InvalidModelError(f"{what} keeps its data in an external file that was not loaded "
                                "(load the model from its .onnx path, so that the data file beside it is found)")
    if tensor.data_type == TensorProto.UNDEFINED:
        raise InvalidModelError(f"{what} has no data type")
    if any(d < 0 for d in tensor.dims):
        raise InvalidModelError(f"{what} has negative dims {list(tensor.dims)}")
    count = math.prod(tensor.dims)
    if tensor.data_type == TensorProto.STRING:
        got, expected, unit = len(tensor.string_data), count, "strings"
    elif tensor.HasField("raw_data"):
        got, expected, unit = len(tensor.raw_data), _raw_bytes(tensor.data_type, count), "bytes"
    else:
        field = helper.tensor_dtype_to_field(tensor.data_type)
        got, unit = len(getattr(tensor, field)), "values"
        expected = count * (2 if tensor.data_type in _COMPLEX else 1)
        if tensor.data_type in _PACKED_4BIT | _PACKED_2BIT:
            expected = _packed_count(tensor.data_type, count)
    if got != expected:
        raise InvalidModelError(f"{what} has {got} {unit} of data but its shape {list(tensor.dims)} "
                                f"({_type_name(tensor.data_type)}) needs {expected}")


def declared_bytes(tensor: onnx.TensorProto) -> int | None:
    """The raw bytes a tensor's dims and type promise, or ``None`` (strings, unknown types,
    negative dims). A Python int: hostile dims cannot overflow it."""
    if tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED) or any(d < 0 for d in tensor.dims):
        return None
    try:
        return _raw_bytes(tensor.data_type, math.prod(tensor.dims))
    except (KeyError, TypeError, ValueError):
        return None


def _packed_count(data_type: int, count: int) -> int:
    """Bytes (or int32 slots) that ``count`` packed 4-bit or 2-bit elements take."""
    return (count + 1) // 2 if data_type in _PACKED_4BIT else (count + 3) // 4


def _raw_bytes(data_type: int, count: int) -> int:
    if data_type in _PACKED_4BIT | _PACKED_2BIT:
        return _packed_count(data_type, count)
    return count * np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).itemsize


def tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """A checked TensorProto as an array; strings and exotic types are refused as invalid here
    and left to the caller to report when they matter."""
    check_tensor_data(tensor, what)
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # noqa: BLE001 - onnx's own decoding errors
        raise InvalidModelError(f"{what} cannot be decoded: {exc}") from None
