"""The compile check: Triton kernels compiled to cubin for sm_90 and sm_80 without a GPU.

The kernels are this module's own (the project's are written elsewhere): an elementwise
kernel, a GEMM tile whose tl.dot takes fp16 (tensor cores) or fp32 with
``input_precision="ieee"`` (FMA), and a block too big for one warp's registers (spills).
All compiles of a module run in one batch per arch: under ``TRITON_INTERPRET=1`` that is one
child process each.
"""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
import triton
import triton.language as tl
from triton.runtime.jit import JITFunction

from fastcnn.kernels import compile_check
from fastcnn.kernels.compile_check import (
    COLUMNS,
    CompileCheckError,
    CompileReport,
    compile_call,
    compile_calls,
    format_reports,
    occupancy,
    short_constexprs,
)
from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel


@kernel
def _axpb_kernel(x, y, n, alpha, beta, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x + offs, mask=mask)
    tl.store(y + offs, v * alpha + beta, mask=mask)


@kernel
def _gemm_kernel(a, b, c,
                 M, N, K,
                 stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 PRECISION: tl.constexpr):
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        x = tl.load(a + rm[:, None] * stride_am + kk[None, :] * stride_ak,
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
        w = tl.load(b + kk[:, None] * stride_bk + rn[None, :] * stride_bn,
                    mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc = tl.dot(x, w, acc, input_precision=PRECISION)
    tl.store(c + rm[:, None] * stride_cm + rn[None, :] * stride_cn, acc.to(c.dtype.element_ty),
             mask=(rm[:, None] < M) & (rn[None, :] < N))


@kernel
def _hungry_kernel(x, y, n, BLOCK: tl.constexpr):
    # with BLOCK=8192 and one warp, v and w are 2 x 256 fp32 per thread, all live across the sum
    offs = tl.arange(0, BLOCK)
    v = tl.load(x + offs, mask=offs < n, other=0.0)
    w = tl.load(y + offs, mask=offs < n, other=0.0)
    s = tl.sum(v * w, axis=0)
    tl.store(y + offs, v * s + w, mask=offs < n)


@kernel
def _broken_kernel(x, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)  # BLOCK=48 is not a power of two: Triton refuses
    tl.store(x + offs, tl.load(x + offs, mask=offs < n), mask=offs < n)


@kernel
def _dependent_axpb_kernel(x, y, n, alpha, beta, BLOCK: tl.constexpr, PDL: tl.constexpr):
    grid_dependency(PDL)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y + offs, tl.load(x + offs, mask=mask) * alpha + beta, mask=mask)


def _axpb(block=1024, warps=4):
    x = torch.empty(8)
    return KernelCall(_axpb_kernel, (x, x, 8, 2.0, 1.0), {"BLOCK": block}, (1,), warps, 1)


def _gemm(dtype, precision="tf32", bm=64, bn=64, bk=32, warps=4, stages=3):
    a = torch.empty(8, 8, dtype=dtype)
    return KernelCall(_gemm_kernel, (a, a, a, 8, 8, 8, 8, 1, 8, 1, 8, 1),
                      {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "PRECISION": precision}, (1, 1), warps, stages)


CALLS = {
    "axpb": _axpb(),
    "gemm_fp16": _gemm(torch.float16),
    "gemm_bf16": _gemm(torch.bfloat16),
    "gemm_tf32": _gemm(torch.float32),
    "gemm_fp16_m32": _gemm(torch.float16, bm=32, bn=32, warps=2),  # too small a tile for wgmma
    "gemm_ieee": _gemm(torch.float32, "ieee"),
    "hungry": KernelCall(_hungry_kernel, (torch.empty(8), torch.empty(8), 8), {"BLOCK": 8192}, (1,), 1, 1),
}
MATH = {  # (sm_90, sm_80)
    "axpb": ("fma", "fma"),
    "gemm_fp16": ("wgmma", "mma"),
    "gemm_bf16": ("wgmma", "mma"),
    "gemm_tf32": ("wgmma", "mma"),
    "gemm_fp16_m32": ("mma", "mma"),
    "gemm_ieee": ("fma", "fma"),
    "hungry": ("fma", "fma"),
}


@pytest.fixture(scope="module")
def reports() -> dict[tuple[str, int], CompileReport]:
    """Every call compiled for both archs: about 10 s on 2 cores with a cold Triton cache."""
    return {(name, arch): report for arch in (90, 80)
            for name, report in zip(CALLS, compile_calls(list(CALLS.values()), arch))}


@pytest.mark.parametrize("arch", [90, 80])
@pytest.mark.parametrize("name", list(CALLS))
def test_math_path(reports, name, arch):
    report = reports[name, arch]
    assert report.math == MATH[name][arch == 80]
    assert report.tensor_cores == (report.math != "fma")
    assert report.arch == arch and report.name == CALLS[name].fn.__name__


@pytest.mark.parametrize("arch", [90, 80])
@pytest.mark.parametrize("name", [n for n in CALLS if n != "hungry"])
def test_no_spills(reports, name, arch):
    report = reports[name, arch]
    assert report.spill_stores == report.spill_loads == 0
    assert 0 < report.registers <= 255


@pytest.mark.parametrize("arch", [90, 80])
def test_spills_are_detected(reports, arch):
    report = reports["hungry", arch]
    assert report.spill_stores > 0 and report.spill_loads > 0
    assert f"{report.spill_stores}/{report.spill_loads}" in format_reports([report])


@pytest.mark.parametrize("arch", [90, 80])
def test_shared_memory(reports, arch):
    assert reports["axpb", arch].shared == 0
    gemm = reports["gemm_fp16", arch]
    # at least one stage of the A and B tiles, fp16: (64x32 + 32x64) x 2 bytes
    assert gemm.dynamic_shared >= (64 * 32 + 32 * 64) * 2
    assert gemm.shared == gemm.static_shared + gemm.dynamic_shared


def test_reports_name_the_toolchain(reports):
    for (name, arch), report in reports.items():
        assert report.triton_version == triton.__version__
        assert report.ptxas_version.replace(".", "").isdigit()
        assert report.constexprs == tuple(sorted(CALLS[name].constexprs.items()))
        assert dict(report.signature) == {k: t for k, t in CALLS[name].signature().items() if t != "constexpr"}
        assert (report.num_warps, report.num_stages) == (CALLS[name].num_warps, CALLS[name].num_stages)


def test_results_are_cached_by_variant_and_arch(reports, monkeypatch):
    monkeypatch.setattr(compile_check, "_compile_in_child", None)
    monkeypatch.setattr(compile_check, "_compile", None)
    assert compile_call(_gemm(torch.float16), 90) is reports["gemm_fp16", 90]  # a new but identical call
    assert compile_call(_gemm(torch.float16), 80) is reports["gemm_fp16", 80]


def test_same_specialization_as_the_jit():
    """What Triton's JIT itself derives from the call's arguments: the same signature, and no
    argument specialized on its value (no divisibility or equal-to-1 attributes)."""
    from triton.runtime import jit

    binder_of = getattr(jit, "create_function_from_signature", None)
    if binder_of is None or not hasattr(jit.JITFunction, "_pack_args"):
        pytest.skip(f"Triton {triton.__version__} binds arguments differently")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend

    for call in (_axpb(), _gemm(torch.float16)):
        fn = _launchers_jit_function(call)
        backend = make_backend(GPUTarget("cuda", 90, 32))
        bound, specialization, options = binder_of(fn.signature, fn.params, backend)(*call.args, **call.constexprs)
        _, signature, _, attrs = fn._pack_args(backend, dict(call.constexprs), bound, specialization, options)
        assert signature == call.signature()
        assert not any(attrs.values())


def _launchers_jit_function(call: KernelCall) -> JITFunction:
    """The JIT function launch.kernel made or, under the interpreter, one made with its options."""
    if isinstance(call.kernel, JITFunction):
        return call.kernel
    options = {k: call.kernel.kwargs[k] for k in ("do_not_specialize", "do_not_specialize_on_alignment")}
    return JITFunction(call.fn, **options)


def _jitted_axpb(block, **specialization):
    """The elementwise kernel as a real JIT function (it calls no Triton library function that
    the interpreter would have replaced, so it compiles even under TRITON_INTERPRET)."""
    return dataclasses.replace(_axpb(block=block), kernel=JITFunction(_axpb_kernel.fn, **specialization))


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                    reason="once the interpreter has run a kernel, this process's triton.language is the "
                           "interpreter's; in-process compiles are for machines without it (a GPU's)")
