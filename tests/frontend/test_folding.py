"""Constant folding at import: weights computed by subgraphs, shape chains over a dynamic
batch, weights listed as graph inputs, If on a known condition, dead branches."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.errors import InputError, UnsupportedModelError
from fastcnn.frontend import import_onnx, read_onnx
from tests.frontend.helpers import import_text, ops, parse, reference, relative_error, run_graph


def text(body: str, opset: int = 17) -> str:
    return f'<ir_version: 8, opset_import: ["" : {opset}]>\n{body}'


# x.view(x.size(0), -1) as the TorchScript exporter writes it.
VIEW_BATCH_MINUS_ONE = text("""
g (float[N, 3, 4, 4] x) => (float[N, 48] y) {
    shape = Shape (x)
    zero = Constant <value = int64 {0}> ()
    batch = Gather <axis = 0> (shape, zero)
    axes = Constant <value = int64[1] {0}> ()
    batch1 = Unsqueeze (batch, axes)
    rest = Constant <value = int64[1] {-1}> ()
    target = Concat <axis = 0> (batch1, rest)
    y = Reshape (x, target)
}""")


def test_shape_gather_unsqueeze_concat_reshape_folds_with_dynamic_batch() -> None:
    graph = import_text(VIEW_BATCH_MINUS_ONE)
    assert ops(graph) == ["reshape"]
    assert graph.nodes[0].attrs["shape"] == (0, 48)
    assert graph.outputs[0].shape == ("N", 48)
    model = parse(VIEW_BATCH_MINUS_ONE)
    for batch in (1, 5):  # the batch stays dynamic
        x = np.random.default_rng(batch).standard_normal((batch, 3, 4, 4)).astype(np.float32)
        assert relative_error(run_graph(graph, [x])[0], reference(model, [x])[0]) == 0.0


def test_spatial_dims_sliced_from_shape_fold() -> None:
    """Reshape to (N, C * H, W) built from Shape -> Slice and arithmetic on its entries."""
    graph = import_text(text("""
    g (float[N, 3, 4, 5] x) => (float[N, 12, 5] y) {
        shape = Shape (x)
        starts = Constant <value = int64[1] {1}> ()
        ends = Constant <value = int64[1] {3}> ()
        ch = Slice (shape, starts, ends)
        prod = ReduceProd <keepdims = 1> (ch)
        batch = Shape <end = 1> (x)
        width = Shape <start = -1> (x)
        target = Concat <axis = 0> (batch, prod, width)
        y = Reshape (x, target)
    }"""))
    assert ops(graph) == ["reshape"]
    assert graph.nodes[0].attrs["shape"] == (0, 12, 5)


def test_symbolic_arithmetic_that_needs_the_batch_value_is_refused() -> None:
    """Equal(batch, 1) cannot be known at import: it is reported first, with that reason (the Where
    after it, which would take the shape as data, is reported too since fastcnn runs Where)."""
    with pytest.raises(UnsupportedModelError) as info:
        import_text(text("""
        g (float[N, 3] x) => (float[N, 3] y) {
            shape = Shape (x)
            one = Constant <value = int64[2] {1, 1}> ()
            same = Equal (shape, one)
            target = Where (same, one, shape)
            y = Reshape (x, target)
        }"""))
    assert [p[0] for p in info.value.unsupported][0] == "Equal"
    assert "run-time batch" in info.value.unsupported[0][2]
    assert all(p[0] in ("Equal", "Where") for p in info.value.unsupported)


def test_constant_subgraphs_become_weights() -> None:
    """A weight transposed by a node, a bias from ConstantOfShape: both folded to constants."""
    graph = import_text(text("""
    g (float[N, 4] x) => (float[N, 3] y) {
        wt = Transpose (w)
        size = Constant <value = int64[1] {3}> ()
        bias = ConstantOfShape <value = float[1] {0.5}> (size)
        m = MatMul (x, wt)
        y = Add (m, bias)
    }"""), w=np.arange(12, dtype=np.float32).reshape(3, 4))
    assert ops(graph) == ["matmul", "add"]
    matmul, add = graph.nodes
    np.testing.assert_array_equal(matmul.inputs[1].const, np.arange(12, dtype=np.float32).reshape(3, 4).T)
    np.testing.assert_array_equal(add.inputs[1].const, np.full(3, 0.5, np.float32))


def test_weights_listed_as_graph_inputs_are_constants() -> None:
    model = parse(text("g (float[N, 3] x, float[3] w) => (float[N, 3] y) { y = Mul (x, w) }"),
                  w=np.array([1, 2, 3], np.float32))
    graph = import_onnx(read_onnx(model))
    assert [v.name for v in graph.inputs] == ["x"]
    assert graph.nodes[0].inputs[1].is_const


def test_if_on_a_folded_condition_is_inlined() -> None:
    """torch's exporters guard rank-dependent code with If; a known condition picks a branch."""
    graph = import_text(text("""
    g (float[N, 1, 6] x) => (float[N, 6] y) {
        shape = Shape (x)
        index = Constant <value = int64 {1}> ()
        dim = Gather (shape, index)
        one = Constant <value = int64 {1}> ()
        cond = Equal (dim, one)
        y = If (cond) <
            then_branch = g1 () => (float[N, 6] a) { axes = Constant <value = int64[1] {1}> () \n a = Squeeze (x, axes) },
            else_branch = g2 () => (float[N, 6] b) { b = Flatten (x) }
        >
    }"""))
    assert ops(graph) == ["reshape"]
    assert graph.outputs[0].shape == ("N", 6)


