"""Randomly damaged ONNX files: fastcnn.load either builds a working engine or raises a
FastCNNError, never another exception (the issue's 'none crashes the process').

Seeded mutations of an exported LeNet-5: bytes overwritten, the file cut short, a slice of
the file spliced in elsewhere. Most are refused by onnx's full check; the rest (weights
with different values, say) load and must run.
"""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import torch

import fastcnn

MUTATIONS = 200


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    damaged = bytearray(data)
    kind = rng.choice(["overwrite", "truncate", "splice"])
    if kind == "overwrite":
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    elif kind == "truncate":
        damaged = damaged[: rng.randrange(len(damaged))]
    else:
        at, source = rng.randrange(len(damaged)), rng.randrange(len(damaged))
        damaged = damaged[:at] + damaged[source:source + 50] + damaged[at:]
    return kind, bytes(damaged)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_damaged_files_load_or_raise_a_fastcnn_error(backend: str, tmp_path: Path) -> None:
    data = fastcnn.export_onnx("lenet5", tmp_path / "lenet5.onnx").read_bytes()
    rng = random.Random(backend)
    outcomes: Counter[str] = Counter()
    for i in range(MUTATIONS):
        kind, damaged = _mutate(data, rng)
        path = tmp_path / f"damaged{i}.onnx"
        path.write_bytes(damaged)
        try:
            engine = fastcnn.load(path, device="cpu", backend=backend)
            out = engine.infer(torch.randn(2, 1, 32, 32))
            assert out.shape[0] == 2
            outcomes["loaded"] += 1
        except fastcnn.FastCNNError:
            outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"mutation {i} ({kind}) raised {type(exc).__name__}: {exc}")
        path.unlink()
    assert outcomes["refused"] > MUTATIONS // 2, outcomes  # the damage was real
