"""ResNet and pre-activation ResNet, from one implementation.

He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385): a 7x7 stem,
four stages of residual blocks (basic blocks of two 3x3 convolutions for 18/34 layers,
1x1-3x3-1x1 bottlenecks for 50/101/152), projection shortcuts where the shape changes
(the paper's option B), global average pooling and one fully connected layer.

He et al. 2016, Identity Mappings in Deep Residual Networks (arXiv:1603.05027): the same
network with "full pre-activation" units, BN-ReLU before each convolution and nothing after
the addition, so the shortcut path is a pure identity. As Section 4 of that paper says, the
first unit takes its activation from the stem (conv1-BN-ReLU) and has none of its own, a
projection shortcut reads the activated input, and the last unit is followed by an extra
BN-ReLU before pooling.

Deviation (default, for torchvision's weights): the paper's bottleneck strides its first 1x1
convolution; torchvision's ("ResNet v1.5") strides the 3x3 instead, which is a little more
accurate, and its weights only give its outputs with that placement. ``Bottleneck`` has a
``stride_in_1x1`` option; the ResNet builders leave it False (torchvision's placement) so that
``weights="torchvision"`` works, and SE-ResNet (senet.py) sets it True as the SENet authors did.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from fastcnn.zoo.blocks import SqueezeExcite, init_weights
from fastcnn.zoo.registry import register_model

PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition"
PREACT_PAPER = "He et al. 2016, Identity Mappings in Deep Residual Networks"
TORCHVISION_URL = "https://download.pytorch.org/models/"

STEM_CHANNELS = 64
STAGE_WIDTHS = (64, 128, 256, 512)  # bottleneck (inner) widths; outputs are width * expansion


class ConvSpec(NamedTuple):
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int

    def build(self) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         padding=self.kernel_size // 2, bias=False)


class ResidualBlock(nn.Module):
    """A residual unit: convolutions ``conv1``, ``conv2``, ... each paired with a batch norm
    ``bnK``, an optional squeeze-and-excitation gate ``se_module`` on the residual branch, and a
    shortcut that is the identity or the projection ``downsample``.

    Post-activation (ResNet): convK-bnK-ReLU, no ReLU after the last bn, ReLU after the sum.
    Pre-activation: bnK-ReLU-convK and nothing after the sum; ``bn1`` is absent when the input
    is already activated (``activate_input=False``, the first unit after the stem).
    """

    expansion = 1

    def __init__(self, convs: Sequence[ConvSpec], downsample: nn.Module | None = None, *,
                 preact: bool = False, activate_input: bool = True,
                 se_reduction: int | None = None) -> None:
        super().__init__()
        self.num_convs = len(convs)
        self.preact = preact
        for k, spec in enumerate(convs, start=1):
            if preact and (k > 1 or activate_input):
                self.add_module(f"bn{k}", nn.BatchNorm2d(spec.in_channels))
            self.add_module(f"conv{k}", spec.build())
            if not preact:
                self.add_module(f"bn{k}", nn.BatchNorm2d(spec.out_channels))
        self.relu = nn.ReLU(inplace=True)
        if se_reduction is not None:
            self.se_module = SqueezeExcite(convs[-1].out_channels, se_reduction)
        self.downsample = downsample

    def _layer(self, kind: str, k: int) -> nn.Module:
        return getattr(self, f"{kind}{k}")

    def _gate(self, x: torch.Tensor) -> torch.Tensor:
        return self.se_module(x) if hasattr(self, "se_module") else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_preact(x) if self.preact else self._forward_postact(x)

    def _forward_postact(self, x: torch.Tensor) -> torch.Tensor:
        out = x  # N x C_in x H x W
        for k in range(1, self.num_convs + 1):
            out = self._layer("bn", k)(self._layer("conv", k)(out))
            if k < self.num_convs:
                out = self.relu(out)
        out = self._gate(out)  # N x C_out x H/stride x W/stride
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)

    def _forward_preact(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.bn1(x)) if hasattr(self, "bn1") else x  # N x C_in x H x W
        # A projection reads the activated input; an identity carries x unchanged (2016, Sec. 4).
        shortcut = x if self.downsample is None else self.downsample(activated)
        out = self.conv1(activated)
        for k in range(2, self.num_convs + 1):
            out = self._layer("conv", k)(self.relu(self._layer("bn", k)(out)))
        out = self._gate(out)  # N x C_out x H/stride x W/stride
        return out + shortcut


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34); the first one strides."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None, **options) -> None:
        super().__init__([ConvSpec(in_channels, width, 3, stride), ConvSpec(width, width, 3, 1)],
                         downsample, **options)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101/152).

    ``stride_in_1x1=True`` strides the first 1x1 as in the paper and the SENet authors' models;
    False strides the 3x3 as torchvision does ("v1.5"), which its weights need.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None, *, stride_in_1x1: bool = False,
                 **options) -> None:
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        super().__init__([ConvSpec(in_channels, width, 1, stride_1x1),
                          ConvSpec(width, width, 3, stride_3x3),
                          ConvSpec(width, width * self.expansion, 1, 1)],
                         downsample, **options)


def projection_shortcut(in_channels: int, out_channels: int, stride: int,
                        preact: bool) -> nn.Sequential:
    """The 1x1 projection (option B); pre-activation units leave out its batch norm because
    the sum is normalised by the next unit's first BN."""
    conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
    return nn.Sequential(conv) if preact else nn.Sequential(conv, nn.BatchNorm2d(out_channels))


