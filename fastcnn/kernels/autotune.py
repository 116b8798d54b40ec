"""Choosing among a layer's launch candidates by measurement, the result cached on disk.

The rules (:func:`~fastcnn.kernels.conv2d.choose_conv_config`, ...) pick tiles without running
anything, so a first run is never slow; they cannot know that one GPU prefers 64-row tiles on
one layer, or that cuDNN beats the implicit GEMM on a large-batch 3x3 convolution. A
:class:`Tuner` measures a layer's :class:`Candidate` launches (the rule's first) and keeps the
fastest, under two rules of trust:

- **a candidate must compute what the rule's choice computes** before it may be timed: each
  runs once on the same random inputs (outputs first set to NaN, accumulators to zero) and is
  dropped if it raises or its outputs differ from the rule's by more than ``tolerance`` of
  their largest magnitude (a NaN where the rule has a number counts as a difference), so a
  wrong-but-fast launch is never chosen;
- **a cache entry is a hint, never a fact**: an entry that cannot be read, has another schema
  or key, or names a candidate the layer no longer offers (with the same description) is
  ignored, re-measured and rewritten; nothing it holds escapes as an exception.

The cache is one small JSON file per layer key under ``$FASTCNN_CACHE_DIR/autotune/`` (default
``~/.cache/fastcnn/autotune/``), written to a temporary file and moved into place with
``os.replace`` (a reader sees the old entry or the new one, never half). The key hashes
:func:`environment` (GPU name, multiprocessor count, Triton and ptxas versions) with what the
caller says determines the layer: :func:`launch_components` of its rule launches gives the
kernels' source, their specialization (signature, constexprs, warps, stages) and every
argument's dtype, shape, strides and value, so any change to either re-tunes.

``FASTCNN_AUTOTUNE=1`` is read here only (:func:`autotune_requested`). This module is
kernel-agnostic and imports nothing else from fastcnn.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import triton

SCHEMA = 1
ENV_AUTOTUNE = "FASTCNN_AUTOTUNE"
ENV_CACHE_DIR = "FASTCNN_CACHE_DIR"
Timer = Callable[[Callable[[], None]], float]  # milliseconds one call of the function takes


def autotune_requested(explicit: bool | None = None) -> bool:
    """``explicit`` when given, else whether ``FASTCNN_AUTOTUNE`` is ``1`` (the one place the
    variable is read, so that every caller agrees)."""
    if explicit is not None:
        return bool(explicit)
    return os.environ.get(ENV_AUTOTUNE, "").strip() == "1"


def cache_dir() -> Path:
    """``$FASTCNN_CACHE_DIR/autotune``, or ``~/.cache/fastcnn/autotune``."""
    root = os.environ.get(ENV_CACHE_DIR)
    return (Path(root) if root else Path.home() / ".cache" / "fastcnn") / "autotune"


def cuda_timer(fn: Callable[[], None]) -> float:
    """The median of Triton's ``do_bench`` (L2 flushed between calls), short enough that a
    network's layers tune in seconds, not minutes."""
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=5, rep=25, return_mode="median"))


# -- the key ----------------------------------------------------------------------------------
@functools.cache
def ptxas_version(arch: int = 90) -> str:
    """The version of the ptxas Triton compiles with for ``arch``; ``"unknown"`` if it cannot be
    found. Triton 3.6 and 3.9 give ``get_ptxas(arch).version``; older ones ``get_ptxas_version``."""
    try:
        from triton.backends.nvidia import compiler
    except ImportError:
        return "unknown"
    for read in (lambda: compiler.get_ptxas(arch).version, lambda: compiler.get_ptxas_version(arch)):
        version = None
        with contextlib.suppress(Exception):  # a missing or broken ptxas only makes the key coarser
            version = read()
        if version:
            return str(version).strip()
    return "unknown"


