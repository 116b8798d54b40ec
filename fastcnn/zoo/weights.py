"""Loading weights into zoo models: a local file, or a known name fetched once into the hub cache.

Files are read with ``torch.load(weights_only=True)`` or safetensors, never unpickled, so
a weight file cannot run code.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from fastcnn.errors import WeightsError
from fastcnn.zoo.registry import ModelInfo

StateDict = dict[str, torch.Tensor]


def resolve_weights(info: ModelInfo, weights: str | os.PathLike) -> Path:
    """The local file for ``weights``: a path as given, or a known name's file in the hub cache."""
    if str(weights) in info.weights:
        return _cached_download(info.weights[str(weights)])
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    known = ", ".join(sorted(info.weights)) or "none"
    raise WeightsError(
        f"weights {str(weights)!r} for {info.name} is neither a file nor a known name "
        f"(known names: {known})"
    )


def cache_name(url: str) -> str:
    """The file name ``url`` is cached under.

    torchvision-style URLs end in a unique, hash-stamped name, which is kept so a hub cache
    filled by torchvision is reused. Hugging Face URLs all end in ``model.safetensors``, so
    there the repository names the file.
    """
    parts = [p for p in urlparse(url).path.split("/") if p]
    if "resolve" in parts:  # https://huggingface.co/<org>/<repo>/resolve/<rev>/<file>
        return "--".join([*parts[: parts.index("resolve")], parts[-1]])
    return parts[-1]


def _cached_download(url: str) -> Path:
    """The file for ``url`` in ``$TORCH_HOME/hub/checkpoints``, downloaded only if absent."""
    cache = Path(torch.hub.get_dir()) / "checkpoints" / cache_name(url)
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(cache), progress=True)
        except Exception as exc:  # network errors come in many types
            raise WeightsError(f"could not download {url} into {cache}: {exc}") from exc
    return cache


def read_state_dict(path: Path) -> StateDict:
    """Tensors from a ``.safetensors`` file or a torch file, without unpickling code."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights from {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # training checkpoints wrap the weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return state


def load_weights(model: nn.Module, info: ModelInfo, weights: str | os.PathLike) -> None:
    """Load ``weights`` into ``model`` strictly, with a fastcnn error naming what does not fit."""
    path = resolve_weights(info, weights)
    state = read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights in {path} do not fit {info.name}: {exc}") from exc
