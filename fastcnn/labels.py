"""Logits out, class names in: the top-k classes of each row, named where the classes are ImageNet's.

The 1000 ImageNet-1k names ship with fastcnn (``fastcnn/data/imagenet_classes.txt``, made from
timm's WordNet lemmas by ``tools/make_imagenet_classes.py``), so naming a class needs no network.
A model with another number of classes gets its classes by index only.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import torch

from fastcnn.errors import InputError

IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Prediction:
    """One of an image's top classes: its index, its softmax probability, its name (or None)."""

    index: int
    probability: float
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.probability:6.1%}  {self.index:4d}  {self.name or f'class {self.index}'}"


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names (WordNet lemmas, e.g. ``"tench, Tinca tinca"``), by index."""
    text = resources.files("fastcnn").joinpath("data", "imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.split("\t", 1)[1] for line in text.splitlines() if line and not line.startswith("#"))
    assert len(names) == IMAGENET_CLASSES, f"fastcnn/data/imagenet_classes.txt has {len(names)} names"
    return names


def top_classes(logits: torch.Tensor, k: int = 5) -> list[list[Prediction]]:
    """The ``k`` most probable classes of each row of ``logits`` (N x classes), most probable
    first, named with :func:`imagenet_class_names` when there are 1000 classes."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] == 0:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"top_classes takes logits of shape N x classes, got {shape}")
    if k < 1:
        raise InputError(f"top_classes needs k >= 1, got {k}")
    names = imagenet_class_names() if logits.shape[1] == IMAGENET_CLASSES else None
    probabilities, indices = logits.detach().float().softmax(dim=1).topk(min(k, logits.shape[1]), dim=1)
    return [[Prediction(i, p, names[i] if names else None) for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)]
            for row_p, row_i in zip(probabilities, indices, strict=True)]
