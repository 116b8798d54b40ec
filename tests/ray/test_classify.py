"""fastcnn.ray.classify over image files on a local Ray: a few hundred generated PNGs give the
answers engine.preprocess + engine.infer give on the same images, and a corrupt file among them
is that row's error, not the job's death."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastcnn
import fastcnn.ray
from fastcnn.preprocess import decode_image
from tests.ray.conftest import bounded

IMAGES = 240


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Grayscale and colour PNGs of a few sizes (each resized and cropped to 32 x 32 by the
    model's preprocessing), and one file that is not an image."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        shape = (36 + i % 5, 40, 3) if i % 2 else (32 + i % 7, 33)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"img-{i:03d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


def test_files_give_engine_answers_and_a_corrupt_file_is_its_rows_error(local_ray, lenet_file, lenet_engine,
                                                                       image_folder, tmp_path):
    # two actors of half a CPU each: the local instance's other CPU reads and writes
    answers = bounded(lambda: fastcnn.ray.classify(image_folder, str(lenet_file), top_k=None, actors=2,
                                                   cpus_per_actor=0.5, write_to=tmp_path / "answers"))
    rows = {Path(row["path"]).name: row for row in bounded(answers.take_all)}
    assert len(rows) == IMAGES + 1
    assert "broken.png" in rows["broken.png"]["error"] and "not an image" in rows["broken.png"]["error"]
    assert np.isnan(rows["broken.png"]["logits"]).all()
    names = [f"img-{i:03d}.png" for i in range(IMAGES)]
    assert all(rows[name]["error"] == "" for name in names)
    batch = lenet_engine.preprocess([decode_image(image_folder / name) for name in names])
    np.testing.assert_allclose(np.stack([rows[name]["logits"] for name in names]),
                               lenet_engine.infer(batch).numpy(), rtol=1e-5, atol=1e-5)


def test_a_pool_that_takes_every_cpu_is_refused_before_it_hangs(local_ray, lenet_file, image_folder):
    with pytest.raises(fastcnn.InputError, match="leaving none to read and write with"):
        fastcnn.ray.classify(image_folder, str(lenet_file), actors=2)
