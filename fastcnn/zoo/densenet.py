"""DenseNet-BC: every layer sees the concatenation of all earlier feature maps of its block.

Huang et al. 2017, Densely Connected Convolutional Networks (arXiv:1608.06993). Layer l of a
dense block receives the channel concatenation [x_0, x_1, ..., x_{l-1}] of the block input and
all earlier layers' outputs, and adds ``growth_rate`` new channels through BN-ReLU-1x1 conv
(the bottleneck, 4 * growth_rate wide) and BN-ReLU-3x3 conv. Transitions between blocks
halve the channels (compression 0.5) with BN-ReLU-1x1 conv and 2x2 average pooling. The
ImageNet networks (Table 1) have a 7x7/2 stem with max pooling, four blocks, a final BN-ReLU,
global average pooling and one linear layer.

Names follow torchvision's (``denseblockK.denselayerL.norm1``, ``transitionK``, ``norm5``), so
its state dicts load unchanged; its published weight files still use the older names
``norm.1``/``conv.2``, which ``DenseLayer`` renames on loading. torchvision's memory-saving
checkpointing is left out: this is an inference model. The concatenation is written plainly
with ``torch.cat`` on purpose; it is what an inference engine may turn into writes into
slices of one buffer.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import torch
from torch import nn

from fastcnn.zoo.registry import register_model

PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks"
TORCHVISION_URL = "https://download.pytorch.org/models/"

BOTTLENECK_FACTOR = 4  # the 1x1 bottleneck has 4k channels (DenseNet-B)
COMPRESSION = 0.5  # transitions keep half the channels (DenseNet-C)

# Old torchvision checkpoints name a dense layer's modules "norm.1", "conv.2", ...
_LEGACY_KEY = re.compile(
    r"^(norm|relu|conv)\.([12])\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


class DenseLayer(nn.Module):
    """BN-ReLU-Conv(1x1, 4k)-BN-ReLU-Conv(3x3, k) on the concatenation of its inputs."""

    def __init__(self, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        inner = BOTTLENECK_FACTOR * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, inner, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inner, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, dim=1)  # N x (c_0 + l*k) x H x W
        x = self.conv1(self.relu1(self.norm1(x)))  # N x 4k x H x W
        return self.conv2(self.relu2(self.norm2(x)))  # N x k x H x W

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            legacy = _LEGACY_KEY.match(key[len(prefix):])
            if legacy:
                module, index, tensor = legacy.groups()
                state_dict[f"{prefix}{module}{index}.{tensor}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; the output is the input and every layer's new maps."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int) -> None:
        super().__init__({
            f"denselayer{i + 1}": DenseLayer(in_channels + i * growth_rate, growth_rate)
            for i in range(num_layers)
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, dim=1)  # N x (c_0 + L*k) x H x W


class Transition(nn.Sequential):
    """BN-ReLU-Conv(1x1) to ``out_channels``, then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(in_channels),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            pool=nn.AvgPool2d(kernel_size=2, stride=2),
        ))


def make_features(growth_rate: int, block_config: tuple[int, ...],
                  stem_channels: int) -> tuple[nn.Sequential, int]:
    """The stem, dense blocks and transitions, and the final BN ``norm5``; and its width."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv0=nn.Conv2d(3, stem_channels, kernel_size=7, stride=2, padding=3, bias=False),
        norm0=nn.BatchNorm2d(stem_channels),
        relu0=nn.ReLU(inplace=True),
        pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    channels = stem_channels
    for index, num_layers in enumerate(block_config, start=1):
        layers[f"denseblock{index}"] = DenseBlock(num_layers, channels, growth_rate)
        channels += num_layers * growth_rate
        if index < len(block_config):
            reduced = int(channels * COMPRESSION)
            layers[f"transition{index}"] = Transition(channels, reduced)
            channels = reduced
    layers["norm5"] = nn.BatchNorm2d(channels)
    return nn.Sequential(layers), channels


class DenseNet(nn.Module):
    def __init__(self, growth_rate: int, block_config: tuple[int, ...], stem_channels: int,
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.features, channels = make_features(growth_rate, block_config, stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """As torchvision: Kaiming-normal (fan-in) convolutions, unit BN, zero linear bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # N x C x 7 x 7, after the final batch norm
        x = self.relu(x)
        x = torch.flatten(self.avgpool(x), 1)  # N x C
        return self.classifier(x)  # N x num_classes


# name -> (growth rate k, layers per block, stem channels 2k), Table 1 of the paper.
CONFIGS: dict[str, tuple[int, tuple[int, int, int, int], int]] = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
}


def _facts(name: str, file: str) -> dict:
    return dict(family="densenet", paper=PAPER, reference=f"torchvision:{name}",
                weights={"torchvision": TORCHVISION_URL + file})


@register_model(**_facts("densenet121", "densenet121-a639ec97.pth"))
def densenet121(num_classes: int = 1000) -> nn.Module:
    return DenseNet(*CONFIGS["densenet121"], num_classes=num_classes)


@register_model(**_facts("densenet169", "densenet169-b2777c0a.pth"))
def densenet169(num_classes: int = 1000) -> nn.Module:
    return DenseNet(*CONFIGS["densenet169"], num_classes=num_classes)


@register_model(**_facts("densenet201", "densenet201-c1103571.pth"))
def densenet201(num_classes: int = 1000) -> nn.Module:
    return DenseNet(*CONFIGS["densenet201"], num_classes=num_classes)


@register_model(**_facts("densenet161", "densenet161-8d451a50.pth"))
def densenet161(num_classes: int = 1000) -> nn.Module:
    return DenseNet(*CONFIGS["densenet161"], num_classes=num_classes)
