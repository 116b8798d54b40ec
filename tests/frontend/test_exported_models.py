"""Files written by torch's exporter: zoo models and torch's LRN decomposition, imported and
run against PyTorch itself (relative L2 under 1e-5 in float32).

The whole zoo goes through import once, in tests/test_roundtrip.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import fastcnn
from fastcnn.errors import UnsupportedModelError
from fastcnn.export import export_onnx
from fastcnn.frontend import import_onnx, read_onnx
from fastcnn.ir import verify
from tests.frontend.helpers import ops, run_graph
from tests.helpers import randomize_batchnorm, relative_l2

FAST = ["lenet5", "squeezenet1_1"]


def _round_trip(model: nn.Module, input_size: tuple[int, ...], path: Path, batch: int = 2) -> tuple:
    model.eval()
    export_onnx(model, path, input_size=input_size)
    graph = import_onnx(read_onnx(path))
    verify(graph)
    x = torch.randn(batch, *input_size)
    with torch.no_grad():
        expected = model(x)
    actual = torch.from_numpy(run_graph(graph, [x.numpy()])[0])
    return graph, relative_l2(actual, expected)


def _zoo_case(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomize_batchnorm(fastcnn.create_model(name))
    graph, error = _round_trip(model, fastcnn.model_info(name).input_size, tmp_path / f"{name}.onnx")
    assert error < 1e-5
    assert graph.inputs[0].shape[0] == "N" and [v.name for v in graph.outputs] == ["logits"]


@pytest.mark.parametrize("name", FAST)
def test_small_zoo_models_import_and_match_pytorch(name: str, tmp_path: Path) -> None:
    """Every zoo model goes this way in tests/test_roundtrip.py; these two check the importer alone."""
    _zoo_case(name, tmp_path)


class _Normalised(nn.Module):
    """Conv, ReLU, LocalResponseNorm: what AlexNet and GoogLeNet export."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.norm = nn.LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.relu(self.conv(x)))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # F.local_response_norm's numel check
def test_torch_local_response_norm_is_recognised_as_one_lrn(tmp_path: Path) -> None:
    torch.manual_seed(0)
    graph, error = _round_trip(_Normalised(5), (3, 9, 9), tmp_path / "lrn.onnx", batch=3)
    assert ops(graph) == ["conv2d", "relu", "lrn"]
    assert graph.nodes[-1].attrs == {"size": 5, "alpha": pytest.approx(1e-2), "beta": 0.75, "bias": 2.0}
    assert error < 1e-5


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_torch_local_response_norm_of_even_size_is_not_mistaken_for_lrn(tmp_path: Path) -> None:
    """torch centres even windows the other way from ONNX's LRN, so the chain stays and is refused."""
    path = tmp_path / "lrn4.onnx"
    export_onnx(_Normalised(4).eval(), path, input_size=(3, 9, 9))
    with pytest.raises(UnsupportedModelError) as info:
        import_onnx(read_onnx(path))
    assert {op for op, _, _ in info.value.unsupported} == {"AveragePool", "Pow"}
