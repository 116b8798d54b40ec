"""Weights and inputs from a formula, so two programs can build identical tensors without sharing a file.

tools/make_reference_fixtures.py fills a torchvision / timm model with these and records its
output; tests/zoo/test_reference_fixtures.py fills fastcnn's model the same way and compares, so
CI checks the numbers without installing those libraries or storing any weights.

The formula: entry ``k`` of a tensor named ``name`` is ``u = hash32(k + crc32(name)) / 2**32``
in [0, 1), with ``hash32`` the integer mixing function below (exact int64 arithmetic: no
product exceeds 2**63, so every torch gives the same bits). ``u`` is then scaled by the
tensor's role, read from its name and rank:

- weights of rank >= 2 (conv, linear): uniform in +-sqrt(6 / fan_in) (He's variance);
- batch norm scale (a rank-1 ``weight``): 0.75 .. 1.25; shift and other rank-1 ``bias``: +-0.1;
- ``running_mean``: +-0.1; ``running_var``: 0.5 .. 1.5; integer buffers are left as they are.
"""
from __future__ import annotations

import math
import zlib

import torch
from torch import nn

_MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix of int64 values in [0, 2**32) (xor-shift-multiply, constants < 2**31)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & _MASK32
    x = x ^ (x >> 16)
    return x


def uniform(name: str, numel: int) -> torch.Tensor:
    """``numel`` float64 values in [0, 1), a function of the name and the index only."""
    index = torch.arange(numel, dtype=torch.int64) + zlib.crc32(name.encode())
    return hash32(index).double() / 2.0**32


def deterministic_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The float32 tensor that the formula gives for state-dict entry ``name`` of ``shape``."""
    numel = math.prod(shape)
    u = uniform(name, numel)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_mean":
        v = (2 * u - 1) * 0.1
    elif leaf == "running_var":
        v = 0.5 + u
    elif len(shape) >= 2:
        fan_in = numel // shape[0]
        v = (2 * u - 1) * math.sqrt(6.0 / fan_in)
    elif leaf == "weight":
        v = 0.75 + 0.5 * u
    else:
        v = (2 * u - 1) * 0.1
    return v.reshape(shape).float()


@torch.no_grad()
def fill_deterministic(model: nn.Module) -> nn.Module:
    """Overwrite every floating-point parameter and buffer of ``model`` with the formula's values."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.copy_(deterministic_tensor(name, tuple(tensor.shape)))
    return model


def deterministic_input(shape: tuple[int, ...]) -> torch.Tensor:
    """A float32 input uniform in [-1, 1) from the same formula, under the name "input"."""
    return (2 * uniform("input", math.prod(shape)) - 1).reshape(shape).float()
