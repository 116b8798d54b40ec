"""Inception v3: Szegedy et al. 2015, "Rethinking the Inception Architecture for Computer
Vision", as released by its authors in TensorFlow and ported by torchvision.

The layout is the released model's, whose state dict torchvision's ``inception_v3`` holds and
ours loads unchanged (same module names: ``Conv2d_1a_3x3``, ``Mixed_5b``, ``branch1x1``...).
Where the release differs from the paper's Table 1, we follow the release, since its weights
are the ones anybody runs:
- the stem ends with a 1x1 (80) and a 3x3 (192) convolution and a max pool, not the
  paper's three 3x3 convolutions;
- the 35x35 modules keep one 5x5 branch beside the two stacked 3x3 of Figure 5;
- there are three 35x35, four 17x17 (Figure 6, n = 7; Table 1 says five) and two 8x8
  (Figure 7) modules, with the grid reductions of Figure 10 between them;
- batch norm eps is 1e-3, TensorFlow's;
- the 3x3 average pools count the zero padding in the average, as torchvision's port does
  (TensorFlow's SAME pooling does not; the two differ only on the border).

The auxiliary classifier on the 17x17 grid is training-only; the default inference model has
none, yet loads checkpoints that carry one (see :meth:`InceptionV3._drop_absent_aux_head`).
torchvision's ``transform_input`` is left out: it is preprocessing, and the registered
mean/std of 0.5 (inputs scaled to [-1, 1]) stand for it.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import torch
from torch import nn

from fastcnn.zoo.blocks import BasicConv2d
from fastcnn.zoo.registry import INCEPTION_MEAN, INCEPTION_STD, register_model

# One step of a branch: the name of a layer, or names of layers that run side by side on the
# same input and whose outputs are concatenated (the expanded filter bank of Figure 7).
Step = Union[str, tuple[str, ...]]


def _conv_1xn(in_channels: int, out_channels: int, n: int) -> BasicConv2d:
    return BasicConv2d(in_channels, out_channels, (1, n), padding=(0, n // 2))


def _conv_nx1(in_channels: int, out_channels: int, n: int) -> BasicConv2d:
    return BasicConv2d(in_channels, out_channels, (n, 1), padding=(n // 2, 0))


def _same_avg_pool() -> nn.AvgPool2d:
    """3x3 stride-1 average pool that keeps the grid, padding counted as torchvision does."""
    return nn.AvgPool2d(kernel_size=3, stride=1, padding=1)


class MixedBlock(nn.Module):
    """Parallel branches of named layers whose outputs are concatenated along channels.

    The layers are registered under their own names, flat, so that the state dict keys are
    the release's (``branch5x5_1.conv.weight``). ``paths`` lists each branch as the steps it
    runs in order, starting from the block's input.
    """

    def __init__(self, layers: dict[str, nn.Module], paths: Sequence[Sequence[Step]]) -> None:
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.paths = tuple(tuple(path) for path in paths)

    def _step(self, step: Step, x: torch.Tensor) -> torch.Tensor:
        if isinstance(step, str):
            return getattr(self, step)(x)
        return torch.cat([getattr(self, name)(x) for name in step], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for path in self.paths:
            y = x
            for step in path:
                y = self._step(step, y)
            outputs.append(y)
        return torch.cat(outputs, 1)


class InceptionA(MixedBlock):
    """35x35 module (Figure 5, with the release's extra 5x5 branch): 64 + 64 + 96 + pool."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__(
            {
                "branch1x1": BasicConv2d(in_channels, 64, 1),
                "branch5x5_1": BasicConv2d(in_channels, 48, 1),
                "branch5x5_2": BasicConv2d(48, 64, 5, padding=2),
                "branch3x3dbl_1": BasicConv2d(in_channels, 64, 1),
                "branch3x3dbl_2": BasicConv2d(64, 96, 3, padding=1),
                "branch3x3dbl_3": BasicConv2d(96, 96, 3, padding=1),
                "pool": _same_avg_pool(),
                "branch_pool": BasicConv2d(in_channels, pool_features, 1),
            },
            [["branch1x1"], ["branch5x5_1", "branch5x5_2"],
             ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], ["pool", "branch_pool"]],
        )


