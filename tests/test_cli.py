"""`fastcnn run`, the README's main job: the whole road on a small model, its report, its errors."""
from __future__ import annotations

import re

import pytest

import fastcnn
from fastcnn.cli import main


def _reported_error(stdout: str) -> float:
    match = re.search(r"relative L2 error ([0-9.e+-]+)", stdout)
    assert match, stdout
    return float(match.group(1))


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_run_reports_latency_and_agreement(backend, capsys):
    assert main(["run", "lenet5", "--batch", "3", "--repeat", "2", "--backend", backend]) == 0
    out, err = capsys.readouterr()
    assert f"lenet5: backend {backend} on cpu, input 3 x 1 x 32 x 32 float32" in out
    assert re.search(r"latency per batch of 3: median [0-9.]+ ms, min [0-9.]+ ms over 2 runs", out)
    assert _reported_error(out) < 1e-5
    assert "top-1 agreement 3/3" in out
    for step in ("loading lenet5", "building and warming up", "running 2 batches"):
        assert step in err  # progress goes to stderr, the report to stdout


def test_default_backend_is_the_documented_one(capsys):
    assert main(["run", "lenet5", "--batch", "1", "--repeat", "1", "--device", "cpu"]) == 0
    assert "backend onnxruntime on cpu" in capsys.readouterr().out


def test_run_uses_the_zoo_models_measured_default(monkeypatch, capsys):
    from fastcnn.backends import available, defaults

    if not available("openvino", "cpu"):
        pytest.skip("openvino is not installed")
    monkeypatch.setitem(defaults.CPU_FLOAT32_BY_MODEL, "lenet5", "openvino")
    assert main(["run", "lenet5", "--batch", "1", "--repeat", "1", "--device", "cpu"]) == 0
    assert "backend openvino on cpu" in capsys.readouterr().out


def test_run_in_bfloat16_reports_its_error_against_float32(capsys):
    assert main(["run", "lenet5", "--batch", "4", "--repeat", "1", "--device", "cpu", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "input 4 x 1 x 32 x 32 bfloat16" in out
    assert 0 < _reported_error(out) < 1e-2


def test_run_takes_an_onnx_file(tmp_path, capsys):
    path = fastcnn.export_onnx("lenet5", tmp_path / "digits.onnx")
    assert main(["run", str(path), "--batch", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "input 2 x 1 x 32 x 32" in out and "not checked" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "resnet51"], "resnet51"),
    (["run", "lenet5", "--backend", "tensorflow"], "tensorflow"),
    (["run", "lenet5", "--device", "cuda:7"], "cuda:7"),
])
def test_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after any progress line, which ends in "failed"
    assert last.startswith("fastcnn: error:") and message in last


def test_corrupted_file_is_a_clean_error(tmp_path, capsys):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage" * 10)
    assert main(["run", str(path)]) == 2
    assert "fastcnn: error:" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastcnn {fastcnn.__version__}"


def test_an_error_after_progress_output_starts_its_own_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "failed\nfastcnn: error:" in err


def test_a_batch_that_is_not_a_number_is_refused_in_words(capsys):
    with pytest.raises(SystemExit):
        main(["run", "lenet5", "--batch", "x"])
    err = capsys.readouterr().err
    assert "expected a whole number, got 'x'" in err and "_positive_int" not in err
