"""The model registry: a plain dict from name to :class:`ModelInfo`, filled by a decorator.

Each family module decorates its builders with :func:`register_model`, stating the
facts a user needs before building the model (input size, normalisation, paper),
so that :func:`list_models` and :func:`model_info` never construct a network.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from fastcnn.errors import UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # Inception v3/v4 and Inception-ResNet scale inputs to [-1, 1]
INCEPTION_STD = (0.5, 0.5, 0.5)

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a zoo model without building it."""

    name: str
    family: str
    paper: str
    builder: Builder
    input_size: tuple[int, int, int] = (3, 224, 224)  # C, H, W
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    num_classes: int = 1000
    # Library model whose state dict this one loads unchanged, e.g. "torchvision:resnet50".
    reference: str | None = None
    # Known weight names -> download URL; fetched once into the torch hub cache.
    weights: dict[str, str] = field(default_factory=dict)


_MODELS: dict[str, ModelInfo] = {}


def register_model(*, family: str, paper: str, **facts) -> Callable[[Builder], Builder]:
    """Register ``builder(num_classes) -> nn.Module`` under its function name."""

    def decorator(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelInfo(name=name, family=family, paper=paper, builder=builder, **facts)
        return builder

    return decorator


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a shell-style pattern."""
    names = sorted(_MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def model_info(name: str) -> ModelInfo:
    """The facts registered for ``name``, spelled in any case and with or without separators
    (``ResNet-50``, ``inception_v3``, ``InceptionV3`` all name zoo models)."""
    if not isinstance(name, str):
        raise UnknownModelError(f"a model name is a string such as 'resnet50', not {type(name).__name__}")
    if name in _MODELS:
        return _MODELS[name]
    spelled = {_squash(known): known for known in _MODELS}
    if _squash(name) in spelled:
        return _MODELS[spelled[_squash(name)]]
    close = difflib.get_close_matches(_squash(name), spelled, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(spelled[c]) for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}{hint} (fastcnn.list_models() lists all {len(_MODELS)})")


def _squash(name: str) -> str:
    """``name`` lower-cased with everything but letters and digits left out."""
    return "".join(ch for ch in name.lower() if ch.isalnum())
