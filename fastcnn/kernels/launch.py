"""One description of a kernel launch, shared by the launcher and the compile check.

Triton's JIT specializes a kernel on the values it is launched with: an integer equal to 1
becomes a constant, integers divisible by 16 and 16-byte aligned pointers get hints that
change vectorisation and registers a great deal. A compile check that guesses those would
check another kernel than the one that runs. So fastcnn's kernels turn that off
(:func:`kernel`: no argument is specialized on its value) and say what matters explicitly,
as ``tl.constexpr`` flags that the launcher computes (``C_CONTIGUOUS``, ``EVEN_K``, ...).
A :class:`KernelCall` then holds everything that determines the compiled code: the
kernel, its runtime arguments (whose Triton types follow from their dtypes alone), the
constexprs, the warps and stages. The launcher calls it; the compile check
(:mod:`fastcnn.kernels.compile_check`) compiles exactly its :meth:`KernelCall.signature` and
constexprs.

This module imports nothing else from fastcnn.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

_TRITON_TYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64",
                 torch.int32: "i32", torch.int64: "i64", torch.int8: "i8", torch.uint8: "u8", torch.bool: "i1"}


def _runtime_params(fn: Callable) -> list[str]:
    """The parameters of ``fn`` that are not ``tl.constexpr``."""
    return [name for name, p in inspect.signature(fn).parameters.items()
            if p.annotation not in (tl.constexpr, "tl.constexpr")]


def kernel(fn: Callable) -> Any:
    """``@triton.jit`` without value specialization: see the module docstring."""
    names = _runtime_params(fn)
    return triton.jit(fn, do_not_specialize=names, do_not_specialize_on_alignment=names)


@triton.jit
def grid_dependency(PDL: tl.constexpr):
    """The first statement of every kernel. With ``PDL`` (a programmatic dependent launch, sm_90
    and later) the kernel waits until the kernel before it has finished and its writes are
    visible, before it reads or writes anything; then it lets the next kernel launch, whose
    programs in turn wait. So launches overlap with the previous kernel's tail, and no kernel
    touches memory early. Without ``PDL`` it compiles to nothing."""
    if PDL:
        gdc_wait()
        gdc_launch_dependents()


@functools.lru_cache(maxsize=None)
def _takes_pdl(fn: Callable) -> bool:
    """Whether kernel function ``fn`` has the ``PDL`` flag; asked at every launch, so cached."""
    return "PDL" in inspect.signature(fn).parameters


def triton_type(value: Any) -> str:
    """The Triton signature type of a runtime argument, as the JIT derives it when it does not
    specialize: from a tensor's dtype, an int's range, a float."""
    if isinstance(value, torch.Tensor):
        return "*" + _TRITON_TYPES[value.dtype]
    if isinstance(value, bool):
        return "u1"  # what Triton's JIT calls a Python bool
    if isinstance(value, int):
        return "i32" if -2**31 <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"no Triton type for a runtime argument of type {type(value).__name__}")


@dataclass(frozen=True)
class KernelCall:
    """A kernel launch, fully specified: call it to launch."""

    kernel: Any  # a function decorated with :func:`kernel`
    args: tuple[Any, ...]  # runtime arguments, in the kernel's order
    constexprs: dict[str, Any]
    grid: tuple[int, ...]
    num_warps: int = 4
    num_stages: int = 2
    name: str = field(default="")
    pdl: bool = False  # launched as a programmatic dependent launch (see grid_dependency)

    def __call__(self) -> None:
        pdl = {"launch_pdl": True} if self.pdl else {}
        self.kernel[self.grid](*self.args, **self.all_constexprs(), num_warps=self.num_warps,
                               num_stages=self.num_stages, **pdl)

    def all_constexprs(self) -> dict[str, Any]:
        """The launcher's constexprs, and ``PDL`` for a kernel that takes it (fastcnn's all do,
        see :func:`grid_dependency`); only such a kernel may be launched with ``pdl``."""
        if not _takes_pdl(self.fn):
            if self.pdl:
                raise TypeError(f"{self.fn.__name__} takes no PDL flag, so it cannot be a dependent launch")
            return dict(self.constexprs)
        return {**self.constexprs, "PDL": self.pdl}

    @property
    def fn(self) -> Callable:
        """The kernel's Python function (the same under the interpreter and the JIT)."""
        return self.kernel.fn

    def signature(self) -> dict[str, str]:
        """Argument name -> Triton type, constexprs included, as ``triton.compile`` takes it."""
        params = list(inspect.signature(self.fn).parameters)
        runtime = _runtime_params(self.fn)
        if len(runtime) != len(self.args):
            raise TypeError(f"{self.fn.__name__} takes {len(runtime)} runtime arguments, got {len(self.args)}")
        types = dict(zip(runtime, map(triton_type, self.args)))
        return {name: types.get(name, "constexpr") for name in params}

    def variant(self) -> tuple:
        """What determines the compiled code (not the grid or the pointers' values)."""
        return (f"{self.fn.__module__}.{self.fn.__qualname__}", tuple(self.signature().items()),
                tuple(sorted(self.all_constexprs().items())),
                self.num_warps, self.num_stages)
