"""The autotuner's choice and its disk cache, kernel-agnostic: candidates are plain callables
writing into one output tensor, and the clock is a fake one that says which is fastest."""
from __future__ import annotations

import json

import pytest
import torch
import triton

from fastcnn.kernels import autotune
from fastcnn.kernels.autotune import (
    Candidate,
    TuneCache,
    Tuner,
    cache_key,
    environment,
    launch_components,
)
from fastcnn.kernels.elementwise import elementwise_call

X = torch.randn(64, generator=torch.Generator().manual_seed(1))
OUT = torch.empty(64)


def _candidate(name: str, scale: float = 2.0, label: str = "tuned", fail: bool = False) -> Candidate:
    def run() -> None:
        if fail:
            raise RuntimeError("out of resources: shared memory")
        OUT.copy_(X * scale)

    run.name = name  # what the fake clock reads
    return Candidate(name, {"kind": "test", "name": name}, run, label, value=name)


def _clock(times: dict[str, float], log: list[str] | None = None):
    def timer(fn) -> float:
        if log is not None:
            log.append(fn.name)
        return times[fn.name]

    return timer


def _choose(tuner: Tuner, candidates: list[Candidate], key: str = "k" * 64):
    return tuner.choose(key, candidates, reset=lambda: OUT.fill_(float("nan")), outputs=lambda: [OUT],
                        tolerance=1e-4)


RULE, FAST = _candidate("rule", label="rule"), _candidate("fast")
TIMES = {"rule": 2.0, "fast": 1.0, "wrong": 0.1, "broken": 0.1, "partial": 0.1}


def test_the_fastest_correct_candidate_wins_and_says_why(tmp_path):
    tuner = Tuner(TuneCache(tmp_path), _clock(TIMES))
    decision = _choose(tuner, [RULE, FAST])
    assert (decision.name, decision.value, decision.cached) == ("fast", "fast", False)
    assert decision.reason == "tuned: 1 ms vs rule 2 ms"
    assert tuner.measured == 2


def test_the_rule_wins_a_tie():
    decision = _choose(Tuner(None, _clock({"rule": 1.0, "fast": 1.0})), [RULE, FAST])
    assert decision.name == "rule" and decision.reason.startswith("rule: 1 ms, fastest of 2")


def test_a_second_process_reads_the_cache_and_measures_nothing(tmp_path):
    first = Tuner(TuneCache(tmp_path), _clock(TIMES))
    _choose(first, [RULE, FAST])
    log: list[str] = []
    second = Tuner(TuneCache(tmp_path), _clock(TIMES, log))  # a new process: new objects, same directory
    decision = _choose(second, [RULE, FAST])
    assert (decision.name, decision.cached, decision.reason) == ("fast", True, "tuned: 1 ms vs rule 2 ms")
    assert log == [] and second.measured == 0 and second.checked == 0
    assert [p.name for p in tmp_path.iterdir()] == ["k" * 64 + ".json"]  # no temporary file left


class _Partial:
    name = "partial"

    def __call__(self) -> None:
        OUT[:32].copy_(X[:32] * 2)


@pytest.mark.parametrize("wrong", [
    _candidate("wrong", scale=2.001),  # a relative error of 5e-4
    _candidate("broken", fail=True),  # raises
    Candidate("partial", {}, _Partial()),  # writes half its output
])
def test_a_fast_candidate_with_a_wrong_result_is_never_chosen(tmp_path, wrong):
    tuner = Tuner(TuneCache(tmp_path), _clock(TIMES))
    decision = _choose(tuner, [RULE, FAST, wrong])
    assert decision.name == "fast" and wrong.name in decision.rejected
    assert wrong.name not in decision.times_ms
    assert json.loads(next(tmp_path.iterdir()).read_text())["name"] == "fast"


def _write(tmp_path, text: str, key: str = "k" * 64) -> None:
    (tmp_path / f"{key}.json").write_text(text)


def _entry(**changes) -> str:
    entry = {"schema": autotune.SCHEMA, "key": "k" * 64, "name": "fast", "spec": FAST.spec, "reason": "r",
             "times_ms": {}}
    return json.dumps({**entry, **changes})


@pytest.mark.parametrize("text", [
    "{not json", "", "[1, 2]", "\xff\xfe", _entry(schema=0), _entry(key="x" * 64), _entry(name=3),
    _entry(name="gone"),  # a candidate the layer no longer offers
    _entry(spec={"kind": "test", "name": "fast", "block_m": 64}),  # same name, another config
    _entry(reason=None),
])
def test_a_corrupt_or_stale_entry_is_ignored_and_rebuilt(tmp_path, text):
    _write(tmp_path, text)
    log: list[str] = []
    decision = _choose(Tuner(TuneCache(tmp_path), _clock({"rule": 1.0, "fast": 2.0}, log)), [RULE, FAST])
    assert decision.name == "rule" and not decision.cached and log == ["rule", "fast"]
    rebuilt = json.loads((tmp_path / f"{'k' * 64}.json").read_text())
    assert rebuilt["name"] == "rule" and rebuilt["schema"] == autotune.SCHEMA


