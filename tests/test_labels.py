"""Class names and top-k: the shipped ImageNet names, and top_classes on logits made by hand."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastcnn.errors import InputError
from fastcnn.labels import Prediction, imagenet_class_names, top_classes


def test_the_imagenet_names_ship_with_fastcnn_in_index_order():
    names = imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) == 999  # WordNet names two synsets "crane" (bird, machine)
    assert names[0] == "tench, Tinca tinca" and names[207] == "golden retriever"
    assert names[999] == "toilet tissue, toilet paper, bathroom tissue"


def test_the_names_are_package_data_for_a_non_editable_install():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()  # no tomllib on 3.10
    assert '[tool.setuptools.package-data]\nfastcnn = ["data/*.txt"]' in pyproject


def test_top_classes_are_the_most_probable_first_and_named_for_1000_classes():
    logits = torch.zeros(2, 1000)
    logits[0, 207], logits[0, 1] = 5.0, 4.0
    logits[1, 999] = 3.0
    rows = top_classes(logits, k=2)
    assert [p.index for p in rows[0]] == [207, 1] and rows[1][0].index == 999
    assert rows[0][0].name == "golden retriever" and rows[0][0].probability > rows[0][1].probability
    assert sum(p.probability for p in top_classes(logits, k=1000)[0]) == pytest.approx(1.0, abs=1e-4)
    assert str(rows[0][0]).endswith(" 207  golden retriever")


def test_other_class_counts_are_named_by_index_and_k_is_capped():
    rows = top_classes(torch.tensor([[0.0, 2.0, 1.0]]), k=5)
    assert [p.index for p in rows[0]] == [1, 2, 0] and rows[0][0].name is None
    assert str(Prediction(1, 0.5)).endswith("class 1")


@pytest.mark.parametrize("logits, k, message", [
    (torch.zeros(1000), 5, r"N x classes, got \(1000,\)"),
    ([[1.0]], 5, "got list"),
    (torch.zeros(1, 10), 0, "k >= 1, got 0"),
])
def test_bad_logits_or_k_are_input_errors(logits, k, message):
    with pytest.raises(InputError, match=message):
        top_classes(logits, k)
