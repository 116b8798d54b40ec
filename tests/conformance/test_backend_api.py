"""``fastcnn.onnx_backend`` itself: the ONNX backend API on small hand-written models."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fastcnn.errors import InputError, UnsupportedModelError
from fastcnn.onnx_backend import BindingRep, FastCNNBackend, FastCNNRep, prepare, run_model


def one_node_model(op: str, inputs: list[tuple[str, int, list]], output: tuple[str, int, list],
                   opset: int = 13, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, [name for name, _, _ in inputs], [output[0]], **attrs)
    graph = helper.make_graph([node], op.lower(),
                              [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*output)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_outputs_are_numpy_in_the_model_dtype_for_every_input_form() -> None:
    model = one_node_model("Relu", [("x", TensorProto.DOUBLE, [2, 3])], ("y", TensorProto.DOUBLE, [2, 3]))
    x = np.random.default_rng(0).standard_normal((2, 3))
    rep = prepare(model)
    assert isinstance(rep, FastCNNRep)
    for given in ([x], {"x": x}, x):
        (y,) = rep.run(given)
        assert y.dtype == np.float64
        np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert run_model(model.SerializeToString(), [x]).y.shape == (2, 3)  # bytes, output by name


def test_a_wrong_input_is_an_input_error() -> None:
    model = one_node_model("Relu", [("x", TensorProto.FLOAT, [2, 3])], ("y", TensorProto.FLOAT, [2, 3]))
    rep = prepare(model)
    with pytest.raises(InputError, match="float32"):
        rep.run([np.zeros((2, 3), np.float64)])
    with pytest.raises(InputError, match="1 input"):
        rep.run([np.zeros((2, 3), np.float32)] * 2)


def test_integer_parameters_fed_as_inputs_are_bound_at_run_time() -> None:
    """Reshape's target as a graph input: imported on the first run with the value given,
    again when the value changes."""
    model = one_node_model("Reshape", [("x", TensorProto.FLOAT, [2, 6]), ("shape", TensorProto.INT64, [2])],
                           ("y", TensorProto.FLOAT, ["a", "b"]))
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    rep = prepare(model)
    assert isinstance(rep, BindingRep)
    np.testing.assert_array_equal(rep.run([x, np.array([3, 4])])[0], x.reshape(3, 4))
    np.testing.assert_array_equal(rep.run([x, np.array([-1, 2])])[0], x.reshape(-1, 2))


def test_a_model_without_float_inputs_is_refused_at_prepare() -> None:
    model = one_node_model("Add", [("a", TensorProto.INT64, [3]), ("b", TensorProto.INT64, [3])],
                           ("c", TensorProto.INT64, [3]))
    with pytest.raises(UnsupportedModelError) as info:
        prepare(model)
    assert {kind for kind, _, _ in info.value.unsupported} == {"input"}


def test_an_unsupported_op_is_refused_at_prepare_by_name() -> None:
    model = one_node_model("Erf", [("x", TensorProto.FLOAT, [4])], ("y", TensorProto.FLOAT, [4]))
    with pytest.raises(UnsupportedModelError) as info:
        prepare(model)
    assert [op for op, _, _ in info.value.unsupported] == ["Erf"]


def test_devices() -> None:
    assert FastCNNBackend.supports_device("CPU")
    assert not FastCNNBackend.supports_device("TPU")
    with pytest.raises(NotImplementedError):
        FastCNNBackend.run_node(helper.make_node("Relu", ["x"], ["y"]), [np.zeros(1, np.float32)])
