"""The fused GPU engine: the middle end's plan run as Triton kernels from one planned arena.

Built once per engine:

- the graph arrives rewritten by the ``triton`` pipeline (fused ops, concat buffers, NHWC);
  its dtype is set to the run dtype and its weights are packed once, into each kernel's
  layout and dtype (:mod:`fastcnn.backends.triton_lowering`);
- per batch *bucket* (powers of two up to ``max_batch``) the graph is specialized and planned
  (:func:`fastcnn.runtime.plan.make_plan`); one arena, sized for the largest bucket, holds
  every activation of every bucket, and one zeroed workspace the squeeze-excite sums and
  split-K partials. Every value becomes a strided view into them: an NHWC buffer, a channel
  slice of a concat buffer, a prefix of a DenseNet block, all just strides;
- each launch of the plan becomes a :class:`~fastcnn.kernels.launch.KernelCall` with its
  tensors bound (or, for a node no kernel runs, a
  :class:`~fastcnn.backends.triton_torch_ops.TorchOpCall`: the torch backend's op on the same
  views), so a run is a loop over prepared calls; on CUDA that loop is captured once per
  bucket into a CUDA graph and replayed.

``warmup(autotune=True)`` (or ``FASTCNN_AUTOTUNE=1``) measures, per bucket, each convolution's
and GEMM's candidate launches (:mod:`fastcnn.backends.triton_tuning`), records the fastest
correct one in the lowering and prepares the bucket again, so that its memory plan and its
launches follow the choice; the choices are cached on disk (:mod:`fastcnn.kernels.autotune`),
so a second process tunes nothing. Under the interpreter an explicit ``autotune=True`` needs
an injected ``timer`` (the tests' fake clock) and is refused without one, while the
environment variable is ignored there: nothing on a CPU measures a GPU's speed.

``FASTCNN_PDL=1`` on Hopper and later makes each Triton launch a programmatic dependent launch
(:func:`dependent_launches`): opt-in until measured against plain launches.

``run`` copies the batch into the bucket's input buffer (padding a batch between buckets
with zeros up to the next bucket), replays, and returns a fresh copy of the outputs' first
rows. Concurrent calls on one engine are serialised by a lock.

Without a GPU the same executor runs on the CPU under Triton's interpreter
(``TRITON_INTERPRET=1``), which is how the tests prove the whole plan; no CUDA graph there.
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor

from fastcnn.backends.devices import check_torch_device, triton_problem
from fastcnn.backends.triton_lowering import (
    Lowering,
    lower_node,
    pack_weights,
    torch_reason,
    unsupported_nodes,
    workspace_hook,
)
from fastcnn.backends.triton_tuning import KernelChoice, kernel_choices, tune_bucket
from fastcnn.errors import BackendUnavailableError, InputError, UnsupportedModelError
from fastcnn.ir import Graph, Value
from fastcnn.ir.cost import is_view
from fastcnn.kernels.autotune import Decision, Timer, TuneCache, Tuner, autotune_requested, environment
from fastcnn.kernels.launch import KernelCall
from fastcnn.runtime.memory import MemoryPlan
from fastcnn.runtime.plan import Plan, make_plan

DTYPES = {None: torch.float32, torch.float32: torch.float32, torch.float16: torch.float16,
          torch.bfloat16: torch.bfloat16}
MAX_BATCH = 64  # the largest bucket by default; a larger batch runs in several passes
MAX_BATCH_LIMIT = 4096  # one arena for the largest bucket; beyond this it is too large to be sane


def buckets(max_batch: int) -> list[int]:
    """Powers of two up to ``max_batch``, and ``max_batch`` itself."""
    sizes = [1 << i for i in range(max(1, max_batch).bit_length()) if 1 << i <= max_batch]
    return sorted({*sizes, max_batch})


@dataclass
class Bucket:
    """One batch size's prepared run: its input and output views, its calls, its CUDA graph."""

    batch: int
    inputs: list[Tensor]
    outputs: list[Tensor]
    calls: list
    graph: "torch.cuda.CUDAGraph | None" = None
    views: Any = None  # the _Views its calls are bound to (the tuner binds candidates to them)


