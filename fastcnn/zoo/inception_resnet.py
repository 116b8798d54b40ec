"""Inception-ResNet-v1 and -v2 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", arXiv:1602.07261), built from one residual block
class and one network class, parameterised by :class:`InceptionResNetSpec`.

An Inception-ResNet block (Figures 10-13, 16-17, 19) runs parallel conv-BN-ReLU branches,
concatenates them, projects back to the input width with a 1x1 convolution that has a bias and
neither batch norm nor activation ("Linear"), and adds the result, scaled down, to its input:
``relu(x + scale * conv1x1(branches(x)))``. Section 3.3 scales residuals by 0.1-0.3; both models
use the released v2 constants 0.17 (A), 0.10 (B), 0.20 (C). Batch norm eps is 1e-3.

``inception_resnet_v1`` follows the paper: stem of Figure 14, 5 x Inception-ResNet-A
(Figure 10), Reduction-A with k=192, l=192, m=256, n=384 (Figure 7, Table 1), 10 x
Inception-ResNet-B (Figure 11), Reduction-B (Figure 12), 5 x Inception-ResNet-C (Figure 13, all
with the ReLU after the addition), average pooling, dropout (keep 0.8), linear classifier. The
paper gives no residual scale for v1; we take the v2 release's. No library ships this network,
so its weights are random (PyTorch's default initialisation).

``inception_resnet_v2`` follows the authors' released TF-slim model
(``inception_resnet_v2_2016_08_30``), which timm ports (``timm:inception_resnet_v2``), so that
timm's state dict loads unchanged. The release deviates from the paper's figures:

* stem: instead of Figure 3's stem (the Inception-v4 stem, 35x35x384) it uses Figure 14's
  first six layers (3x3/2 32 V, 3x3 32 V, 3x3 64, max pool, 1x1 80, 3x3 192 V), a max pool to
  35x35x192 and an Inception-A-like block ``mixed_5b`` (1x1 96 | 1x1 48, 5x5 64 |
  1x1 64, 3x3 96, 3x3 96 | avg pool, 1x1 64) giving 35x35x320;
* widths therefore differ from Figures 16-19: the residual stages run at 320, 1088 and 2080
  channels instead of 384, 1152 (Reduction-A's output; Figure 17's 1x1 says 1154) and 2146;
* block counts are 10 / 20 / 10 instead of Figure 15's 5 / 10 / 5;
* the last Inception-ResNet-C block (``block8``) adds its residual unscaled (scale 1.0, not
  0.20) and has no ReLU after the addition, and a 1x1 conv-BN-ReLU to 1536 channels
  (``conv2d_7b``) precedes the average pooling; none of this is in the paper.
Within blocks, the release's branch order and 1xn / nx1 order are kept.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from fastcnn.zoo.blocks import BasicConv2d
from fastcnn.zoo.inception_v4 import (
    PAPER, AvgPool, Branch, Conv, MaxPool, ParallelBranches, numbered, reduction_a, same, stem_convs,
)
from fastcnn.zoo.registry import INCEPTION_MEAN, INCEPTION_STD, register_model

NamedLayers = list[tuple[str, nn.Module]]


class InceptionResNetBlock(ParallelBranches):
    """``x + scale * conv2d(concat(branches(x)))``, then ReLU unless ``relu`` is False.

    The residual add is a plain expression on fresh tensors (no in-place ops) so that later
    rewrites can fuse it into the 1x1 convolution's epilogue.
    """

    def __init__(self, kind: str, in_channels: int, branches: tuple[Branch, ...], scale: float,
                 relu: bool = True) -> None:
        super().__init__(kind, in_channels, numbered(*branches))
        self.scale = scale
        self.conv2d = nn.Conv2d(self.out_channels, in_channels, kernel_size=1)  # "Linear"
        self.act = nn.ReLU() if relu else nn.Identity()
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv2d(super().forward(x))  # N x C x H x W
        return self.act(x + self.scale * residual)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}"


@dataclass(frozen=True)
class ResidualStage:
    """``repeats`` Inception-ResNet blocks of one kind (A, B or C)."""

    branches: tuple[Branch, ...]
    scale: float
    repeats: int


@dataclass(frozen=True)
class InceptionResNetSpec:
    stem: Callable[[], NamedLayers]  # 299x299x3 -> 35x35x stem_channels
    stem_channels: int
    stage_a: ResidualStage
    reduction_a: tuple[int, int, int, int]  # k, l, m, n of Table 1
    stage_b: ResidualStage
    reduction_b: tuple[int, int, int, int]  # widths of the three strided 3x3 convs (Figure 12)
    stage_c: ResidualStage
    # The release's final C block ("block8"): unscaled residual (scale 1.0) and no ReLU after
    # the addition; None for none (all C blocks alike, as in the paper).
    final_block_scale: float | None
    head_channels: int | None  # the release's 1x1 conv2d_7b before pooling; None: no such conv


def stem_base() -> NamedLayers:
    """Figure 14's first six layers, shared by both stems: 299x299x3 -> 71x71x192."""
    conv1, conv2, conv3 = stem_convs()
    return [
        ("conv2d_1a", conv1),  # 149x149x32
        ("conv2d_2a", conv2),  # 147x147x32
        ("conv2d_2b", conv3),  # 147x147x64
        ("maxpool_3a", nn.MaxPool2d(3, stride=2)),  # 73x73x64
        ("conv2d_3b", BasicConv2d(64, 80, 1)),  # 73x73x80
        ("conv2d_4a", BasicConv2d(80, 192, 3)),  # 71x71x192
    ]


