"""VGG: stacks of 3x3 convolutions.

Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition
(arXiv:1409.1556): five stages of 3x3 convolutions (stride 1, padding 1) with ReLU, each
closed by 2x2 max pooling, then three fully connected layers (4096, 4096, classes) with
dropout 0.5 after the first two. Configurations A, B, D and E of Table 1 give VGG-11/13/16/19;
configuration C (with 1x1 convolutions) and the LRN variant A-LRN are not built. The ``_bn``
variants add batch norm after every convolution, as torchvision does (the paper predates BN).

Module indices follow torchvision's ``features``/``classifier`` sequences, so its state dicts
load unchanged. Unlike torchvision there is no adaptive pooling before the classifier: the
paper's network takes a 224x224 crop, whose final map is already 7x7, and at that size the
adaptive pooling is the identity.
"""
from __future__ import annotations

import torch
from torch import nn

from fastcnn.zoo.blocks import init_weights
from fastcnn.zoo.registry import register_model

PAPER = ("Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image "
         "Recognition")
TORCHVISION_URL = "https://download.pytorch.org/models/"

STAGE_WIDTHS = (64, 128, 256, 512, 512)
# depth -> 3x3 convolutions per stage (Table 1: A, B, D, E).
CONVS_PER_STAGE = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
FINAL_MAP = 7  # 224 / 2**5
HIDDEN = 4096


def make_features(convs_per_stage: tuple[int, ...], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for count, width in zip(convs_per_stage, STAGE_WIDTHS):
        for _ in range(count):
            layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            in_channels = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, depth: int, batch_norm: bool = False, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = make_features(CONVS_PER_STAGE[depth], batch_norm)
        self.classifier = nn.Sequential(
            nn.Linear(STAGE_WIDTHS[-1] * FINAL_MAP * FINAL_MAP, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(HIDDEN, num_classes),
        )
        init_weights(self)  # Kaiming convolutions, N(0, 0.01) linear layers, as torchvision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # N x 512 x 7 x 7
        x = torch.flatten(x, 1)  # N x 25088
        return self.classifier(x)  # N x num_classes


def _facts(name: str, file: str) -> dict:
    return dict(family="vgg", paper=PAPER, reference=f"torchvision:{name}",
                weights={"torchvision": TORCHVISION_URL + file})


@register_model(**_facts("vgg11", "vgg11-8a719046.pth"))
def vgg11(num_classes: int = 1000) -> nn.Module:
    return VGG(11, False, num_classes)


@register_model(**_facts("vgg11_bn", "vgg11_bn-6002323d.pth"))
def vgg11_bn(num_classes: int = 1000) -> nn.Module:
    return VGG(11, True, num_classes)


@register_model(**_facts("vgg13", "vgg13-19584684.pth"))
def vgg13(num_classes: int = 1000) -> nn.Module:
    return VGG(13, False, num_classes)


@register_model(**_facts("vgg13_bn", "vgg13_bn-abd245e5.pth"))
def vgg13_bn(num_classes: int = 1000) -> nn.Module:
    return VGG(13, True, num_classes)


@register_model(**_facts("vgg16", "vgg16-397923af.pth"))
def vgg16(num_classes: int = 1000) -> nn.Module:
    return VGG(16, False, num_classes)


@register_model(**_facts("vgg16_bn", "vgg16_bn-6c64b313.pth"))
def vgg16_bn(num_classes: int = 1000) -> nn.Module:
    return VGG(16, True, num_classes)


@register_model(**_facts("vgg19", "vgg19-dcbb9e9d.pth"))
def vgg19(num_classes: int = 1000) -> nn.Module:
    return VGG(19, False, num_classes)


@register_model(**_facts("vgg19_bn", "vgg19_bn-c79401a0.pth"))
def vgg19_bn(num_classes: int = 1000) -> nn.Module:
    return VGG(19, True, num_classes)
