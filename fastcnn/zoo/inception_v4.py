"""Inception-v4 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", arXiv:1602.07261), and the branch machinery shared with the
Inception-ResNet models in :mod:`fastcnn.zoo.inception_resnet`.

Layout (paper Figure 9): stem (Figure 3), 4 x Inception-A (Figure 4), Reduction-A (Figure 7,
k=192, l=224, m=256, n=384 from Table 1), 7 x Inception-B (Figure 5), Reduction-B (Figure 8),
3 x Inception-C (Figure 6), global average pooling, dropout (keep 0.8), linear classifier.
Every convolution is conv-BN(eps 1e-3)-ReLU without bias, as in the authors' TF-slim release.

Deviation, for weight compatibility: module names, branch order within each concatenation and
the order of each factorised 1xn / nx1 pair follow the released TF-slim checkpoint as timm ports
it (``timm:inception_v4``), so timm's state dict loads unchanged. Where the paper's figures draw
a pair in the other order (e.g. 7x1 before 1x7) the checkpoint wins: the two orders are
different networks and only the checkpoint's has trained weights. Weights are initialised with
PyTorch's defaults, as timm does (the paper does not state an initialisation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from fastcnn.zoo.blocks import BasicConv2d
from fastcnn.zoo.registry import INCEPTION_MEAN, INCEPTION_STD, register_model

PAPER = ("Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual "
         "Connections on Learning")
Size = Union[int, tuple[int, int]]


# --- branch specifications: a branch is a tuple of layers, read left to right ---------------

@dataclass(frozen=True)
class Conv:
    """One conv-BN-ReLU unit of a branch; padding 0 is the figures' "V" (valid)."""

    out_channels: int
    kernel: Size
    stride: int = 1
    padding: Size = 0


@dataclass(frozen=True)
class MaxPool:
    """3x3 max pooling, stride 2, valid: the pooling branch of the stem and reduction blocks."""


@dataclass(frozen=True)
class AvgPool:
    """3x3 average pooling, stride 1, same-padded, padding excluded from the average (TF-slim's
    'SAME' average pooling)."""


Layer = Union[Conv, MaxPool, AvgPool]
Branch = tuple[Layer, ...]


def same(out_channels: int, kernel: Size) -> Conv:
    """A stride-1 convolution whose output grid matches its input (unmarked in the figures)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return Conv(out_channels, kernel, padding=(kh // 2, kw // 2))


def make_layer(in_channels: int, layer: Layer) -> nn.Module:
    if isinstance(layer, Conv):
        return BasicConv2d(in_channels, layer.out_channels, layer.kernel, layer.stride, layer.padding)
    if isinstance(layer, MaxPool):
        return nn.MaxPool2d(3, stride=2)
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def make_branch(in_channels: int, branch: Branch) -> tuple[nn.Module, int]:
    """The branch's module and its output width; a one-layer branch is the bare layer."""
    layers, channels = [], in_channels
    for layer in branch:
        layers.append(make_layer(channels, layer))
        if isinstance(layer, Conv):
            channels = layer.out_channels
    return (layers[0] if len(layers) == 1 else nn.Sequential(*layers)), channels


def numbered(*branches: Branch) -> dict[str, Branch]:
    """Branches named ``branch0``, ``branch1``, ... in concatenation order."""
    return {f"branch{i}": branch for i, branch in enumerate(branches)}


class ParallelBranches(nn.Module):
    """Runs named branches on the same input and concatenates their outputs along channels.

    ``kind`` names the paper's block (``"inception_a"``, ``"reduction_b"``, ...); it only labels
    the module for printing and tests.
    """

    def __init__(self, kind: str, in_channels: int, branches: dict[str, Branch]) -> None:
        super().__init__()
        self.kind = kind
        self.branch_names = tuple(branches)
        self.out_channels = 0
        for name, branch in branches.items():
            module, channels = make_branch(in_channels, branch)
            self.add_module(name, module)
            self.out_channels += channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, name)(x) for name in self.branch_names], dim=1)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, out_channels={self.out_channels}"


# --- blocks shared with Inception-ResNet -----------------------------------------------------

def stem_convs() -> list[BasicConv2d]:
    """The first three convolutions of every stem in the paper (Figures 3 and 14):
    3x3/2 32 V, 3x3 32 V, 3x3 64 same; 299x299x3 -> 147x147x64."""
    return [BasicConv2d(3, 32, 3, stride=2), BasicConv2d(32, 32, 3), BasicConv2d(32, 64, 3, padding=1)]


def reduction_a(in_channels: int, k: int, l: int, m: int, n: int) -> ParallelBranches:
    """Reduction-A (Figure 7), 35x35 -> 17x17, with the filter counts k, l, m, n of Table 1."""
    return ParallelBranches("reduction_a", in_channels, numbered(
        (Conv(n, 3, stride=2),),
        (Conv(k, 1), same(l, 3), Conv(m, 3, stride=2)),
        (MaxPool(),),
    ))


# --- Inception-v4 blocks ---------------------------------------------------------------------