def environment(device: torch.device, sm_count: int | None = None) -> dict[str, Any]:
    """What a measurement depends on besides the layer: the GPU, its size, the compilers.
    On the CPU (Triton's interpreter) the GPU is named as such."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu, sms, arch = props.name, props.multi_processor_count, props.major * 10 + props.minor
    else:
        gpu, sms, arch = f"{device.type} (Triton interpreter)", sm_count, 90
    return {"gpu": gpu, "sm_count": sm_count if sm_count is not None else sms, "triton": triton.__version__,
            "ptxas": ptxas_version(arch), "torch": torch.__version__}


def kernel_source(kernel: Any) -> str:
    """A hash of what a kernel compiles from: the source of the module defining it (its device
    functions and launcher with it), and the JIT's own cache key when there is one (it covers
    the device functions it calls from other modules)."""
    fn = getattr(kernel, "fn", kernel)
    module = sys.modules.get(getattr(fn, "__module__", ""), None)
    try:
        text = inspect.getsource(module) if module is not None else inspect.getsource(fn)
    except (OSError, TypeError):
        text = getattr(fn, "__qualname__", repr(fn))
    with contextlib.suppress(Exception):  # the interpreter's functions have no cache key
        text += str(getattr(kernel, "cache_key", ""))
    return hashlib.sha256(text.encode()).hexdigest()


def _describe(value: Any) -> Any:
    """A launch argument as the key sees it: a tensor by dtype, shape and strides (never its
    address: alignment is in the constexprs), anything else by value."""
    if isinstance(value, torch.Tensor):
        return [str(value.dtype), list(value.shape), list(value.stride())]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def launch_components(calls: Sequence[Any]) -> dict[str, Any]:
    """The key's components from a layer's launches (:class:`~fastcnn.kernels.launch.KernelCall`):
    kernel sources, specialization and arguments. Other callables count by their description
    (``key()`` if they have one, else their type)."""
    sources, variants, arguments = [], [], []
    for call in calls:
        if hasattr(call, "variant"):
            sources.append(kernel_source(call.kernel))
            variants.append(repr(call.variant()))
            arguments.append([_describe(a) for a in call.args] + [list(call.grid)])
        else:
            variants.append(repr(call.key()) if hasattr(call, "key") else type(call).__qualname__)
    return {"kernels": sources, "specialization": variants, "arguments": arguments}


def cache_key(components: dict[str, Any]) -> str:
    """The hex SHA-256 of ``components`` as canonical JSON."""
    text = json.dumps(components, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# -- the cache --------------------------------------------------------------------------------
class TuneCache:
    """One JSON file per key in ``root`` (default :func:`cache_dir`). Reads never raise: an
    entry that is not a well-formed object of this schema and key is absent. Writes are atomic;
    a write that fails (read-only disk) is skipped, the choice still holding in this process."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self.path(key).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(entry, dict) or entry.get("schema") != SCHEMA or entry.get("key") != key:
            return None
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("reason"), str):
            return None
        return entry

    def store(self, key: str, entry: dict[str, Any]) -> None:
        data = json.dumps({"schema": SCHEMA, "key": key, **entry}, indent=1, sort_keys=True, default=repr)
        temporary = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{key[:16]}-", suffix=".tmp")
            with os.fdopen(handle, "w") as file:
                file.write(data)
            os.replace(temporary, self.path(key))
        except OSError:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)


# -- choosing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One way to run a layer. ``spec`` describes it as JSON (what the cache stores and must
    find again among the layer's candidates); ``label`` says what kind it is in reasons
    (``"rule"``, ``"tuned"``, ``"cudnn"``); ``value`` is the caller's own (a config)."""

    name: str
    spec: dict[str, Any]
    run: Callable[[], None]
    label: str = "tuned"
    value: Any = None


@dataclass(frozen=True)
class Decision:
    """The chosen candidate's name and value, why (``reason``), the times measured (ms) and the
    candidates rejected as wrong (name -> why); ``cached``: read from the cache, nothing run."""

    name: str
    value: Any
    reason: str
    times_ms: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    cached: bool = False


