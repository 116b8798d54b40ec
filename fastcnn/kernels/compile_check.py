"""Compile a kernel launch to cubin without a GPU, and say what it costs the GPU.

:func:`compile_call` compiles exactly what a :class:`~fastcnn.kernels.launch.KernelCall` would
launch: the launcher's own JIT function (no argument specialized on its value), the call's
signature and constexprs, its warps and stages, through ``triton.compile`` for
``GPUTarget("cuda", arch, 32)``. Triton's backend turns the PTX into a cubin with the ptxas in
its wheel (the ptxas on ``PATH`` is usually too old for Triton's PTX). This module then runs that
same ptxas again with ``-v`` and the flags Triton's ``make_cubin`` uses, to read registers per
thread, spill bytes and static shared memory; Triton's ``metadata.shared`` is the dynamic
shared memory. Registers are checked against the cubin Triton built, so the numbers are those
of the code that runs. The math path is read from the PTX: ``wgmma`` (Hopper warpgroup tensor
cores), ``mma`` (``mma.sync`` tensor cores, Ampere and the Hopper fallback), or ``fma`` (no
tensor-core instruction at all).

Under ``TRITON_INTERPRET=1`` (the CPU test setup) every ``@triton.jit`` function, Triton's own
``tl.zeros``/``tl.sum``/... included, is an interpreter object that the compiler cannot lower,
so the compile runs in a child Python without the interpreter, which imports the kernel from
its module as the launcher would on a GPU machine. Without the interpreter it runs here.

This module imports nothing else from fastcnn but :mod:`fastcnn.kernels.launch`.
"""
from __future__ import annotations

import functools
import inspect
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import CUDABackend, get_ptxas
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

from fastcnn.kernels.launch import KernelCall

ARCHES = (80, 90)
MATH_PATHS = ("wgmma", "mma", "fma")


class CompileCheckError(RuntimeError):
    """A kernel that does not compile, or a toolchain that cannot compile it."""


@dataclass(frozen=True)
class CompileReport:
    """What one kernel variant costs on one GPU architecture (sizes in bytes)."""

    name: str
    signature: tuple[tuple[str, str], ...]  # runtime arguments and their Triton types
    constexprs: tuple[tuple[str, Any], ...]
    arch: int
    num_warps: int
    num_stages: int
    registers: int  # per thread
    spill_stores: int
    spill_loads: int
    stack_frame: int
    static_shared: int  # declared in the PTX (ptxas "bytes smem")
    dynamic_shared: int  # Triton's metadata.shared, requested at launch
    math: str  # one of MATH_PATHS
    waits_for_grid: bool  # griddepcontrol.wait in the PTX: a programmatic dependent launch's wait
    triton_version: str
    ptxas_version: str
    ptxas_log: str = field(default="", repr=False, compare=False)

    @property
    def shared(self) -> int:
        return self.static_shared + self.dynamic_shared

    @property
    def spills(self) -> int:
        return self.spill_stores + self.spill_loads

    @property
    def tensor_cores(self) -> bool:
        return self.math != "fma"

    @property
    def dtypes(self) -> str:
        """The element types the kernel's pointers point to, in order, each once: ``fp16/fp32``."""
        pointees = [t[1:] for _, t in self.signature if t.startswith("*")]
        return "/".join(dict.fromkeys(pointees))


# ---------------------------------------------------------------------------------------------
# Compiling

_CACHE: dict[tuple, CompileReport] = {}


def compile_call(call: KernelCall, arch: int) -> CompileReport:
    """Compile ``call`` for ``sm_{arch}`` (80 or 90); cached in-process by (variant, arch)."""
    return compile_calls([call], arch)[0]


def compile_calls(calls: Sequence[KernelCall], arch: int) -> list[CompileReport]:
    """:func:`compile_call` for many calls; under the interpreter, one child process for all."""
    if arch not in ARCHES:
        raise ValueError(f"arch must be one of {ARCHES}, got {arch}")
    ptxas = _ptxas(arch)
    todo = {}
    for call in calls:
        if (call.variant(), arch) not in _CACHE:
            todo.setdefault(call.variant(), call)
    jobs = [_job(call) for call in todo.values()]
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when unset
    if any(not isinstance(call.kernel, JITFunction) for call in todo.values()):
        results = _compile_in_children(jobs, arch, ptxas)
    else:
        results = [_compile_or_error(call.kernel, job, arch, ptxas) for call, job in zip(todo.values(), jobs)]
    for variant, result in zip(todo, results):
        if not isinstance(result, str):
            _CACHE[(variant, arch)] = CompileReport(**result)
    errors = [result for result in results if isinstance(result, str)]
    if errors:
        raise CompileCheckError("\n\n".join(errors))
    return [_CACHE[(call.variant(), arch)] for call in calls]


