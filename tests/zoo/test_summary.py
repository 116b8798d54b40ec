"""The per-layer summary and the `fastcnn summary` command."""
from __future__ import annotations

import subprocess
import sys

import fastcnn
from fastcnn.cli import main
from fastcnn.zoo.summary import layer_table
from tests.zoo.test_classic import ALEXNET_PARAMS  # the per-layer counts, kept in one place

LENET_PARAMS = {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164, "output": 840}


def _rows(name):
    info = fastcnn.model_info(name)
    return {r.name.split(".")[-1]: r for r in layer_table(fastcnn.create_model(name), info.input_size)}


def test_lenet5_rows_match_the_paper():
    rows = _rows("lenet5")
    assert {k: rows[k].params for k in LENET_PARAMS} == LENET_PARAMS
    assert rows["c1"].output_shape == (6, 28, 28) and rows["c1"].multiply_adds == 6 * 28 * 28 * 25
    assert rows["c3"].output_shape == (16, 10, 10)
    assert rows["c5"].output_shape == (120, 1, 1) and rows["c5"].multiply_adds == 120 * 400
    assert rows["f6"].multiply_adds == 84 * 120


def test_alexnet_rows_match_the_paper():
    rows = _rows("alexnet")
    assert {k: rows[k].params for k in ALEXNET_PARAMS} == ALEXNET_PARAMS
    assert rows["conv1"].output_shape == (96, 55, 55)
    assert rows["conv1"].multiply_adds == 96 * 55 * 55 * 363
    assert rows["conv2"].multiply_adds == 256 * 27 * 27 * 48 * 25  # two groups of 48 inputs


def test_summary_command_prints_the_table(capsys):
    assert main(["summary", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "37,752,832" in out and "60,965,224" in out


def test_summary_command_names_an_unknown_model(capsys):
    assert main(["summary", "resnet51"]) == 2
    assert "unknown model 'resnet51'" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "fastcnn", "summary", "lenet5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "48,120" in done.stdout and "10,164" in done.stdout
