"""Every IR op, odd cases included, on both CPU backends against ``onnx.reference``.

The torch executor runs the float64 graph and must match the float64 reference to 1e-10,
which leaves no room for a wrong divisor, window or padding; both executors also run the
float32 graph and must match the float64 reference within the project's 1e-5.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastcnn.backends import OrtExecutor, TorchExecutor
from fastcnn.errors import UnsupportedModelError
from tests.backends.cases import CASES
from tests.backends.oracle import reference_outputs, torch_inputs
from tests.helpers import relative_l2

CPU = torch.device("cpu")
FLOAT64_TOLERANCE = 1e-8  # not 0: ONNX stores float attributes (alpha, eps) as float32
ORT_REFUSES = {"lrn_size4_even"}  # its LRN kernel takes odd sizes only


def _check(actual: list[torch.Tensor], expected: list[torch.Tensor], tolerance: float) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert tuple(a.shape) == tuple(e.shape)
        error = relative_l2(a, e)
        assert error < tolerance, f"relative L2 error {error:.3g}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_matches_reference_in_float64(name: str) -> None:
    graph, feeds = CASES[name].build(name, "float64")
    expected = reference_outputs(graph, feeds)
    actual = TorchExecutor(graph, CPU, None).run(torch_inputs(feeds))
    assert actual[0].dtype == torch.float64
    _check(actual, expected, FLOAT64_TOLERANCE)


@pytest.mark.parametrize("backend", [TorchExecutor, OrtExecutor], ids=["torch", "onnxruntime"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_matches_reference(name: str, backend) -> None:
    graph64, feeds64 = CASES[name].build(name, "float64")
    expected = reference_outputs(graph64, feeds64)
    graph, feeds = CASES[name].build(name, "float32")
    if backend is OrtExecutor and name in ORT_REFUSES:
        with pytest.raises(UnsupportedModelError, match="lrn"):
            backend(graph, CPU, None)
        return
    actual = backend(graph, CPU, None).run(torch_inputs(feeds))
    assert actual[0].dtype == torch.float32
    assert tuple(actual[0].shape) == tuple(d if isinstance(d, int) else feeds[0].shape[0]
                                           for d in graph.outputs[0].shape)
    _check(actual, expected, 1e-5)


@pytest.mark.parametrize("size", [1, 3, 4, 5])
def test_lrn_against_torch_local_response_norm(size: int) -> None:
    """Same formula as torch's for odd sizes; for even ones ONNX centres the window one
    channel later (torch pads size//2 before, ONNX floor((size-1)/2))."""
    graph, feeds = CASES["lrn_size3"].build("lrn_size3", "float64")
    graph.nodes[0].attrs["size"] = size
    x = torch_inputs(feeds)[0]
    ours = TorchExecutor(graph, CPU, None).run([x])[0]
    theirs = F.local_response_norm(x, size, alpha=1e-2, beta=0.75, k=1.0)
    if size % 2:
        assert relative_l2(ours, theirs) < 1e-12
    else:
        assert relative_l2(ours, theirs) > 1e-6
