"""What a user sees when they get something wrong: fastcnn errors, in their terms, with a hint
that fixes the mistake (issue 10, 'messages speak the user's language')."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import fastcnn
from fastcnn.runtime.spec import parse_dtype


@pytest.fixture(scope="module")
def lenet():
    return fastcnn.load("lenet5", device="cpu", backend="torch")


@pytest.mark.parametrize("spelled", ["ResNet18", "resnet-18", "RESNET_18", "resnet18"])
def test_model_names_ignore_case_and_separators(spelled):
    assert fastcnn.model_info(spelled).name == "resnet18"
    assert fastcnn.create_model(spelled, num_classes=3, seed=0).fc.out_features == 3


def test_an_unknown_name_suggests_the_closest_names_first():
    with pytest.raises(fastcnn.UnknownModelError) as info:
        fastcnn.model_info("resnet5O")  # a letter O for a zero
    message = str(info.value)
    assert message.index("'resnet50'") < message.index("did you mean") + 20


@pytest.mark.parametrize(("given", "expected"), [
    ("float16", torch.float16), ("fp16", torch.float16), ("half", torch.float16), ("bf16", torch.bfloat16),
    ("torch.float32", torch.float32), (np.float32, torch.float32), (torch.bfloat16, torch.bfloat16), (None, None)])
def test_dtype_names_are_accepted(given, expected):
    assert parse_dtype(given) == expected


@pytest.mark.parametrize("given", ["int8", torch.int64, "floaty", 3])
def test_other_dtypes_are_refused_saying_what_is_accepted(given):
    with pytest.raises(fastcnn.InputError, match="'float16'"):
        parse_dtype(given)


def test_load_takes_a_dtype_name():
    engine = fastcnn.load("lenet5", device="cpu", backend="torch", dtype="float32")
    assert engine.infer(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_a_numpy_input_of_the_wrong_dtype_gets_a_numpy_hint(lenet):
    with pytest.raises(fastcnn.InputError, match=r"\.astype\(np\.float32\)"):
        lenet.infer(np.zeros((1, 1, 32, 32), np.float64))
    with pytest.raises(fastcnn.InputError, match=r"\.to\(torch\.float32\)"):
        lenet.infer(torch.zeros(1, 1, 32, 32, dtype=torch.float64))


def test_channels_last_data_gets_a_transpose_hint():
    engine = fastcnn.load("squeezenet1_1", device="cpu", backend="torch")
    with pytest.raises(fastcnn.InputError, match=r"channels-last.*x\.transpose\(0, 3, 1, 2\)"):
        engine.infer(np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(fastcnn.InputError, match=r"x\.permute\(0, 3, 1, 2\)"):
        engine.infer(torch.zeros(1, 224, 224, 3))
    with pytest.raises(fastcnn.InputError) as info:  # a plain wrong size gets no layout hint
        engine.infer(torch.zeros(1, 4, 224, 224))
    assert "channels-last" not in str(info.value)


def test_a_wrong_device_string_names_the_devices_fastcnn_runs_on():
    with pytest.raises(fastcnn.BackendUnavailableError) as info:
        fastcnn.load("lenet5", device="gpu")
    assert "'cpu', 'cuda' or 'cuda:N'" in str(info.value) and "mps" not in str(info.value)


def test_load_of_something_that_is_no_model_says_what_load_takes():
    with pytest.raises(fastcnn.InputError, match="fastcnn.load takes a zoo model name") as info:
        fastcnn.load(42)
    assert "read_onnx" not in str(info.value)


def test_save_onnx_into_a_missing_folder_is_a_fastcnn_error(lenet, tmp_path):
    with pytest.raises(fastcnn.InputError, match="does not exist"):
        lenet.save_onnx(tmp_path / "missing" / "model.onnx")


def test_the_engine_is_named_after_the_model(lenet, tmp_path):
    assert repr(lenet).startswith("Engine('lenet5'")
    path = lenet.save_onnx(tmp_path / "digits.onnx")
    assert repr(fastcnn.load(path, device="cpu", backend="torch")).startswith("Engine('lenet5'")
    model = fastcnn.create_model("lenet5", seed=0)
    from_module = fastcnn.load(model, device="cpu", backend="torch", example_input=torch.zeros(1, 1, 32, 32))
    assert from_module.graph.name == type(model).__name__


def test_import_fastcnn_loads_neither_onnx_nor_onnxruntime():
    code = ("import sys, fastcnn; fastcnn.list_models(); fastcnn.create_model('lenet5'); "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'triton') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_arrays_without_plain_data_are_fastcnn_errors_and_byte_order_is_not(lenet):
    with pytest.raises(fastcnn.InputError, match="meta tensor"):
        lenet.infer(torch.zeros(1, 1, 32, 32, device="meta"))
    with pytest.raises(fastcnn.InputError, match=r"to_dense\(\)"):
        lenet.infer(torch.zeros(1, 1, 32, 32).to_sparse())
    big_endian = np.random.default_rng(0).random((2, 1, 32, 32)).astype(">f4")
    torch.testing.assert_close(lenet.infer(big_endian), lenet.infer(big_endian.astype("<f4")), rtol=0, atol=0)