class InceptionB(MixedBlock):
    """35x35 -> 17x17 grid reduction (Figure 10): 384 + 96 + the max-pooled input."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(
            {
                "branch3x3": BasicConv2d(in_channels, 384, 3, stride=2),
                "branch3x3dbl_1": BasicConv2d(in_channels, 64, 1),
                "branch3x3dbl_2": BasicConv2d(64, 96, 3, padding=1),
                "branch3x3dbl_3": BasicConv2d(96, 96, 3, stride=2),
                "pool": nn.MaxPool2d(kernel_size=3, stride=2),
            },
            [["branch3x3"], ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], ["pool"]],
        )


class InceptionC(MixedBlock):
    """17x17 module with 7x7 convolutions factorised into 1x7 and 7x1 (Figure 6): 4 x 192."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        c7 = channels_7x7
        super().__init__(
            {
                "branch1x1": BasicConv2d(in_channels, 192, 1),
                "branch7x7_1": BasicConv2d(in_channels, c7, 1),
                "branch7x7_2": _conv_1xn(c7, c7, 7),
                "branch7x7_3": _conv_nx1(c7, 192, 7),
                "branch7x7dbl_1": BasicConv2d(in_channels, c7, 1),
                "branch7x7dbl_2": _conv_nx1(c7, c7, 7),
                "branch7x7dbl_3": _conv_1xn(c7, c7, 7),
                "branch7x7dbl_4": _conv_nx1(c7, c7, 7),
                "branch7x7dbl_5": _conv_1xn(c7, 192, 7),
                "pool": _same_avg_pool(),
                "branch_pool": BasicConv2d(in_channels, 192, 1),
            },
            [["branch1x1"], ["branch7x7_1", "branch7x7_2", "branch7x7_3"],
             [f"branch7x7dbl_{i}" for i in range(1, 6)], ["pool", "branch_pool"]],
        )


class InceptionD(MixedBlock):
    """17x17 -> 8x8 grid reduction: 320 + 192 + the max-pooled input."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(
            {
                "branch3x3_1": BasicConv2d(in_channels, 192, 1),
                "branch3x3_2": BasicConv2d(192, 320, 3, stride=2),
                "branch7x7x3_1": BasicConv2d(in_channels, 192, 1),
                "branch7x7x3_2": _conv_1xn(192, 192, 7),
                "branch7x7x3_3": _conv_nx1(192, 192, 7),
                "branch7x7x3_4": BasicConv2d(192, 192, 3, stride=2),
                "pool": nn.MaxPool2d(kernel_size=3, stride=2),
            },
            [["branch3x3_1", "branch3x3_2"], [f"branch7x7x3_{i}" for i in range(1, 5)], ["pool"]],
        )


class InceptionE(MixedBlock):
    """8x8 module with the expanded filter bank (Figure 7): 320 + 2 x 384 + 2 x 384 + 192."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(
            {
                "branch1x1": BasicConv2d(in_channels, 320, 1),
                "branch3x3_1": BasicConv2d(in_channels, 384, 1),
                "branch3x3_2a": _conv_1xn(384, 384, 3),
                "branch3x3_2b": _conv_nx1(384, 384, 3),
                "branch3x3dbl_1": BasicConv2d(in_channels, 448, 1),
                "branch3x3dbl_2": BasicConv2d(448, 384, 3, padding=1),
                "branch3x3dbl_3a": _conv_1xn(384, 384, 3),
                "branch3x3dbl_3b": _conv_nx1(384, 384, 3),
                "pool": _same_avg_pool(),
                "branch_pool": BasicConv2d(in_channels, 192, 1),
            },
            [["branch1x1"], ["branch3x3_1", ("branch3x3_2a", "branch3x3_2b")],
             ["branch3x3dbl_1", "branch3x3dbl_2", ("branch3x3dbl_3a", "branch3x3dbl_3b")],
             ["pool", "branch_pool"]],
        )