def test_dead_branches_are_neither_converted_nor_reported() -> None:
    graph = import_text(text("""
    g (float[N, 3] x) => (float[N, 3] y) {
        y = Relu (x)
        unused = Erf (x)
    }"""))
    assert ops(graph) == ["relu"]


def test_every_node_folds_to_a_constant_output() -> None:
    """A graph whose output is fully constant returns that constant."""
    graph = import_text(text("g (float[2] x) => (float[3] y) { c = Constant <value = float[3] {1, 2, 3}> () \n"
                             " y = Neg (c) }"))
    assert graph.nodes == [] and graph.outputs[0].name == "y"
    np.testing.assert_array_equal(graph.outputs[0].const, [-1, -2, -3])
    np.testing.assert_array_equal(run_graph(graph, [np.zeros(2, np.float32)])[0], [-1, -2, -3])


def test_known_inputs_are_folded_like_weights() -> None:
    """ONNX's node tests feed shapes as inputs; given their values, they fold at import."""
    model = parse(text("g (float[N, 3, 4] x, int64[2] shape) => (float[N, 12] y) { y = Reshape (x, shape) }"))
    graph = import_onnx(read_onnx(model), known_inputs={"shape": [0, -1]})
    assert [v.name for v in graph.inputs] == ["x"]
    assert ops(graph) == ["reshape"] and graph.nodes[0].attrs["shape"] == (0, 12)
    with pytest.raises(InputError, match="nope"):
        import_onnx(model, known_inputs={"nope": [1]})


OLD_VIEW = """<ir_version: 7, opset_import: ["" : 9]>
g (float[N, 3, 4, 4] x) => (float[N, 3, 16] y, float[N, 48] z) {
    shape = Shape (x)
    front = Slice <starts = [0], ends = [2]> (shape)
    zero = Constant <value = int64 {0}> ()
    batch = Gather (shape, zero)
    batch1 = Unsqueeze <axes = [0]> (batch)
    again = Squeeze <axes = [0]> (batch1)
    back = Unsqueeze <axes = [0]> (again)
    rest = Constant <value = int64[1] {-1}> ()
    target = Concat <axis = 0> (front, rest)
    check = Concat <axis = 0> (back, rest)
    y = Reshape (x, target)
    z = Reshape (x, check)
}"""


def test_symbolic_folds_read_old_attribute_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slice/Unsqueeze/Squeeze with attribute axes (opset 9) fold on symbolic shapes too."""
    from fastcnn.frontend import prepare

    def refuse(model, target):
        raise RuntimeError("no adapter")

    monkeypatch.setattr(prepare.version_converter, "convert_version", refuse)
    graph = import_onnx(read_onnx(parse(OLD_VIEW)))
    assert ops(graph) == ["reshape", "reshape"]
    assert [n.attrs["shape"] for n in graph.nodes] == [(0, 3, 16), (0, 48)]