def make_stage(block: type[ResidualBlock], in_channels: int, width: int, depth: int,
               stride: int, *, preact: bool = False, activate_first_input: bool = True,
               **block_options) -> nn.Sequential:
    """``depth`` blocks; the first strides and projects when the shape changes."""
    out_channels = width * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = projection_shortcut(in_channels, out_channels, stride, preact)
    first = block(in_channels, width, stride, downsample, preact=preact,
                  activate_input=activate_first_input, **block_options)
    rest = [block(out_channels, width, 1, None, preact=preact, **block_options)
            for _ in range(depth - 1)]
    return nn.Sequential(first, *rest)


class ResNet(nn.Module):
    """Stem, stages ``layer1``-``layer4``, pooled linear head; names follow torchvision.

    Subclasses with another naming (timm's legacy SENet) override ``build_stem``/``stem`` and
    ``build_head``/``head``; the stages are shared.
    """

    def __init__(self, block: type[ResidualBlock], depths: Sequence[int], num_classes: int = 1000,
                 *, preact: bool = False, **block_options) -> None:
        super().__init__()
        self.preact = preact
        self.build_stem()
        channels = STEM_CHANNELS
        for index, (depth, width) in enumerate(zip(depths, STAGE_WIDTHS), start=1):
            stage = make_stage(block, channels, width, depth, stride=1 if index == 1 else 2,
                               preact=preact, activate_first_input=index > 1, **block_options)
            self.add_module(f"layer{index}", stage)
            channels = width * block.expansion
        self.build_head(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal (fan-out) convolutions and unit batch norms, as torchvision."""
        init_weights(self)

    def build_stem(self) -> None:
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # N x 64 x 112 x 112
        return self.maxpool(x)  # N x 64 x 56 x 56

    def build_head(self, channels: int, num_classes: int) -> None:
        if self.preact:
            self.final_bn = nn.BatchNorm2d(channels)  # the extra activation after the last unit
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            x = self.relu(self.final_bn(x))
        x = torch.flatten(self.avgpool(x), 1)  # N x C
        return self.fc(x)  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # N x 64 x 56 x 56 (e = block expansion below)
        x = self.layer1(x)  # N x 64e x 56 x 56
        x = self.layer2(x)  # N x 128e x 28 x 28
        x = self.layer3(x)  # N x 256e x 14 x 14
        x = self.layer4(x)  # N x 512e x 7 x 7
        return self.head(x)


# depth -> (block, blocks per stage), Table 1 of the 2015 paper.
CONFIGS: dict[int, tuple[type[ResidualBlock], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet(depth: int, num_classes: int = 1000, **options) -> ResNet:
    block, depths = CONFIGS[depth]
    return ResNet(block, depths, num_classes, **options)


def _torchvision(name: str, file: str) -> dict:
    return dict(reference=f"torchvision:{name}", weights={"torchvision": TORCHVISION_URL + file})


@register_model(family="resnet", paper=PAPER, **_torchvision("resnet18", "resnet18-f37072fd.pth"))
def resnet18(num_classes: int = 1000) -> nn.Module:
    return resnet(18, num_classes)


@register_model(family="resnet", paper=PAPER, **_torchvision("resnet34", "resnet34-b627a593.pth"))
def resnet34(num_classes: int = 1000) -> nn.Module:
    return resnet(34, num_classes)


@register_model(family="resnet", paper=PAPER, **_torchvision("resnet50", "resnet50-0676ba61.pth"))
def resnet50(num_classes: int = 1000) -> nn.Module:
    return resnet(50, num_classes)


@register_model(family="resnet", paper=PAPER,
                **_torchvision("resnet101", "resnet101-63fe2227.pth"))
def resnet101(num_classes: int = 1000) -> nn.Module:
    return resnet(101, num_classes)


@register_model(family="resnet", paper=PAPER,
                **_torchvision("resnet152", "resnet152-394f9c45.pth"))
def resnet152(num_classes: int = 1000) -> nn.Module:
    return resnet(152, num_classes)


@register_model(family="resnet", paper=PREACT_PAPER)
def preact_resnet18(num_classes: int = 1000) -> nn.Module:
    return resnet(18, num_classes, preact=True)


@register_model(family="resnet", paper=PREACT_PAPER)
def preact_resnet50(num_classes: int = 1000) -> nn.Module:
    """Pre-activation bottlenecks stride the first 1x1, as the 2016 paper's released code
    (KaimingHe/resnet-1k-layers) does; no library weights exist to favour torchvision's choice."""
    return resnet(50, num_classes, preact=True, stride_in_1x1=True)