def test_a_jit_function_compiles_in_this_process(monkeypatch):
    def no_child(*args):
        raise AssertionError("compiled in a child process")

    monkeypatch.setattr(compile_check, "_compile_in_child", no_child)
    names = ["x", "y", "n", "alpha", "beta"]
    report = compile_call(_jitted_axpb(512, do_not_specialize=names, do_not_specialize_on_alignment=names), 80)
    assert (report.math, report.spills, report.shared) == ("fma", 0, 0)


def test_a_value_specialized_kernel_is_refused():
    with pytest.raises(CompileCheckError, match=r"specializes \['x', 'y', 'n', 'alpha', 'beta'\].*launch.kernel"):
        compile_call(_jitted_axpb(256), 80)


def test_compile_error_names_kernel_constexprs_and_triton_message(monkeypatch):
    x = torch.empty(8)
    broken, fine = KernelCall(_broken_kernel, (x, 8), {"BLOCK": 48}, (1,)), _axpb(block=128)
    with pytest.raises(CompileCheckError, match=r"(?s)_broken_kernel\(BLOCK=48\) for sm_90, num_warps=4.*power of 2"):
        compile_calls([fine, broken], 90)
    monkeypatch.setattr(compile_check, "_compile_in_child", None)
    assert compile_call(fine, 90).math == "fma"  # compiled in the same batch, and kept


