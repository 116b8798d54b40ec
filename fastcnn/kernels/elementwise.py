"""Elementwise kernels over strided views of up to four dimensions, and a strided mean.

One kernel computes ``out = activation(x <op> y + z)``, each operand optional: the unary ops
(``op`` none, an activation), the binary ops (``add``, ``sub``, ``mul``, ``div``, no
activation), a strided copy (neither), and the squeeze-excite scale
(:mod:`fastcnn.kernels.squeeze_excite`: ``mul``, a residual ``z``, ReLU). Broadcasting is
NumPy's, expressed through strides: a broadcast operand is an expanded view with stride 0.

The launcher drops unit dimensions, orders the rest by the output's strides (the output is
written along its own fastest axis) and merges dimensions that are contiguous in every
operand, so a contiguous tensor is one run and an NHWC view of NCHW shape is iterated
channel-fastest. A program covers a ``BLOCK_R x BLOCK_I`` tile of (rows, innermost axis):
only the row index needs dividing into the outer coordinates.

Also here, shared by the other kernel modules:

- :func:`activate`, the epilogue activations (``ACTIVATIONS``), NaN-propagating like
  PyTorch's: ReLU, clip and leaky ReLU keep a NaN, sigmoid and tanh give NaN for NaN;
- :func:`vector_width`, the alignment the launchers prove so that contiguous loads become
  16-byte accesses although the kernels are not specialized on values (see
  :mod:`fastcnn.kernels.launch`): the kernels take an extent as ``extent // VEC`` and
  multiply it back, which tells the compiler that masks are constant over ``VEC`` elements.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import triton
import triton.language as tl

from fastcnn.kernels.launch import KernelCall, grid_dependency, kernel

ACTIVATIONS = ("none", "relu", "clip", "sigmoid", "tanh", "leaky_relu")
BINARY_OPS = ("none", "add", "sub", "mul", "div")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MAX_RANK = 4


# -- device functions shared by the kernel modules ---------------------------------------------
@triton.jit
def activate(y, ACTIVATION: tl.constexpr, alpha, clip_lo, clip_hi):
    """``ACTIVATION`` applied to the fp32 tile ``y``; a NaN stays a NaN."""
    if ACTIVATION == "relu":
        y = tl.where(y < 0.0, 0.0, y)
    elif ACTIVATION == "clip":
        y = tl.where(y < clip_lo, clip_lo, tl.where(y > clip_hi, clip_hi, y))
    elif ACTIVATION == "sigmoid":
        y = 1.0 / (1.0 + tl.exp(-y))
    elif ACTIVATION == "tanh":
        # tanh(|y|) = (1 - e) / (1 + e) with e = exp(-2|y|); a short series near 0, where
        # 1 - e cancels (relative error ~1e-7 either side of the switch).
        a = tl.abs(y)
        e = tl.exp(-2.0 * a)
        big = (1.0 - e) / (1.0 + e)
        a2 = a * a
        small = a * (1.0 - a2 * (0.3333333333333333 - a2 * 0.13333333333333333))
        t = tl.where(a < 0.0625, small, big)
        y = tl.where(y < 0.0, -t, t)
    elif ACTIVATION == "leaky_relu":
        y = tl.where(y < 0.0, y * alpha, y)
    return y


# -- host helpers shared by the launchers -------------------------------------------------------
def activation_args(activation: str, alpha: float, clip_min: float | None,
                    clip_max: float | None) -> tuple[float, float, float]:
    """The runtime arguments of :func:`activate`: ``(alpha, clip_lo, clip_hi)``, a missing
    clip bound as an infinity (so ``clip`` with neither bound is the identity)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    lo = -math.inf if clip_min is None else float(clip_min)
    hi = math.inf if clip_max is None else float(clip_max)
    return float(alpha), lo, hi


def vector_width(extent: int, *views: tuple[torch.Tensor, Sequence[int]]) -> int:
    """The largest ``VEC`` (elements, at most 16 bytes of the widest dtype among ``views``)
    such that ``extent`` is a multiple of it and, for each ``(tensor, strides)`` whose
    innermost stride is 1, the tensor's address is ``VEC`` elements aligned and each of
    ``strides`` (its outer strides) a multiple of ``VEC``: then every contiguous run of a
    tile that starts at a multiple of ``VEC`` is a whole number of aligned vectors."""
    if not views:
        return 1
    vec = 16 // max(t.element_size() for t, _ in views)
    while vec > 1:
        if extent % vec == 0 and all(t.data_ptr() % (vec * t.element_size()) == 0
                                     and all(s % vec == 0 for s in strides) for t, strides in views):
            return vec
        vec //= 2
    return 1


