"""The passes in the order they run, the pipeline each backend uses, and the switch to turn
a pass off.

A pass is a plain function ``Graph -> bool`` (did it change anything) that rewrites the
graph in place and leaves it valid (:func:`fastcnn.ir.verify`, which the tests run after
every pass). Each lives in its own module, named like the pass, with its math in the
module docstring. Every pass runs to its own fixed point, so the pipeline runs once.

A pass named in ``disabled`` (``fastcnn.load(..., disable_passes=[...])``, or the
``FASTCNN_DISABLE_PASSES`` environment variable, comma-separated) is skipped, so that a
wrong result can be bisected to one pass. ``FASTCNN_DUMP_PASSES=folder`` writes the graph
after each pass there, numbered, for reading diffs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from fastcnn.ir import Graph
from fastcnn.passes.drop_identity import drop_identity
from fastcnn.passes.fold_batch_norm import fold_batch_norm
from fastcnn.passes.fold_channel_affine import fold_channel_affine
from fastcnn.passes.fold_flatten_into_gemm import fold_flatten_into_gemm
from fastcnn.passes.fuse_concat import fuse_concat
from fastcnn.passes.fuse_conv_epilogue import fuse_conv_epilogue
from fastcnn.passes.fuse_gemm_epilogue import fuse_gemm_epilogue
from fastcnn.passes.fuse_prologue import fuse_prologue
from fastcnn.passes.fuse_se_pooling import fuse_se_pooling
from fastcnn.passes.fuse_squeeze_excite import fuse_squeeze_excite
from fastcnn.passes.layout_nhwc import layout_nhwc
from fastcnn.passes.merge_sibling_convs import merge_sibling_convs
from fastcnn.passes.reduce_mean_to_pool import reduce_mean_to_pool

Pass = Callable[[Graph], bool]


class PassError(RuntimeError):
    """A pass failed: a bug in fastcnn, reported with the pass's name so it can be switched off."""

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"pass {name!r} failed: {type(cause).__name__}: {cause}")
        self.name = name

# Every pass, in the one order any pipeline runs them.
PASSES: dict[str, Pass] = {
    # Identity and Dropout between two ops would hide every pattern below.
    "drop_identity": drop_identity,
    # Batch norm (both spellings) folds into the convolution or Gemm before it; what cannot
    # fold backwards is left for fuse_prologue, after the epilogues have taken their share.
    "fold_batch_norm": fold_batch_norm,
    "fold_channel_affine": fold_channel_affine,
    # Canonical forms the fusions match: a spatial ReduceMean is a global pool; a Flatten or
    # Reshape before a Gemm is the Gemm's way of reading its input.
    "reduce_mean_to_pool": reduce_mean_to_pool,
    "fold_flatten_into_gemm": fold_flatten_into_gemm,
    # Before the epilogues: the squeeze-excite's own 1x1 convolutions, ReLU and sigmoid
    # belong to its gate, not to convolution epilogues.
    "fuse_squeeze_excite": fuse_squeeze_excite,
    "fuse_conv_epilogue": fuse_conv_epilogue,
    "fuse_gemm_epilogue": fuse_gemm_epilogue,
    # A batch norm (+ ReLU) still standing reads a buffer several consumers share: it becomes
    # each consumer's prologue.
    "fuse_prologue": fuse_prologue,
    # After the epilogues: the convolution feeding a squeeze-excite gate is final, so it can
    # also sum its output for the gate.
    "fuse_se_pooling": fuse_se_pooling,
    # After epilogues and prologues, which siblings must share to be merged.
    "merge_sibling_convs": merge_sibling_convs,
    # Every producer is final, so each can be told where in a concat buffer to write.
    "fuse_concat": fuse_concat,
    # Last: a concat buffer takes one layout for all its slices, so buffers must be known.
    "layout_nhwc": layout_nhwc,
}

# The pipeline per backend. "full" is what the fused GPU engine (backend "triton") executes,
# and what `fastcnn plan` shows; the CPU backends keep what measurably pays on them
# (bench/test_latency.py, fastcnn-<backend> against fastcnn-<backend>-unfused):
# - torch runs every pass: its fused ops are the reference compositions with the epilogue done
#   in place on the convolution's fresh output, and nothing measured slower;
# - ONNX Runtime fuses Conv+activation and Conv+Add itself, and a prologue decomposed back
#   into ONNX is a Mul/Add/Relu per consumer that it cannot fuse: with every pass, densenet121
#   ran 19-32% slower and googlenet and inception_v3 3-8% slower than unfused (2026-11-30,
#   2-core VM, bench/results/2026-11-30-cpu-2core-ort-pipelines.json). It keeps the folds,
#   which only remove work, and measured the same as unfused.
PIPELINES: dict[str, tuple[str, ...]] = {
    "full": tuple(PASSES),
    "triton": tuple(PASSES),  # the same as "full", under its backend's name
    "torch": tuple(name for name in PASSES if name != "layout_nhwc"),  # it computes in logical NCHW
    "onnxruntime": ("drop_identity", "fold_batch_norm", "fold_channel_affine", "reduce_mean_to_pool"),
    # OpenVINO reads the same plain ONNX and fuses by itself as ONNX Runtime does: the folds only.
    "openvino": ("drop_identity", "fold_batch_norm", "fold_channel_affine", "reduce_mean_to_pool"),
    "none": (),
}

DISABLE_ENV = "FASTCNN_DISABLE_PASSES"
DUMP_ENV = "FASTCNN_DUMP_PASSES"


def check_pass_names(names: Iterable[str]) -> list[str]:
    """``names`` as a list, or ValueError naming the unknown ones and the known."""
    names = list(names)
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise ValueError(f"unknown pass(es) {unknown}; the passes are: {', '.join(PASSES)}")
    return names


def disabled_from_env() -> list[str]:
    """The passes ``FASTCNN_DISABLE_PASSES`` switches off (a debug switch; read only here)."""
    text = os.environ.get(DISABLE_ENV, "")
    return check_pass_names(n.strip() for n in text.split(",") if n.strip())


def run_pipeline(graph: Graph, pipeline: str | Iterable[str], disabled: Iterable[str] = (),
                 after_each: Callable[[str, Graph], None] | None = None) -> list[str]:
    """Run ``pipeline`` (a name in :data:`PIPELINES` or pass names) on ``graph`` in place,
    skipping ``disabled``; returns the names of the passes that changed something.

    ``after_each(name, graph)`` runs after every pass (tests verify the graph there).
    """
    names = PIPELINES[pipeline] if isinstance(pipeline, str) else check_pass_names(pipeline)
    skip = set(check_pass_names(disabled))
    dump_dir = os.environ.get(DUMP_ENV)
    changed = []
    for number, name in enumerate(names, 1):
        if name in skip:
            continue
        try:
            if PASSES[name](graph):
                changed.append(name)
        except Exception as exc:  # noqa: BLE001 - named, so the caller can say which pass to disable
            raise PassError(name, exc) from exc
        if after_each is not None:
            after_each(name, graph)
        if dump_dir:
            Path(dump_dir).mkdir(parents=True, exist_ok=True)
            (Path(dump_dir) / f"{number:02d}-{name}.txt").write_text(str(graph))
    return changed