@dataclass(frozen=True)
class _Job:
    """A call reduced to what compiling needs; picklable, to hand to a child process."""

    module: str
    qualname: str
    signature: dict[str, str]
    constexprs: dict[str, Any]
    num_warps: int
    num_stages: int

    def describe(self, arch: int) -> str:
        flags = ", ".join(f"{k}={v!r}" for k, v in sorted(self.constexprs.items()))
        return f"{self.qualname}({flags}) for sm_{arch}, num_warps={self.num_warps}, num_stages={self.num_stages}"


def _job(call: KernelCall) -> _Job:
    return _Job(call.fn.__module__, call.fn.__qualname__, call.signature(), call.all_constexprs(),
                call.num_warps, call.num_stages)


def _ptxas(arch: int) -> tuple[str, str]:
    """(path, version) of the ptxas Triton's wheel uses for ``arch``."""
    try:
        tool = get_ptxas(arch)
    except (RuntimeError, OSError) as e:
        tool, reason = None, str(e)
    else:
        reason = "not found"
    if tool is None or not tool.path or not Path(tool.path).is_file():
        raise CompileCheckError(
            f"no ptxas for sm_{arch} ({reason}): Triton's wheel ships one under "
            f"triton/backends/nvidia/bin; reinstall triton or point TRITON_PTXAS_PATH at a recent ptxas")
    return tool.path, str(tool.version)


def _compile_or_error(fn: JITFunction, job: _Job, arch: int, ptxas: tuple[str, str]) -> dict | str:
    """The report's fields, or the error message when it does not compile."""
    try:
        return _compile(fn, job, arch, ptxas)
    except CompileCheckError as e:
        return str(e)


def _compile(fn: JITFunction, job: _Job, arch: int, ptxas: tuple[str, str]) -> dict:
    specialized = [p.name for p in fn.params if not p.is_constexpr
                   and not (p.do_not_specialize and p.do_not_specialize_on_alignment)]
    if specialized:
        raise CompileCheckError(f"{job.describe(arch)}: the JIT specializes {specialized} on their "
                                f"values; decorate the kernel with fastcnn.kernels.launch.kernel")
    try:
        compiled = triton.compile(ASTSource(fn, job.signature, job.constexprs),
                                  target=GPUTarget("cuda", arch, 32),
                                  options={"num_warps": job.num_warps, "num_stages": job.num_stages,
                                           "launch_pdl": bool(job.constexprs.get("PDL"))})
    except Exception as e:  # Triton raises many types: CompilationError, RuntimeError, AssertionError, ...
        raise CompileCheckError(f"{job.describe(arch)} does not compile: {type(e).__name__}: {e}") from e
    ptx, fp_fusion = compiled.asm["ptx"], getattr(compiled.metadata, "enable_fp_fusion", True)
    stats = _ptxas_stats(ptx, compiled.metadata.name, arch, ptxas[0], fp_fusion, job.describe(arch))
    cubin_registers = _cubin_registers(compiled.asm["cubin"])
    if cubin_registers is not None and cubin_registers != stats["registers"]:
        raise CompileCheckError(
            f"{job.describe(arch)}: ptxas -v reports {stats['registers']} registers, Triton's cubin has "
            f"{cubin_registers}: this module's ptxas flags ({' '.join(_ptxas_flags(arch, fp_fusion))}) no "
            f"longer match Triton {triton.__version__}'s make_cubin")
    return dict(name=compiled.metadata.name, constexprs=tuple(sorted(job.constexprs.items())), arch=arch,
                signature=tuple((k, t) for k, t in job.signature.items() if t != "constexpr"),
                num_warps=job.num_warps, num_stages=job.num_stages, dynamic_shared=compiled.metadata.shared,
                math=_math_path(ptx), waits_for_grid="griddepcontrol.wait" in ptx,
                triton_version=triton.__version__, ptxas_version=ptxas[1], **stats)