def check_float(name: str, t: torch.Tensor, dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise ValueError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {t.dtype}")


def check_same_device(**tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        raise ValueError(f"tensors are on different devices: {devices}")


def check_writable(name: str, t: torch.Tensor) -> None:
    """An output must not write one element twice: no stride 0 on an axis longer than 1."""
    if any(st == 0 and sz > 1 for st, sz in zip(t.stride(), t.shape)):
        raise ValueError(f"{name} has stride 0 on an axis longer than 1 (strides {t.stride()}, "
                         f"shape {tuple(t.shape)}): an output must not alias itself")


def pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _coalesce(shape: Sequence[int], strides: list[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Merge the axes of ``shape`` into at most 4, outermost first, ordered by the first
    operand's strides (the output's), merging neighbours contiguous in every operand."""
    axes = [a for a in range(len(shape)) if shape[a] != 1]
    axes.sort(key=lambda a: -abs(strides[0][a]))  # stable: ties keep the logical order
    sizes: list[int] = []
    merged: list[list[int]] = [[] for _ in strides]
    for a in axes:
        if sizes and all(m[-1] == s[a] * shape[a] for m, s in zip(merged, strides)):
            sizes[-1] *= shape[a]
            for m, s in zip(merged, strides):
                m[-1] = s[a]
            continue
        sizes.append(shape[a])
        for m, s in zip(merged, strides):
            m.append(s[a])
    if len(sizes) > _MAX_RANK:
        raise ValueError(f"shape {tuple(shape)} with these strides needs {len(sizes)} axes, "
                         f"the kernel takes {_MAX_RANK}")
    pad = _MAX_RANK - len(sizes)
    return [1] * pad + sizes, [[0] * pad + m for m in merged]


# -- elementwise --------------------------------------------------------------------------------
@triton.jit
def _tile_ptrs(ptr, d0, d1, d2, i, s0, s1, s2, s3, INNER: tl.constexpr, VEC: tl.constexpr):
    """Pointers of a (rows, inner) tile: INNER 1 = unit inner stride, 2 = broadcast, 0 = any."""
    row = d0 * s0 + d1 * s1 + d2 * s2
    if INNER == 1:
        p = ptr + row[:, None] + i[None, :]
        p = tl.multiple_of(p, [1, VEC * (ptr.dtype.element_ty.primitive_bitwidth // 8)])
    elif INNER == 2:
        p = ptr + row[:, None] + (i * 0)[None, :]
    else:
        p = ptr + row[:, None] + (i.to(tl.int64) * s3)[None, :]
    return p


@kernel
def _elementwise_kernel(
    x_ptr, y_ptr, z_ptr, out_ptr,
    size1, size2, rows, inner_q,
    sx0, sx1, sx2, sx3, sy0, sy1, sy2, sy3, sz0, sz1, sz2, sz3, so0, so1, so2, so3,
    alpha, clip_lo, clip_hi,
    BINARY: tl.constexpr, HAS_Z: tl.constexpr, ACTIVATION: tl.constexpr,
    X_INNER: tl.constexpr, Y_INNER: tl.constexpr, Z_INNER: tl.constexpr, O_INNER: tl.constexpr,
    VEC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_I: tl.constexpr, PDL: tl.constexpr,
):
    grid_dependency(PDL)
    inner = inner_q * VEC
    pid = tl.program_id(0)
    blocks_i = tl.cdiv(inner, BLOCK_I)
    pid_i = pid % blocks_i
    pid_r = pid // blocks_i
    r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    d2 = (r % size2).to(tl.int64)
    t = r // size2
    d1 = (t % size1).to(tl.int64)
    d0 = (t // size1).to(tl.int64)
    mask = (r < rows)[:, None] & (i < inner)[None, :]

    v = tl.load(_tile_ptrs(x_ptr, d0, d1, d2, i, sx0, sx1, sx2, sx3, X_INNER, VEC), mask=mask).to(tl.float32)
    if BINARY != "none":
        y = tl.load(_tile_ptrs(y_ptr, d0, d1, d2, i, sy0, sy1, sy2, sy3, Y_INNER, VEC), mask=mask).to(tl.float32)
        if BINARY == "add":
            v = v + y
        elif BINARY == "sub":
            v = v - y
        elif BINARY == "mul":
            v = v * y
        else:
            v = v / y
    if HAS_Z:
        v += tl.load(_tile_ptrs(z_ptr, d0, d1, d2, i, sz0, sz1, sz2, sz3, Z_INNER, VEC), mask=mask).to(tl.float32)
    v = activate(v, ACTIVATION, alpha, clip_lo, clip_hi)
    o_ptrs = _tile_ptrs(out_ptr, d0, d1, d2, i, so0, so1, so2, so3, O_INNER, VEC)
    tl.store(o_ptrs, v.to(out_ptr.dtype.element_ty), mask=mask)


def _inner_mode(stride: int) -> int:
    return 1 if stride == 1 else 2 if stride == 0 else 0


def _broadcast_to(name: str, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    try:
        return t.expand(shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast to the output "
                         f"shape {tuple(shape)}") from None


def elementwise_call(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None,
                     z: torch.Tensor | None = None, *, binary: str = "none", activation: str = "none",
                     alpha: float = 0.01, clip_min: float | None = None,
                     clip_max: float | None = None) -> KernelCall:
    """``out = activation(x <binary> y + z)``; ``x``, ``y``, ``z`` broadcast to ``out``."""
    if binary not in BINARY_OPS:
        raise ValueError(f"binary must be one of {BINARY_OPS}, got {binary!r}")
    if (binary == "none") != (y is None):
        raise ValueError(f"binary {binary!r} {'takes no' if y is not None else 'needs a'} second operand")
    act = activation_args(activation, alpha, clip_min, clip_max)
    check_float("out", out)
    if out.dim() > _MAX_RANK:
        raise ValueError(f"out has rank {out.dim()}, at most {_MAX_RANK} is supported")
    check_writable("out", out)
    operands = {"x": x, "y": y, "z": z}
    views = {}
    for name, t in operands.items():
        if t is not None:
            check_float(name, t)
            views[name] = _broadcast_to(name, t, out.shape)
    check_same_device(out=out, **operands)
    names = list(views)
    sizes, strides = _coalesce(out.shape, [out.stride()] + [views[n].stride() for n in names])
    by_name = dict(zip(["out"] + names, strides))
    for n in ("y", "z"):  # absent operands: x stands in, never read
        views.setdefault(n, views["x"])
        by_name.setdefault(n, by_name["x"])
    inner, rows = sizes[3], sizes[0] * sizes[1] * sizes[2]
    used = ["out", "x"] + (["y"] if y is not None else []) + (["z"] if z is not None else [])
    tensors = {"out": out, **views}
    vec = vector_width(inner, *[(tensors[n], by_name[n][:3]) for n in used if by_name[n][3] == 1])
    block_i = min(pow2(inner), 1024)
    block_r = max(1, min(2048 // block_i, pow2(rows)))
    grid = (triton.cdiv(inner, block_i) * triton.cdiv(rows, block_r),)
    args = (views["x"], views["y"], views["z"], out, sizes[1], sizes[2], rows, inner // vec,
            *by_name["x"], *by_name["y"], *by_name["z"], *by_name["out"], *act)
    constexprs = dict(BINARY=binary, HAS_Z=z is not None, ACTIVATION=activation,
                      X_INNER=_inner_mode(by_name["x"][3]), Y_INNER=_inner_mode(by_name["y"][3]),
                      Z_INNER=_inner_mode(by_name["z"][3]), O_INNER=_inner_mode(by_name["out"][3]),
                      VEC=vec, BLOCK_R=block_r, BLOCK_I=block_i)
    return KernelCall(_elementwise_kernel, args, constexprs, grid, num_warps=4, num_stages=1,
                      name=f"elementwise_{binary}_{activation}")


def unary(x: torch.Tensor, out: torch.Tensor, activation: str = "none", *, alpha: float = 0.01,
          clip_min: float | None = None, clip_max: float | None = None) -> None:
    """``out = activation(x)`` (``none`` copies), ``x`` broadcast to ``out``."""
    if out.numel():
        elementwise_call(out, x, activation=activation, alpha=alpha, clip_min=clip_min, clip_max=clip_max)()


def binary(op: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
    """``out = a <op> b`` for ``op`` in add, sub, mul, div, NumPy broadcasting."""
    if op == "none":
        raise ValueError("binary needs an op: add, sub, mul or div")
    if out.numel():
        elementwise_call(out, a, b, binary=op)()


def strided_copy(x: torch.Tensor, out: torch.Tensor) -> None:
    """``out[...] = x`` between any two strided layouts of one shape (NHWC -> NCHW, ...)."""
    if tuple(x.shape) != tuple(out.shape):
        raise ValueError(f"strided_copy needs equal shapes, got {tuple(x.shape)} and {tuple(out.shape)}")
    unary(x, out)


# -- mean over axes -----------------------------------------------------------------------------
@kernel
def _reduce_mean_kernel(
    x_ptr, out_ptr,
    k1, k2, k3, rows, r1, r2, r3, count, inv_count,
    xk0, xk1, xk2, xk3, ok0, ok1, ok2, ok3, xr0, xr1, xr2, xr3,
    BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr, PDL: tl.constexpr,
):
    """Each row is one output element (kept coordinates k0..k3, ``rows`` of them); its
    ``count`` inputs are the reduced coordinates r0..r3, summed in fp32 ``BLOCK_K`` at a time."""
    grid_dependency(PDL)
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    c3 = r % k3
    t = r // k3
    c2 = t % k2
    t = t // k2
    c1 = t % k1
    c0 = t // k1
    x_row = c0.to(tl.int64) * xk0 + c1.to(tl.int64) * xk1 + c2.to(tl.int64) * xk2 + c3.to(tl.int64) * xk3
    acc = tl.zeros((BLOCK_R, BLOCK_K), dtype=tl.float32)
    for j0 in range(0, count, BLOCK_K):
        j = j0 + tl.arange(0, BLOCK_K)
        e3 = j % r3
        u = j // r3
        e2 = u % r2
        u = u // r2
        e1 = u % r1
        e0 = u // r1
        x_col = e0.to(tl.int64) * xr0 + e1.to(tl.int64) * xr1 + e2.to(tl.int64) * xr2 + e3.to(tl.int64) * xr3
        mask = (r < rows)[:, None] & (j < count)[None, :]
        acc += tl.load(x_ptr + x_row[:, None] + x_col[None, :], mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(acc, axis=1) * inv_count
    o = out_ptr + c0.to(tl.int64) * ok0 + c1.to(tl.int64) * ok1 + c2.to(tl.int64) * ok2 + c3.to(tl.int64) * ok3
    tl.store(o, mean.to(out_ptr.dtype.element_ty), mask=r < rows)


def _pad4(values: list[int], fill: int) -> list[int]:
    return [fill] * (_MAX_RANK - len(values)) + list(values)


def reduce_mean_call(x: torch.Tensor, out: torch.Tensor, axes: Sequence[int]) -> KernelCall:
    """``out = x.mean(axes)``; ``out`` has ``x``'s shape with the axes set to 1 (keepdims) or
    removed. An empty ``axes`` reduces every axis, as ONNX's ReduceMean."""
    check_float("x", x)
    check_float("out", out)
    check_same_device(x=x, out=out)
    rank = x.dim()
    if not 1 <= rank <= _MAX_RANK:
        raise ValueError(f"reduce_mean takes a tensor of rank 1..{_MAX_RANK}, got rank {rank}")
    if any(not -rank <= a < rank for a in axes):
        raise ValueError(f"reduce_mean axes {tuple(axes)} out of range for rank {rank}")
    reduced = sorted({a % rank for a in axes}) if axes else list(range(rank))
    kept = [a for a in range(rank) if a not in reduced]
    keep_shape = tuple(1 if a in reduced else x.shape[a] for a in range(rank))
    drop_shape = tuple(x.shape[a] for a in kept)
    if tuple(out.shape) == keep_shape:
        out_strides = [out.stride(a) for a in kept]
    elif tuple(out.shape) == drop_shape:
        out_strides = list(out.stride())
    else:
        raise ValueError(f"reduce_mean of {tuple(x.shape)} over {tuple(reduced)} gives {keep_shape} "
                         f"or {drop_shape}, out has shape {tuple(out.shape)}")
    check_writable("out", out)
    kept_sizes = _pad4([x.shape[a] for a in kept], 1)
    red_sizes = _pad4([x.shape[a] for a in reduced], 1)
    count = math.prod(red_sizes)
    rows = math.prod(kept_sizes)
    if count == 0:
        raise ValueError("reduce_mean over an empty axis")
    block_k = min(pow2(count), 256)
    block_r = max(1, min(1024 // block_k, pow2(rows)))
    args = (x, out, *kept_sizes[1:], rows, *red_sizes[1:], count, 1.0 / count,
            *_pad4([x.stride(a) for a in kept], 0), *_pad4(out_strides, 0),
            *_pad4([x.stride(a) for a in reduced], 0))
    return KernelCall(_reduce_mean_kernel, args, dict(BLOCK_R=block_r, BLOCK_K=block_k),
                      (triton.cdiv(rows, block_r),), num_warps=4, num_stages=1, name="reduce_mean")


def reduce_mean(x: torch.Tensor, out: torch.Tensor, axes: Sequence[int]) -> None:
    """``out = x.mean(axes, keepdim=out keeps them)`` in fp32, written in ``out``'s dtype."""
    call = reduce_mean_call(x, out, axes)
    if out.numel():
        call()
