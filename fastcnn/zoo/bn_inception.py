"""BN-Inception: Ioffe & Szegedy 2015, "Batch Normalization" (the network of Figure 5).

GoogLeNet with batch norm after every convolution, each 5x5 convolution replaced by two 3x3,
the 28x28 stage grown to three modules (3a, 3b and 3c, which halves the grid) and the 14x14
stage ending in 4e, which halves it again; stride-2 modules have no 1x1 branch and pass
their max-pooled input through. No LRN and no dropout (the paper removes both, section
4.2.1). This is the network the ONNX model zoo calls inception_v2 and Cadene's
pretrainedmodels calls ``bninception``.

Choices, with the reason:
- Channel counts follow the columns of Figure 5. Its "output size" column says 576 for 4c
  and 4d, but their branches (160+160+160+128, 96+192+192+128) add up to 608; the released
  Caffe model, and Cadene's port of it, use 608 (so 4e gives 1056), and so do we.
- Convolutions have no bias: the paper notes that batch norm cancels it (section 3.2).
  Cadene's port keeps the Caffe model's biases, so it has 10,016 more parameters
  (11,295,240 against our 11,285,224), and its state dict (flat Caffe names) is not ours:
  ``reference`` is None. (The paper's appendix quotes 13.6M parameters; the columns of
  Figure 5 give 11.3M.)
- Batch norm eps is 1e-5, the Caffe model's.
- ``se_reduction`` turns every module into the SE-Inception module of Hu et al. 2018
  (Squeeze-and-Excitation Networks, Figure 2): squeeze-and-excitation on the module's
  concatenated output, before it is handed on.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from fastcnn.zoo.blocks import BasicConv2d, Concat, SqueezeExcite, init_weights
from fastcnn.zoo.registry import register_model

BN_EPS = 1e-5


class ModuleSpec(NamedTuple):
    """One row of Figure 5. ``ch1x1 == 0`` means no 1x1 branch; ``pool_proj == 0`` means the
    pooled input passes through unprojected (the stride-2 modules)."""

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    double3x3_reduce: int
    double3x3: int
    pool: str  # "avg" or "max"
    pool_proj: int
    stride: int = 1


FIGURE_5: dict[str, ModuleSpec] = {
    "3a": ModuleSpec(64, 64, 64, 64, 96, "avg", 32),
    "3b": ModuleSpec(64, 64, 96, 64, 96, "avg", 64),
    "3c": ModuleSpec(0, 128, 160, 64, 96, "max", 0, stride=2),
    "4a": ModuleSpec(224, 64, 96, 96, 128, "avg", 128),
    "4b": ModuleSpec(192, 96, 128, 96, 128, "avg", 128),
    "4c": ModuleSpec(160, 128, 160, 128, 160, "avg", 128),
    "4d": ModuleSpec(96, 128, 192, 160, 192, "avg", 128),
    "4e": ModuleSpec(0, 128, 192, 192, 256, "max", 0, stride=2),
    "5a": ModuleSpec(352, 192, 320, 160, 224, "avg", 128),
    "5b": ModuleSpec(352, 192, 320, 192, 224, "max", 128),
}


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> BasicConv2d:
    """Convolution, batch norm, ReLU with "same" padding (halving the grid when stride is 2)."""
    return BasicConv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                       eps=BN_EPS)


def _caffe_max_pool(stride: int) -> nn.MaxPool2d:
    """3x3 max pool; stride 1 keeps the grid, stride 2 halves it rounding up as Caffe does."""
    return nn.MaxPool2d(kernel_size=3, stride=stride, padding=1 if stride == 1 else 0,
                        ceil_mode=True)


def _pool_branch(in_channels: int, spec: ModuleSpec) -> nn.Module:
    if spec.pool_proj == 0:
        return _caffe_max_pool(spec.stride)
    pool = nn.AvgPool2d(3, stride=1, padding=1) if spec.pool == "avg" else _caffe_max_pool(1)
    return nn.Sequential(pool, _conv(in_channels, spec.pool_proj, 1))


class BNInceptionModule(nn.Module):
    """An Inception module of Figure 5, optionally followed by squeeze-and-excitation."""

    def __init__(self, in_channels: int, spec: ModuleSpec, se_reduction: int | None = None) -> None:
        super().__init__()
        branches = [] if spec.ch1x1 == 0 else [_conv(in_channels, spec.ch1x1, 1)]
        branches += [
            nn.Sequential(_conv(in_channels, spec.ch3x3_reduce, 1),
                          _conv(spec.ch3x3_reduce, spec.ch3x3, 3, spec.stride)),
            nn.Sequential(_conv(in_channels, spec.double3x3_reduce, 1),
                          _conv(spec.double3x3_reduce, spec.double3x3, 3),
                          _conv(spec.double3x3, spec.double3x3, 3, spec.stride)),
            _pool_branch(in_channels, spec),
        ]
        self.branches = Concat(*branches)
        pooled = spec.pool_proj or in_channels
        self.out_channels = spec.ch1x1 + spec.ch3x3 + spec.double3x3 + pooled
        self.se = (nn.Identity() if se_reduction is None
                   else SqueezeExcite(self.out_channels, se_reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.branches(x))


def _stage(in_channels: int, names: tuple[str, ...], se_reduction: int | None) -> nn.Sequential:
    """The modules ``names`` of Figure 5 in a row, named ``inception_3a`` and so on."""
    modules = OrderedDict()
    for name in names:
        module = BNInceptionModule(in_channels, FIGURE_5[name], se_reduction)
        modules[f"inception_{name}"] = module
        in_channels = module.out_channels
    return nn.Sequential(modules)


class BNInception(nn.Module):
    """BN-Inception for 224x224 inputs; ``se_reduction`` gives SE-BN-Inception."""

    def __init__(self, num_classes: int = 1000, se_reduction: int | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _conv(3, 64, 7, stride=2),  # N x 64 x 112 x 112
            _caffe_max_pool(2),  # N x 64 x 56 x 56
            _conv(64, 64, 1),
            _conv(64, 192, 3),  # N x 192 x 56 x 56
            _caffe_max_pool(2),  # N x 192 x 28 x 28
        )
        self.stage3 = _stage(192, ("3a", "3b", "3c"), se_reduction)
        self.stage4 = _stage(self.stage3[-1].out_channels, ("4a", "4b", "4c", "4d", "4e"),
                             se_reduction)
        self.stage5 = _stage(self.stage4[-1].out_channels, ("5a", "5b"), se_reduction)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # the paper's 7x7 average pool at 224x224
        self.fc = nn.Linear(self.stage5[-1].out_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.stem(x)  # N x 192 x 28 x 28
        x = self.stage3(x)  # N x 576 x 14 x 14
        x = self.stage4(x)  # N x 1056 x 7 x 7
        x = self.stage5(x)  # N x 1024 x 7 x 7
        x = torch.flatten(self.avgpool(x), 1)  # N x 1024
        return self.fc(x)  # N x num_classes


@register_model(
    family="inception",
    paper="Ioffe & Szegedy 2015, Batch Normalization: Accelerating Deep Network Training "
          "by Reducing Internal Covariate Shift",
    input_size=(3, 224, 224),
    reference=None,
)
def bn_inception(num_classes: int = 1000) -> nn.Module:
    return BNInception(num_classes)
