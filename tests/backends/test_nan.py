"""NaN and Inf: the torch executor follows PyTorch (see ``fastcnn.backends.torch_backend``).

Pinned here: a NaN anywhere in a max-pooling window (plain, padded, global) makes that output
NaN; ``relu`` and ``clip`` keep NaN; ``softmax`` turns the slice holding a NaN or +Inf into
NaN.

The ``onnxruntime`` backend follows ONNX Runtime (README, "NaN and Inf"), and these tests pin
what is documented for it: ``relu`` and ``clip`` keep NaN and ``softmax`` turns a slice with a
NaN or +Inf into NaN, as in the torch backend; ONNX Runtime's MaxPool compares in order, so a
NaN survives only in some window positions: with onnxruntime 1.32, only in the second of a 2x2
window and only in the last of a global max pool, the other positions giving the max of the
rest. That pattern is ONNX Runtime's, pinned for the documented version only; on another
version the test says that the README's record needs checking.
"""
from __future__ import annotations

import math

import pytest
import torch

from fastcnn.backends import OrtExecutor, TorchExecutor
from fastcnn.ir import Graph

NAN, INF = math.nan, math.inf


def _one_node(op: str, shape: tuple[int, ...], **attrs) -> Graph:
    graph = Graph(op)
    x = graph.add_input("x", shape, "float32")
    graph.outputs = list(graph.add_node(op, [x], attrs).outputs)
    return graph


def _pool(padding=(0, 0, 0, 0), stride=(2, 2)) -> Graph:
    return _one_node("max_pool", (1, 1, 2, 2), kernel=(2, 2), stride=stride, padding=padding,
                     dilation=(1, 1), ceil_mode=False)


def _run(executor, values) -> torch.Tensor:
    return executor.run([torch.tensor(values, dtype=torch.float32)])[0]


def _window_with_nan_at(position: int) -> list:
    window = [1.0, 2.0, 3.0, 4.0]
    window[position] = NAN
    return [[[window[:2], window[2:]]]]


@pytest.mark.parametrize("position", range(4))
@pytest.mark.parametrize("padding", [(0, 0, 0, 0), (0, 0, 1, 1)], ids=["native", "asymmetric_pad"])
def test_max_pool_propagates_nan_from_any_position(position: int, padding) -> None:
    out = _run(TorchExecutor(_pool(padding), "cpu", None), _window_with_nan_at(position))
    assert torch.isnan(out[0, 0, 0, 0])


def test_max_pool_keeps_inf_and_ignores_padding() -> None:
    graph = _pool((0, 0, 1, 1), stride=(1, 1))
    out = _run(TorchExecutor(graph, "cpu", None), [[[[-INF, -5.0], [-7.0, -6.0]]]])
    assert out.flatten().tolist() == [-5.0, -5.0, -6.0, -6.0]  # padding is -inf: it never wins
    out = _run(TorchExecutor(graph, "cpu", None), [[[[-INF, -INF], [-INF, -INF]]]])
    assert out.flatten().tolist() == [-INF] * 4
    out = _run(TorchExecutor(_pool(), "cpu", None), [[[[INF, NAN], [1.0, 2.0]]]])
    assert torch.isnan(out).all()


def test_global_max_pool_propagates_nan() -> None:
    executor = TorchExecutor(_one_node("global_max_pool", (1, 2, 2, 2)), "cpu", None)
    out = _run(executor, [[[[1.0, NAN], [3.0, 2.0]], [[1.0, 5.0], [3.0, 2.0]]]])
    assert torch.isnan(out[0, 0, 0, 0]) and out[0, 1, 0, 0] == 5.0


@pytest.mark.parametrize("op, attrs", [("relu", {}), ("clip", {"min": 0.0, "max": 6.0})])
def test_relu_and_clip_keep_nan(op: str, attrs: dict) -> None:
    out = _run(TorchExecutor(_one_node(op, (4,), **attrs), "cpu", None), [NAN, -1.0, 7.0, -INF])
    assert torch.isnan(out[0])
    assert out[1:].tolist() == [0.0, 6.0 if op == "clip" else 7.0, 0.0]


def test_softmax_turns_slice_with_nan_or_inf_into_nan() -> None:
    executor = TorchExecutor(_one_node("softmax", (3, 3), axis=1), "cpu", None)
    out = _run(executor, [[NAN, 1.0, 2.0], [INF, 1.0, 2.0], [-INF, 1.0, 2.0]])
    assert torch.isnan(out[:2]).all()
    assert torch.isfinite(out[2]).all() and out[2, 0] == 0.0


# What ONNX Runtime 1.32's MaxPool gives for a NaN at each position of the 2x2 window 1, 2, 3, 4.
ORT_MAX_POOL_WITH_NAN_AT = {0: 4.0, 1: NAN, 2: 4.0, 3: 3.0}
ORT_GLOBAL_MAX_POOL_WITH_NAN_AT = {0: 4.0, 1: 4.0, 2: 4.0, 3: NAN}


def _documented_onnxruntime() -> None:
    import onnxruntime

    if not onnxruntime.__version__.startswith("1.32."):
        pytest.skip(f"onnxruntime {onnxruntime.__version__}: the README records 1.32's MaxPool NaN pattern; "
                    "recheck it and update the README and this test")


def _same(actual: float, expected: float) -> bool:
    return math.isnan(actual) if math.isnan(expected) else actual == expected


@pytest.mark.parametrize("position", range(4))
def test_onnxruntime_max_pool_nan_is_the_documented_pattern(position: int) -> None:
    _documented_onnxruntime()
    theirs = _run(OrtExecutor(_pool(), "cpu", None), _window_with_nan_at(position))
    assert _same(float(theirs[0, 0, 0, 0]), ORT_MAX_POOL_WITH_NAN_AT[position])
    executor = OrtExecutor(_one_node("global_max_pool", (1, 1, 2, 2)), "cpu", None)
    theirs = _run(executor, _window_with_nan_at(position))
    assert _same(float(theirs[0, 0, 0, 0]), ORT_GLOBAL_MAX_POOL_WITH_NAN_AT[position])


@pytest.mark.parametrize("op, attrs", [("relu", {}), ("clip", {"min": 0.0, "max": 6.0})])
def test_onnxruntime_relu_and_clip_keep_nan(op: str, attrs: dict) -> None:
    out = _run(OrtExecutor(_one_node(op, (4,), **attrs), "cpu", None), [NAN, -1.0, 7.0, -INF])
    assert torch.isnan(out[0])
    assert out[1:].tolist() == [0.0, 6.0 if op == "clip" else 7.0, 0.0]


def test_onnxruntime_softmax_turns_slice_with_nan_or_inf_into_nan() -> None:
    executor = OrtExecutor(_one_node("softmax", (3, 3), axis=1), "cpu", None)
    out = _run(executor, [[NAN, 1.0, 2.0], [INF, 1.0, 2.0], [-INF, 1.0, 2.0]])
    assert torch.isnan(out[:2]).all()
    assert torch.isfinite(out[2]).all() and out[2, 0] == 0.0