class TritonExecutor:
    """Runs a graph rewritten by the ``triton`` pipeline as Triton kernels; built once, run many."""

    tunes = True  # warmup takes autotune=; Engine.warmup passes it on

    def __init__(self, graph: Graph, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, max_batch: int = MAX_BATCH, allow_tf32: bool = False) -> None:
        if not isinstance(max_batch, int) or isinstance(max_batch, bool) or not 1 <= max_batch <= MAX_BATCH_LIMIT:
            raise InputError(f"max_batch must be an integer from 1 to {MAX_BATCH_LIMIT}, not {max_batch!r}")
        self.device = check_torch_device(device, "triton", triton_problem)
        if dtype not in DTYPES:
            raise BackendUnavailableError(f"backend 'triton' runs float32, float16 and bfloat16, not {dtype}")
        missing = unsupported_nodes(graph)
        if missing:
            ops = sorted({op for op, _, _ in missing})
            raise UnsupportedModelError(f"the triton backend cannot run op(s) {', '.join(ops)}", missing)
        self.dtype = DTYPES[dtype]
        self.graph = _with_dtype(graph, self.dtype)
        if allow_tf32 and self.dtype != torch.float32:
            raise InputError(f"TF32 is a way to compute float32; this engine computes in {self.dtype}")
        self.lowering = Lowering(self.device, self.dtype, _multiprocessors(self.device), allow_tf32=allow_tf32,
                                 interpreted=self.device.type == "cpu")
        self.weights = pack_weights(self.graph, self.lowering)
        self.max_batch = max_batch
        self.dependent_launches = dependent_launches(self.device)
        # Inputs whose first dim is the batch (padded to the bucket, split past max_batch); any
        # other (a convolution's weight fed at run time) is copied whole into every bucket.
        self._batched = [bool(v.shape) and isinstance(v.shape[0], str) for v in self.graph.inputs]
        if not any(self._batched):  # a graph of fixed sizes: its first input's dim 0 is the batch
            self._batched = [i == 0 for i in range(len(self.graph.inputs))]
        self._buckets: dict[int, Bucket] = {}
        self._arena = torch.empty(0, dtype=torch.uint8, device=self.device)
        self._workspace = torch.empty(0, dtype=torch.uint8, device=self.device)
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, int], Decision] = {}  # the tuner's, by (node, batch)

    # -- running ----------------------------------------------------------------------------
    def run(self, inputs: list[Tensor]) -> list[Tensor]:
        """Outputs in ``graph.outputs`` order for ``inputs`` in ``graph.inputs`` order."""
        empty = next((t for t in inputs if t.numel() == 0), None)
        if empty is not None:
            raise InputError(f"the triton backend does not run empty tensors (an input of shape "
                             f"{tuple(empty.shape)}, 0 elements); an empty batch (N=0) runs on the torch "
                             "and onnxruntime backends")
        batched = [t for t, has in zip(inputs, self._batched, strict=True) if has] or inputs
        batch = batched[0].shape[0] if batched and batched[0].dim() else 1
        with self._lock, torch.inference_mode():
            if batch > self.max_batch:
                return self._run_in_parts(inputs, batch)
            return self._run_bucket(self._bucket_for(batch), inputs, batch)

    def warmup(self, autotune: bool | None = None, *, timer: Timer | None = None,
               cache: TuneCache | None = None) -> None:
        """Prepare (and on CUDA capture) every bucket now, instead of on first use; with
        ``autotune`` (None: ``FASTCNN_AUTOTUNE``) tune each bucket's layers first. ``timer``
        replaces the GPU clock (tests), ``cache`` the on-disk cache."""
        tuner = self._tuner(autotune, timer, cache)
        with self._lock, torch.inference_mode():
            for size in reversed(buckets(self.max_batch)):  # the largest first: the arena is sized once
                bucket = self._bucket(size, tuner)
                zeros = [torch.zeros_like(t) for t in bucket.inputs]
                self._run_bucket(bucket, zeros, size)

    def _run_in_parts(self, inputs: list[Tensor], batch: int) -> list[Tensor]:
        parts = []
        for start in range(0, batch, self.max_batch):
            chunk = [t[start:start + self.max_batch] if has else t
                     for t, has in zip(inputs, self._batched, strict=True)]
            size = min(self.max_batch, batch - start)
            parts.append(self._run_bucket(self._bucket_for(size), chunk, size))
        return [torch.cat(outs) for outs in zip(*parts, strict=True)]

    def _run_bucket(self, bucket: Bucket, inputs: list[Tensor], batch: int) -> list[Tensor]:
        for slot, tensor, has_batch in zip(bucket.inputs, inputs, self._batched, strict=True):
            if not has_batch:  # a weight fed at run time: the same in every bucket
                slot.copy_(tensor.to(device=self.device, dtype=slot.dtype))
                continue
            slot[:batch].copy_(tensor.to(device=self.device, dtype=slot.dtype))
            if batch < bucket.batch:
                slot[batch:].zero_()
        if bucket.graph is not None:
            bucket.graph.replay()
        else:
            self._launch(bucket)
            if self.device.type == "cuda":
                bucket.graph = self._capture(bucket)
        return [out[:batch].clone() for out in bucket.outputs]

    def _launch(self, bucket: Bucket) -> None:
        if self._workspace.numel():
            self._workspace.zero_()
        for call in bucket.calls:
            call()

    def _capture(self, bucket: Bucket) -> "torch.cuda.CUDAGraph":
        """Capture the bucket's launches (after one eager run compiled every kernel)."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(stream), torch.cuda.graph(graph, stream=stream):
            self._launch(bucket)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        return graph

    # -- building ---------------------------------------------------------------------------
    def _bucket(self, size: int, tuner: Tuner | None = None) -> Bucket:
        """The bucket of ``size``, prepared (and tuned) on first use; ``tuner`` tunes it again."""
        if size not in self._buckets:
            self._buckets[size] = self._prepare(size)
            tuner = tuner or self._tuner(None)
        if tuner is not None:
            self._tune(size, tuner)
        return self._buckets[size]

    def _tuner(self, autotune: bool | None, timer: Timer | None = None, cache: TuneCache | None = None) -> Tuner | None:
        """A tuner if tuning is asked for and can measure here, else None; an explicit request
        that cannot be met (the interpreter without a timer) is refused."""
        if not autotune_requested(autotune):
            return None
        if self.device.type != "cuda" and timer is None:
            if autotune:
                raise InputError("autotuning measures kernels on a GPU; under Triton's interpreter pass a timer "
                                 "(executor.warmup(autotune=True, timer=...)), or leave the rules to choose")
            return None  # FASTCNN_AUTOTUNE=1 on the interpreter: the rules decide
        return Tuner(cache if cache is not None else TuneCache(), timer)

    def _tune(self, size: int, tuner: Tuner) -> None:
        """Tune bucket ``size``'s layers, then prepare it again with the choices, so that its
        workspace is planned for them (this may grow the arena and re-bind other buckets)."""
        bucket = self._buckets[size]
        env = environment(self.device, self.lowering.sm_count)
        decisions = tune_bucket(bucket.views.graph, bucket.views, self.weights, self.lowering, tuner, env)
        self._decisions.update(decisions)
        choices = {**self.lowering.choices, **{key: d.value for key, d in decisions.items()}}
        self.lowering = dataclasses.replace(self.lowering, choices=choices)
        self._buckets[size] = self._prepare(size)

    @property
    def buckets(self) -> Mapping[int, Bucket]:
        """The batch buckets prepared so far, by size (read-only): each one's launches, the
        views they are bound to (with the memory plan), its CUDA graph once captured."""
        return MappingProxyType(self._buckets)

    @property
    def arena(self) -> Tensor:
        """The activation arena (bytes) every bucket's views point into."""
        return self._arena

    def prepare(self, batch: int) -> Bucket:
        """The bucket that runs ``batch`` (the smallest size at least ``batch``), prepared now if
        it was not; ``batch`` at most ``max_batch``."""
        if not 1 <= batch <= self.max_batch:
            raise InputError(f"batch must be from 1 to max_batch={self.max_batch}, not {batch}")
        with self._lock:
            return self._bucket_for(batch)

    def _bucket_for(self, batch: int) -> Bucket:
        return self._bucket(next(b for b in buckets(self.max_batch) if b >= batch))

    def kernel_choices(self) -> list[KernelChoice]:
        """Per convolution and GEMM of each prepared bucket (batch 1 if none is), which launch
        runs and why: ``rule``, or the tuner's reason (``tuned: 0.12 ms vs rule 0.15 ms``)."""
        rows = []
        for size in sorted(self._buckets) or [1]:
            rows += kernel_choices(_static(self.graph, size), size, self.lowering, self._decisions)
        return rows

    def plan(self, batch: int = 1) -> Plan:
        """The launches this executor makes at ``batch`` and their memory: split-K workspace
        included, and each node run as a torch op shown as ``torch:<op>``."""
        return make_plan(self.graph, batch, workspace=workspace_hook(self.lowering), torch_ops=torch_reason)

    def _prepare(self, size: int) -> Bucket:
        """Plan the graph at batch ``size``, grow the arena if needed, bind every launch."""
        plan = self.plan(size)
        self._grow(plan.memory)
        calls, views = bind_launches(self.graph, size, plan.memory, self.lowering, self.weights,
                                     self._arena, self._workspace)
        if self.dependent_launches:
            calls = [dataclasses.replace(c, pdl=True) if isinstance(c, KernelCall) else c for c in calls]
        static = views.graph
        return Bucket(size, [views.tensor(v) for v in static.inputs], [views.tensor(v) for v in static.outputs],
                       calls, views=views)

    def _grow(self, memory: MemoryPlan) -> None:
        """One arena for every bucket: re-bind the buckets prepared so far if it must grow."""
        if memory.arena_bytes > self._arena.numel() or memory.workspace_bytes > self._workspace.numel():
            arena = max(memory.arena_bytes, self._arena.numel())
            workspace = max(memory.workspace_bytes, self._workspace.numel())
            self._arena = torch.empty(arena, dtype=torch.uint8, device=self.device)
            self._workspace = torch.zeros(workspace, dtype=torch.uint8, device=self.device)
            prepared = list(self._buckets)
            self._buckets.clear()
            for size in prepared:
                self._buckets[size] = self._prepare(size)


