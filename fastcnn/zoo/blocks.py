"""Building blocks shared by several families.

Submodule names (``conv``, ``bn``, ``fc1``, ``fc2``) follow torchvision and timm, so
that the families built from these blocks load those libraries' state dicts unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm, ReLU: the unit of the BN-Inception line.

    ``eps=1e-3`` is what the Inception v3/v4 papers' TensorFlow models used; torchvision and
    timm keep it, and so do we.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 eps: float = 1e-3, momentum: float = 0.1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ConvReLU(nn.Sequential):
    """Convolution with bias followed by ReLU: the unit of the pre-batch-norm networks
    (AlexNet, ZFNet, NiN, GoogLeNet)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups),
            nn.ReLU(inplace=True),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): channel gates from globally pooled features.

    The two fully connected layers are 1x1 convolutions named ``fc1``/``fc2``, as in
    timm's legacy SENet, whose checkpoints descend from the authors' Caffe models.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean((2, 3), keepdim=True)  # N x C x 1 x 1
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(gate))))
        return x * gate


class _LRNFunction(torch.autograd.Function):
    """Local response normalisation that the ONNX exporter writes as one ``LRN`` node.

    ``F.local_response_norm`` is composed in Python from padding, pooling and powers, so the
    TorchScript exporter would spell it as a dozen nodes (an ``If`` among them). Both define
    ``b_c = a_c / (k + alpha/n * sum of a^2 over the n channels around c)^beta``.
    """

    @staticmethod
    def forward(ctx, x, size: int, alpha: float, beta: float, k: float):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size: int, alpha: float, beta: float, k: float):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` that exports to ONNX as a single ``LRN`` node."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting() or not torch.onnx.is_in_onnx_export():
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)


class Concat(nn.Module):
    """Runs each branch on the same input and concatenates the results along channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def init_weights(model: nn.Module) -> nn.Module:
    """Kaiming-normal convolutions, small normal linear layers, unit batch norms.

    Families whose papers prescribe their own initialisation override this; what matters for
    fastcnn is that it is deterministic under ``torch.manual_seed``.

    Squeeze-excite gates keep PyTorch's default fan-in uniform initialisation, as the
    ``nn.Linear`` layers they stand for would: Kaiming-normal there drives a random deep
    SE network's sigmoids so hard that float32 rounding grows to 1e-4 in the logits.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():  # after the loop above, which visits the gates' convs too
        if isinstance(m, SqueezeExcite):
            m.fc1.reset_parameters()
            m.fc2.reset_parameters()
    return model
