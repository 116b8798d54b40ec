"""Small helpers the converters share: axes, reshape targets, window paddings."""
from __future__ import annotations

import math
from typing import Sequence

from fastcnn.frontend.context import ImportContext, Unsupported
from fastcnn.ir import Dim, Shape, Value, dims


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` in ``[0, rank)``; ONNX allows negative axes counted from the end."""
    if not -rank <= axis < rank:
        raise Unsupported(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def reshape_target(in_shape: Shape, out_shape: Sequence[Dim], check_size: bool = True) -> tuple[int, ...]:
    """The IR ``reshape`` target taking ``in_shape`` to ``out_shape``.

    Static dims are written out; a symbolic dim at the same position as the same symbol in
    the input becomes ``0`` (copy, how the batch travels); at most one other symbolic dim
    becomes ``-1``. With ``check_size``, ``out_shape`` must hold as many elements as
    ``in_shape`` as far as the symbolic algebra can tell (``-1`` would hide a wrong target).
    """
    if check_size:
        _check_same_size(in_shape, out_shape)
    target: list[int] = []
    for i, d in enumerate(out_shape):
        if isinstance(d, int):
            if d <= 0:
                raise Unsupported(f"reshape to {tuple(out_shape)} has an empty or negative dim")
            target.append(d)
        elif i < len(in_shape) and in_shape[i] == d:
            target.append(0)
        else:
            target.append(-1)
    if target.count(-1) > 1:
        raise Unsupported(f"reshape of {tuple(in_shape)} to {tuple(out_shape)} has more than one "
                          "size known only at run time")
    return solve_wildcard(in_shape, tuple(target))


def _check_same_size(in_shape: Shape, out_shape: Sequence[Dim]) -> None:
    total, wanted = dims.product(tuple(in_shape)), dims.product(tuple(out_shape))
    if isinstance(total, int) and isinstance(wanted, int) or dims.canonical(total) == dims.canonical(wanted):
        return  # static sizes: the IR's reshape checks them
    ratio = dims.divide_exact(total, wanted) if wanted != 0 else None
    ratio_back = dims.divide_exact(wanted, total) if total != 0 else None
    if isinstance(ratio, int) or isinstance(ratio_back, int):
        raise Unsupported(f"reshape of {tuple(in_shape)} ({total} elements) to {tuple(out_shape)} ({wanted} "
                          "elements) changes the number of elements")
    raise Unsupported(f"reshape of {tuple(in_shape)} to {tuple(out_shape)}: fastcnn cannot show that both "
                      f"hold as many elements ({total} and {wanted})")


def solve_wildcard(in_shape: Shape, target: tuple[int, ...]) -> tuple[int, ...]:
    """``target`` with its ``-1`` computed, when every symbolic input dim is copied by a ``0``.

    Then the ``-1`` is a plain quotient of static sizes, and writing it out keeps the IR's
    shapes static where they are (``N x 96 x 3025`` rather than a symbolic product).
    """
    if -1 not in target:
        return target
    symbols = sorted(d for d in in_shape if isinstance(d, str))
    copied = sorted(in_shape[i] for i, t in enumerate(target) if t == 0 and isinstance(in_shape[i], str))
    if symbols != copied:
        return target
    static_in = math.prod(d for d in in_shape if isinstance(d, int))
    static_out = math.prod(t if t > 0 else (in_shape[i] if t == 0 and isinstance(in_shape[i], int) else 1)
                           for i, t in enumerate(target) if t != -1)
    if static_out == 0 or static_in % static_out:
        raise Unsupported(f"cannot reshape {tuple(in_shape)} to {list(target)}")
    return tuple(static_in // static_out if t == -1 else t for t in target)


def reshape_to(ctx: ImportContext, x: Value, out_shape: Sequence[Dim], suffix: str = "",
               out_name: str | None = None) -> Value:
    """Emit the IR reshape of ``x`` to ``out_shape`` (or nothing when it already has it)."""
    if tuple(x.shape) == tuple(out_shape) and out_name is None:
        return x
    return ctx.emit("reshape", [x], {"shape": reshape_target(x.shape, out_shape)}, suffix, out_name)


def window_padding(spatial: Shape, kernel: Sequence[int], strides: Sequence[int],
                   dilations: Sequence[int], auto_pad: str, pads: Sequence[int] | None) -> tuple[int, ...]:
    """Explicit ``(top, left, bottom, right)`` padding from ONNX ``auto_pad``/``pads``.

    ``SAME_UPPER``/``SAME_LOWER`` make the output ``ceil(input / stride)`` long, with the odd
    pixel of padding at the end (upper) or the beginning (lower); they need static sizes.
    """
    rank = len(kernel)
    if auto_pad in ("NOTSET", ""):
        padding = tuple(int(p) for p in pads) if pads else (0,) * (2 * rank)
        if len(padding) != 2 * rank:
            raise Unsupported(f"pads {list(padding)} do not have {2 * rank} entries")
        if any(p < 0 for p in padding):
            raise Unsupported(f"negative pads {list(padding)}")
        return padding
    if auto_pad == "VALID":
        return (0,) * (2 * rank)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad={auto_pad!r}")
    if not all(isinstance(d, int) for d in spatial):
        raise Unsupported(f"auto_pad={auto_pad} needs static spatial sizes, got {tuple(spatial)}")
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return (*begins, *ends)
