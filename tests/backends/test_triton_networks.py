"""Whole networks through the Triton backend's plan, against the torch backend.

Without a GPU the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``) on CPU
tensors, at a reduced input size (the interpreter pays per program and per loop step); with
one, on CUDA. Either way this runs the real plan: the ``triton`` pipeline's fused graph,
weights packed for the kernels, every activation a strided view of one planned arena,
concat buffers, NHWC layouts, split outputs, squeeze-excite sums, batch buckets.
AlexNet and VGG have fixed-size classifiers: their convolutional part runs here at a reduced
size, their classifier Gemms at full size on their own (``slow``).
"""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import fastcnn
from tests.helpers import randomize_batchnorm, relative_l2

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cpu" if INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(not INTERPRETED and not torch.cuda.is_available(),
                                reason="needs a CUDA GPU or Triton's interpreter (TRITON_INTERPRET=1)")
TOLERANCE = 1e-4  # float32 relative L2 through Triton

NETWORKS = {  # reduced input sizes the interpreter runs in seconds
    "lenet5": (1, 32, 32), "squeezenet1_1": (3, 64, 64), "resnet18": (3, 64, 64), "preact_resnet18": (3, 32, 32),
    "googlenet": (3, 64, 64), "densenet121": (3, 64, 64), "se_resnet50": (3, 64, 64),
}


def _engines(module: nn.Module, size: tuple[int, ...]):
    example = torch.zeros(1, *size)
    reference = fastcnn.load(module, device="cpu", backend="torch", example_input=example)
    triton = fastcnn.Engine(reference.source_graph, backend="triton", device=DEVICE)
    return reference, triton


def _check(reference, triton, batch: int) -> None:
    x = torch.randn(batch, *reference.input_spec.shape[1:], generator=torch.Generator().manual_seed(batch))
    expected = reference.infer(x)
    got = triton.infer(x.to(DEVICE)).cpu()
    assert got.shape == expected.shape
    assert relative_l2(got, expected) < TOLERANCE


@pytest.mark.parametrize("name", NETWORKS)
def test_network_matches_the_torch_backend(name):
    model = randomize_batchnorm(fastcnn.create_model(name, seed=0)).eval()
    reference, triton = _engines(model, NETWORKS[name])
    _check(reference, triton, batch=2)


def test_a_batch_between_buckets_is_padded_and_cut():
    """Batch 3 runs in the bucket of 4 (its last row zeros) and returns 3 rows; batch 2 then
    reuses the same arena through its own bucket."""
    reference, triton = _engines(fastcnn.create_model("resnet18", seed=0).eval(), (3, 32, 32))
    _check(reference, triton, batch=3)
    _check(reference, triton, batch=2)
    assert sorted(triton._executor.buckets) == [2, 4]


def test_a_batch_past_max_batch_runs_in_parts():
    """With max_batch=2 (buckets 1 and 2), batch 5 runs as 2 + 2 + 1 and is joined in order."""
    model = fastcnn.create_model("lenet5", seed=0).eval()
    reference = fastcnn.load(model, device="cpu", backend="torch", example_input=torch.zeros(1, 1, 32, 32))
    triton = fastcnn.Engine(reference.source_graph, backend="triton", device=DEVICE, max_batch=2)
    _check(reference, triton, batch=5)
    assert sorted(triton._executor.buckets) == [1, 2]


def test_an_empty_batch_is_an_input_error_naming_the_backends_that_run_it():
    """The Triton plan has no zero-row bucket: an input with 0 elements is refused at infer,
    with a fastcnn error that says where it runs (torch and onnxruntime return an empty output)."""
    triton = fastcnn.load("lenet5", device=DEVICE, backend="triton")
    with pytest.raises(fastcnn.InputError, match=r"triton backend does not run empty tensors.*\(0, 1, 32, 32\)"
                                                 r".*torch and onnxruntime"):
        triton.infer(torch.zeros(0, 1, 32, 32, device=DEVICE))


@pytest.mark.parametrize("max_batch", [0, -1, 2.0, True, 10**6])
def test_max_batch_out_of_range_is_refused_at_load(max_batch):
    with pytest.raises(fastcnn.InputError, match="max_batch"):
        fastcnn.load("lenet5", device=DEVICE, backend="triton", max_batch=max_batch)


def test_max_batch_is_an_option_of_the_triton_backend_only():
    with pytest.raises(fastcnn.InputError, match="takes no option max_batch"):
        fastcnn.load("lenet5", device="cpu", backend="torch", max_batch=8)


@pytest.mark.parametrize("name, size", [("alexnet", (3, 127, 127)), ("vgg16", (3, 32, 32))])
def test_convolutional_part_of_fixed_size_networks(name, size):
    features = fastcnn.create_model(name, seed=0).features.eval()
    reference, triton = _engines(features, size)
    _check(reference, triton, batch=2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg16"])
def test_classifier_at_full_size(name):
    classifier = fastcnn.create_model(name, seed=0).classifier.eval()
    reference, triton = _engines(classifier, (classifier[0].in_features if isinstance(classifier[0], nn.Linear)
                                              else classifier[1].in_features,))
    _check(reference, triton, batch=1)


def test_tf32_is_asked_for_with_dtype_tf32():
    """dtype="tf32": float32 storage, convolutions and GEMMs on TF32 tensor cores (the interpreter
    computes them exactly; the compile tests check the TF32 math path)."""
    model = fastcnn.create_model("lenet5", seed=0).eval()
    reference = fastcnn.load(model, device="cpu", backend="torch", example_input=torch.zeros(1, 1, 32, 32))
    tf32 = fastcnn.Engine(reference.source_graph, backend="triton", device=DEVICE, dtype="tf32")
    assert tf32.dtype == torch.float32 and tf32._executor.lowering.allow_tf32
    x = torch.randn(2, 1, 32, 32)
    assert relative_l2(tf32.infer(x.to(DEVICE)).cpu(), reference.infer(x)) < 1e-3
    with pytest.raises(fastcnn.InputError, match="allow_tf32"):
        fastcnn.Engine(reference.source_graph, backend="torch", device="cpu", dtype="tf32")


@pytest.mark.parametrize("pooled_by", ["conv", "gate"])
def test_squeeze_excite_scratch_comes_from_the_memory_plan(pooled_by):
    """The gate's sums (when it pools x itself) and hidden rows are arena scratch the planner
    placed, not tensors the launcher allocated on the side; with them in place the answer matches."""
    from fastcnn.zoo.blocks import SqueezeExcite

    before = [nn.Conv2d(3, 32, 3, padding=1), nn.ReLU()] + ([nn.MaxPool2d(2)] if pooled_by == "gate" else [])
    model = nn.Sequential(*before, SqueezeExcite(32, reduction=4), nn.Conv2d(32, 8, 1)).eval()
    reference, triton = _engines(model, (3, 8, 8))
    _check(reference, triton, batch=3)
    bucket = triton._executor.buckets[4]
    gates = [n for n in triton.graph.nodes if n.op == "se_gate"]
    assert gates, "the pipeline planned no se_gate"
    used = {t.data_ptr() for call in bucket.calls if getattr(call, "name", "") == "se_gate" for t in call.args
            if isinstance(t, torch.Tensor)}
    for gate in gates:
        scratch = ["se_hidden"] + (["se_sums"] if pooled_by == "gate" else [])
        for name in scratch:
            buffer = bucket.views.memory.request(gate.name, name)
            assert buffer.nbytes > 0 and not buffer.zeroed
            assert bucket.views.arena.data_ptr() + buffer.offset in used