def test_missing_ptxas_is_a_clear_error(monkeypatch):
    def no_ptxas(arch):
        raise RuntimeError("Cannot find ptxas")

    monkeypatch.setattr(compile_check, "get_ptxas", no_ptxas)
    with pytest.raises(CompileCheckError, match="no ptxas for sm_90.*Cannot find ptxas"):
        compile_call(_axpb(block=2048), 90)


def test_unknown_arch():
    with pytest.raises(ValueError, match="arch"):
        compile_call(_axpb(), 75)


def test_ptxas_log_parsing_counts_callee_spills():
    log = """ptxas info    : 0 bytes gmem
ptxas info    : Function properties for helper
    8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Compiling entry function 'k' for 'sm_80'
ptxas info    : Function properties for k
    16 bytes stack frame, 16 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 2048 bytes smem, 400 bytes cmem[0]
"""
    stats = compile_check._parse_ptxas_log(log, "k")
    assert stats == {"registers": 40, "static_shared": 2048, "spill_stores": 24, "spill_loads": 16,
                     "stack_frame": 24}


# --- occupancy, on hand-made reports --------------------------------------------------------------


def _report(registers=32, warps=4, shared=0, arch=90, **kw):
    fields = dict(name="k", signature=(("a", "*fp16"), ("b", "*fp16"), ("c", "*fp32"), ("n", "i32")),
                  constexprs=(("BLOCK_M", 64), ("HAS_BIAS", True), ("ACT", "relu"), ("EVEN", False)),
                  arch=arch, num_warps=warps, num_stages=2, registers=registers, spill_stores=0, spill_loads=0,
                  stack_frame=0, static_shared=0, dynamic_shared=shared, math="mma", waits_for_grid=False,
                  triton_version="3.x", ptxas_version="12.8")
    return CompileReport(**(fields | kw))


@pytest.mark.parametrize("registers, warps, blocks, limiter", [
    (32, 4, 16, "warps"),  # 32 regs: 64 warps fit in registers; 64 warps / 4 per block
    (128, 4, 4, "registers"),  # 128 x 32 = 4096 per warp: 16 warps
    (255, 4, 2, "registers"),  # 255 x 32 = 8160, rounded to 8192: 8 warps
    (168, 4, 3, "registers"),  # 168 x 32 = 5376: 12 warps
    (40, 8, 6, "registers"),  # 40 x 32 = 1280: 51 warps, 6 blocks of 8
    (16, 1, 32, "blocks"),  # 64 warps would fit, but at most 32 blocks
    (65, 4, 7, "registers"),  # 65 x 32 = 2080, rounded to 2304: 28 warps
])
def test_occupancy_from_registers_warps_blocks(registers, warps, blocks, limiter):
    occ = occupancy(_report(registers, warps))
    assert (occ.blocks_per_sm, occ.limiter) == (blocks, limiter)
    assert occ.warps_per_sm == blocks * warps
    assert occ.fraction == blocks * warps / 64


