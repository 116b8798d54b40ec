"""SqueezeNet: AlexNet accuracy from Fire modules with 50x fewer parameters.

Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB
model size (arXiv:1602.07360). A Fire module squeezes with 1x1 convolutions, then expands with
parallel 1x1 and 3x3 convolutions whose outputs are concatenated; all are followed by ReLU.
The head is dropout 0.5, a 1x1 convolution to the classes, ReLU and global average pooling
(no fully connected layer).

``squeezenet1_0`` is the paper's network (Table 1). ``squeezenet1_1`` is SqueezeNet v1.1 from
the authors' repository (forresti/SqueezeNet): a 3x3/64 first convolution and earlier pooling,
2.4x less computation at the same accuracy. Max pooling rounds up (Caffe's ``ceil_mode``), as
in the authors' Caffe models and torchvision, whose module indices we keep. The input is
224x224 as the paper says (the Caffe models used 227; torchvision uses 224).
"""
from __future__ import annotations

from typing import Union

import torch
from torch import nn

from fastcnn.zoo.registry import register_model

PAPER = ("Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters "
         "and <0.5MB model size")
TORCHVISION_URL = "https://download.pytorch.org/models/"

POOL = "M"
FireSpec = tuple[int, int]  # (squeeze 1x1 channels, channels of each expand branch)
# version -> (first conv channels, first conv kernel, [Fire specs and pools after the first pool])
CONFIGS: dict[str, tuple[int, int, list[Union[FireSpec, str]]]] = {
    "1_0": (96, 7, [(16, 64), (16, 64), (32, 128), POOL,
                    (32, 128), (48, 192), (48, 192), (64, 256), POOL, (64, 256)]),
    "1_1": (64, 3, [(16, 64), (16, 64), POOL, (32, 128), (32, 128), POOL,
                    (48, 192), (48, 192), (64, 256), (64, 256)]),
}


class Fire(nn.Module):
    def __init__(self, in_channels: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    @property
    def out_channels(self) -> int:
        return self.expand1x1.out_channels + self.expand3x3.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze_activation(self.squeeze(x))  # N x squeeze x H x W
        return torch.cat([
            self.expand1x1_activation(self.expand1x1(s)),
            self.expand3x3_activation(self.expand3x3(s)),
        ], dim=1)  # N x 2*expand x H x W


def _max_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


def make_features(version: str) -> nn.Sequential:
    stem_channels, stem_kernel, body = CONFIGS[version]
    layers: list[nn.Module] = [nn.Conv2d(3, stem_channels, kernel_size=stem_kernel, stride=2),
                               nn.ReLU(inplace=True), _max_pool()]
    channels = stem_channels
    for spec in body:
        if spec == POOL:
            layers.append(_max_pool())
        else:
            fire = Fire(channels, *spec)
            layers.append(fire)
            channels = fire.out_channels
    return nn.Sequential(*layers)


class SqueezeNet(nn.Module):
    def __init__(self, version: str, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = make_features(version)
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
        )
        self._init_weights(final_conv)

    def _init_weights(self, final_conv: nn.Conv2d) -> None:
        """As torchvision: Kaiming-uniform convolutions, N(0, 0.01) for the class layer."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # N x 512 x 13 x 13
        x = self.classifier(x)  # N x num_classes x 1 x 1
        return torch.flatten(x, 1)  # N x num_classes


@register_model(family="squeezenet", paper=PAPER, reference="torchvision:squeezenet1_0",
                weights={"torchvision": TORCHVISION_URL + "squeezenet1_0-b66bff10.pth"})
def squeezenet1_0(num_classes: int = 1000) -> nn.Module:
    return SqueezeNet("1_0", num_classes)


@register_model(family="squeezenet", paper=PAPER, reference="torchvision:squeezenet1_1",
                weights={"torchvision": TORCHVISION_URL + "squeezenet1_1-b8a52dc0.pth"})
def squeezenet1_1(num_classes: int = 1000) -> nn.Module:
    """SqueezeNet v1.1 from the authors' repository, not in the paper."""
    return SqueezeNet("1_1", num_classes)
