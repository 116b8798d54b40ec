"""Every kernel variant the Triton backend picks for the zoo compiles for real GPUs, without one.

The variants are the launches of the zoo's plans (built on the ``meta`` device, so no memory
and no GPU), deduplicated; each is compiled for ``sm_90`` (and ``sm_80`` in the slow test)
by Triton with the ptxas in its wheel, exactly as the launcher would (same constexprs, same
specialization), and must not spill. 16-bit convolution and GEMM main loops must use tensor
cores (``wgmma`` on sm_90 where the tile allows it, ``mma`` otherwise); exact float32 and the
direct kernel use FMA. CI compiles one model per family in float16 at batch 1 and 64 on
sm_90; the slow test the cross product of the whole zoo, both architectures, three dtypes.
"""
from __future__ import annotations

import functools

import pytest
import torch

import fastcnn
from fastcnn.api import import_source
from fastcnn.backends.triton_backend import kernel_variants
from fastcnn.kernels.compile_check import compile_calls
from fastcnn.passes import run_pipeline
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


@pytest.mark.slow
def test_every_zoo_variant_compiles_for_both_archs_and_every_dtype():
    _check(fastcnn.list_models(), [1, 8, 64], [torch.float32, torch.float16, torch.bfloat16], [80, 90])