@pytest.mark.parametrize("shared, arch, blocks", [
    (48 * 1024, 90, 4),  # (48 + 1) KiB per block in 228 KiB
    (48 * 1024, 80, 3),  # in 164 KiB
    (100 * 1024, 90, 2),
    (100 * 1024, 80, 1),
    (227 * 1024, 90, 1),  # the most a block may have on sm_90
    (164 * 1024, 80, 0),  # over sm_80's 163 KiB per block: cannot launch
    (100, 90, 16),  # 100 bytes -> 128, +1 KiB: 202 fit, the warps limit first
])
def test_occupancy_from_shared_memory(shared, arch, blocks):
    occ = occupancy(_report(shared=shared, arch=arch))
    assert occ.blocks_per_sm == blocks
    assert occ.limiter == ("warps" if blocks == 16 else "shared memory")


def test_occupancy_arch_can_differ_from_the_report():
    report = _report(shared=100 * 1024, arch=90)
    assert occupancy(report, 80).blocks_per_sm == 1


def test_occupancy_counts_static_and_dynamic_shared():
    report = _report(arch=90, static_shared=60 * 1024, shared=60 * 1024)
    assert occupancy(report).blocks_per_sm == 228 // 121


def test_occupancy_rejects_what_cannot_launch():
    with pytest.raises(ValueError):
        occupancy(_report(warps=64))


# --- the table --------------------------------------------------------------------------------


def test_short_constexprs():
    assert short_constexprs((("BLOCK_M", 64), ("HAS_BIAS", True), ("EVEN_K", False), ("ACT", "relu"),
                             ("RES", None), ("GROUPS", 32))) == "M64 HAS_BIAS ACT=relu GROUPS=32"


def test_format_reports_has_every_column():
    spilling = _report(registers=255, warps=1, spill_stores=96, spill_loads=64, math="fma", dynamic_shared=3 * 1024)
    table = format_reports([_report(registers=128, shared=48 * 1024, math="wgmma"), spilling])
    lines = table.splitlines()
    assert lines[0] == "sm_90: Triton 3.x, ptxas 12.8"
    for column in COLUMNS:
        assert column in lines[1]
    assert len(lines) == 4
    wgmma = lines[2].split()
    assert wgmma[:9] == ["k", "fp16/fp32", "M64", "HAS_BIAS", "ACT=relu", "4", "2", "128", "0"]
    assert "48.0" in wgmma and "wgmma" in wgmma and "16/64" in wgmma and "(25%," in wgmma
    assert "96/64" in lines[3] and "3.0" in lines[3] and "fma" in lines[3] and "8/64" in lines[3]


@pytest.mark.parametrize("name, dtypes", [("axpb", "fp32"), ("gemm_fp16", "fp16"), ("gemm_bf16", "bf16")])
def test_dtypes_tell_variants_apart(reports, name, dtypes):
    assert reports[name, 90].dtypes == dtypes


def test_format_reports_of_nothing():
    assert format_reports([]).splitlines()[0] == "no kernels"


def test_report_dict_is_json_ready():
    data = compile_check.report_dict(_report(registers=128, constexprs=(("DTYPE", tl.float16), ("BLOCK_M", 64))))
    assert json.loads(json.dumps(data)) == data
    assert data["constexprs"] == {"DTYPE": "fp16", "BLOCK_M": 64}
    assert data["occupancy"] == {"blocks_per_sm": 4, "warps_per_sm": 16, "max_warps_per_sm": 64,
                                 "limiter": "registers", "fraction": 0.25}
    assert data["tensor_cores"] is True and "ptxas_log" not in data
    assert data["signature"] == {"a": "*fp16", "b": "*fp16", "c": "*fp32", "n": "i32"}


def test_a_dependent_launch_waits_for_the_grid_before_it_and_a_plain_one_does_not():
    x = torch.empty(8)
    plain = KernelCall(_dependent_axpb_kernel, (x, x, 8, 2.0, 1.0), {"BLOCK": 1024}, (1,), 4, 1)
    dependent = dataclasses.replace(plain, pdl=True)
    assert plain.variant() != dependent.variant()
    reports = compile_calls([plain, dependent], 90)
    assert [r.waits_for_grid for r in reports] == [False, True]
    assert dict(reports[1].constexprs)["PDL"] is True and reports[1].spills == 0


def test_a_kernel_without_the_pdl_flag_cannot_be_a_dependent_launch():
    with pytest.raises(TypeError, match="takes no PDL flag"):
        dataclasses.replace(_axpb(), pdl=True).all_constexprs()
    assert "PDL" not in _axpb().all_constexprs()
