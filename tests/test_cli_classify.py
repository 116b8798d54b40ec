"""`fastcnn classify`: top classes per image file from the model with the given weights, ImageNet
names for 1000 classes, and a file that is not an image reported without stopping the others."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import fastcnn
from fastcnn.cli import main
from fastcnn.labels import imagenet_class_names, top_classes
from fastcnn.preprocess import Preprocessing


def _images(folder) -> list[str]:
    rng = np.random.default_rng(0)
    paths = [folder / "noise.jpg", folder / "red.png"]
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(paths[0])
    Image.new("RGB", (256, 200), (200, 30, 30)).save(paths[1])
    return [str(p) for p in paths]


def _expected_top(model: str, weights, paths: list[str], k: int) -> list[list[int]]:
    """The top classes the zoo model in PyTorch gives the same preprocessed images."""
    batch = Preprocessing.for_model(fastcnn.model_info(model))([Image.open(p) for p in paths])
    with torch.no_grad():
        logits = fastcnn.create_model(model, weights=weights)(batch)
    return [[p.index for p in row] for row in top_classes(logits, k)]


def test_classify_names_imagenet_classes_and_reports_a_bad_file_without_stopping(tmp_path, capsys):
    weights = tmp_path / "squeezenet.pth"
    torch.save(fastcnn.create_model("squeezenet1_1", seed=0).state_dict(), weights)
    (tmp_path / "notes.jpg").write_text("not an image")
    noise, red = _images(tmp_path)
    code = main(["classify", "squeezenet1_1", noise, str(tmp_path / "notes.jpg"), red, "--weights", str(weights),
                 "--top", "3", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "notes.jpg is not an image" in err and "1 of 3 files could not be classified" in err
    blocks = out.split(f"{red}:\n")
    assert blocks[0].startswith(f"{noise}:\n") and len(blocks) == 2
    names = imagenet_class_names()
    for block, expected in zip(blocks, _expected_top("squeezenet1_1", weights, [noise, red], 3), strict=True):
        lines = block.strip().splitlines()[-3:]
        assert [int(line.split()[1]) for line in lines] == expected
        assert [line.split(maxsplit=2)[2] for line in lines] == [names[i] for i in expected]


def test_classify_numbers_classes_of_a_model_without_1000(tmp_path, capsys):
    weights = tmp_path / "lenet.pth"
    torch.save(fastcnn.create_model("lenet5", seed=1).state_dict(), weights)
    paths = _images(tmp_path)
    assert main(["classify", "lenet5", *paths, "--weights", str(weights), "--top", "2", "--backend", "torch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{paths[0]}:" and lines[3] == f"{paths[1]}:"
    expected = _expected_top("lenet5", weights, paths, 2)
    assert [[int(line.split()[1]) for line in lines[i + 1:i + 3]] for i in (0, 3)] == expected
    assert lines[1].endswith(f"class {expected[0][0]}")
