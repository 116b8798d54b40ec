"""Refusals: every unsupported op or attribute of a graph in one error, each with its node."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.errors import InvalidModelError, UnsupportedModelError
from fastcnn.frontend import import_onnx
from tests.frontend.helpers import import_text, parse


def text(body: str, opset: int = 17, extra_domains: str = "") -> str:
    return f'<ir_version: 8, opset_import: ["" : {opset}{extra_domains}]>\n{body}'


def problems(body: str, **weights: np.ndarray) -> list[tuple[str, str, str]]:
    with pytest.raises(UnsupportedModelError) as info:
        import_onnx(parse(text(body, extra_domains=', "com.example" : 1'), **weights))
    for op_type, node, _ in info.value.unsupported:  # the message names each one
        assert op_type in str(info.value) and node in str(info.value)
    return info.value.unsupported


def test_all_problems_of_a_graph_in_one_error() -> None:
    found = problems("""
    g (float[N, 3, 4, 4, 4] v, float[N, 3, 8, 8] x) => (float[N, 3, 2, 2, 2] a, float[N, 3, 8, 8] b,
                                                        float[N, 3, 8, 8] c, float[N, 3, 8, 8] d) {
        a = MaxPool <kernel_shape = [2, 2, 2], strides = [2, 2, 2]> (v)
        l = LogSoftmax <axis = 1> (x)
        b = com.example.Custom (l)
        c, d = Dropout (x, r, t)
    }""", r=np.array(0.5, np.float32), t=np.array(True))
    assert [(op, node) for op, node, _ in found] == [
        ("MaxPool", "<unnamed MaxPool -> a>"), ("LogSoftmax", "<unnamed LogSoftmax -> l>"),
        ("Custom", "<unnamed Custom -> b>"), ("Dropout", "<unnamed Dropout -> c>")]
    reasons = [reason for _, _, reason in found]
    assert "3-D max pooling" in reasons[0]
    assert "not supported" in reasons[1]
    assert "domain 'com.example'" in reasons[2]
    assert "training_mode" in reasons[3]


def test_named_nodes_and_attributes() -> None:
    found = problems("""
    g (float[N, 3, 8, 8] x) => (float[N, 3, H, W] y) {
        p = AveragePool <kernel_shape = [2, 2], strides = [2, 2], auto_pad = "BOGUS"> (x)
        y = Pad <mode = "wrap"> (p, pads)
    }""", pads=np.zeros(8, np.int64))
    assert [op for op, _, _ in found] == ["AveragePool", "Pad"]
    assert "BOGUS" in found[0][2] and "wrap" in found[1][2]


def test_unknown_attribute_is_named() -> None:
    found = problems("g (float[N, 3] x) => (float[N, 3] y) { y = Relu <future_flag = 1> (x) }")
    assert found[0][:1] == ("Relu",) and "future_flag" in found[0][2]


def test_problems_downstream_of_an_unsupported_node_are_still_reported() -> None:
    found = problems("""
    g (float[N, 3] x) => (float[N, 3] y) {
        a = com.example.First (x)
        b = Relu (a)
        y = com.example.Second (b)
    }""")
    assert [op for op, _, _ in found] == ["First", "Second"]


def test_integer_input_used_by_the_graph_is_refused() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        import_text(text("g (int64[N, 3] x) => (int64[N, 3] y) { y = Add (x, x) }"))
    assert info.value.unsupported[0][:2] == ("input", "x")
    assert "INT64" in info.value.unsupported[0][2]


def test_training_mode_batch_norm_and_dropout_are_refused() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        import_text(text("""
        g (float[N, 2] x) => (float[N, 2] y, float[N, 2] z, bool[N, 2] mask) {
            y, mean, var = BatchNormalization <training_mode = 1> (x, s, b, m, v)
            z, mask = Dropout (x, r, t)
        }""", opset=15), s=np.ones(2, np.float32), b=np.zeros(2, np.float32),
            m=np.zeros(2, np.float32), v=np.ones(2, np.float32), r=np.array(0.5, np.float32), t=np.array(True))
    reasons = {op: reason for op, _, reason in info.value.unsupported}
    assert "training_mode" in reasons["BatchNormalization"] and "training_mode" in reasons["Dropout"]


def test_reshape_to_a_run_time_shape_is_refused() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        import_text(text("g (float[N, 6] x, int64[2] s) => (float[A, B] y) { y = Reshape (x, s) }"))
    reasons = [reason for _, _, reason in info.value.unsupported]
    assert any("INT64" in r for r in reasons)


def test_malformed_graph_is_invalid_not_unsupported() -> None:
    model = parse(text("g (float[N, 3] x) => (float[N, 3] y) { y = Add (x, w) }"))
    with pytest.raises(InvalidModelError, match="'w'"):
        import_onnx(model)  # no initializer w: never defined
    with pytest.raises(InvalidModelError):
        import_onnx("not a model")  # type: ignore[arg-type]
