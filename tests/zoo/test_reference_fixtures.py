"""The zoo against torchvision and timm, without installing them: a recorded fixture.

tests/zoo/fixtures/library_reference.json holds, for every zoo model with a library counterpart
(``model_info(name).reference``), that library model's state dict as key -> shape and dtype, and
for a few cheap models its output with the formula weights of ``deterministic_weights``. It is
written by ``tools/make_reference_fixtures.py`` from the real libraries (versions recorded in the
file). These tests are what CI runs for the README's claim that those models "load the library's
state dict unchanged"; test_models.py keeps the live comparison for machines that have the
libraries, and ``test_fixture_matches_the_installed_library`` below says when the record is stale.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import fastcnn
from tests.helpers import relative_l2
from tests.zoo.deterministic_weights import deterministic_input, deterministic_tensor, hash32

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "library_reference.json").read_text())
MODELS = FIXTURE["models"]
WITH_OUTPUT = sorted(n for n, e in MODELS.items() if "output" in e)

# Library entries that fastcnn's default model leaves out on purpose, by model and key prefix.
# Inception v3's auxiliary classifier is training-only; the model drops it on load (see
# InceptionV3._drop_absent_aux_head) and builds it with aux_logits=True.
LEFT_OUT = {"inception_v3": "AuxLogits."}


def _shapes(model: torch.nn.Module) -> dict[str, list]:
    return {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()}


def _on_meta(build):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return build()


def _full_model(name: str) -> torch.nn.Module:
    """fastcnn's model with every part the library has, training-only ones included."""
    if name == "inception_v3":
        from fastcnn.zoo.inception_v3 import InceptionV3

        return InceptionV3(aux_logits=True)
    return fastcnn.create_model(name)


def test_fixture_covers_every_model_with_a_reference():
    expected = {n: fastcnn.model_info(n).reference for n in fastcnn.list_models() if fastcnn.model_info(n).reference}
    assert {n: e["reference"] for n, e in MODELS.items()} == expected
    assert {"resnet18", "squeezenet1_1", "se_resnet50"} <= set(WITH_OUTPUT)
    assert set(FIXTURE["versions"]) == {"torch", "torchvision", "timm"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_state_dict_keys_and_shapes_equal_the_library(name):
    theirs = MODELS[name]["state_dict"]
    assert _shapes(_on_meta(lambda: _full_model(name))) == theirs
    prefix = LEFT_OUT.get(name)
    kept = {k: v for k, v in theirs.items() if prefix is None or not k.startswith(prefix)}
    assert _shapes(_on_meta(lambda: fastcnn.create_model(name))) == kept


@pytest.mark.parametrize("name", sorted(MODELS))
def test_library_state_dict_loads_strictly_and_unchanged(name):
    theirs = {k: torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
              for k, (shape, dtype) in MODELS[name]["state_dict"].items()}
    ours = _on_meta(lambda: fastcnn.create_model(name))
    result = ours.load_state_dict(theirs, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


# Inception v3 at 299x299 (27M formula weights) takes several seconds on a 2-core CPU.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "inception_v3" else n
                                  for n in WITH_OUTPUT])
def test_output_equals_the_library_with_formula_weights(name):
    """The library's state dict, as the formula fills it, loaded into fastcnn's model: same logits."""
    expected = MODELS[name]["output"]
    theirs = {k: deterministic_tensor(k, tuple(shape)) if dtype == "float32" else torch.zeros(shape, dtype=torch.int64)
              for k, (shape, dtype) in MODELS[name]["state_dict"].items()}
    ours = _on_meta(lambda: fastcnn.create_model(name))  # every tensor comes from the load
    ours.load_state_dict(theirs, strict=True, assign=True)
    with torch.no_grad():
        out = ours(deterministic_input(tuple(expected["input_shape"])))
    assert relative_l2(out[0], torch.tensor(expected["values"])) < 1e-5


def test_formula_is_the_one_the_fixture_was_written_with():
    # Pinned values: a change to the formula would break every output comparison above at once.
    assert hash32(torch.tensor([0, 1, 2, 2**32 - 1])).tolist() == [0, 1198589870, 2397179740, 121542800]
    w = deterministic_tensor("conv.weight", (2, 3, 1, 1))
    assert w.abs().max() <= (6.0 / 3) ** 0.5 and w.dtype == torch.float32
    assert (deterministic_tensor("bn.running_var", (64,)) >= 0.5).all()


def _library_builder():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    try:
        from make_reference_fixtures import library_model
    finally:
        sys.path.pop(0)
    return library_model


@pytest.mark.parametrize("library", ["torchvision", "timm"])
def test_fixture_matches_the_installed_library(library):
    """Live check, where the library is installed: the recorded state dicts are still the library's.

    A mismatch means the library changed: rerun tools/make_reference_fixtures.py and see whether
    fastcnn still loads its state dicts (the tests above then say).
    """
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed; the fixture stands in for it")
    library_model = _library_builder()
    for name, entry in MODELS.items():
        reference = entry["reference"]
        if reference.startswith(library + ":"):
            try:
                model = _on_meta(functools.partial(library_model, reference))
            except (ImportError, RuntimeError, AttributeError, TypeError) as exc:  # e.g. built for another torch
                pytest.skip(f"{library} cannot build {name}: {exc}")
            assert _shapes(model) == entry["state_dict"], name