def stem_v1() -> NamedLayers:
    """Figure 14: a strided 3x3 conv ends the stem at 35x35x256."""
    return [*stem_base(), ("conv2d_4b", BasicConv2d(192, 256, 3, stride=2))]


def stem_v2_released() -> NamedLayers:
    """The released v2 stem: max pool, then an Inception-A-like block; 35x35x320."""
    mixed_5b = ParallelBranches("mixed_5b", 192, numbered(
        (Conv(96, 1),),
        (Conv(48, 1), same(64, 5)),
        (Conv(64, 1), same(96, 3), same(96, 3)),
        (AvgPool(), Conv(64, 1)),
    ))
    return [*stem_base(), ("maxpool_5a", nn.MaxPool2d(3, stride=2)), ("mixed_5b", mixed_5b)]


def residual_reduction_b(in_channels: int, widths: tuple[int, int, int, int]) -> ParallelBranches:
    """Reduction-B of the Inception-ResNets (Figures 12 and 18): 17x17 -> 8x8."""
    a, b, c, d = widths
    return ParallelBranches("reduction_b", in_channels, numbered(
        (Conv(256, 1), Conv(a, 3, stride=2)),
        (Conv(256, 1), Conv(b, 3, stride=2)),
        (Conv(256, 1), same(c, 3), Conv(d, 3, stride=2)),
        (MaxPool(),),
    ))


def residual_stage(kind: str, channels: int, stage: ResidualStage, count: int) -> nn.Sequential:
    return nn.Sequential(*[InceptionResNetBlock(kind, channels, stage.branches, stage.scale)
                           for _ in range(count)])


