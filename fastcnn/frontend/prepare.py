"""Model-level steps before the node walk: the opset, its upgrade, and a shape check.

Files from opsets before :data:`TARGET_OPSET` are upgraded with onnx's version converter
so that the converters mostly see one form of each op (Softmax's, Clip's, Pad's, ...
semantics changed over the years). The converter does not know every op and every
adapter; when it fails, the model is imported as it is, and the converters, which read
``ctx.opset``, understand the old forms too.
"""
from __future__ import annotations

import onnx
from onnx import shape_inference, version_converter

from fastcnn.errors import InvalidModelError
from fastcnn.frontend.tensors import PLAIN_DTYPES
from fastcnn.ir import Shape

TARGET_OPSET = 13
DEFAULT_DOMAINS = ("", "ai.onnx")
_SMALL = 4096  # initializers up to this many elements keep their data in the shape check


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default (``ai.onnx``) operator set the model imports."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    if any(n.domain in DEFAULT_DOMAINS for n in model.graph.node):
        raise InvalidModelError("the model uses standard ONNX ops but imports no default opset")
    return TARGET_OPSET


def upgrade(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model at :data:`TARGET_OPSET` when it is older and onnx can convert it, else as is."""
    if default_opset(model) >= TARGET_OPSET:
        return model
    try:
        converted = version_converter.convert_version(model, TARGET_OPSET)
        check_shapes(converted)
    except Exception:  # noqa: BLE001 - any failure: import the original with its old forms
        return model
    return converted


def check_shapes(model: onnx.ModelProto) -> dict[str, tuple[Shape, str]]:
    """Run onnx's shape and type inference; return the types it found, by tensor name.

    Strict, so an inconsistent graph is an InvalidModelError, unless the model has custom
    ops (which have no shape functions; they are reported as unsupported instead). It runs
    on a skeleton of the model whose big initializers have no data, which shape inference
    never reads, so a model of hundreds of megabytes is not copied.
    """
    strict = not any(n.domain not in DEFAULT_DOMAINS for n in _all_nodes(model.graph))
    try:
        inferred = shape_inference.infer_shapes(_skeleton(model), check_type=strict, strict_mode=strict)
    except (shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise InvalidModelError(f"the graph is inconsistent: {exc}") from None
    except Exception:  # noqa: BLE001 - onnx failing on its own (size limits...): not the model's fault
        return {}
    graph = inferred.graph
    return {vi.name: t for vi in (*graph.value_info, *graph.output) if (t := _tensor_type(vi)) is not None}


def _tensor_type(vi: onnx.ValueInfoProto) -> tuple[Shape, str] | None:
    """A value's (shape, dtype) as the IR spells them, when onnx knows its rank and type."""
    tensor_type = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tensor_type.HasField("shape") or not tensor_type.elem_type:
        return None
    dtype = PLAIN_DTYPES.get(tensor_type.elem_type)
    if dtype is None:
        return None
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim)
    return shape, dtype


def _all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _all_nodes(sub)


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` without the data of its big initializers and without value_info."""
    graph = onnx.GraphProto(name=model.graph.name)
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    for tensor in model.graph.initializer:
        count = 1
        for d in tensor.dims:
            count *= d
        if count <= _SMALL:
            graph.initializer.append(tensor)
        else:
            graph.initializer.append(onnx.TensorProto(name=tensor.name, dims=tensor.dims,
                                                      data_type=tensor.data_type))
    light = onnx.ModelProto(ir_version=model.ir_version, graph=graph)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    return light
