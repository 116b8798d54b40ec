"""Tensors for the kernel tests: where they live, how close the kernels must come, and the
buffers and views the kernels write into.

A kernel writes into an output it is handed, so every output starts as NaN: an element the
kernel failed to write stays NaN, which the float64 comparison catches (``relative_l2`` is inf
for any NaN), and the parts of a wider buffer outside the output must still be NaN afterwards
(:func:`untouched_outside`). Inputs and outputs come in the layouts the engine uses, NCHW, NHWC
and a channel slice of a wider NHWC buffer (a concat's output, DenseNet's block buffer): the
slices prove that a kernel honours channel offsets and strides instead of assuming a dense tensor.
"""
from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

# The relative L2 error allowed against float64 torch, by the dtype the kernel computes in.
TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}
NAN = float("nan")
# Without a GPU the kernels run under Triton's interpreter on CPU tensors (see tests/conftest.py).
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
LAYOUTS = ("nchw", "nhwc", "slice")  # cases draw from it with a fixed seed: keep the order
NHWC = (0, 2, 3, 1)  # the storage order of an NHWC buffer, outermost axis first

# A NaN reaching the interpreter's dot means a load read poison it should have masked.
NAN_IN_DOT_IS_AN_ERROR = pytest.mark.filterwarnings("error:invalid value encountered in matmul:RuntimeWarning")
# NumPy warns about the masked lanes (and the NaN rows) the interpreter computes anyway.
MASKED_LANE_WARNINGS_IGNORED = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def strided(shape: Sequence[int], order: Sequence[int], dtype: torch.dtype, gen: torch.Generator | None = None,
            *, widen: int = 0, start: int = 0, scale: float = 1.0,
            device: torch.device = DEVICE) -> tuple[torch.Tensor, torch.Tensor]:
    """(buffer, view): a view of logical ``shape`` into a buffer that stores its axes in ``order``
    (outermost first) and holds ``widen`` more elements along axis 1, the view's from ``start``.

    The buffer is ``scale * randn`` drawn from ``gen``, or NaN (an output) when ``gen`` is None.
    """
    order = list(order)
    buf_shape = [shape[axis] for axis in order]
    if widen:
        buf_shape[order.index(1)] += widen
    data = torch.randn(buf_shape, generator=gen) * scale if gen is not None else torch.full(buf_shape, NAN)
    buf = data.to(device, dtype)
    view = buf.permute([order.index(axis) for axis in range(len(shape))])
    return buf, view.narrow(1, start, shape[1]) if widen else view


def layout_view(shape: Sequence[int], layout: str, dtype: torch.dtype,
                gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(buffer, view) of logical NCHW ``shape`` in one of :data:`LAYOUTS`: ``nchw``, ``nhwc``, or
    ``slice``, channels 2.. of an NHWC buffer 5 channels wider (random, or NaN without ``gen``)."""
    if layout == "nchw":
        return strided(shape, (0, 1, 2, 3), dtype, gen)
    return strided(shape, NHWC, dtype, gen, widen=5 if layout == "slice" else 0, start=2)


def untouched_outside(buf: torch.Tensor, view: torch.Tensor) -> bool:
    """Whether every element of ``buf`` outside ``view`` is still NaN: the kernel wrote its view only."""
    outside = torch.ones_like(buf, dtype=torch.bool)
    outside.as_strided(view.shape, view.stride(), view.storage_offset() - buf.storage_offset()).fill_(False)
    return bool(buf[outside].isnan().all())
