"""``create_model``: build a registered model, optionally seeded and with weights."""
from __future__ import annotations

import os

import torch
from torch import nn

from fastcnn.zoo.registry import model_info
from fastcnn.zoo.weights import load_weights


def create_model(name: str, num_classes: int | None = None, weights: str | os.PathLike | None = None,
                 seed: int | None = None) -> nn.Module:
    """Build zoo model ``name`` in eval mode.

    Args:
        num_classes: classifier width; ``None`` keeps the model's own (1000 for the ImageNet
            models, 10 for LeNet-5).
        weights: a path to a state dict (torch or safetensors file), or a known weight name
            from ``model_info(name).weights``.
        seed: if given, the random initialisation is drawn from this seed without touching the
            global random state; otherwise from the global generator (``torch.manual_seed``).
    """
    info = model_info(name)
    classes = info.num_classes if num_classes is None else num_classes
    if seed is None:
        model = info.builder(num_classes=classes)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = info.builder(num_classes=classes)
    if weights is not None:
        load_weights(model, info, weights)
    return model.eval()
