"""`fastcnn plan`: the launch table of a zoo model or an ONNX file, its JSON, its errors."""
from __future__ import annotations

import json

import pytest

import fastcnn
from fastcnn.cli import main


def _plan_json(tmp_path, *argv: str) -> dict:
    path = tmp_path / "plan.json"
    assert main(["plan", *argv, "--json", str(path)]) == 0
    return json.loads(path.read_text())


def test_plan_prints_the_table(capsys):
    assert main(["plan", "lenet5"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "lenet5: pipeline full, batch 1, float32"
    assert lines[1].split()[:3] == ["#", "op", "onnx"]
    assert any(line.split()[:1] == ["total"] and "launches" in line for line in lines)
    assert lines[-1].startswith("activation memory: peak")
    assert "importing lenet5" in err and "pipeline" in err  # progress goes to stderr


def test_plan_json_matches_the_table(tmp_path, capsys):
    data = _plan_json(tmp_path, "squeezenet1_1", "--batch", "2")
    out = capsys.readouterr().out
    assert (data["name"], data["batch"], data["pipeline"]) == ("squeezenet1_1", 2, "full")
    assert data["totals"]["launches"] == len(data["launches"])
    assert f"{data['totals']['launches']} launches" in out
    assert data["launches"][0]["inputs"][0]["shape"] == [2, 3, 224, 224]
    memory = data["memory"]
    assert memory["lower_bound_bytes"] <= memory["peak_bytes"] <= memory["naive_bytes"]


def test_pipeline_none_shows_the_unfused_graph(tmp_path):
    none = _plan_json(tmp_path, "lenet5", "--pipeline", "none")
    full = _plan_json(tmp_path, "lenet5")
    assert {launch["kind"] for launch in none["launches"]} >= {"conv2d", "tanh", "gemm"}
    assert full["totals"]["launches"] <= none["totals"]["launches"]
    assert full["totals"]["flops"] <= none["totals"]["flops"]


def test_plan_takes_an_onnx_file(tmp_path, capsys):
    path = fastcnn.export_onnx("lenet5", tmp_path / "digits.onnx")
    assert main(["plan", str(path), "--pipeline", "none"]) == 0
    assert capsys.readouterr().out.startswith("digits: pipeline none, batch 1, float32")


def test_unknown_model_is_a_one_line_error(capsys):
    assert main(["plan", "resnet51"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastcnn: error:") and "resnet51" in err


@pytest.mark.parametrize("argv", [["plan", "lenet5", "--pipeline", "fastest"], ["plan", "lenet5", "--batch", "0"]])
def test_bad_options_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
