"""Images in: decoding files with Pillow, and each model's preprocessing into an NCHW batch.

This sits above the runtime, beside ``api``: ``fastcnn.load`` attaches a :class:`Preprocessing`
to the engine it builds, and ``engine.preprocess(images)`` calls it. The runtime never imports
Pillow.

The convention is the one torchvision and timm evaluate ImageNet models with: resize so that
the image covers the crop divided by :data:`CROP_RATIO` (0.875, i.e. the shorter side to 256
for a 224 x 224 crop, to 342 for 299), bilinear with antialiasing (Pillow's), take the centre
crop, scale to [0, 1] and normalise with the model's mean and std.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fastcnn.errors import InputError
from fastcnn.zoo.registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo

# The crop covers this share of the resized image's shorter side (224 / 256).
CROP_RATIO = 0.875
# Pillow's own decompression-bomb threshold (about 89.5 megapixels, 268 MiB as RGB): fastcnn
# refuses larger images before decoding them, whatever Pillow's global setting is.
MAX_PIXELS = 89_478_485
# Pillow modes that name a colour layout fastcnn can convert; others are refused.
_CHANNEL_MODES = {1: "L", 3: "RGB"}


def decode_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS,
                 name: str | None = None) -> Image.Image:
    """The image in a file (path) or in its bytes, decoded by Pillow, EXIF rotation applied.
    ``name`` is what error messages call it (default: the path, or "the image bytes").

    Only the header is read before the size check, so a small file that claims a huge image
    (a decompression bomb) costs no memory. The first frame of an animation is taken.

    Raises:
        InputError: naming the file when it is missing, not an image Pillow can read,
            truncated, or larger than ``max_pixels``.
    """
    if name is None:
        name = "the image bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        with warnings.catch_warnings():  # Pillow warns of a bomb it still opens; the check below refuses it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(_as_file(source, name))
        with image:
            _check_pixels(image, name, max_pixels)
            image.load()
            return ImageOps.exif_transpose(image)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:  # past twice Pillow's limit, refused by Pillow itself
        raise InputError(f"{name} is too large to decode ({exc})") from None
    except UnidentifiedImageError:  # Pillow's own text names a BytesIO object for bytes
        raise InputError(f"{name} is not an image (no format Pillow reads)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise InputError(f"cannot decode {name}: {exc}") from None


def _as_file(source: Any, name: str) -> Any:
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source)
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"decode_image takes a path or bytes, got {type(source).__name__}")
    if not Path(source).is_file():
        raise InputError(f"{name}: no such file")
    return source


def _check_pixels(image: Image.Image, name: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise InputError(f"{name} is {width} x {height} = {width * height} pixels, more than the "
                         f"{max_pixels} fastcnn decodes (a decompression bomb, or an image to shrink first)")


@dataclass(frozen=True)
class Preprocessing:
    """Decoded images -> a normalised float32 NCHW batch of ``height`` x ``width`` crops.

    ``channels`` is 3 (every image converted to RGB: grayscale replicated, alpha dropped) or
    1 (converted to grayscale, for LeNet-5). Call it with one image or a sequence of them:
    PIL images, or uint8 arrays H x W (grayscale) or H x W x C with C = 1, 3 or 4 (RGBA).
    """

    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 3
    crop_ratio: float = CROP_RATIO

    @classmethod
    def for_model(cls, info: ModelInfo) -> "Preprocessing":
        """The zoo model's own: its input size, mean and std (``fastcnn.model_info``)."""
        channels, height, width = info.input_size
        return cls(height, width, tuple(info.mean), tuple(info.std), channels)

    @classmethod
    def for_input_shape(cls, shape: Sequence[int | str]) -> "Preprocessing":
        """For a model known only by its NCHW input shape (an ONNX file): its height and width,
        ImageNet's mean and std (what nearly every ImageNet-trained file expects; check yours).

        Raises:
            InputError: the height or width is symbolic, or the channel count is not 1 or 3.
        """
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
            raise InputError(f"preprocessing needs an N x C x H x W input with a fixed channel count, height and "
                             f"width; this model's input is {' x '.join(map(str, shape))}: resize the images "
                             "yourself and call engine.infer")
        channels, height, width = shape[1:]
        if channels not in _CHANNEL_MODES:
            raise InputError(f"preprocessing makes images of 1 or 3 channels; this model's input has {channels}")
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
        return cls(height, width, mean, std, channels)

    @property
    def resize_to(self) -> tuple[int, int]:
        """The (height, width) box the image is resized to cover before the centre crop."""
        return round(self.height / self.crop_ratio), round(self.width / self.crop_ratio)

    def __call__(self, images: Any) -> torch.Tensor:
        """The batch, N x channels x height x width, float32."""
        images = _as_list(images)
        arrays = [self._one(to_pil(image, index)) for index, image in enumerate(images)]
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # N x C x H x W
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((batch - mean) / std).contiguous()

    def _one(self, image: Image.Image) -> np.ndarray:
        """One image resized, centre-cropped, in [0, 1], H x W x C."""
        image = _convert(image, _CHANNEL_MODES[self.channels])
        image = self._resize(image)
        image = self._centre_crop(image)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return array[:, :, None] if array.ndim == 2 else array

    def _resize(self, image: Image.Image) -> Image.Image:
        """Scaled (aspect kept) so that it just covers :attr:`resize_to`."""
        box_h, box_w = self.resize_to
        scale = max(box_h / image.height, box_w / image.width)
        size = (max(self.width, round(image.width * scale)), max(self.height, round(image.height * scale)))
        return image.resize(size, Image.Resampling.BILINEAR)

    def _centre_crop(self, image: Image.Image) -> Image.Image:
        # torchvision's rounding, so both crop the same pixels
        top = int(round((image.height - self.height) / 2.0))
        left = int(round((image.width - self.width) / 2.0))
        return image.crop((left, top, left + self.width, top + self.height))


