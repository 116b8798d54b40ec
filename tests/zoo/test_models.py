"""Every zoo model: parameter counts, output shapes, determinism, library compatibility."""
from __future__ import annotations

import importlib.util
import math

import pytest
import torch

import fastcnn
from tests.helpers import count_params, randomize_batchnorm, relative_l2
from tests.zoo.test_reference_fixtures import LEFT_OUT, _library_builder
from tests.zoo.test_reference_fixtures import MODELS as RECORDED

# Parameter counts with a published source: the paper, or the library whose architecture it is.
# torchvision publishes exact counts (its weights' ``meta["num_params"]``); timm's tables round
# to 0.01M, and the exact count is that of the state dict recorded from timm in
# fixtures/library_reference.json (test_counts_of_library_models_are_the_recorded_libraries).
PUBLISHED_PARAMS = {
    # LeCun et al. 1998, section II.B: 60,000 trainable + the 84x10 RBF prototypes, fixed.
    "lenet5": 60_840,
    # Krizhevsky et al. 2012 say 60 million; exact: the per-layer table (test_classic).
    "alexnet": 60_965_224,
    "vgg11": 132_863_336,  # torchvision, like every vgg, resnet, densenet and squeezenet below
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "inception_v3": 23_834_568,  # torchvision's 27,161,264 less the training-only aux head
    "inception_v4": 42_679_816,  # timm, as are inception_resnet_v2 and the se_resnets
    "inception_resnet_v2": 55_843_464,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "densenet121": 7_978_856,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "densenet161": 28_681_000,
    "se_resnet50": 28_088_024,
    "se_resnet101": 49_326_872,
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
}

# Regression pins: no published count to cite (the papers give none or round, and no library
# ships these exact architectures). They pin what fastcnn builds today, checked against each
# paper's layer tables by the structural tests (test_classic, test_inception*), not a source.
REGRESSION_PINS = {
    "zfnet": 62_357_608,  # regression pin: no published count
    "nin": 7_595_176,  # regression pin: no published count
    "googlenet": 6_998_552,  # regression pin: no published count (the paper's Table 1 sums to 6.8M)
    "bn_inception": 11_285_224,  # regression pin: no published count (with the Caffe port's 10,016 conv biases)
    "se_bn_inception": 11_931_622,  # regression pin: no published count
    "inception_resnet_v1": 22_756_328,  # regression pin: no published count
}

EXPECTED_PARAMS = {**PUBLISHED_PARAMS, **REGRESSION_PINS}

ALL_MODELS = [
    "lenet5", "alexnet", "zfnet", "nin", "googlenet", "bn_inception", "inception_v3",
    "inception_v4", "inception_resnet_v1", "inception_resnet_v2", "se_bn_inception",
    "se_resnet50", "se_resnet101", "preact_resnet18", "preact_resnet50",
    "squeezenet1_0", "squeezenet1_1",
    *[f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")],
    *[f"resnet{d}" for d in (18, 34, 50, 101, 152)],
    *[f"densenet{d}" for d in (121, 169, 201, 161)],
]


def test_zoo_has_every_family_member():
    assert sorted(fastcnn.list_models()) == sorted(ALL_MODELS)


def test_list_models_filters_like_a_shell():
    assert fastcnn.list_models("resnet1*") == ["resnet101", "resnet152", "resnet18"]
    assert fastcnn.list_models("vgg16*") == ["vgg16", "vgg16_bn"]
    assert fastcnn.list_models("nothing*") == []


def test_unknown_model_is_a_fastcnn_error():
    with pytest.raises(fastcnn.UnknownModelError, match="resnet51"):
        fastcnn.create_model("resnet51")


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_count(name):
    assert count_params(fastcnn.create_model(name)) == EXPECTED_PARAMS[name]


def test_counts_of_library_models_are_the_recorded_libraries():
    """The published counts of the models with a library counterpart are that library's state
    dict, as recorded from it: its parameters, not its batch norm statistics."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    recorded = {name: sum(math.prod(shape) for key, (shape, _) in entry["state_dict"].items()
                          if not key.endswith(buffers) and not key.startswith(LEFT_OUT.get(name, "\0")))
                for name, entry in RECORDED.items()}
    assert recorded == {name: PUBLISHED_PARAMS[name] for name in RECORDED}


def test_inception_v3_aux_head_counts_like_torchvision():
    from fastcnn.zoo.inception_v3 import InceptionV3

    assert count_params(InceptionV3(aux_logits=True)) == 27_161_264


@pytest.mark.parametrize("name", ALL_MODELS)
def test_facts_are_readable_without_building(name):
    info = fastcnn.model_info(name)
    c, h, w = info.input_size
    assert len(info.mean) == len(info.std) == c and h == w
    assert info.paper and info.family


@pytest.mark.parametrize("name", ALL_MODELS)
def test_output_shape_for_batch_1_and_3(name):
    info = fastcnn.model_info(name)
    model = randomize_batchnorm(fastcnn.create_model(name, seed=0))
    assert not model.training
    x = torch.randn(3, *info.input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out3 = model(x)
        out1 = model(x[:1])
    assert out3.shape == (3, info.num_classes)
    assert out1.shape == (1, info.num_classes)
    assert torch.isfinite(out3).all()
    # A batch must not leak into its rows: row 0 alone equals row 0 of the batch.
    assert relative_l2(out1[0], out3[0]) < 1e-4


def test_num_classes_changes_the_classifier():
    assert fastcnn.create_model("resnet18", num_classes=7)(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@pytest.mark.parametrize("name", ["lenet5", "googlenet", "densenet121"])
def test_initialisation_is_deterministic_under_a_seed(name):
    a = fastcnn.create_model(name, seed=3).state_dict()
    b = fastcnn.create_model(name, seed=3).state_dict()
    c = fastcnn.create_model(name, seed=4).state_dict()
    torch.manual_seed(5)
    d = fastcnn.create_model(name).state_dict()
    torch.manual_seed(5)
    e = fastcnn.create_model(name).state_dict()
    assert all(torch.equal(a[k], b[k]) and torch.equal(d[k], e[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def _library_model(reference: str):
    library, name = reference.split(":")
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")
    try:
        return _library_builder()(reference)  # the builder that wrote the fixture
    except (ImportError, RuntimeError, AttributeError, TypeError) as exc:  # e.g. a torchvision built for another torch
        pytest.skip(f"{library} cannot build {name}: {exc}")


# The live comparison, where torchvision / timm are installed. CI has neither: there
# test_reference_fixtures.py checks the same claim against a fixture recorded from them.
# The models whose architecture torchvision or timm ship; the others (LeNet-5, the paper's
# AlexNet, ZFNet, NiN, GoogLeNet without BN, BN-Inception, ...) have no counterpart to compare.
WITH_REFERENCE = sorted(n for n in ALL_MODELS if fastcnn.model_info(n).reference is not None)


def test_models_with_a_library_counterpart_are_the_expected_ones():
    assert "resnet50" in WITH_REFERENCE and "inception_v4" in WITH_REFERENCE
    assert "googlenet" not in WITH_REFERENCE and "lenet5" not in WITH_REFERENCE


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_loads_the_library_state_dict_unchanged(name):
    reference = fastcnn.model_info(name).reference
    theirs = randomize_batchnorm(_library_model(reference).eval(), seed=1)
    ours = fastcnn.create_model(name)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, *fastcnn.model_info(name).input_size)
    with torch.no_grad():
        assert relative_l2(ours(x), theirs(x)) < 1e-5
