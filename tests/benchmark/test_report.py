"""The benchmark report's arithmetic on a hand-made result: speedups, images/s, the roofline's
share, and absent cases listed with their reasons; and implementations that cannot run here
say why instead of producing a number."""
from __future__ import annotations

import pytest
import torch

from fastcnn.benchmark.implementations import IMPLEMENTATIONS, Absent, Case, build_runner
from fastcnn.benchmark.report import chart, groups, markdown
from fastcnn.benchmark.roofline import ModelCost, Peaks, model_cost


def _bench(impl: str, median: float, peer: bool) -> dict:
    info = dict(device="cpu", model="m", dtype="float32", batch=8, implementation=impl, peer=peer,
                computes_in=None, flops=2_000_000_000, min_bytes=10_000_000, layer_bytes=40_000_000)
    return {"extra_info": info, "stats": {"median": median, "iqr": median / 10}}


RESULTS = {
    "machine_info": {"date": "2026-12-01", "fastcnn_device_name": "test cpu", "threads": 2, "software": {},
                     "peaks": Peaks("cpu", {"float32": 1e11}, 1e10, "made up").to_dict()},
    "benchmarks": [_bench("pytorch-eager", 0.040, True), _bench("onnxruntime", 0.020, True),
                   _bench("fastcnn-onnxruntime", 0.016, False)],
    "absent": [{"model": "m", "dtype": "float32", "batch": 8, "implementation": "openvino",
                "reason": "absent: openvino is not installed"}],
}


def test_the_table_has_speedups_throughput_and_the_floor():
    text = markdown(RESULTS)
    # floor: max(2e9 / 1e11, 4e7 / 1e10) = 0.02 s; fastcnn at 16 ms is at 125% of it (faster than the floor
    # would be impossible, so the made-up peaks here are simply low)
    row = next(line for line in text.splitlines() if line.startswith("| fastcnn-onnxruntime"))
    assert "| 16.000 |" in row and "| 500.0 |" in row and "| 2.50x |" in row and "| 1.25x |" in row
    assert "125.0%" in row
    assert "openvino is not installed" in text


def test_groups_and_chart(tmp_path):
    assert list(groups(RESULTS)) == [("cpu", "m", "float32", 8)]
    assert chart(RESULTS, tmp_path / "c.png").stat().st_size > 1000


def test_model_cost_counts_flops_and_bytes():
    import fastcnn

    graph = fastcnn.load("lenet5", device="cpu", backend="torch").graph
    one, eight = model_cost(graph, 1), model_cost(graph, 8)
    assert eight.flops == pytest.approx(8 * one.flops, rel=0.01)
    assert one.min_bytes >= sum(v.const.nbytes for v in graph.constants())
    assert one.layer_bytes > one.min_bytes
    assert model_cost(graph, 1, itemsize=2).min_bytes == one.min_bytes // 2
    assert ModelCost(10, 1, 100).floor_seconds(Peaks("d", {"float32": 10.0}, 10.0, ""), "float32") == 10.0


def test_an_implementation_that_cannot_run_here_says_why():
    case = Case("lenet5", "cpu", torch.float32, (1, 1, 32, 32))
    model = torch.nn.Conv2d(1, 1, 3)
    with pytest.raises(Absent, match="GPU"):
        build_runner("torch-compile-max-autotune", model, case)
    with pytest.raises(Absent, match="unknown implementation"):
        build_runner("tensorflow", model, case)
    with pytest.raises(Absent, match="float32"):
        build_runner("onnxruntime", model, Case("lenet5", "cpu", torch.float16, (1, 1, 32, 32)))
    assert {"pytorch-eager", "torch-compile", "onnxruntime", "openvino", "fastcnn-onnxruntime"} <= set(IMPLEMENTATIONS)


def test_the_check_before_timing_never_passes_a_nan():
    from fastcnn.benchmark.implementations import relative_l2

    expected = torch.ones(4)
    assert relative_l2(torch.ones(4), expected) == 0.0
    assert relative_l2(torch.tensor([1.0, 1.0, 1.0, float("nan")]), expected) == float("inf")
    assert relative_l2(torch.full((4,), 1.5), expected) == pytest.approx(0.5)
