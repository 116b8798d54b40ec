"""GoogLeNet: Szegedy et al. 2014, "Going Deeper with Convolutions" (Table 1, Figure 3).

The network of the paper's Table 1 as the BVLC Caffe model built it: convolutions with bias
and ReLU, no batch norm, local response normalisation after the first max pool and after the
3x3 stem convolution (size 5, alpha 1e-4, beta 0.75, k 1; Caffe and PyTorch both divide
alpha by the size), max pools that round up as Caffe's do so that the maps are
112-56-28-14-7 at 224x224, global average pooling, 40% dropout and a linear classifier.

Deviations, with the reason:
- The two auxiliary classifiers of Figure 3 are training-only (the paper discards them at
  inference time), so the inference model leaves them out.
- No library ships this network: torchvision's ``googlenet`` adds batch norm and uses a 3x3
  where the paper has the 5x5 branch, so there is no reference state dict to load.
"""
from __future__ import annotations

import torch
from torch import nn

from fastcnn.zoo.blocks import Concat, ConvReLU, LocalResponseNorm
from fastcnn.zoo.registry import register_model

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj of each Inception module.
TABLE_1: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _caffe_max_pool() -> nn.MaxPool2d:
    """3x3 stride-2 max pool that rounds up, as Caffe's pooling layers do."""
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


def _lrn() -> nn.LocalResponseNorm:
    return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)


class InceptionModule(Concat):
    """The Inception module with dimension reductions (Figure 2b): four branches whose outputs
    are concatenated: 1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max pool then 1x1 projection."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3_reduce: int, ch3x3: int,
                 ch5x5_reduce: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__(
            ConvReLU(in_channels, ch1x1, kernel_size=1),
            nn.Sequential(ConvReLU(in_channels, ch3x3_reduce, kernel_size=1),
                          ConvReLU(ch3x3_reduce, ch3x3, kernel_size=3, padding=1)),
            nn.Sequential(ConvReLU(in_channels, ch5x5_reduce, kernel_size=1),
                          ConvReLU(ch5x5_reduce, ch5x5, kernel_size=5, padding=2)),
            nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
                          ConvReLU(in_channels, pool_proj, kernel_size=1)),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj


class GoogLeNet(nn.Module):
    """GoogLeNet for 224x224 inputs, without the training-only auxiliary classifiers."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.4) -> None:
        super().__init__()
        self.conv1 = ConvReLU(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = _caffe_max_pool()
        self.lrn1 = _lrn()
        self.conv2 = ConvReLU(64, 64, kernel_size=1)
        self.conv3 = ConvReLU(64, 192, kernel_size=3, padding=1)
        self.lrn2 = _lrn()
        self.maxpool2 = _caffe_max_pool()
        self.inception3a = InceptionModule(192, *TABLE_1["3a"])
        self.inception3b = InceptionModule(self.inception3a.out_channels, *TABLE_1["3b"])
        self.maxpool3 = _caffe_max_pool()
        self.inception4a = InceptionModule(self.inception3b.out_channels, *TABLE_1["4a"])
        self.inception4b = InceptionModule(self.inception4a.out_channels, *TABLE_1["4b"])
        self.inception4c = InceptionModule(self.inception4b.out_channels, *TABLE_1["4c"])
        self.inception4d = InceptionModule(self.inception4c.out_channels, *TABLE_1["4d"])
        self.inception4e = InceptionModule(self.inception4d.out_channels, *TABLE_1["4e"])
        self.maxpool4 = _caffe_max_pool()
        self.inception5a = InceptionModule(self.inception4e.out_channels, *TABLE_1["5a"])
        self.inception5b = InceptionModule(self.inception5a.out_channels, *TABLE_1["5b"])
        # At 224x224 this is the paper's 7x7 stride-1 average pool.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(self.inception5b.out_channels, num_classes)
        _init_like_bvlc(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.conv1(x)  # N x 64 x 112 x 112
        x = self.lrn1(self.maxpool1(x))  # N x 64 x 56 x 56
        x = self.conv2(x)  # N x 64 x 56 x 56
        x = self.lrn2(self.conv3(x))  # N x 192 x 56 x 56
        x = self.maxpool2(x)  # N x 192 x 28 x 28
        x = self.inception3a(x)  # N x 256 x 28 x 28
        x = self.inception3b(x)  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14
        x = self.inception4a(x)  # N x 512 x 14 x 14
        x = self.inception4b(x)  # N x 512 x 14 x 14
        x = self.inception4c(x)  # N x 512 x 14 x 14
        x = self.inception4d(x)  # N x 528 x 14 x 14
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7
        x = self.inception5a(x)  # N x 832 x 7 x 7
        x = self.inception5b(x)  # N x 1024 x 7 x 7
        x = torch.flatten(self.avgpool(x), 1)  # N x 1024
        return self.fc(self.dropout(x))  # N x num_classes


def _init_like_bvlc(model: nn.Module) -> None:
    """The BVLC model's fillers: Caffe "xavier" weights (uniform, variance 1/fan_in), which
    is Kaiming-uniform with a linear gain; convolution biases 0.2, classifier bias 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")
            nn.init.constant_(m.bias, 0.2 if isinstance(m, nn.Conv2d) else 0.0)


@register_model(
    family="inception",
    paper="Szegedy et al. 2014, Going Deeper with Convolutions",
    input_size=(3, 224, 224),
    reference=None,
)
def googlenet(num_classes: int = 1000) -> nn.Module:
    return GoogLeNet(num_classes)