def bind_launches(graph: Graph, batch: int, memory: MemoryPlan, lowering: Lowering, weights: dict,
                  arena: Tensor, workspace: Tensor) -> tuple[list, "_Views"]:
    """Every launch of ``graph`` at ``batch`` with its tensors bound to views of ``arena`` and
    ``workspace`` (laid out by ``memory``), in plan order."""
    static = _static(graph, batch)
    views = _Views(static, memory, arena, workspace, lowering.device)
    calls = []
    for node in static.nodes:
        if not is_view(node):
            calls.extend(lower_node(node, views, weights, lowering))
    return calls, views


def planned_launches(graph: Graph, batch: int, dtype: torch.dtype = torch.float32, sm_count: int = 132,
                     allow_tf32: bool = False) -> list:
    """The kernel launches a GPU with ``sm_count`` multiprocessors would make for ``graph`` (rewritten
    by the ``triton`` pipeline) at ``batch``, built on the ``meta`` device: no memory, no GPU.
    What the compile check compiles, and `fastcnn kernels` reports."""
    lowering = Lowering(torch.device("meta"), DTYPES[dtype], sm_count, allow_tf32)
    typed = _with_dtype(graph, lowering.dtype)
    plan = make_plan(typed, batch, workspace=workspace_hook(lowering))
    arena = torch.empty(plan.memory.arena_bytes, dtype=torch.uint8, device="meta")
    workspace = torch.empty(plan.memory.workspace_bytes, dtype=torch.uint8, device="meta")
    calls, _ = bind_launches(typed, batch, plan.memory, lowering, pack_weights(typed, lowering), arena, workspace)
    return calls