def test_a_valid_entry_is_trusted(tmp_path):
    _write(tmp_path, _entry())
    tuner = Tuner(TuneCache(tmp_path), _clock(TIMES))
    assert _choose(tuner, [RULE, FAST]).cached and tuner.measured == 0


def test_an_unwritable_cache_does_not_fail_the_choice(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    decision = _choose(Tuner(TuneCache(blocker / "autotune"), _clock(TIMES)), [RULE, FAST])
    assert decision.name == "fast"


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCNN_CACHE_DIR", str(tmp_path))
    assert TuneCache().root == tmp_path / "autotune"
    monkeypatch.delenv("FASTCNN_CACHE_DIR")
    assert autotune.cache_dir().parts[-3:] == (".cache", "fastcnn", "autotune")


@pytest.mark.parametrize("value, explicit, expected", [
    ("1", None, True), ("0", None, False), ("", None, False), ("1", False, False), ("0", True, True)])
def test_autotune_is_requested_explicitly_or_by_the_environment(monkeypatch, value, explicit, expected):
    monkeypatch.setenv("FASTCNN_AUTOTUNE", value)
    assert autotune.autotune_requested(explicit) is expected


# -- the key ----------------------------------------------------------------------------------
def _calls(n: int = 8, dtype: torch.dtype = torch.float32, activation: str = "relu", **kwargs) -> list:
    x = torch.zeros(n, dtype=dtype)
    return [elementwise_call(torch.empty_like(x), x, activation=activation, **kwargs)]


def _key(env: dict | None = None, calls: list | None = None) -> str:
    env = env if env is not None else {"gpu": "NVIDIA H200", "sm_count": 132, "triton": "3.6.0", "ptxas": "12.8"}
    return cache_key({"environment": env, "layer": launch_components(calls if calls is not None else _calls())})


def test_the_key_is_stable_and_changes_with_every_component():
    base = {"gpu": "NVIDIA H200", "sm_count": 132, "triton": "3.6.0", "ptxas": "12.8"}
    assert _key() == _key() and len(_key()) == 64
    for field, other in (("gpu", "NVIDIA A100-SXM4-80GB"), ("sm_count", 108), ("triton", "3.9.0"), ("ptxas", "13.4")):
        assert _key({**base, field: other}) != _key(base), field
    assert _key(calls=_calls(n=16)) != _key()  # shape
    assert _key(calls=_calls(dtype=torch.float16)) != _key()  # dtype
    assert _key(calls=_calls(activation="sigmoid")) != _key()  # specialization (a constexpr)


def test_the_key_covers_the_kernel_source(monkeypatch):
    call = _calls()[0]
    before = launch_components([call])["kernels"]
    monkeypatch.setattr(autotune, "kernel_source", lambda kernel: "edited")
    assert launch_components([call])["kernels"] != before
    assert len(before[0]) == 64


def test_the_environment_names_the_compilers(monkeypatch):
    env = environment(torch.device("cpu"), 132)
    assert env["sm_count"] == 132 and env["triton"] == triton.__version__ and env["ptxas"]
    assert "interpreter" in env["gpu"]
    monkeypatch.setattr(triton, "__version__", "9.9.9")
    assert environment(torch.device("cpu"), 132)["triton"] == "9.9.9"


def test_the_ptxas_version_is_found_or_unknown_never_an_error(monkeypatch):
    from triton.backends.nvidia import compiler

    autotune.ptxas_version.cache_clear()
    try:
        assert autotune.ptxas_version(90)
        monkeypatch.setattr(compiler, "get_ptxas", lambda arch: (_ for _ in ()).throw(RuntimeError("no ptxas")))
        monkeypatch.delattr(compiler, "get_ptxas_version", raising=False)
        autotune.ptxas_version.cache_clear()
        assert autotune.ptxas_version(90) == "unknown"
    finally:
        autotune.ptxas_version.cache_clear()


def test_mismatch_counts_nans_and_scales_by_the_largest_value():
    nan = float("nan")
    assert autotune.mismatch(torch.tensor([1.0, nan]), torch.tensor([1.0, nan])) == 0.0
    assert autotune.mismatch(torch.tensor([1.0, nan]), torch.tensor([1.0, 2.0])) == float("inf")
    assert autotune.mismatch(torch.tensor([100.0, 1.5]), torch.tensor([100.0, 1.0])) == pytest.approx(0.005)
    assert autotune.mismatch(torch.zeros(3), torch.zeros(4)) == float("inf")
