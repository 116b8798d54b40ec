"""A per-layer table of a model: layer, output shape, parameters, multiply-adds.

It runs one forward pass with hooks on the leaf modules. A module that knows its own cost
(a custom layer such as LeNet-5's partial convolution) defines
``multiply_adds(inputs, output) -> int`` and is treated as a leaf. Parameter-free layers that
keep the shape (activations, dropout) are left out of the table; they cost no multiply-adds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    multiply_adds: int  # for one sample


def _is_leaf(module: nn.Module) -> bool:
    return hasattr(module, "multiply_adds") or not any(True for _ in module.children())


def _multiply_adds(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Multiply-accumulates for the whole batch that went through ``module``."""
    if hasattr(module, "multiply_adds"):
        return int(module.multiply_adds(inputs, output))
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _is_shown(module: nn.Module, inputs: tuple, output: torch.Tensor, params: int) -> bool:
    keeps_shape = bool(inputs) and isinstance(inputs[0], torch.Tensor) and inputs[0].shape == output.shape
    return params > 0 or not keeps_shape or isinstance(module, nn.LocalResponseNorm)


def layer_table(model: nn.Module, input_size: tuple[int, ...]) -> list[LayerRow]:
    """Rows in execution order for one ``(1, *input_size)`` forward pass of ``model``."""
    rows: list[LayerRow] = []
    handles = []

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            params = sum(p.numel() for p in module.parameters())
            if isinstance(output, torch.Tensor) and _is_shown(module, inputs, output, params):
                rows.append(LayerRow(name, type(module).__name__, tuple(output.shape[1:]),
                                     params, _multiply_adds(module, inputs, output) // output.shape[0]))
        return record

    def attach(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if _is_leaf(child):
                handles.append(child.register_forward_hook(hook(full)))
            else:
                attach(child, full)

    attach(model, "")
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        for handle in handles:
            handle.remove()
    return rows


def format_table(rows: list[LayerRow], model: nn.Module) -> str:
    """The table as text, with totals; the parameter total counts every parameter once."""
    header = ("layer", "type", "output shape", "params", "mult-adds")
    body = [(r.name, r.kind, " x ".join(map(str, r.output_shape)), f"{r.params:,}",
             f"{r.multiply_adds:,}") for r in rows]
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    macs = sum(r.multiply_adds for r in rows)
    footer = [("total", "", "", f"{total:,}", f"{macs:,}")]
    widths = [max(len(row[i]) for row in [header, *body, *footer]) for i in range(5)]

    def line(row) -> str:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]),
                 row[3].rjust(widths[3]), row[4].rjust(widths[4])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    lines = [line(header), rule, *map(line, body), rule, *map(line, footer)]
    if trainable != total:
        lines.append(f"trainable parameters: {trainable:,} (the rest are fixed)")
    return "\n".join(lines)