class _Views:
    """Every value of a specialized graph as a tensor: the graph inputs' own buffers, and
    strided views of the arena and the workspace for the rest."""

    def __init__(self, graph: Graph, memory: MemoryPlan, arena: Tensor, workspace: Tensor,
                 device: torch.device) -> None:
        self.graph, self.memory, self.arena, self.workspace = graph, memory, arena, workspace
        self.device = device
        self._tensors: dict[str, Tensor] = {}
        for value in graph.inputs:
            shape = [int(d) for d in value.shape]
            self._tensors[value.name] = torch.zeros(shape, dtype=_torch_dtype(value.dtype), device=device)

    def tensor(self, value: Value) -> Tensor:
        if value.name not in self._tensors:
            self._tensors[value.name] = self._view(value)
        return self._tensors[value.name]

    def _view(self, value: Value) -> Tensor:
        producer = value.producer
        if producer is not None and is_view(producer) and producer.op != "concat":
            # a reshape of a contiguous tensor; view() never copies (a copy would be stale)
            return self.tensor(producer.inputs[0]).view([int(d) for d in value.shape])
        buffer = self.memory.buffer_of(value.name)
        if buffer is None:
            raise UnsupportedModelError(f"%{value.name} has no buffer in the memory plan")
        region = self.workspace if buffer.zeroed else self.arena
        dtype = torch.float32 if buffer.zeroed else _torch_dtype(value.dtype)
        base = region[buffer.offset:buffer.offset + buffer.nbytes].view(dtype)
        return _strided(base, value)

    def workspace_for(self, node_name: str, request: str) -> Tensor:
        """The bytes of workspace request ``request`` of launch ``node_name``, as float32."""
        buffer = self.memory.request(node_name, request)
        region = self.workspace if buffer.zeroed else self.arena
        return region[buffer.offset:buffer.offset + buffer.nbytes].view(torch.float32)


