"""The IR -> ONNX writer: valid models (onnx.checker full check), the IR's names and types,
and the opset-dependent spellings (ReduceMean's axes) computing the same numbers."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, numpy_helper

from fastcnn.backends.onnx_writer import graph_to_onnx
from fastcnn.ir import Graph
from tests.backends.cases import CASES, Case
from tests.backends.oracle import reference_outputs
from tests.helpers import relative_l2

OPSETS = [13, 17, 18, 21]


def _ort_run(model: onnx.ModelProto, graph: Graph, feeds: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {v.name: x for v, x in zip(graph.inputs, feeds)})


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_case_passes_the_full_check(name: str, opset: int) -> None:
    graph, _ = CASES[name].build(name, "float32")
    onnx.checker.check_model(graph_to_onnx(graph, opset), full_check=True)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", ["reduce_mean_hw", "reduce_mean_drop", "reduce_mean_all",
                                  "clip_min_only", "clip_max_only", "pad_constant", "pad_reflect",
                                  "reshape_zero_minus_one", "softmax_axis1", "max_pool_dilation_ceil"])
def test_opset_spellings_compute_the_same(name: str, opset: int) -> None:
    graph, feeds = CASES[name].build(name, "float32")
    expected = reference_outputs(*CASES[name].build(name, "float64"))[0]
    actual = _ort_run(graph_to_onnx(graph, opset), graph, feeds)[0]
    assert actual.shape == tuple(expected.shape)
    assert relative_l2(torch.from_numpy(actual), expected) < 1e-5


def test_reduce_mean_axes_attribute_before_18_input_from_18() -> None:
    graph, _ = CASES["reduce_mean_hw"].build("reduce_mean_hw", "float32")
    old = graph_to_onnx(graph, 17).graph.node[0]
    new = graph_to_onnx(graph, 18).graph.node[0]
    assert [a.name for a in old.attribute if a.name == "axes"] == ["axes"] and len(old.input) == 1
    assert not any(a.name == "axes" for a in new.attribute) and len(new.input) == 2


def test_reshape_allowzero_written_from_opset_14_refused_before() -> None:
    """A reshape whose 0 is a size (allowzero=1) needs Reshape's allowzero attribute (opset 14);
    an allowzero=1 reshape without a 0 is the plain Reshape."""
    graph = Graph("empty_reshape")
    x = graph.add_input("x", (0, 3, 4), "float32")
    graph.outputs = [graph.add_node("reshape", [x], {"shape": (3, 4, 0), "allowzero": 1}).outputs[0]]
    (node,) = graph_to_onnx(graph, 14).graph.node
    assert [(a.name, a.i) for a in node.attribute] == [("allowzero", 1)]
    feed = np.zeros((0, 3, 4), np.float32)
    assert _ort_run(graph_to_onnx(graph, 17), graph, [feed])[0].shape == (3, 4, 0)
    with pytest.raises(ValueError, match="allowzero=1.*opset 14"):
        graph_to_onnx(graph, 13)
    plain = Graph("plain_reshape")
    y = plain.add_input("y", (2, 3, 4), "float32")
    plain.outputs = [plain.add_node("reshape", [y], {"shape": (4, 6), "allowzero": 1}).outputs[0]]
    assert not graph_to_onnx(plain, 13).graph.node[0].attribute


def test_names_types_batch_symbol_and_initializers() -> None:
    graph, _ = CASES["conv_plain"].build("conv_plain", "float32")
    model = graph_to_onnx(graph)
    assert model.ir_version == 8 and model.opset_import[0].version == 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == graph.inputs[0].name and out.name == graph.outputs[0].name
    assert inp.type.tensor_type.elem_type == TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 9, 9]
    assert out.type.tensor_type.shape.dim[0].dim_param == "N"
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for const in graph.constants():
        np.testing.assert_array_equal(stored[const.name], const.const)
    conv = model.graph.node[0]
    assert conv.op_type == "Conv" and conv.name == graph.nodes[0].name


def test_scalar_initializers_stay_scalars() -> None:
    graph, _ = CASES["clip_both"].build("clip_both", "float32")
    model = graph_to_onnx(graph)
    assert all(list(t.dims) == [] for t in model.graph.initializer)


def test_float16_rewrites_every_float_tensor() -> None:
    graph, feeds = CASES["batch_norm"].build("batch_norm", "float32")
    model = graph_to_onnx(graph, float_dtype="float16")
    onnx.checker.check_model(model, full_check=True)
    types = [v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]]
    assert set(types) == {TensorProto.FLOAT16}
    assert {t.data_type for t in model.graph.initializer} == {TensorProto.FLOAT16}
    out = _ort_run(model, graph, [x.astype(np.float16) for x in feeds])[0]
    expected = reference_outputs(graph, feeds)[0].numpy()
    assert np.abs(out.astype(np.float32) - expected).max() < 1e-2


def test_outputs_that_are_inputs_constants_or_repeated_get_copies() -> None:
    graph = Graph("odd_outputs")
    x = graph.add_input("x", ("N", 3), "float32")
    y = graph.add_node("relu", [x]).outputs[0]
    c = graph.constant(np.arange(3, dtype=np.float32), "c")
    graph.outputs = [y, x, c, y]
    model = graph_to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    names = [o.name for o in model.graph.output]
    assert names[0] == y.name and len(set(names)) == 4
    feed = np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)
    relu, same, const, again = _ort_run(model, graph, [feed])
    np.testing.assert_array_equal(relu, np.maximum(feed, 0))
    np.testing.assert_array_equal(same, feed)
    np.testing.assert_array_equal(const, c.const)
    np.testing.assert_array_equal(again, relu)


def test_multi_node_graph_round_trips() -> None:
    graph = Graph("small_cnn")
    x = graph.add_input("input", ("N", 3, 8, 8), "float32")
    rng = np.random.default_rng(0)
    w = graph.constant(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    h = graph.add_node("conv2d", [x, w], dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1),
                                               groups=1)).outputs[0]
    h = graph.add_node("relu", [h]).outputs[0]
    h = graph.add_node("global_avg_pool", [h]).outputs[0]
    h = graph.add_node("flatten", [h], dict(axis=1)).outputs[0]
    graph.outputs = [graph.add_node("softmax", [h], dict(axis=1), out_names=["logits"]).outputs[0]]
    model = graph_to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["logits"]
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "GlobalAveragePool", "Flatten",
                                                     "Softmax"]


@pytest.mark.parametrize("opset", [12, 99])
def test_unsupported_opset_is_refused(opset: int) -> None:
    graph, _ = Case("relu", {}, [(2, 3)]).build("relu", "float32")
    with pytest.raises(ValueError, match="opset"):
        graph_to_onnx(graph, opset)


def test_crop_only_where_onnx_shape_inference_keeps_a_dropped_window() -> None:
    cropped, _ = CASES["max_pool_ceil_start_in_pad"].build("a", "float32")
    plain, _ = CASES["max_pool_sym_pad"].build("b", "float32")
    assert [n.op_type for n in graph_to_onnx(cropped).graph.node] == ["MaxPool", "Slice"]
    assert [n.op_type for n in graph_to_onnx(plain).graph.node] == ["MaxPool"]