class InceptionAux(nn.Module):
    """The auxiliary classifier on the 17x17 grid (Figure 8 without its batch-normalised fc);
    it only helps training."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=5, stride=3)
        self.conv0 = BasicConv2d(in_channels, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 768 x 17 x 17
        x = self.conv0(self.pool(x))  # N x 128 x 5 x 5
        x = self.conv1(x)  # N x 768 x 1 x 1
        return self.fc(torch.flatten(self.avgpool(x), 1))  # N x num_classes


class InceptionV3(nn.Module):
    """Inception v3 for 299x299 inputs; ``aux_logits=True`` adds the training-only auxiliary
    classifier, whose logits ``forward`` then also returns in training mode."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        _init_like_tf_slim(self)
        self.register_load_state_dict_pre_hook(InceptionV3._drop_absent_aux_head)

    def _drop_absent_aux_head(self, state_dict: dict, prefix: str, *args) -> None:
        """Without an aux head, drop its ``AuxLogits.*`` entries before a strict load.

        The auxiliary classifier only shapes the gradients during training and never feeds
        the prediction, so the inference model leaves it out; checkpoints (torchvision's
        among them) still carry it, and must load unchanged with ``strict=True``.
        """
        if self.AuxLogits is None:
            for key in [k for k in state_dict if k.startswith(prefix + "AuxLogits.")]:
                del state_dict[key]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and the 35x35 and 17x17 modules: N x 768 x 17 x 17 at 299x299."""
        # N x 3 x 299 x 299
        x = self.Conv2d_1a_3x3(x)  # N x 32 x 149 x 149
        x = self.Conv2d_2a_3x3(x)  # N x 32 x 147 x 147
        x = self.Conv2d_2b_3x3(x)  # N x 64 x 147 x 147
        x = self.maxpool1(x)  # N x 64 x 73 x 73
        x = self.Conv2d_3b_1x1(x)  # N x 80 x 73 x 73
        x = self.Conv2d_4a_3x3(x)  # N x 192 x 71 x 71
        x = self.maxpool2(x)  # N x 192 x 35 x 35
        x = self.Mixed_5b(x)  # N x 256 x 35 x 35
        x = self.Mixed_5c(x)  # N x 288 x 35 x 35
        x = self.Mixed_5d(x)  # N x 288 x 35 x 35
        x = self.Mixed_6a(x)  # N x 768 x 17 x 17
        x = self.Mixed_6b(x)  # N x 768 x 17 x 17
        x = self.Mixed_6c(x)  # N x 768 x 17 x 17
        x = self.Mixed_6d(x)  # N x 768 x 17 x 17
        return self.Mixed_6e(x)  # N x 768 x 17 x 17

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The 8x8 modules and the classifier."""
        x = self.Mixed_7a(x)  # N x 1280 x 8 x 8
        x = self.Mixed_7b(x)  # N x 2048 x 8 x 8
        x = self.Mixed_7c(x)  # N x 2048 x 8 x 8
        x = torch.flatten(self.avgpool(x), 1)  # N x 2048
        return self.fc(self.dropout(x))  # N x num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        grid17 = self.features(x)
        logits = self.head(grid17)
        if self.training and self.AuxLogits is not None:
            return logits, self.AuxLogits(grid17)
        return logits


def _init_like_tf_slim(model: nn.Module) -> None:
    """He initialisation as TF-slim's ``inception_arg_scope`` does it
    (``variance_scaling_initializer``: truncated normal at two standard deviations, variance
    2 / fan_in after truncation), zero biases, unit batch norms.

    torchvision draws every weight from N(0, 0.1) instead; in eval mode with fresh batch
    norm statistics that makes the logits of a random model about 1e11, which no half
    precision test could use. This keeps activations near unit scale.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            std = math.sqrt(1.3 * 2.0 / m.weight[0].numel())  # 1.3 undoes the truncation
            nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_model(
    family="inception",
    paper="Szegedy et al. 2015, Rethinking the Inception Architecture for Computer Vision",
    input_size=(3, 299, 299),
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    reference="torchvision:inception_v3",
    weights={"torchvision": "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"},
)
def inception_v3(num_classes: int = 1000) -> nn.Module:
    return InceptionV3(num_classes)
