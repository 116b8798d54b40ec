"""Network in Network: Lin, Chen and Yan 2013, "Network in network".

The ImageNet model the authors released for Caffe (``nin_imagenet``): four mlpconv blocks,
each a spatial convolution followed by two 1x1 convolutions (the paper's "cascaded cross
channel parametric pooling", cccp), with a ReLU after every convolution:

    mlpconv1  96 maps, 11x11 stride 4   3 x 224 x 224 -> 96 x 54 x 54, pool -> 27 x 27
    mlpconv2  256 maps, 5x5 pad 2       -> 256 x 27 x 27, pool -> 13 x 13
    mlpconv3  384 maps, 3x3 pad 1       -> 384 x 13 x 13, pool -> 6 x 6, dropout 0.5
    mlpconv4  1024 maps, 3x3 pad 1, then 1024, then one map per class -> classes x 6 x 6

then global average pooling gives the class scores: there is no fully connected layer.
Pooling is 3x3 stride 2 max pooling with Caffe's rounding up (ceil mode), which gives the
6 x 6 maps that Caffe's final 6x6 average pooling expects; we pool globally, which is the
same on 6 x 6 maps and is the paper's formulation. As in the Caffe model, a ReLU also
follows the last (class map) convolution, so the scores are non-negative.

Initialisation is the Caffe model's: weights N(0, sigma) with sigma per layer as in its
prototxt (0.01 or 0.05), biases 0. The Caffe model takes mean-subtracted 0-255 BGR inputs;
without weights to match, we register the usual ImageNet RGB normalisation. No library ships
NiN, so ``reference`` is None.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from fastcnn.zoo.registry import register_model


@dataclass(frozen=True)
class MlpConvSpec:
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    init_std: tuple[float, float, float] = (0.05, 0.05, 0.05)  # conv, cccp1, cccp2


# The Caffe model's blocks; the last block's cccp2 has one map per class.
NIN_BLOCKS = (
    MlpConvSpec(96, 11, stride=4, init_std=(0.01, 0.05, 0.05)),  # 96 x 54 x 54
    MlpConvSpec(256, 5, padding=2),  # 256 x 27 x 27
    MlpConvSpec(384, 3, padding=1, init_std=(0.01, 0.05, 0.05)),  # 384 x 13 x 13
    MlpConvSpec(1024, 3, padding=1, init_std=(0.05, 0.05, 0.01)),  # 1024 x 6 x 6
)


class MlpConv(nn.Sequential):
    """A spatial convolution and two 1x1 convolutions (``conv``, ``cccp1``, ``cccp2``), each with a ReLU."""

    def __init__(self, in_channels: int, spec: MlpConvSpec, out_channels: int | None = None) -> None:
        width = spec.out_channels
        out_channels = width if out_channels is None else out_channels
        super().__init__(OrderedDict([
            ("conv", nn.Conv2d(in_channels, width, spec.kernel_size, spec.stride, spec.padding)),
            ("relu0", nn.ReLU(inplace=True)),
            ("cccp1", nn.Conv2d(width, width, kernel_size=1)),
            ("relu1", nn.ReLU(inplace=True)),
            ("cccp2", nn.Conv2d(width, out_channels, kernel_size=1)),
            ("relu2", nn.ReLU(inplace=True)),
        ]))
        for conv, std in zip((self.conv, self.cccp1, self.cccp2), spec.init_std):
            nn.init.normal_(conv.weight, 0.0, std)
            nn.init.zeros_(conv.bias)


def _max_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


def build_features(num_classes: int, blocks: tuple[MlpConvSpec, ...] = NIN_BLOCKS,
                   dropout: float = 0.5) -> nn.Sequential:
    """``mlpconv1, pool1, ..., pool3, drop3, mlpconv4``: the last block maps to the classes."""
    layers: list[tuple[str, nn.Module]] = []
    in_channels = 3
    for index, spec in enumerate(blocks, start=1):
        is_last = index == len(blocks)
        layers.append((f"mlpconv{index}", MlpConv(in_channels, spec, num_classes if is_last else None)))
        if not is_last:
            layers.append((f"pool{index}", _max_pool()))
        in_channels = spec.out_channels
    # The Caffe model drops out once, between the third pooling and the last block.
    layers.insert(len(layers) - 1, (f"drop{len(blocks) - 1}", nn.Dropout(dropout)))
    return nn.Sequential(OrderedDict(layers))


class NiN(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = build_features(num_classes)
        self.global_pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.features(x)  # N x num_classes x 6 x 6
        x = self.global_pool(x)  # N x num_classes x 1 x 1
        return torch.flatten(x, 1)  # N x num_classes


@register_model(
    family="nin",
    paper="Lin et al. 2013, Network in network",
    input_size=(3, 224, 224),
)
def nin(num_classes: int = 1000) -> nn.Module:
    return NiN(num_classes)
