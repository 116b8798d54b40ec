"""fastcnn.ray.Predictor on a local Ray Data actor pool: the same answers as engine.infer, every
row exactly once even when an actor dies mid-job, and broken rows reported per row."""
from __future__ import annotations

import os

import numpy as np
import pytest
import ray

from fastcnn.ray import Predictor
from tests.ray.conftest import bounded

ROWS = 300


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((ROWS, 1, 32, 32)).astype(np.float32)


def _dataset(inputs: np.ndarray) -> "ray.data.Dataset":
    # string ids: the output is matched to the input by id, never by position
    ids = [f"row-{i:03d}" for i in range(len(inputs))]
    return ray.data.from_items([{"id": ids[i], "input": inputs[i]} for i in range(len(inputs))])


def _run(dataset, predictor=Predictor, actors=2, **kwargs) -> list[dict]:
    mapped = dataset.map_batches(predictor, fn_constructor_kwargs=kwargs, batch_size=32, batch_format="numpy",
                                 compute=ray.data.ActorPoolStrategy(size=actors))
    rows = bounded(mapped.take_all)
    return sorted(rows, key=lambda row: row["id"])


@pytest.mark.slow  # the files-in test (test_classify.py) checks the same on 240 images in CI
def test_logits_equal_engine_infer(local_ray, lenet_file, lenet_engine, inputs):
    rows = _run(_dataset(inputs), model=str(lenet_file))
    assert [row["id"] for row in rows] == [f"row-{i:03d}" for i in range(ROWS)]
    assert all(row["error"] == "" for row in rows)
    expected = lenet_engine.infer(inputs).numpy()
    np.testing.assert_allclose(np.stack([row["logits"] for row in rows]), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # top_k itself is tested without Ray (test_rows.py); this is its column plumbing
def test_top_k_labels_and_scores(local_ray, lenet_file, lenet_engine, inputs):
    rows = _run(_dataset(inputs[:64]), actors=1, model=str(lenet_file), top_k=3)
    expected = np.argsort(-lenet_engine.infer(inputs[:64]).numpy(), axis=1)[:, :3]
    np.testing.assert_array_equal(np.stack([row["labels"] for row in rows]), expected)
    scores = np.stack([row["scores"] for row in rows])
    assert np.all(np.diff(scores, axis=1) <= 0) and np.all((scores > 0) & (scores < 1))


class _DiesOnce(Predictor):
    """Exits its process abruptly on its first batch of the job (a crash, not an exception),
    once per job: the marker file is created before dying, so the restarted actor carries on."""

    def __init__(self, marker: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.marker = marker

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().__call__(batch)


def test_killed_actor_is_replaced_and_no_row_is_lost_or_repeated(local_ray, lenet_file, lenet_engine, inputs,
                                                                 tmp_path):
    marker = tmp_path / "died"
    rows = _run(_dataset(inputs), predictor=_DiesOnce, marker=str(marker), model=str(lenet_file))
    assert marker.exists(), "no actor died: the test proved nothing"
    ids = [row["id"] for row in rows]
    assert ids == [f"row-{i:03d}" for i in range(ROWS)]  # sorted, so a repeat or a gap shows here
    expected = lenet_engine.infer(inputs).numpy()
    np.testing.assert_allclose(np.stack([row["logits"] for row in rows]), expected, rtol=1e-5, atol=1e-5)


def test_broken_rows_are_reported_per_row(local_ray, lenet_file, lenet_engine, inputs):
    rows = [{"id": f"row-{i}", "input": inputs[i], "error": ""} for i in range(8)]
    rows[2]["error"] = "cannot decode cat.jpg: truncated"
    rows[5]["input"] = np.zeros((1, 28, 28), np.float32)  # a row of another shape
    answers = _run(ray.data.from_items(rows), actors=1, model=str(lenet_file))
    by_id = {row["id"]: row for row in answers}
    assert by_id["row-2"]["error"] == "cannot decode cat.jpg: truncated"
    assert "wrong shape: got 1 x 28 x 28, the model takes 1 x 32 x 32" in by_id["row-5"]["error"]
    assert np.isnan(by_id["row-5"]["logits"]).all()
    good = [i for i in range(8) if i not in (2, 5)]
    assert all(by_id[f"row-{i}"]["error"] == "" for i in good)
    np.testing.assert_allclose(np.stack([by_id[f"row-{i}"]["logits"] for i in good]),
                               lenet_engine.infer(inputs[good]).numpy(), rtol=1e-5, atol=1e-5)
