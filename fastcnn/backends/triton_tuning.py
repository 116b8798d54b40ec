"""Autotuning the Triton plan: each convolution's and GEMM's candidates, measured in a bucket.

For one prepared bucket (its arena bound, see :mod:`fastcnn.backends.triton_backend`), every
implicit-GEMM convolution is offered: the rule's tiles (the reference and the fallback), a
small neighbourhood of :class:`ConvConfig` (block sizes, warps, stages, split-K) valid for the
layer, and :data:`~fastcnn.backends.triton_lowering.TORCH_CONV` (torch's convolution, cuDNN on
CUDA, then the epilogue as torch ops, into the same output views); every ``fused_gemm`` a few
:class:`GemmConfig`. Direct (depthwise-style) convolutions keep their kernel. The candidates'
launches are made by the same lowering as the plan's, only with that one choice, reading the
bucket's own input and output views; a candidate's split-K partials go to a private
workspace, since the memory plan sized the arena for the rule. The
:class:`~fastcnn.kernels.autotune.Tuner` checks and measures them; the executor then records
the choices in its :class:`Lowering` and prepares the bucket again, so that the memory plan
(:func:`workspace_hook`) and the launches both follow the choice.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fastcnn.backends.triton_lowering import (
    CONV_OPS,
    TORCH_CONV,
    Lowering,
    Packed,
    conv_config,
    gemm_config,
    has_prologue,
    lower_node,
    torch_reason,
    uses_direct,
    workspace_hook,
)
from fastcnn.ir import Graph, Node
from fastcnn.ir.cost import accumulated, is_view
from fastcnn.kernels.autotune import (
    Candidate,
    Decision,
    Tuner,
    cache_key,
    launch_components,
)
from fastcnn.kernels.conv2d import ConvConfig, fit_conv_config, packed_columns
from fastcnn.kernels.gemm import GemmConfig, gemm_config_fits

TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}
TF32_TOLERANCE = 5e-3
MAX_CANDIDATES = 12  # the rule's and torch's included


def tunable(node: Node) -> bool:
    """Whether the tuner has a choice to make for ``node`` (none for a node run as a torch op)."""
    if torch_reason(node) is not None:
        return False
    return (node.op in CONV_OPS and not uses_direct(node)) or node.op == "fused_gemm"


# -- candidates -----------------------------------------------------------------------------------
def conv_neighbours(node: Node, rule: ConvConfig, lowering: Lowering) -> list[ConvConfig]:
    """Configs next to the rule's, one change at a time, within the bounds the rule keeps for
    spills (16-bit: BLOCK_N up to 128, BLOCK_K up to 64; fp32: 64 and 32, and
    :func:`~fastcnn.kernels.conv2d.fit_conv_config`'s; the warps are the rule's for the tile:
    more or fewer spilled). Split-K only where
    the output tiles leave the GPU idle. Under the interpreter two, for tests to run in seconds:
    64-row tiles and a split of two (which needs a workspace the rule's plan did not have)."""
    if lowering.interpreted:
        return [dataclasses.replace(rule, block_m=64, num_warps=4), dataclasses.replace(rule, split_k=2)]
    wide = lowering.dtype != torch.float32
    w = node.inputs[1]
    cout_g = w.shape[0] // node.attrs["groups"]
    k_tiles = math.ceil(w.shape[1] * w.shape[2] * w.shape[3] / rule.block_k)
    rows = node.inputs[0].shape[0] * int(np.prod(node.outputs[0].shape[2:]))
    tiles = math.ceil(rows / rule.block_m) * math.ceil(cout_g / rule.block_n) * node.attrs["groups"]
    options: list[ConvConfig] = []
    for block_m in (64, 128):
        options.append(dataclasses.replace(rule, block_m=block_m))
    for block_n in (32, 64, 128) if wide else (32, 64):
        if block_n <= packed_columns(cout_g):
            options.append(dataclasses.replace(rule, block_n=block_n))
    for block_k in (16, 32, 64) if wide else (16, 32):
        options.append(dataclasses.replace(rule, block_k=block_k))
    options += [dataclasses.replace(rule, num_stages=s) for s in (2, 4)]
    if tiles < 2 * lowering.sm_count and k_tiles >= 8:
        options += [dataclasses.replace(rule, split_k=s) for s in {1, rule.split_k * 2, max(1, rule.split_k // 2)}
                    if s <= min(16, k_tiles // 4)]
    # inside the rule's bounds, warps included, so that no candidate spills (repeats dropped later)
    return [fit_conv_config(option, w.shape[1], lowering.dtype, has_prologue(node)) for option in options]


def gemm_neighbours(node: Node, rule: GemmConfig, lowering: Lowering) -> list[GemmConfig]:
    """GEMM configs next to the rule's: other column blocks, warps, and splits of K (normalised
    to the slices actually launched), within the bounds the rule keeps for spills."""
    m, k = node.inputs[0].shape[0], int(np.prod(node.inputs[0].shape[1:]))
    if lowering.interpreted:
        return [_gemm(rule, k, split_k=rule.split_k * 2), _gemm(rule, k, block_n=128 if rule.block_n != 128 else 64)]
    options = [_gemm(rule, k, split_k=s) for s in (1, rule.split_k * 2, max(1, rule.split_k // 2))]
    options += [_gemm(rule, k, num_warps=4 if rule.num_warps == 8 else 8), _gemm(rule, k, num_stages=4)]
    if rule.block_m == 1:
        options += [_gemm(rule, k, block_n=bn, block_k=max(16, rule.block_k * rule.block_n // bn)) for bn in (32, 128)]
    else:
        options += [_gemm(rule, k, block_n=bn) for bn in (64, 128)]
        options += [_gemm(rule, k, block_m=bm) for bm in (16, 32, 64, 128) if bm <= max(16, 2 * m)]
        options += [_gemm(rule, k, block_k=bk) for bk in (32, 64)]
    return [option for option in options if gemm_config_fits(option, lowering.dtype)]


def _gemm(rule: GemmConfig, k: int, **changes: int) -> GemmConfig:
    config = dataclasses.replace(rule, **changes)
    config = dataclasses.replace(config, block_k=min(config.block_k, 128))
    return dataclasses.replace(config, split_k=config.splits(k))


def describe_choice(value: Any) -> str:
    """A choice as the plan shows it: ``conv 128x64x32 w8 s3``, ``... split-K 4``, ``torch``."""
    if value == TORCH_CONV:
        return "torch conv2d + epilogue"
    if isinstance(value, ConvConfig):
        split = f" split-K {value.split_k}" if value.split_k > 1 else ""
        return f"conv {value.block_m}x{value.block_n}x{value.block_k} w{value.num_warps} s{value.num_stages}{split}"
    if isinstance(value, GemmConfig):
        split = f" split-K {value.split_k}" if value.split_k > 1 else ""
        return f"gemm {value.block_m}x{value.block_n}x{value.block_k} w{value.num_warps} s{value.num_stages}{split}"
    return "direct conv"


def _spec(value: Any) -> dict[str, Any]:
    if value == TORCH_CONV:
        return {"kind": "torch"}
    return {"kind": type(value).__name__, **dataclasses.asdict(value)}


# -- binding candidates to a bucket ---------------------------------------------------------------
class _Scratch:
    """A bucket's views, but each split-K request a private fp32 tensor of its own."""

    def __init__(self, views: Any, nbytes: int) -> None:
        self._views, self._nbytes = views, nbytes

    def tensor(self, value: Any) -> Tensor:
        return self._views.tensor(value)

    def workspace_for(self, node_name: str, request: str) -> Tensor:
        return torch.empty(max(1, self._nbytes // 4), dtype=torch.float32, device=self._views.device)


@dataclass
class Launches:
    """A candidate's launches, run in order; ``name`` lets a test's timer tell candidates apart."""

    name: str
    calls: list

    def __call__(self) -> None:
        for call in self.calls:
            call()


def _bind(node: Node, value: Any, views: Any, weights: Packed, lowering: Lowering) -> list:
    batch = int(node.inputs[0].shape[0])
    chosen = dataclasses.replace(lowering, choices={(node.name, batch): value})
    nbytes = sum(r.nbytes for r in workspace_hook(chosen)(node))
    return lower_node(node, _Scratch(views, nbytes), weights, chosen)


def candidates(node: Node, views: Any, weights: Packed, lowering: Lowering) -> list[Candidate]:
    """``node``'s candidates bound to ``views``: the rule's first; a config that cannot launch
    for this layer (refused by its launcher) is left out."""
    rule_lowering = dataclasses.replace(lowering, choices={})
    if node.op == "fused_gemm":
        rule = gemm_config(node, rule_lowering)
        values: list[Any] = [rule, *gemm_neighbours(node, rule, lowering)]
    else:
        rule = conv_config(node, rule_lowering)
        values = [rule, *conv_neighbours(node, rule, lowering), TORCH_CONV]
    found: dict[str, Candidate] = {}
    for value in values:
        name = describe_choice(value)
        if name in found or len(found) >= MAX_CANDIDATES:
            continue
        try:
            calls = _bind(node, value, views, weights, lowering)
        except ValueError:
            continue
        label = "rule" if value is rule else "cudnn" if value == TORCH_CONV and views.device.type == "cuda" else \
            "torch" if value == TORCH_CONV else "tuned"
        found[name] = Candidate(name, _spec(value), Launches(name, calls), label, value)
    return list(found.values())


def _inputs_and_outputs(node: Node, views: Any) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """The node's activation inputs, its outputs, and the outputs it accumulates into."""
    seen: set[str] = set()
    inputs = []
    for value in node.inputs:
        if value is not None and not value.is_const and value.name not in seen:
            seen.add(value.name)
            inputs.append(views.tensor(value))
    sums = {v.name for v in accumulated(node)}
    outputs = [views.tensor(v) for v in node.outputs if v.name not in sums]
    return inputs, outputs, [views.tensor(v) for v in node.outputs if v.name in sums]


def _reset(inputs: list[Tensor], outputs: list[Tensor], sums: list[Tensor]) -> Callable[[], None]:
    """Before each correctness run: the same random inputs, NaN outputs (a candidate that misses
    part of its output is then caught), zeroed accumulators."""

    def reset() -> None:
        generator = torch.Generator().manual_seed(0)
        for t in inputs:
            t.copy_(torch.randn(t.shape, generator=generator).to(t.dtype))
        for t in outputs:
            t.fill_(float("nan"))
        for t in sums:
            t.zero_()

    return reset


def tune_node(node: Node, views: Any, weights: Packed, lowering: Lowering, tuner: Tuner,
              environment: dict[str, Any]) -> Decision:
    """The tuner's decision for one node of the bucket ``views`` belongs to."""
    options = candidates(node, views, weights, lowering)
    key = cache_key({"environment": environment, "op": node.op, "layer": launch_components(options[0].run.calls),
                     "options": sorted(c.name for c in options)})
    inputs, outputs, sums = _inputs_and_outputs(node, views)
    tolerance = TF32_TOLERANCE if lowering.allow_tf32 and lowering.dtype == torch.float32 else \
        TOLERANCE[lowering.dtype]
    return tuner.choose(key, options, reset=_reset(inputs, outputs, sums), outputs=lambda: outputs + sums,
                        tolerance=tolerance)


def tune_bucket(graph: Graph, views: Any, weights: Packed, lowering: Lowering, tuner: Tuner,
                environment: dict[str, Any]) -> dict[tuple[str, int], Decision]:
    """Decisions for every tunable node of the specialized ``graph`` whose views are ``views``,
    keyed as :attr:`Lowering.choices` is."""
    decisions = {}
    for node in graph.nodes:
        if not is_view(node) and tunable(node):
            decisions[(node.name, int(node.inputs[0].shape[0]))] = tune_node(node, views, weights, lowering, tuner,
                                                                              environment)
    return decisions


# -- what the plan shows --------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelChoice:
    """Which launch a convolution or GEMM runs at ``batch``, and why (``rule``, ``tuned: ...``)."""

    batch: int
    node: str
    op: str
    choice: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"batch {self.batch} {self.node} ({self.op}): {self.choice} - {self.reason}"


def kernel_choices(graph: Graph, batch: int, lowering: Lowering,
                   decisions: dict[tuple[str, int], Decision]) -> list[KernelChoice]:
    """Every convolution's and GEMM's launch in the specialized ``graph`` at ``batch``."""
    rows = []
    for node in graph.nodes:
        if is_view(node) or (node.op not in CONV_OPS and node.op != "fused_gemm"):
            continue
        torch_op = torch_reason(node)
        if torch_op is not None:
            rows.append(KernelChoice(batch, node.name, node.op, f"torch:{node.op}", torch_op))
            continue
        if node.op == "fused_gemm":
            value: Any = gemm_config(node, lowering)
        else:
            value = TORCH_CONV if lowering.choice(node) == TORCH_CONV else conv_config(node, lowering)
        decision = decisions.get((node.name, batch))
        reason = "rule" if decision is None else decision.reason + (" (cached)" if decision.cached else "")
        rows.append(KernelChoice(batch, node.name, node.op, describe_choice(value), reason))
    return rows


def format_choices(rows: list[KernelChoice]) -> str:
    """One line per launch choice, for `fastcnn plan`."""
    return "\n".join(map(str, rows))
