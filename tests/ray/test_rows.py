"""The per-row batch runner shared by the Ray Data predictor and the Serve deployment, without
Ray: broken rows cost only their own answer, and top-k is argsort with softmax scores."""
from __future__ import annotations

import io

import numpy as np
import pyarrow
from PIL import Image

from fastcnn.ray.images import batch_inputs
from fastcnn.ray.loading import load_everywhere_alike
from fastcnn.ray.rows import infer_rows, shape_problem, top_k_columns


def test_rows_of_each_shape_run_and_broken_rows_keep_their_error(lenet_engine):
    good = np.random.default_rng(1).standard_normal((3, 1, 32, 32)).astype(np.float32)
    inputs = [good[0], None, np.zeros((3, 32, 32), np.float32), good[1], good[2]]
    logits, errors = infer_rows(lenet_engine, inputs, ["", "not an image", "", "", ""])
    assert errors[0] == errors[3] == errors[4] == ""
    assert errors[1] == "not an image"
    assert errors[2] == "wrong shape: got 3 x 32 x 32, the model takes 1 x 32 x 32"
    assert np.isnan(logits[[1, 2]]).all()
    np.testing.assert_allclose(logits[[0, 3, 4]], lenet_engine.infer(good).numpy(), rtol=1e-5, atol=1e-6)


def test_a_dtype_the_model_refuses_is_each_rows_error(lenet_engine):
    rows = [np.zeros((1, 32, 32), np.float64)] * 2
    _, errors = infer_rows(lenet_engine, rows, ["", ""])
    assert all("float64" in error for error in errors)


def test_shape_problem_names_both_shapes(lenet_engine):
    assert shape_problem(lenet_engine, (1, 32, 32)) == ""
    assert shape_problem(lenet_engine, (32, 32)) == "wrong shape: got 32 x 32, the model takes 1 x 32 x 32"


def test_top_k_is_argsort_with_softmax_scores_and_marks_failed_rows():
    logits = np.array([[0.0, 2.0, 1.0], [np.nan] * 3], dtype=np.float32)
    columns = top_k_columns(logits, 2)
    labels, scores = columns["labels"], columns["scores"]
    assert "names" not in columns  # named only for ImageNet's 1000 classes
    assert labels.tolist() == [[1, 2], [-1, -1]]
    expected = np.exp([2.0, 1.0]) / np.exp([0.0, 2.0, 1.0]).sum()
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)
    assert np.isnan(scores[1]).all()


def test_top_k_names_imagenet_classes():
    logits = np.zeros((1, 1000), dtype=np.float32)
    logits[0, 1] = 5.0
    names = top_k_columns(logits, 1)["names"]
    assert names[0][0].startswith("goldfish")
    # one list per row, so that Arrow (Parquet) stores list<string>, not pickled objects it refuses to read
    assert str(pyarrow.array(list(names)).type) == "list<item: string>"


def test_a_zoo_name_without_weights_loads_the_same_network_every_time():
    batch = np.random.default_rng(2).standard_normal((2, 1, 32, 32)).astype(np.float32)
    first, second = (load_everywhere_alike("lenet5").infer(batch) for _ in range(2))
    np.testing.assert_array_equal(first.numpy(), second.numpy())


def _objects(arrays: list) -> np.ndarray:
    """A 1-D object array of arrays, as Ray hands over a column of differently typed images."""
    column = np.empty(len(arrays), dtype=object)
    for index, array in enumerate(arrays):
        column[index] = array
    return column


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_and_file_columns_are_preprocessed_per_row_and_failures_name_the_row(lenet_engine):
    pixels = np.random.default_rng(4).integers(0, 256, (2, 40, 36), dtype=np.uint8)
    expected = lenet_engine.preprocess(list(pixels)).numpy()
    ids = np.array(["a.png", "b.png", "c.png"], dtype=object)
    files = {"bytes": np.array([_png(pixels[0]), b"junk", _png(pixels[1])], dtype=object)}
    inputs, errors = batch_inputs(lenet_engine, files, ids)
    assert errors[0] == errors[2] == "" and errors[1].startswith("b.png: ") and "not an image" in errors[1]
    np.testing.assert_allclose(np.stack([inputs[0], inputs[2]]), expected, atol=1e-6)
    images = {"image": _objects([pixels[0], pixels[1].astype(np.float32), pixels[1]])}
    inputs, errors = batch_inputs(lenet_engine, images, ids)
    assert errors[0] == errors[2] == "" and "b.png: " in errors[1] and "uint8" in errors[1]
    np.testing.assert_allclose(np.stack([inputs[0], inputs[2]]), expected, atol=1e-6)


def test_the_engine_goes_to_cuda_exactly_when_ray_assigned_a_gpu(monkeypatch):
    from fastcnn.ray import predictor

    monkeypatch.setattr(predictor.ray, "get_gpu_ids", lambda: [0])
    assert predictor.assigned_device() == "cuda"
    monkeypatch.setattr(predictor.ray, "get_gpu_ids", lambda: [])
    assert predictor.assigned_device() == "cpu"