def _as_list(images: Any) -> list:
    """One image or many, as a list; a 4-D uint8 array is a batch of H x W x C images."""
    if isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
        return [images]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, (str, bytes, os.PathLike)) or not isinstance(images, Sequence):
        raise InputError(f"preprocess takes PIL images or uint8 H x W x C arrays (one, or a list of them), "
                         f"got {type(images).__name__}" + _decode_hint(images))
    if len(images) == 0:
        raise InputError("preprocess got an empty list of images")
    return list(images)


def _decode_hint(images: Any) -> str:
    if isinstance(images, (str, bytes, os.PathLike)):
        return "; decode files first with fastcnn.preprocess.decode_image(path)"
    return ""


def to_pil(image: Any, index: int = 0) -> Image.Image:
    """A PIL image from a PIL image or a uint8 array (H x W, or H x W x C with C = 1, 3, 4)."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        raise InputError(f"image {index} is a torch tensor; preprocess takes PIL images or uint8 H x W x C NumPy "
                         "arrays (a batch already preprocessed goes straight to engine.infer)")
    if not isinstance(image, np.ndarray):
        raise InputError(f"image {index}: expected a PIL image or a uint8 NumPy array, got "
                         f"{type(image).__name__}" + _decode_hint(image))
    if image.dtype != np.uint8:
        raise InputError(f"image {index}: expected a uint8 array (0-255), got {image.dtype}; e.g. "
                         "(array * 255).round().astype(np.uint8) for an image in [0, 1]")
    return Image.fromarray(_as_hwc(image, index))


def _as_hwc(image: np.ndarray, index: int) -> np.ndarray:
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)):
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    hint = " (it looks channels-first: use array.transpose(1, 2, 0))" if image.ndim == 3 and image.shape[0] in (
        1, 3, 4) else ""
    raise InputError(f"image {index}: expected H x W or H x W x C with C = 1, 3 or 4, got shape "
                     f"{tuple(image.shape)}{hint}")


def _convert(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode``; 16-bit grayscale (Pillow's ``I;16`` and ``I``, as from a 16-bit PNG)
    is scaled to 8 bits first, where a plain convert would clip it to white."""
    if image.mode == mode:
        return image
    if image.mode.startswith("I"):
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 256).clip(0, 255).astype(np.uint8))
    try:
        return image.convert(mode)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot convert a {image.mode!r} image to {mode}: {exc}") from None


@dataclass(frozen=True)
class NoPreprocessing:
    """Stands in for :class:`Preprocessing` on an engine whose model does not say how to make
    its input from an image; calling it raises the reason."""

    reason: str

    def __call__(self, images: Any) -> torch.Tensor:
        raise InputError(self.reason)


def preprocessing_for(info: ModelInfo | None, input_shape: Sequence[int | str]) -> Preprocessing | NoPreprocessing:
    """A zoo model's own preprocessing, else one for its fixed input shape (ImageNet mean and
    std), else the reason there is none (a symbolic height or width)."""
    if info is not None:
        return Preprocessing.for_model(info)
    try:
        return Preprocessing.for_input_shape(input_shape)
    except InputError as exc:
        return NoPreprocessing(str(exc))