def _math_path(ptx: str) -> str:
    if "wgmma." in ptx:
        return "wgmma"
    if re.search(r"\bmma\.sync\.", ptx):
        return "mma"
    return "fma"


@functools.cache
def _triton_regalloc_flag() -> list[str]:
    """``--regAllocOptLevel=2`` if this Triton's ``make_cubin`` passes it (3.9 does, to work around
    a ptxas 13 bug); it changes register allocation, so the ``-v`` run must match."""
    try:
        source = inspect.getsource(CUDABackend.make_cubin)
    except (OSError, TypeError):
        return ["--regAllocOptLevel=2"]
    return [flag for flag in ["--regAllocOptLevel=2"] if flag in source]


def _ptxas_flags(arch: int, fp_fusion: bool = True) -> list[str]:
    """The flags Triton's ``make_cubin`` passes, its debug switches at their defaults."""
    return ["-lineinfo", "-v", *([] if fp_fusion else ["--fmad=false"]), *_triton_regalloc_flag(),
            f"--gpu-name=sm_{arch}{'a' if arch >= 90 else ''}"]


def _ptxas_stats(ptx: str, name: str, arch: int, ptxas: str, fp_fusion: bool, what: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="fastcnn-ptxas-") as folder:
        source = Path(folder) / f"{name}.ptx"
        source.write_text(ptx)
        flags = _ptxas_flags(arch, fp_fusion)
        run = subprocess.run([ptxas, *flags, str(source), "-o", str(source.with_suffix(".cubin"))],
                             capture_output=True, text=True)
    log = run.stdout + run.stderr
    if run.returncode != 0:
        raise CompileCheckError(f"{what}: ptxas failed with code {run.returncode}:\n{log}")
    return _parse_ptxas_log(log, name) | {"ptxas_log": log}


def _parse_ptxas_log(log: str, name: str) -> dict:
    """Registers and static shared memory of the entry ``name``; spills and stack summed over
    every function (a non-inlined callee's spills cost as much as the kernel's own)."""
    start = log.find(f"entry function '{name}'")
    end = log.find("entry function", start + 1)
    entry = log[start:end if end > 0 else len(log)] if start >= 0 else ""
    used = re.search(r"Used (\d+) registers", entry)
    if used is None:
        raise CompileCheckError(f"no register count for {name} in the ptxas log:\n{log}")
    smem = re.search(r"(\d+) bytes smem", entry)

    def total(pattern: str) -> int:
        return sum(int(n) for n in re.findall(pattern, log))

    return {"registers": int(used.group(1)), "static_shared": int(smem.group(1)) if smem else 0,
            "spill_stores": total(r"(\d+) bytes spill stores"), "spill_loads": total(r"(\d+) bytes spill loads"),
            "stack_frame": total(r"(\d+) bytes stack frame")}


_EIATTR_REGCOUNT = 0x2F
_EIFMT_SVAL = 0x04


def _cubin_registers(cubin: bytes) -> int | None:
    """Registers per thread from a cubin's ``.nv.info`` section (attribute EIATTR_REGCOUNT:
    format byte, attribute byte, 16-bit size, then symbol index and value), or None if the
    cubin does not have it in that form."""
    if cubin[:5] != b"\x7fELF\x02":
        return None
    (shoff,) = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", cubin, shoff + i * shentsize) for i in range(shnum)]
    names = headers[shstrndx][4]
    for name_at, _, _, _, offset, size in headers:
        if cubin[names + name_at:cubin.index(b"\0", names + name_at)] != b".nv.info":
            continue
        at = offset
        while at + 4 <= offset + size:
            fmt, attr, length = struct.unpack_from("<BBH", cubin, at)
            if fmt == _EIFMT_SVAL and attr == _EIATTR_REGCOUNT and length == 8:
                return struct.unpack_from("<II", cubin, at + 4)[1]
            at += 4 + (length if fmt == _EIFMT_SVAL else 0)
    return None