class InceptionResNet(nn.Sequential):
    """Stem, residual stages A / B / C with the reductions between them, and the head, as one
    sequence of named layers (the names are the released v2 model's, as timm keeps them)."""

    def __init__(self, spec: InceptionResNetSpec, num_classes: int = 1000, dropout: float = 0.2) -> None:
        layers = OrderedDict(spec.stem())  # N x stem_channels x 35 x 35
        channels = spec.stem_channels
        layers["repeat"] = residual_stage("block35", channels, spec.stage_a, spec.stage_a.repeats)
        layers["mixed_6a"] = reduction_a(channels, *spec.reduction_a)  # 17 x 17
        channels = layers["mixed_6a"].out_channels
        layers["repeat_1"] = residual_stage("block17", channels, spec.stage_b, spec.stage_b.repeats)
        layers["mixed_7a"] = residual_reduction_b(channels, spec.reduction_b)  # 8 x 8
        channels = layers["mixed_7a"].out_channels
        c = spec.stage_c
        final_scale = spec.final_block_scale
        layers["repeat_2"] = residual_stage("block8", channels, c, c.repeats - (final_scale is not None))
        if final_scale is not None:
            layers["block8"] = InceptionResNetBlock("block8", channels, c.branches, final_scale, relu=False)
        if spec.head_channels is not None:
            layers["conv2d_7b"] = BasicConv2d(channels, spec.head_channels, 1)
            channels = spec.head_channels
        layers["avgpool"] = nn.AdaptiveAvgPool2d(1)  # N x C x 1 x 1
        layers["flatten"] = nn.Flatten(1)  # N x C
        layers["dropout"] = nn.Dropout(dropout)  # the paper keeps 0.8 of the activations
        layers["classif"] = nn.Linear(channels, num_classes)  # N x num_classes
        super().__init__(layers)


INCEPTION_RESNET_V1 = InceptionResNetSpec(
    stem=stem_v1, stem_channels=256,
    stage_a=ResidualStage(  # Figure 10
        ((Conv(32, 1),), (Conv(32, 1), same(32, 3)), (Conv(32, 1), same(32, 3), same(32, 3))),
        scale=0.17, repeats=5),
    reduction_a=(192, 192, 256, 384),  # -> 896
    stage_b=ResidualStage(  # Figure 11
        ((Conv(128, 1),), (Conv(128, 1), same(128, (1, 7)), same(128, (7, 1)))),
        scale=0.10, repeats=10),
    reduction_b=(384, 256, 256, 256),  # Figure 12 -> 1792
    stage_c=ResidualStage(  # Figure 13
        ((Conv(192, 1),), (Conv(192, 1), same(192, (1, 3)), same(192, (3, 1)))),
        scale=0.20, repeats=5),
    final_block_scale=None, head_channels=None,
)

INCEPTION_RESNET_V2_RELEASED = InceptionResNetSpec(
    stem=stem_v2_released, stem_channels=320,
    stage_a=ResidualStage(  # Figure 16
        ((Conv(32, 1),), (Conv(32, 1), same(32, 3)), (Conv(32, 1), same(48, 3), same(64, 3))),
        scale=0.17, repeats=10),
    reduction_a=(256, 256, 384, 384),  # -> 1088
    stage_b=ResidualStage(  # Figure 17
        ((Conv(192, 1),), (Conv(128, 1), same(160, (1, 7)), same(192, (7, 1)))),
        scale=0.10, repeats=20),
    reduction_b=(384, 288, 288, 320),  # Figure 18 -> 2080
    stage_c=ResidualStage(  # Figure 19
        ((Conv(192, 1),), (Conv(192, 1), same(224, (1, 3)), same(256, (3, 1)))),
        scale=0.20, repeats=10),
    final_block_scale=1.0, head_channels=1536,
)


@register_model(family="inception_resnet", paper=PAPER, input_size=(3, 299, 299),
                mean=INCEPTION_MEAN, std=INCEPTION_STD, reference=None)
def inception_resnet_v1(num_classes: int = 1000) -> nn.Module:
    return InceptionResNet(INCEPTION_RESNET_V1, num_classes)


@register_model(family="inception_resnet", paper=PAPER, input_size=(3, 299, 299),
                mean=INCEPTION_MEAN, std=INCEPTION_STD, reference="timm:inception_resnet_v2",
                weights={"timm": "https://huggingface.co/timm/inception_resnet_v2.tf_in1k/resolve/main/model.safetensors"})
def inception_resnet_v2(num_classes: int = 1000) -> nn.Module:
    return InceptionResNet(INCEPTION_RESNET_V2_RELEASED, num_classes)