def stem_tail() -> list[ParallelBranches]:
    """The three concatenating stages of Figure 3: 147x147x64 -> 35x35x384."""
    mixed_3a = ParallelBranches("mixed_3a", 64, {  # -> 73x73x160
        "maxpool": (MaxPool(),), "conv": (Conv(96, 3, stride=2),)})
    mixed_4a = ParallelBranches("mixed_4a", 160, numbered(  # -> 71x71x192
        (Conv(64, 1), Conv(96, 3)),
        (Conv(64, 1), same(64, (1, 7)), same(64, (7, 1)), Conv(96, 3)),
    ))
    mixed_5a = ParallelBranches("mixed_5a", 192, {  # -> 35x35x384
        "conv": (Conv(192, 3, stride=2),), "maxpool": (MaxPool(),)})
    return [mixed_3a, mixed_4a, mixed_5a]


def inception_a() -> ParallelBranches:
    """Inception-A (Figure 4): 35x35x384 -> 35x35x384."""
    return ParallelBranches("inception_a", 384, numbered(
        (Conv(96, 1),),
        (Conv(64, 1), same(96, 3)),
        (Conv(64, 1), same(96, 3), same(96, 3)),
        (AvgPool(), Conv(96, 1)),
    ))


def inception_b() -> ParallelBranches:
    """Inception-B (Figure 5): 17x17x1024 -> 17x17x1024."""
    return ParallelBranches("inception_b", 1024, numbered(
        (Conv(384, 1),),
        (Conv(192, 1), same(224, (1, 7)), same(256, (7, 1))),
        (Conv(192, 1), same(192, (7, 1)), same(224, (1, 7)), same(224, (7, 1)), same(256, (1, 7))),
        (AvgPool(), Conv(128, 1)),
    ))


def reduction_b() -> ParallelBranches:
    """Inception-v4's Reduction-B (Figure 8): 17x17x1024 -> 8x8x1536."""
    return ParallelBranches("reduction_b", 1024, numbered(
        (Conv(192, 1), Conv(192, 3, stride=2)),
        (Conv(256, 1), same(256, (1, 7)), same(320, (7, 1)), Conv(320, 3, stride=2)),
        (MaxPool(),),
    ))


class InceptionC(nn.Module):
    """Inception-C (Figure 6): 8x8x1536 -> 8x8x1536; two branches fork into a 1x3 and a 3x1
    convolution of the same input, so this block is not a plain set of parallel chains."""

    kind = "inception_c"

    def __init__(self, in_channels: int = 1536) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(in_channels, 256, 1)
        self.branch1_0 = BasicConv2d(in_channels, 384, 1)
        self.branch1_1a = _same_conv(384, 256, (1, 3))
        self.branch1_1b = _same_conv(384, 256, (3, 1))
        self.branch2_0 = BasicConv2d(in_channels, 384, 1)
        self.branch2_1 = _same_conv(384, 448, (3, 1))
        self.branch2_2 = _same_conv(448, 512, (1, 3))
        self.branch2_3a = _same_conv(512, 256, (1, 3))
        self.branch2_3b = _same_conv(512, 256, (3, 1))
        self.branch3 = nn.Sequential(make_layer(in_channels, AvgPool()), BasicConv2d(in_channels, 256, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.branch0(x)  # N x 256 x 8 x 8
        x1 = self.branch1_0(x)  # N x 384 x 8 x 8
        x1 = torch.cat([self.branch1_1a(x1), self.branch1_1b(x1)], dim=1)  # N x 512 x 8 x 8
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))  # N x 512 x 8 x 8
        x2 = torch.cat([self.branch2_3a(x2), self.branch2_3b(x2)], dim=1)  # N x 512 x 8 x 8
        x3 = self.branch3(x)  # N x 256 x 8 x 8
        return torch.cat([x0, x1, x2, x3], dim=1)  # N x 1536 x 8 x 8


def _same_conv(in_channels: int, out_channels: int, kernel: tuple[int, int]) -> BasicConv2d:
    return make_layer(in_channels, same(out_channels, kernel))


class InceptionV4(nn.Module):
    """Figure 9. ``features`` is flat (stem convs, stem stages, then the Inception blocks) so
    that its indices match timm's."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *stem_convs(),  # 0-2
            *stem_tail(),  # 3-5
            *[inception_a() for _ in range(4)],  # 6-9
            reduction_a(384, k=192, l=224, m=256, n=384),  # 10
            *[inception_b() for _ in range(7)],  # 11-17
            reduction_b(),  # 18
            *[InceptionC() for _ in range(3)],  # 19-21
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)  # the paper keeps 0.8 of the activations
        self.last_linear = nn.Linear(1536, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 299 x 299
        x = self.features(x)  # N x 1536 x 8 x 8
        x = torch.flatten(self.avgpool(x), 1)  # N x 1536
        return self.last_linear(self.dropout(x))  # N x num_classes


@register_model(family="inception_v4", paper=PAPER, input_size=(3, 299, 299),
                 mean=INCEPTION_MEAN, std=INCEPTION_STD, reference="timm:inception_v4",
                 weights={"timm": "https://huggingface.co/timm/inception_v4.tf_in1k/resolve/main/model.safetensors"})
def inception_v4(num_classes: int = 1000) -> nn.Module:
    return InceptionV4(num_classes)