def _compile_in_children(jobs: list[_Job], arch: int, ptxas: tuple[str, str]) -> list[dict | str]:
    """:func:`_compile_in_child` on one share of ``jobs`` per CPU core, the children in parallel
    (compiling is single-threaded, so a zoo's few hundred variants take minutes on one core)."""
    workers = max(1, min(os.cpu_count() or 1, len(jobs) // 8 or 1))
    shares = [jobs[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(lambda share: _compile_in_child(share, arch, ptxas), shares))
    results: list[dict | str] = [""] * len(jobs)
    for i, answer in enumerate(answers):
        results[i::workers] = answer
    return results


def _compile_in_child(jobs: list[_Job], arch: int, ptxas: tuple[str, str]) -> list[dict | str]:
    """Compile in a fresh Python without ``TRITON_INTERPRET``, where the kernels' modules define
    real JIT functions; the child gets this process's ``sys.path`` to import them."""
    for job in jobs:
        if "<" in job.qualname or job.module == "__main__":
            raise CompileCheckError(f"{job.describe(arch)}: under TRITON_INTERPRET the compile check "
                                    f"imports kernels by name, and {job.module}.{job.qualname} is not importable")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    with tempfile.TemporaryDirectory(prefix="fastcnn-compile-") as folder:
        request, answer = Path(folder) / "jobs.pickle", Path(folder) / "reports.pickle"
        try:
            request.write_bytes(pickle.dumps((jobs, arch, ptxas)))
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise CompileCheckError(f"cannot hand {[job.describe(arch) for job in jobs]} to the child "
                                    f"process: a constexpr is not picklable ({e})") from e
        main = f"import sys; from {__name__} import _child_main; _child_main(*sys.argv[1:])"
        run = subprocess.run([sys.executable, "-c", main, str(request), str(answer)],
                             capture_output=True, text=True, env=env)
        if run.returncode != 0 or not answer.exists():
            raise CompileCheckError(f"the compile-check child process failed (code {run.returncode}):\n"
                                    f"{run.stderr[-4000:]}")
        return pickle.loads(answer.read_bytes())


def _child_main(request: str, answer: str) -> None:
    import importlib

    jobs, arch, ptxas = pickle.loads(Path(request).read_bytes())
    results = []
    for job in jobs:
        try:
            fn = importlib.import_module(job.module)
            for part in job.qualname.split("."):
                fn = getattr(fn, part)
        except (ImportError, AttributeError) as e:
            results.append(f"{job.describe(arch)}: cannot import {job.module}.{job.qualname}: {e}")
            continue
        if not isinstance(fn, JITFunction):
            results.append(f"{job.describe(arch)}: {job.module}.{job.qualname} is a {type(fn).__name__}, "
                           f"not a Triton JIT function")
        else:
            results.append(_compile_or_error(fn, job, arch, ptxas))
    Path(answer).write_bytes(pickle.dumps(results))


# ---------------------------------------------------------------------------------------------
# Occupancy


@dataclass(frozen=True)
class Occupancy:
    blocks_per_sm: int
    warps_per_sm: int
    max_warps_per_sm: int
    limiter: str  # "registers", "shared memory", "warps" or "blocks"

    @property
    def fraction(self) -> float:
        return self.warps_per_sm / self.max_warps_per_sm


@dataclass(frozen=True)
class _SM:
    shared_per_sm: int
    shared_per_block: int


# Per compute capability, from the CUDA C++ Programming Guide's table of technical
# specifications per compute capability: 8.0 has up to 164 KiB of shared memory per SM and
# 163 KiB per block; 9.0 has 228 KiB per SM and 227 KiB per block (the carveout set to its
# maximum, which the driver picks for a kernel that needs it).
_SMS = {80: _SM(164 * 1024, 163 * 1024), 90: _SM(228 * 1024, 227 * 1024)}
# Common to 8.0 and 9.0 (same table, and the CUDA Occupancy Calculator's rules).
_REGISTERS_PER_SM = 64 * 1024
_MAX_REGISTERS_PER_THREAD = 255
_REGISTER_UNIT = 256  # registers are allocated per warp, in units of 256
_SHARED_UNIT = 128  # shared memory is allocated per block, in units of 128 bytes
_SHARED_RESERVED = 1024  # the CUDA runtime reserves 1 KiB of shared memory per block (8.0+)
_MAX_WARPS_PER_SM = 64
_MAX_BLOCKS_PER_SM = 32
_MAX_WARPS_PER_BLOCK = 32  # 1024 threads


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def occupancy(report: CompileReport, arch: int | None = None) -> Occupancy:
    """Resident blocks and warps per SM for ``report`` on ``sm_{arch}`` (its own arch by default).

    The rules of NVIDIA's CUDA Occupancy Calculator, with the limits of the CUDA C++
    Programming Guide's compute capability table (the same for 8.0 and 9.0 except shared
    memory). The fewest blocks allowed by any of these is resident:

    * registers: a warp takes ``ceil(32 * registers / 256) * 256`` of the SM's 65536 registers
      (at most 255 per thread); blocks = (65536 // per warp) // warps per block;
    * shared memory: a block takes its static plus dynamic shared memory rounded up to 128 bytes,
      plus 1 KiB the runtime reserves per block; the SM has 164 KiB (sm_80) or 228 KiB (sm_90),
      and a block may use at most 163 KiB (sm_80) or 227 KiB (sm_90) or it cannot launch (0);
    * warps: 64 per SM; a block has at most 32;
    * blocks: 32 per SM.
    """
    arch = report.arch if arch is None else arch
    sm, warps = _SMS[arch], report.num_warps
    if not 0 < warps <= _MAX_WARPS_PER_BLOCK or report.registers > _MAX_REGISTERS_PER_THREAD:
        raise ValueError(f"{report.name}: {warps} warps and {report.registers} registers cannot launch")
    per_warp = _round_up(32 * report.registers, _REGISTER_UNIT)
    shared = _round_up(report.shared, _SHARED_UNIT) + _SHARED_RESERVED
    limits = {  # on a tie the first is named: the hardware's warp and block limits before resources
        "warps": _MAX_WARPS_PER_SM // warps,
        "blocks": _MAX_BLOCKS_PER_SM,
        "registers": (_REGISTERS_PER_SM // per_warp) // warps if per_warp else _MAX_BLOCKS_PER_SM,
        "shared memory": sm.shared_per_sm // shared if report.shared <= sm.shared_per_block else 0,
    }
    limiter = min(limits, key=limits.get)
    blocks = limits[limiter]
    return Occupancy(blocks, blocks * warps, _MAX_WARPS_PER_SM, limiter)


# ---------------------------------------------------------------------------------------------
# The table for ``fastcnn kernels --arch sm_90``

COLUMNS = ("kernel", "dtypes", "constexprs", "warps", "stages", "regs", "spills st/ld", "smem KiB", "occupancy", "math")


def short_constexprs(constexprs: Sequence[tuple[str, Any]]) -> str:
    """``BLOCK_M=64`` as ``M64``, a true flag by its name, a false or None one not at all,
    anything else as ``NAME=value``."""
    parts = []
    for name, value in constexprs:
        if value is None or value is False:
            continue
        if value is True:
            parts.append(name)
        elif name.startswith("BLOCK_") and isinstance(value, int):
            parts.append(f"{name[len('BLOCK_'):]}{value}")
        else:
            parts.append(f"{name}={value}")
    return " ".join(parts)


def _row(report: CompileReport) -> tuple[str, ...]:
    occ = occupancy(report)
    spills = f"{report.spill_stores}/{report.spill_loads}" if report.spills else "0"
    return (report.name, report.dtypes, short_constexprs(report.constexprs), str(report.num_warps),
            str(report.num_stages), str(report.registers), spills, f"{report.shared / 1024:.1f}",
            f"{occ.warps_per_sm}/{occ.max_warps_per_sm} ({occ.fraction:.0%}, {occ.limiter})", report.math)


def format_reports(reports: Sequence[CompileReport]) -> str:
    """A table, one row per report, under a line naming the arch(es) and toolchain."""
    rows = [COLUMNS, *map(_row, reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    tools = sorted({(f"sm_{r.arch}", r.triton_version, r.ptxas_version) for r in reports})
    title = "; ".join(f"{arch}: Triton {t}, ptxas {p}" for arch, t, p in tools) or "no kernels"
    lines = [title] + ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def report_dict(report: CompileReport) -> dict:
    """The report as JSON-ready data, occupancy included and the ptxas log left out."""
    data = {k: v for k, v in asdict(report).items() if k != "ptxas_log"} | {"signature": dict(report.signature)}
    data["constexprs"] = {k: v if isinstance(v, (bool, int, float, str, type(None))) else str(v)
                          for k, v in report.constexprs}
    return data | {"shared": report.shared, "spills": report.spills, "tensor_cores": report.tensor_cores,
                   "occupancy": asdict(occupancy(report)) | {"fraction": occupancy(report).fraction}}
