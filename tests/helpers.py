"""Helpers shared by the tests."""
from __future__ import annotations

import torch
from torch import nn


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm layer non-trivial statistics and affine parameters.

    A freshly built network has mean 0, variance 1, scale 1 and shift 0 everywhere, which
    hides mistakes in batch norm folding and in eps handling; the numerical tests use this.
    Variances stay in [0.5, 2] and scales in [0.5, 1.5] so activations keep a sane range.
    """
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            shape = m.num_features
            with torch.no_grad():
                if m.track_running_stats:
                    m.running_mean.copy_(torch.randn(shape, generator=gen) * 0.1)
                    m.running_var.copy_(torch.rand(shape, generator=gen) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(shape, generator=gen) * 0.1)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def relative_l2(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected||, in float64; NaN anywhere gives inf."""
    a, e = actual.detach().double(), expected.detach().double()
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - e).norm() / e.norm().clamp_min(1e-30))
