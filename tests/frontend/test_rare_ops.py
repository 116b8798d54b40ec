"""One-node ONNX models of the rarer CNN ops and of the ops of ONNX's function bodies, run by
fastcnn's torch and onnxruntime backends and compared with ONNX Runtime on the original model.

Covered: ConvTranspose (groups, strides, asymmetric pads, output_padding, dilations, auto_pad,
output_shape, 1-D), MaxPool with Indices (storage_order 0 and 1, pads, ceil mode, dilations),
dilated AveragePool, Dropout's mask, Clip with bounds fed at run time, Pad with its pads and
fill fed at run time, Exp, Max, Min, Less, Where, ReduceMax, and Reshape with ``allowzero``
(a 0 in the target as a size or as a copy, empty inputs).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from fastcnn.errors import InputError
from fastcnn.onnx_backend import prepare

BACKENDS = ["torch", "onnxruntime"]
F32 = TensorProto.FLOAT


def _model(op: str, inputs: list[tuple[str, int, list]], outputs: list[tuple[str, int]], opset: int = 22,
           initializers: dict[str, np.ndarray] | None = None, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, [name for name, _, _ in inputs] + list(initializers or {}),
                            [name for name, _ in outputs], **attrs)
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(name, kind, None) for name, kind in outputs],
                              initializer=[onnx.numpy_helper.from_array(v, k)
                                           for k, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model


def _check(model: onnx.ModelProto, feeds: list[np.ndarray], backend: str, exact: bool = False) -> None:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), feeds)})
    for out, array in zip(model.graph.output, expected):  # the output shapes, as onnx's full check wants
        out.type.tensor_type.shape.Clear()
        out.type.tensor_type.shape.dim.extend(onnx.TensorShapeProto.Dimension(dim_value=d) for d in array.shape)
    actual = prepare(model, backend=backend).run(feeds)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        if exact or e.dtype.kind in "biu":
            np.testing.assert_array_equal(a, e)
        else:
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CONV_TRANSPOSE = {
    "plain": ((1, 2, 4, 5), (2, 3, 3, 3), {}),
    "groups_strides_bias": ((2, 4, 3, 4), (4, 3, 3, 2), {"group": 2, "strides": [2, 3]}),
    "asymmetric_pads": ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "pads": [0, 1, 2, 1]}),
    "output_padding": ((1, 2, 4, 4), (2, 3, 3, 3), {"strides": [3, 2], "output_padding": [2, 1]}),
    "dilations": ((1, 1, 4, 4), (1, 2, 2, 3), {"dilations": [2, 3], "pads": [1, 1, 1, 1]}),
    "same_upper": ((1, 1, 3, 5), (1, 2, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    "same_lower": ((1, 1, 3, 5), (1, 2, 3, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    "output_shape_odd": ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [2, 2], "output_shape": [6, 5]}),
    "output_shape_larger": ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    "1d": ((2, 2, 5), (2, 3, 3), {"strides": [2], "pads": [1, 0]}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CONV_TRANSPOSE))
def test_conv_transpose(case: str, backend: str) -> None:
    x_shape, w_shape, attrs = CONV_TRANSPOSE[case]
    weights = {"W": _rand(*w_shape, seed=1)}
    if "bias" in case:
        weights["B"] = _rand(w_shape[1] * attrs.get("group", 1), seed=2)
    model = _model("ConvTranspose", [("X", F32, list(x_shape))], [("Y", F32)], initializers=weights, **attrs)
    _check(model, [_rand(*x_shape)], backend)


MAX_POOL = {
    "plain": ((2, 3, 6, 7), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "storage_order": ((2, 3, 6, 7), {"kernel_shape": [3, 2], "strides": [2, 1], "storage_order": 1}),
    "pads_ceil": ((1, 2, 7, 6), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1}),
    "dilations": ((1, 2, 7, 7), {"kernel_shape": [2, 3], "dilations": [2, 2], "pads": [1, 1, 1, 1]}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(MAX_POOL))
def test_max_pool_with_indices(case: str, backend: str) -> None:
    shape, attrs = MAX_POOL[case]
    model = _model("MaxPool", [("x", F32, list(shape))], [("y", F32), ("i", TensorProto.INT64)], **attrs)
    _check(model, [_rand(*shape)], backend, exact=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "dilations": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "dilations": [2, 3], "pads": [1, 1, 2, 1], "strides": [2, 1]},
    {"kernel_shape": [3, 2], "dilations": [2, 3], "pads": [1, 1, 2, 1], "count_include_pad": 1, "ceil_mode": 1,
     "strides": [2, 2]},
], ids=["ceil", "pads", "pads_count_include_pad_ceil"])
def test_dilated_average_pool(attrs: dict, backend: str) -> None:
    model = _model("AveragePool", [("x", F32, [2, 3, 8, 9])], [("y", F32)], **attrs)
    _check(model, [_rand(2, 3, 8, 9)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_mask_is_all_true(backend: str) -> None:
    model = _model("Dropout", [("x", F32, [2, 3, 4])], [("y", F32), ("mask", TensorProto.BOOL)])
    _check(model, [_rand(2, 3, 4)], backend, exact=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bounds", ["min", "max", "both", "crossed"])
def test_clip_with_run_time_bounds(bounds: str, backend: str) -> None:
    names = {"min": ["lo", ""], "max": ["", "hi"], "both": ["lo", "hi"], "crossed": ["lo", "hi"]}[bounds]
    values = {"lo": np.array(-0.5 if bounds != "crossed" else 0.7, np.float32), "hi": np.array(0.6, np.float32)}
    node = helper.make_node("Clip", ["x", *names], ["y"])
    inputs = [helper.make_tensor_value_info("x", F32, [3, 4])]
    inputs += [helper.make_tensor_value_info(n, F32, []) for n in names if n]
    graph = helper.make_graph([node], "clip", inputs, [helper.make_tensor_value_info("y", F32, [3, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    _check(model, [_rand(3, 4)] + [values[n] for n in names if n], backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axes", [None, [1, 3]])
def test_pad_with_run_time_pads_and_fill(axes: list | None, backend: str) -> None:
    inputs = [("x", F32, [1, 2, 3, 4]), ("pads", TensorProto.INT64, [8 if axes is None else 4]),
              ("value", F32, [])]
    feeds = [_rand(1, 2, 3, 4), np.array([0, 1, 2, -1, 1, 0, 1, 2] if axes is None else [1, 2, 0, -1]),
             np.array(1.5, np.float32)]
    if axes is not None:
        inputs.append(("axes", TensorProto.INT64, [2]))
        feeds.append(np.array(axes))
    model = _model("Pad", inputs, [("y", F32)], opset=18, mode="constant")
    _check(model, feeds, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["Exp", "Max", "Min", "Less", "Where", "ReduceMax"])
def test_elementwise_and_reductions(op: str, backend: str) -> None:
    x, y = _rand(2, 3, 4), _rand(3, 1, seed=3)
    if op == "Exp":
        model, feeds = _model(op, [("x", F32, [2, 3, 4])], [("z", F32)]), [x]
    elif op in ("Max", "Min"):
        model = _model(op, [("x", F32, [2, 3, 4]), ("y", F32, [3, 1]), ("w", F32, [4])], [("z", F32)])
        feeds = [x, y, _rand(4, seed=4)]
    elif op == "Less":
        model, feeds = _model(op, [("x", F32, [2, 3, 4]), ("y", F32, [3, 1])], [("z", TensorProto.BOOL)]), [x, y]
    elif op == "Where":
        model = _model(op, [("c", TensorProto.BOOL, [3, 4]), ("x", F32, [2, 3, 4]), ("y", F32, [3, 1])],
                       [("z", F32)])
        feeds = [_rand(3, 4, seed=5) > 0, x, y]
    else:
        model = _model(op, [("x", F32, [2, 3, 4])], [("z", F32)], initializers={"axes": np.array([0, -1])},
                       keepdims=0)
        feeds = [x]
    _check(model, feeds, backend)


RESHAPE = {  # name: (declared input shape, fed shape, target, allowzero, output shape)
    "allowzero_empty_static": ([0, 3, 4], (0, 3, 4), [3, 4, 0], 1, (3, 4, 0)),
    "allowzero_empty_batch": (["N", 3, 4], (0, 3, 4), [3, 0, 4], 1, (3, 0, 4)),
    "allowzero_without_a_zero": ([2, 3, 4], (2, 3, 4), [4, -1], 1, (4, 6)),
    "zero_copies": ([2, 3, 4], (2, 3, 4), [0, 12], 0, (2, 12)),
    "zero_copies_an_empty_batch": (["N", 3, 4], (0, 3, 4), [0, 4, 3], 0, (0, 4, 3)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(RESHAPE))
def test_reshape_allowzero_and_empty_inputs(case: str, backend: str) -> None:
    """``allowzero=1``: a 0 in the target is a dim of size 0 (an empty tensor goes in and out);
    ``allowzero=0``: a 0 copies the input's dim, also when that dim is an empty batch."""
    declared, fed, target, allowzero, out_shape = RESHAPE[case]
    model = _model("Reshape", [("x", F32, declared)], [("y", F32)], opset=14,
                   initializers={"shape": np.array(target, np.int64)}, allowzero=allowzero)
    x = _rand(*fed)
    _check(model, [x], backend, exact=True)
    np.testing.assert_array_equal(prepare(model, backend=backend).run([x])[0], x.reshape(out_shape))


