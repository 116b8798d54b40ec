"""A model repository for NVIDIA Triton Inference Server (the server, not the Triton GPU language
fastcnn's own kernels are written in): the engine's optimized graph as ONNX, and a
``config.pbtxt`` for the server's ONNX Runtime backend with dynamic batching.

    DIR/
      MODEL/
        config.pbtxt
        1/model.onnx

The config is derived from the ONNX file as written (its graph inputs and outputs), so names,
dtypes and dims cannot drift from the file the server loads. Dims are given without the batch
dim (the server adds it, up to ``max_batch_size``); a symbolic dim is ``-1``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import onnx

from fastcnn.errors import InputError
from fastcnn.runtime import Engine

# ONNX element types -> Triton's model-config data types (model_config.proto, DataType).
TRITON_DTYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16", onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.INT16: "TYPE_INT16", onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.BOOL: "TYPE_BOOL",
}
# How long the server may hold a request to batch it with others: a tenth of a millisecond
# costs a single request little and fills batches under load.
MAX_QUEUE_DELAY_US = 100


def export_model_repository(engine: Engine, folder: str | os.PathLike, name: str, max_batch: int = 64) -> Path:
    """Write ``folder/name/1/model.onnx`` (``engine.save_onnx``) and ``folder/name/config.pbtxt``;
    returns ``folder/name``.

    Raises:
        InputError: ``max_batch`` below 1, a name Triton cannot use as a folder, or a graph whose
            inputs and outputs do not all have a symbolic first (batch) dim.
    """
    if not isinstance(max_batch, int) or max_batch < 1:
        raise InputError(f"max_batch must be a whole number of at least 1, got {max_batch!r}")
    if not name or name in (".", "..") or any(c in name for c in "/\\"):
        raise InputError(f"a Triton model name is one folder name, got {name!r}")
    model_dir = Path(folder) / name
    try:
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the repository folder {model_dir / '1'}: {exc}") from None
    model_path = engine.save_onnx(model_dir / "1" / "model.onnx")
    config = triton_config(onnx.load(str(model_path), load_external_data=False).graph, name, max_batch)
    (model_dir / "config.pbtxt").write_text(config)
    return model_dir


def triton_config(graph: onnx.GraphProto, name: str, max_batch: int) -> str:
    """The ``config.pbtxt`` text (protobuf text format of Triton's ``ModelConfig``) for ``graph``."""
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    lines = [
        "# Written by `fastcnn export-repo` for Triton Inference Server's ONNX Runtime backend.",
        f"name: {_quoted(name)}",
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch}",
        *_tensors("input", inputs),
        *_tensors("output", graph.output),
        "dynamic_batching {",
        f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _tensors(kind: str, values) -> list[str]:
    lines = [f"{kind} ["]
    for i, value in enumerate(values):
        lines += ["  {", f"    name: {_quoted(value.name)}", f"    data_type: {_data_type(value)}",
                  f"    dims: [ {', '.join(map(str, _dims_without_batch(value)))} ]",
                  "  }" + ("," if i + 1 < len(values) else "")]
    return lines + ["]"]


def _data_type(value: onnx.ValueInfoProto) -> str:
    elem_type = value.type.tensor_type.elem_type
    if elem_type not in TRITON_DTYPES:
        raise InputError(f"{value.name!r} has ONNX type {onnx.TensorProto.DataType.Name(elem_type)}, which this "
                         f"repository writer does not map to a Triton type (it maps "
                         f"{', '.join(onnx.TensorProto.DataType.Name(t) for t in TRITON_DTYPES)})")
    return TRITON_DTYPES[elem_type]


def _dims_without_batch(value: onnx.ValueInfoProto) -> list[int]:
    dims = value.type.tensor_type.shape.dim
    if not dims or dims[0].HasField("dim_value"):
        first = dims[0].dim_value if dims else "none (a scalar)"
        raise InputError(f"{value.name!r} needs a symbolic batch dim first for Triton's dynamic batching; its "
                         f"first dim is {first}")
    return [d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:]]


def _quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid protobuf text-format string
