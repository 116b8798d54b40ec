"""Every kernel variant the Triton backend picks for the zoo compiles for real GPUs, without one.

The variants are the launches of the zoo's plans (built on the ``meta`` device, so no memory
and no GPU), deduplicated; each is compiled for ``sm_90`` (and ``sm_80`` in the slow test)
by Triton with the ptxas in its wheel, exactly as the launcher would (same constexprs, same
specialization), and must not spill. 16-bit convolution and GEMM main loops must use tensor
cores (``wgmma`` on sm_90 where the tile allows it, ``mma`` otherwise); exact float32 and the
direct kernel use FMA. CI compiles one model per family in float16 at batch 1 and 64 on
sm_90; the slow test the cross product of the whole zoo, both architectures, three dtypes.
The autotuner's candidates for the same layers stay inside the rule's bounds (checked without
compiling in CI) and compile without spills too (slow).
"""
from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

import fastcnn
from fastcnn.api import import_source
from fastcnn.backends.triton_backend import _with_dtype, bind_launches, kernel_variants
from fastcnn.backends.triton_lowering import (
    Lowering,
    conv_config,
    gemm_config,
    has_prologue,
    pack_weights,
    workspace_hook,
)
from fastcnn.backends.triton_tuning import candidates, conv_neighbours, gemm_neighbours, tunable
from fastcnn.ir.cost import is_view
from fastcnn.kernels.compile_check import compile_calls
from fastcnn.kernels.conv2d import fit_conv_config
from fastcnn.kernels.gemm import gemm_config_fits
from fastcnn.kernels.launch import KernelCall
from fastcnn.passes import run_pipeline
from fastcnn.runtime.plan import make_plan, specialize_batch
from fastcnn.zoo import ONE_PER_FAMILY

TENSOR_CORE_KERNELS = ("_conv2d_kernel", "_gemm_kernel", "_se_gate_kernel")


@functools.lru_cache(maxsize=None)
def _fused(name: str):
    graph = import_source(name)
    run_pipeline(graph, "triton")
    return graph


def _expected_math(report) -> str:
    constexprs = dict(report.constexprs)
    sixteen_bit = any(t in ("*fp16", "*bf16") for _, t in report.signature)
    tf32 = constexprs.get("DOT_PRECISION", constexprs.get("PRECISION")) == "tf32"
    if report.name not in TENSOR_CORE_KERNELS or not (sixteen_bit or tf32) or constexprs.get("BLOCK_M", 16) < 16:
        return "fma"
    wide = constexprs.get("BLOCK_M", 0) >= 64 and report.num_warps % 4 == 0  # the gate's tiles are 16 images
    return "wgmma" if report.arch == 90 and wide else "mma"


def _check(models: list[str], batches: list[int], dtypes: list[torch.dtype], arches: list[int]) -> None:
    for dtype in dtypes:
        calls = kernel_variants([_fused(name) for name in models], batches, dtype)
        for arch in arches:
            reports = compile_calls(calls, arch)
            spilled = [(r.name, dict(r.constexprs), r.spills) for r in reports if r.spills or r.stack_frame]
            assert not spilled, f"sm_{arch} {dtype}: {len(spilled)} variants spill, e.g. {spilled[:3]}"
            wrong = [(r.name, r.math, _expected_math(r)) for r in reports if r.math != _expected_math(r)]
            assert not wrong, f"sm_{arch} {dtype}: math paths {wrong[:5]}"


def test_the_zoo_families_variants_compile_for_sm_90_without_spills():
    _check(list(ONE_PER_FAMILY), [1, 64], [torch.float16], [90])


def test_dependent_launches_compile_for_sm_90_and_wait_for_the_kernel_before():
    """With FASTCNN_PDL=1 on Hopper every kernel of the plan is a programmatic dependent launch:
    the same variants with PDL set compile without spills, each with its griddepcontrol.wait."""
    calls = [dataclasses.replace(call, pdl=True) for call in kernel_variants([_fused("resnet18")], [1], torch.float16)]
    reports = compile_calls(calls, 90)
    assert reports and all(r.waits_for_grid for r in reports), [r.name for r in reports if not r.waits_for_grid]
    assert not [(r.name, r.spills) for r in reports if r.spills or r.stack_frame]


@pytest.mark.slow
def test_every_zoo_variant_compiles_for_both_archs_and_every_dtype():
    _check(fastcnn.list_models(), [1, 8, 64], [torch.float32, torch.float16, torch.bfloat16], [80, 90])


def _tuned_layers(models: list[str], batches: list[int], dtype: torch.dtype):
    """``(node, views, weights, lowering)`` for every tunable layer of the models' plans, bound on
    the ``meta`` device as :func:`kernel_variants` binds them (an H100's 132 multiprocessors)."""
    lowering = Lowering(torch.device("meta"), dtype, 132)
    for name in models:
        graph = _with_dtype(_fused(name), dtype)
        weights = pack_weights(graph, lowering)
        for batch in batches:
            memory = make_plan(graph, batch, workspace=workspace_hook(lowering)).memory
            arena, workspace = (torch.empty(n, dtype=torch.uint8, device="meta")
                                for n in (memory.arena_bytes, memory.workspace_bytes))
            _, views = bind_launches(graph, batch, memory, lowering, weights, arena, workspace)
            for node in views.graph.nodes:
                if not is_view(node) and tunable(node):
                    yield node, views, weights, lowering


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_the_rules_and_the_tuners_tiles_stay_inside_the_no_spill_bounds(dtype):
    """What the slow tests compile, checked here without compiling: every conv and GEMM tile the
    rules pick for the zoo's families is inside the bounds that keep it from spilling
    (fit_conv_config, gemm_config_fits), and so is every candidate of the tuner."""
    lowering = Lowering(torch.device("meta"), dtype, 132)
    for name in ONE_PER_FAMILY:
        for batch in (1, 64):
            for node in specialize_batch(_fused(name), batch).nodes:
                if not tunable(node):
                    continue
                if node.op == "fused_gemm":
                    rule = gemm_config(node, lowering)
                    assert all(gemm_config_fits(c, dtype) for c in [rule, *gemm_neighbours(node, rule, lowering)])
                    continue
                rule = conv_config(node, lowering)
                for config in [rule, *conv_neighbours(node, rule, lowering)]:
                    fitted = fit_conv_config(config, node.inputs[1].shape[1], dtype, has_prologue(node))
                    assert fitted == config, (node.name, config)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_the_tuners_candidates_compile_for_both_archs_without_spills(dtype):
    """Every conv and GEMM candidate the autotuner would time for the zoo's families, batch 1 and
    64, with the epilogues those layers have, compiles without spills on sm_80 and sm_90."""
    variants = {}
    for node, views, weights, lowering in _tuned_layers(list(ONE_PER_FAMILY), [1, 64], dtype):
        for candidate in candidates(node, views, weights, lowering):
            for call in candidate.run.calls:
                if isinstance(call, KernelCall):
                    variants.setdefault(call.variant(), call)
    calls = list(variants.values())
    for arch in (80, 90):
        spilled = [(r.name, dict(r.constexprs), r.num_warps, r.spills) for r in compile_calls(calls, arch)
                   if r.spills or r.stack_frame]
        assert not spilled, f"sm_{arch} {dtype}: {len(spilled)} of {len(calls)} candidates spill, e.g. {spilled[:3]}"
