"""Write tests/zoo/fixtures/library_reference.json from the real torchvision and timm.

The README says every zoo model with a library counterpart (``fastcnn.model_info(name).reference``,
e.g. ``"torchvision:resnet50"``) loads that library's state dict unchanged. CI has neither library,
so this script records what the test needs from them once, and tests/zoo/test_reference_fixtures.py
checks fastcnn against the record:

- per model, the library model's state dict as ``key -> [shape, dtype]``, in the library's order;
- for a few cheap models, the library model's output (eval mode, batch 1) with every parameter and
  buffer set by the formula of tests/zoo/deterministic_weights.py, on that module's deterministic
  input. No weights are stored: the test rebuilds the same ones from the formula.

Run it where torchvision and timm import (any versions that build the models; the ones used are
recorded in the file), from the repository root::

    python tools/make_reference_fixtures.py            # rewrite the fixture
    python tools/make_reference_fixtures.py --check    # compare with the committed one, write nothing

torchvision wheels built for CUDA import on a CPU-only torch of the same release except for
their compiled detection ops, which the classification models never use; the script tolerates
that (see ``_import_torchvision``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fastcnn
from tests.zoo.deterministic_weights import deterministic_input, fill_deterministic

FIXTURE = ROOT / "tests" / "zoo" / "fixtures" / "library_reference.json"

# Models whose library output is recorded: cheap on a CPU, and one of each kind of network and
# library (plain residual, fire modules, dense blocks with legacy key names, Inception v3's
# factorised convolutions, timm's SE blocks).
WITH_OUTPUT = ["resnet18", "squeezenet1_1", "densenet121", "inception_v3", "se_resnet50"]


def _import_torchvision():
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        # A CUDA build of torchvision on a CPU-only torch: its compiled ops (nms, roi_align) did
        # not register, and registering their meta kernels fails at import. Skip that module.
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        return importlib.import_module("torchvision")


def library_model(reference: str) -> torch.nn.Module:
    """The library's model for ``reference`` ("library:name"), untrained, in eval mode."""
    library, name = reference.split(":")
    torchvision = _import_torchvision()  # first: timm imports it too
    if library == "timm":
        import timm

        return timm.create_model(name, pretrained=False).eval()
    kwargs = {"init_weights": False} if name == "inception_v3" else {}
    return getattr(torchvision.models, name)(weights=None, **kwargs).eval()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def record(name: str) -> dict:
    info = fastcnn.model_info(name)
    model = library_model(info.reference)
    entry = {
        "reference": info.reference,
        "state_dict": {k: [list(v.shape), _dtype_name(v.dtype)] for k, v in model.state_dict().items()},
    }
    if name in WITH_OUTPUT:
        fill_deterministic(model)
        shape = (1, *info.input_size)
        with torch.no_grad():
            out = model(deterministic_input(shape))
        entry["output"] = {"input_shape": list(shape), "values": [float(f"{x:.9g}") for x in out[0].tolist()]}
    return entry


def build() -> dict:
    torchvision = _import_torchvision()  # first: timm imports it too
    import timm

    names = sorted(n for n in fastcnn.list_models() if fastcnn.model_info(n).reference is not None)
    return {
        "about": "written by tools/make_reference_fixtures.py; weights and inputs from tests/zoo/deterministic_weights.py",
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__},
        "models": {name: record(name) for name in names},
    }


def dump(data: dict) -> str:
    """One line per state-dict entry and per output: readable diffs, a small file."""
    lines = ["{", f'  "about": {json.dumps(data["about"])},', f'  "versions": {json.dumps(data["versions"])},',
             '  "models": {']
    models = list(data["models"].items())
    for i, (name, entry) in enumerate(models):
        lines.append(f"    {json.dumps(name)}: {{")
        lines.append(f'      "reference": {json.dumps(entry["reference"])},')
        sd = list(entry["state_dict"].items())
        lines.append('      "state_dict": {')
        lines += [f"        {json.dumps(k)}: {json.dumps(v)}" + ("," if j < len(sd) - 1 else "") for j, (k, v) in enumerate(sd)]
        lines.append("      }" + ("," if "output" in entry else ""))
        if "output" in entry:
            lines.append(f'      "output": {json.dumps(entry["output"])}')
        lines.append("    }" + ("," if i < len(models) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed fixture instead of writing")
    args = parser.parse_args(argv)
    text = dump(build())
    if args.check:
        old = json.loads(FIXTURE.read_text())
        new = json.loads(text)
        same = {}
        for name, entry in new["models"].items():
            before = old["models"].get(name, {})
            same[name] = before.get("state_dict") == entry["state_dict"]
            line = f"{name}: state dict {'matches' if same[name] else 'DIFFERS'}"
            if "output" in entry:
                ours = torch.tensor(entry["output"]["values"], dtype=torch.float64)
                theirs = torch.tensor(before.get("output", {}).get("values", [0.0] * len(ours)), dtype=torch.float64)
                error = float((ours - theirs).norm() / theirs.norm().clamp_min(1e-30))
                same[name] = same[name] and error < 1e-5
                line += f", output relative L2 {error:.1e}"
            print(line)
        return 0 if all(same.values()) and set(old["models"]) == set(new["models"]) else 1
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(text)
    print(f"wrote {FIXTURE.relative_to(ROOT)} ({len(text) / 1e3:.0f} kB, {len(json.loads(text)['models'])} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