@dataclass
class Tuner:
    """Measures candidates with ``timer`` (default :func:`cuda_timer`) and remembers choices in
    ``cache`` (None: this process only). ``measured`` counts timer calls, ``checked`` the
    correctness runs: tests read them to prove what was, or was not, run."""

    cache: TuneCache | None = None
    timer: Timer | None = None
    measured: int = 0
    checked: int = 0
    _memo: dict[str, Decision] = field(default_factory=dict, repr=False)

    def choose(self, key: str, candidates: Sequence[Candidate], *, reset: Callable[[], None],
               outputs: Callable[[], list[torch.Tensor]], tolerance: float) -> Decision:
        """The fastest of ``candidates`` (the first is the rule's, the reference and the
        fallback) whose outputs match the rule's; from the cache when it holds a valid entry."""
        if not candidates:
            raise ValueError("choose needs at least the rule's candidate")
        if key in self._memo and self._memo[key].name in {c.name for c in candidates}:
            return self._memo[key]
        decision = self._cached(key, candidates) or self._measure(key, candidates, reset, outputs, tolerance)
        self._memo[key] = decision
        return decision

    def _cached(self, key: str, candidates: Sequence[Candidate]) -> Decision | None:
        entry = self.cache.load(key) if self.cache is not None else None
        if entry is None:
            return None
        match = next((c for c in candidates if c.name == entry["name"] and c.spec == entry.get("spec")), None)
        if match is None:  # a stale entry: the layer no longer offers that choice
            return None
        times = entry.get("times_ms") if isinstance(entry.get("times_ms"), dict) else {}
        return Decision(match.name, match.value, entry["reason"], dict(times), cached=True)

    def _measure(self, key: str, candidates: Sequence[Candidate], reset: Callable[[], None],
                 outputs: Callable[[], list[torch.Tensor]], tolerance: float) -> Decision:
        rule = candidates[0]
        reference = self._outputs(rule, reset, outputs)
        times: dict[str, float] = {}
        rejected: dict[str, str] = {}
        for candidate in candidates:
            problem = None if candidate is rule else self._verify(candidate, reference, reset, outputs, tolerance)
            if problem is not None:
                rejected[candidate.name] = problem
                continue
            times[candidate.name] = self._time(candidate)
        best = min(times, key=lambda name: (times[name], name != rule.name))
        chosen = next(c for c in candidates if c.name == best)
        reason = _reason(chosen, rule, times)
        decision = Decision(chosen.name, chosen.value, reason, times, rejected)
        if self.cache is not None:
            self.cache.store(key, {"name": chosen.name, "spec": chosen.spec, "reason": reason,
                                   "times_ms": times, "rejected": rejected})
        return decision

    def _outputs(self, candidate: Candidate, reset: Callable[[], None],
                 outputs: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
        reset()
        candidate.run()
        self.checked += 1
        return [t.detach().float().clone() for t in outputs()]

    def _verify(self, candidate: Candidate, reference: list[torch.Tensor], reset: Callable[[], None],
                outputs: Callable[[], list[torch.Tensor]], tolerance: float) -> str | None:
        """Why ``candidate`` may not be chosen, or None when its outputs match the rule's."""
        try:
            got = self._outputs(candidate, reset, outputs)
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot run is just not chosen
            return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        error = max((mismatch(a, b) for a, b in zip(got, reference, strict=True)), default=0.0)
        if error > tolerance:
            return f"wrong: relative error {error:.3g} > {tolerance:.3g}"
        return None

    def _time(self, candidate: Candidate) -> float:
        self.measured += 1
        timer = self.timer if self.timer is not None else cuda_timer
        time = float(timer(candidate.run))
        return time if math.isfinite(time) and time >= 0 else math.inf


def mismatch(got: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest difference relative to ``expected``'s largest magnitude; ``inf`` where one
    has a NaN and the other not, or the shapes differ."""
    if got.shape != expected.shape or bool((torch.isnan(got) != torch.isnan(expected)).any()):
        return math.inf
    both = ~torch.isnan(expected)
    if not bool(both.any()):
        return 0.0
    a, b = got[both], expected[both]
    if bool((torch.isinf(a) | torch.isinf(b)).any()):
        return 0.0 if bool(torch.equal(a, b)) else math.inf
    scale = max(float(b.abs().max()), 1e-30)
    return float((a - b).abs().max()) / scale


def _reason(chosen: Candidate, rule: Candidate, times: dict[str, float]) -> str:
    """``rule: 0.150 ms, fastest of 8``, ``tuned: 0.120 ms vs rule 0.150 ms``, ``cudnn: ...``."""
    if chosen is rule:
        return f"rule: {times[rule.name]:.4g} ms, fastest of {len(times)} measured"
    return f"{chosen.label}: {times[chosen.name]:.4g} ms vs rule {times[rule.name]:.4g} ms"
