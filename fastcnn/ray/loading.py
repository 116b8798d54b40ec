"""Loading one model in many processes (Ray actors, Serve replicas) so that all agree.

A zoo name without ``weights=`` is built with random weights drawn from the global torch
generator, so two actors would each hold a different network and a job's answers would depend
on which actor ran a row. Here such a model is drawn from seed 0 (in a forked generator, the
process's own random state untouched): every actor holds the same random network, which is
what trying out a pipeline without a weight file needs.
"""
from __future__ import annotations

from typing import Any

import torch

import fastcnn

SEED = 0


def load_everywhere_alike(model: Any, **load_options: Any) -> Any:
    """``fastcnn.load(model, **load_options)``, with a zoo model's random weights from seed 0."""
    if load_options.get("weights") is None and _is_zoo_name(model):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            return fastcnn.load(model, **load_options)
    return fastcnn.load(model, **load_options)


def _is_zoo_name(model: Any) -> bool:
    if not isinstance(model, str) or model.endswith(".onnx"):
        return False
    try:
        fastcnn.model_info(model)
    except fastcnn.UnknownModelError:
        return False
    return True