def _strided(base: Tensor, value: Value) -> Tensor:
    """``value`` in its buffer ``base``: its layout's strides, in its channel slice if any."""
    shape = [int(d) for d in value.shape]
    if len(shape) != 4:
        return base[:math.prod(shape)].view(shape)
    n, c, h, w = shape
    slot = value.storage
    channels, offset = (slot.channel_stride, slot.channel_offset) if slot is not None else (c, 0)
    if value.layout == "NHWC":
        strides = (h * w * channels, 1, w * channels, channels)
    else:
        strides = (channels * h * w, h * w, w, 1)
        offset *= h * w
    return base.as_strided(shape, strides, base.storage_offset() + offset)  # as_strided's offset is absolute


def _static(graph: Graph, batch: int) -> Graph:
    from fastcnn.runtime.plan import specialize_batch

    return specialize_batch(graph, batch)


def _with_dtype(graph: Graph, dtype: torch.dtype) -> Graph:
    """A clone computing in ``dtype``: float inputs (and so every activation) retyped; the
    weights stay as they are until packed."""
    name = str(dtype).removeprefix("torch.")
    copy = graph.clone()
    for value in copy.inputs:
        if value.dtype.startswith("float"):
            value.dtype = name
    copy.infer_shapes()
    return copy


def _torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def dependent_launches(device: torch.device) -> bool:
    """Whether the plan's Triton kernels are programmatic dependent launches (each waits for
    the one before in :func:`~fastcnn.kernels.launch.grid_dependency`, and launches while it
    finishes): ``FASTCNN_PDL=1`` on a GPU of compute capability 9.0 or later. Opt-in until it
    is measured on a GPU against plain launches; it exists for batch 1, where the gaps between
    about 60 short dependent kernels are most of the latency."""
    if os.environ.get("FASTCNN_PDL") != "1" or device.type != "cuda":
        return False
    return torch.cuda.get_device_capability(device)[0] >= 9


def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 132  # an H100's count, so the interpreter exercises the same choices


def kernel_variants(graphs: list[Graph], batches: list[int], dtype: torch.dtype, sm_count: int = 132,
                    allow_tf32: bool = False) -> list:
    """One launch per distinct compiled kernel among the plans of ``graphs`` (rewritten by the
    ``triton`` pipeline) at each of ``batches``: what a GPU would compile for them (a node run
    as a torch op compiles nothing)."""
    variants: dict[tuple, object] = {}
    for graph in graphs:
        for batch in batches:
            for call in planned_launches(graph, batch, dtype, sm_count, allow_tf32):
                if isinstance(call, KernelCall):
                    variants.setdefault(call.variant(), call)
    return list(variants.values())
