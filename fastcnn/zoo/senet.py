"""SENet: SE-ResNet-50/101 and SE-BN-Inception, squeeze-and-excitation on shared blocks.

Hu et al. 2018, Squeeze-and-Excitation Networks (arXiv:1709.01507): each bottleneck's residual
branch is rescaled channel-wise by sigmoid(W2 ReLU(W1 avgpool(x))) with reduction r = 16,
before the addition to the shortcut.

The stages are resnet.py's (``Bottleneck`` with ``se_reduction``); only the stem and head are
named differently, after timm's legacy SENet, whose weights descend from the authors' Caffe
models: the stem is ``layer0`` (conv1, bn1, relu1) then ``pool0``, the classifier
``last_linear``. As in those models the bottleneck strides its first 1x1 convolution (the
original ResNet placement), and the stem's max pooling has no padding but rounds up
(Caffe's ``ceil_mode``), which gives the same 56x56 map as ResNet's padded pooling but not
the same values.

SE-BN-Inception is bn_inception.py's network with an SE gate on every Inception module's
concatenated output (the paper's Figure 2).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from fastcnn.zoo.bn_inception import BNInception
from fastcnn.zoo.registry import register_model
from fastcnn.zoo.resnet import STEM_CHANNELS, Bottleneck, ResNet

PAPER = "Hu et al. 2018, Squeeze-and-Excitation Networks"
TIMM_URL = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/"
SE_REDUCTION = 16


class SEResNet(ResNet):
    """ResNet with an SE gate in every bottleneck, named like timm's ``legacy_seresnet*``."""

    def __init__(self, depths: Sequence[int], num_classes: int = 1000,
                 reduction: int = SE_REDUCTION) -> None:
        super().__init__(Bottleneck, depths, num_classes, stride_in_1x1=True,
                         se_reduction=reduction)

    def build_stem(self) -> None:
        self.layer0 = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(3, STEM_CHANNELS, kernel_size=7, stride=2, padding=3, bias=False),
            bn1=nn.BatchNorm2d(STEM_CHANNELS),
            relu1=nn.ReLU(inplace=True),
        ))
        self.pool0 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer0(x)  # N x 64 x 112 x 112
        return self.pool0(x)  # N x 64 x 56 x 56

    def build_head(self, channels: int, num_classes: int) -> None:
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.last_linear = nn.Linear(channels, num_classes)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.global_pool(x), 1)  # N x 2048
        return self.last_linear(x)  # N x num_classes


@register_model(family="senet", paper=PAPER, reference="timm:legacy_seresnet50",
                weights={"timm": TIMM_URL + "se_resnet50-ce0d4300.pth"})
def se_resnet50(num_classes: int = 1000) -> nn.Module:
    return SEResNet((3, 4, 6, 3), num_classes)


@register_model(family="senet", paper=PAPER, reference="timm:legacy_seresnet101",
                weights={"timm": TIMM_URL + "se_resnet101-7e38fcc6.pth"})
def se_resnet101(num_classes: int = 1000) -> nn.Module:
    return SEResNet((3, 4, 23, 3), num_classes)


@register_model(family="senet", paper=PAPER)
def se_bn_inception(num_classes: int = 1000) -> nn.Module:
    """SE-BN-Inception (Hu et al. 2018, Figure 2): SE on every Inception module's output."""
    return BNInception(num_classes, se_reduction=16)
