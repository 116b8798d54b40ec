"""IR ops with no Triton kernel, run inside the Triton plan by the torch backend's own op.

A node no Triton kernel computes (ConvTranspose, Where, MaxPool's indices, a convolution whose
weight is computed at run time, ...) becomes one :class:`TorchOpCall` among the plan's kernel
launches. It calls the function the torch backend runs for that IR op
(:data:`fastcnn.backends.torch_ops.TORCH_OPS`, never a copy of it) on the plan's tensors, and
copies each result into its planned buffer. Those tensors are strided views of the arena with
the logical NCHW shape, so the op sees NCHW whatever the layout (an NHWC buffer, a channel
slice of a concat buffer) and ``copy_`` writes through the output's strides: no layout code
here. The op's temporaries come from torch's caching allocator, which CUDA graph capture
handles, so the call is captured with the rest of the plan. ``engine.plan`` and
``fastcnn plan`` show it as ``torch:<op>``; which nodes run so, and why, is
:func:`fastcnn.backends.triton_lowering.torch_reason`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from fastcnn.backends.torch_ops import TORCH_OPS, OpFn


@dataclass(frozen=True)
class TorchOpCall:
    """One IR node run by its torch op on the plan's views: call it to run."""

    op: str  # the IR op, a key of TORCH_OPS
    fn: OpFn
    inputs: tuple[Tensor | None, ...]  # in the node's order, None for an omitted optional input
    attrs: dict[str, Any]
    outputs: tuple[Tensor, ...]
    # Per output, the count a sum stands for: a squeeze-excite pooled output is kept as the sum
    # of the convolution's outputs (the gate divides), where the torch op returns their mean.
    sums: tuple[int | None, ...]
    reason: str  # why no Triton kernel runs it

    @property
    def name(self) -> str:
        return f"torch:{self.op}"

    def __call__(self) -> None:
        result = self.fn(list(self.inputs), self.attrs)
        results = [result] if isinstance(result, Tensor) else list(result)
        for out, value, count in zip(self.outputs, results, self.sums, strict=True):
            out.copy_(value if count is None else value * count)


def torch_op_call(op: str, inputs: list[Tensor | None], attrs: dict[str, Any], outputs: list[Tensor],
                  sums: list[int | None] | None = None, reason: str = "") -> TorchOpCall:
    """IR op ``op`` with ``attrs`` on ``inputs``, its results stored into ``outputs``."""
    if op not in TORCH_OPS:
        raise ValueError(f"no torch op for IR op {op!r}")
    sums = sums if sums is not None else [None] * len(outputs)
    if len(sums) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs but {len(sums)} sum counts")
    return TorchOpCall(op, TORCH_OPS[op], tuple(inputs), dict(attrs), tuple(outputs), tuple(sums), reason)
