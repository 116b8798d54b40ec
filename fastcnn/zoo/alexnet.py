"""AlexNet: Krizhevsky, Sutskever and Hinton 2012, "ImageNet classification with deep
convolutional neural networks"; and the AlexNet-style builder that ZFNet (zfnet.py) shares.

The paper's network, split over two GPUs, is built as one model: the layers that only see
their own GPU's half of the previous layer (conv2, conv4, conv5) are grouped convolutions
with ``groups=2``; conv3 and the fully connected layers see both halves. Widths are the
paper's 96-256-384-384-256 filters and 4096-4096 hidden units (Section 3.5, Figure 2).

* Local response normalisation (Section 3.3: n = 5, alpha = 1e-4, beta = 0.75, k = 2) follows
  the ReLU of conv1 and conv2; overlapping 3x3 stride-2 max pooling (Section 3.4) follows both
  normalisations and conv5. PyTorch, ONNX, Caffe and cuda-convnet divide alpha by n in the
  sum; the paper's formula writes alpha without the division. We pass the paper's 1e-4 to the
  common convention, as Caffe's published AlexNet did.
* Dropout (p = 0.5) on the outputs of the first two fully connected layers (Section 4.2).
* Input 3 x 227 x 227: the paper's 224 does not give its 55 x 55 first-layer maps with an
  11 x 11 stride-4 convolution; 227 does (a well-known inconsistency).
* Initialisation (Section 5): weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the
  hidden fully connected layers, 0 elsewhere.

No library ships this network: torchvision's ``alexnet`` is the one-GPU variant of
Krizhevsky 2014 (64-192-384-256-256 filters, no LRN, no groups), so ``reference`` is None.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from fastcnn.zoo.blocks import LocalResponseNorm
from fastcnn.zoo.registry import register_model


@dataclass(frozen=True)
class ConvLayer:
    """One convolutional layer of an AlexNet-style network, with what follows its ReLU."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    normalize: bool = False  # local response normalisation
    pool: bool = False  # overlapping 3x3 stride-2 max pooling


@dataclass(frozen=True)
class AlexNetConfig:
    conv_layers: tuple[ConvLayer, ...]
    pool_before_norm: bool = False  # ZFNet pools, then normalises; AlexNet the other way round
    pool_ceil_mode: bool = False  # round pooled sizes up, as Caffe does
    feature_size: int = 6  # side of the last pooled feature map
    hidden: int = 4096
    dropout: float = 0.5
    unit_bias_layers: frozenset[str] = frozenset()  # layers whose biases start at 1


ALEXNET = AlexNetConfig(
    conv_layers=(
        ConvLayer(96, 11, stride=4, normalize=True, pool=True),  # 96 x 55 x 55 -> 27 x 27
        ConvLayer(256, 5, padding=2, groups=2, normalize=True, pool=True),  # 256 x 27 x 27 -> 13
        ConvLayer(384, 3, padding=1),  # 384 x 13 x 13, sees both halves
        ConvLayer(384, 3, padding=1, groups=2),  # 384 x 13 x 13
        ConvLayer(256, 3, padding=1, groups=2, pool=True),  # 256 x 13 x 13 -> 6 x 6
    ),
    unit_bias_layers=frozenset({"conv2", "conv4", "conv5", "fc6", "fc7"}),
)


def local_response_norm() -> nn.LocalResponseNorm:
    """Krizhevsky et al.'s cross-map normalisation: n = 5, alpha = 1e-4, beta = 0.75, k = 2."""
    return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _layer_tail(index: int, layer: ConvLayer, config: AlexNetConfig) -> list[tuple[str, nn.Module]]:
    """The modules after conv ``index`` and its ReLU: normalisation and pooling, in order."""
    norm = [(f"norm{index}", local_response_norm())] if layer.normalize else []
    pool = [(f"pool{index}", nn.MaxPool2d(3, stride=2, ceil_mode=config.pool_ceil_mode))
            ] if layer.pool else []
    return pool + norm if config.pool_before_norm else norm + pool


def build_features(config: AlexNetConfig, in_channels: int = 3) -> nn.Sequential:
    """``conv1, relu1, [norm1], [pool1], conv2, ...`` as one named sequence."""
    layers: list[tuple[str, nn.Module]] = []
    for index, layer in enumerate(config.conv_layers, start=1):
        conv = nn.Conv2d(in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                         layer.padding, groups=layer.groups)
        layers += [(f"conv{index}", conv), (f"relu{index}", nn.ReLU(inplace=True))]
        layers += _layer_tail(index, layer, config)
        in_channels = layer.out_channels
    return nn.Sequential(OrderedDict(layers))


def build_classifier(config: AlexNetConfig, num_classes: int) -> nn.Sequential:
    """``fc6, relu6, drop6, fc7, relu7, drop7, fc8``: dropout on the hidden layers' outputs."""
    in_features = config.conv_layers[-1].out_channels * config.feature_size**2
    return nn.Sequential(OrderedDict([
        ("fc6", nn.Linear(in_features, config.hidden)),
        ("relu6", nn.ReLU(inplace=True)),
        ("drop6", nn.Dropout(config.dropout)),
        ("fc7", nn.Linear(config.hidden, config.hidden)),
        ("relu7", nn.ReLU(inplace=True)),
        ("drop7", nn.Dropout(config.dropout)),
        ("fc8", nn.Linear(config.hidden, num_classes)),
    ]))


class AlexNet(nn.Module):
    """An AlexNet-style network: named convolutional ``features``, then a 3-layer ``classifier``."""

    def __init__(self, config: AlexNetConfig = ALEXNET, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = build_features(config)
        self.classifier = build_classifier(config, num_classes)
        self._init_weights(config.unit_bias_layers)

    def _init_weights(self, unit_bias_layers: frozenset[str]) -> None:
        """Weights N(0, 0.01) everywhere; biases 1 in ``unit_bias_layers``, else 0."""
        for part in (self.features, self.classifier):
            for name, module in part.named_children():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.normal_(module.weight, 0.0, 0.01)
                    nn.init.constant_(module.bias, 1.0 if name in unit_bias_layers else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # AlexNet: N x 3 x 227 x 227; ZFNet: N x 3 x 224 x 224
        x = self.features(x)  # N x 256 x 6 x 6
        x = torch.flatten(x, 1)  # N x 9216
        return self.classifier(x)  # N x num_classes


@register_model(
    family="alexnet",
    paper="Krizhevsky et al. 2012, ImageNet classification with deep convolutional neural networks",
    input_size=(3, 227, 227),
)
def alexnet(num_classes: int = 1000) -> nn.Module:
    return AlexNet(ALEXNET, num_classes)