def test_reshape_allowzero_refuses_a_batch_that_makes_it_non_empty() -> None:
    """A target of 0 elements fits only an empty input: another batch is an InputError at run time."""
    model = _model("Reshape", [("x", F32, ["N", 3, 4])], [("y", F32)], opset=14,
                   initializers={"shape": np.array([3, 4, 0], np.int64)}, allowzero=1)
    _check(model, [_rand(0, 3, 4)], "torch")  # also writes the output shape (3, 4, 0) into the model
    rep = prepare(model, backend="torch")
    with pytest.raises(InputError, match="N=2"):
        rep.run([_rand(2, 3, 4)])


def test_the_triton_backend_runs_the_new_ops_as_torch_ops_with_a_reason() -> None:
    """Triton has no kernels for these: each node runs as a torch op inside its plan, with the
    reason why (issue 8), and none is refused at load."""
    from fastcnn.backends.triton_lowering import torch_reason, unsupported_nodes
    from fastcnn.frontend import import_onnx

    cases = [
        _model("ConvTranspose", [("X", F32, [1, 2, 4, 4])], [("Y", F32)], initializers={"W": _rand(2, 3, 3, 3)}),
        _model("MaxPool", [("x", F32, [1, 2, 6, 6])], [("y", F32), ("i", TensorProto.INT64)], kernel_shape=[2, 2]),
        _model("AveragePool", [("x", F32, [1, 2, 6, 6])], [("y", F32)], kernel_shape=[2, 2], dilations=[2, 2]),
        _model("Less", [("x", F32, [4]), ("y", F32, [4])], [("z", TensorProto.BOOL)]),
        _model("Clip", [("x", F32, [4]), ("lo", F32, [])], [("z", F32)]),
    ]
    for model in cases:
        graph = import_onnx(model)
        reasons = [torch_reason(node) for node in graph.nodes]
        assert unsupported_nodes(graph) == [] and reasons and all(reasons), model.graph.node[0].op_type
