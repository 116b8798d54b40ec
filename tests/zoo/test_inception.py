"""Structural facts of GoogLeNet, BN-Inception and Inception v3 from their papers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fastcnn.zoo.blocks import BasicConv2d, SqueezeExcite
from fastcnn.zoo.bn_inception import BNInception, BNInceptionModule
from fastcnn.zoo.googlenet import GoogLeNet, InceptionModule
from fastcnn.zoo.inception_v3 import InceptionV3
from tests.helpers import count_params


def _modules_of(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def _output_sizes(model: nn.Module, kinds: tuple[type, ...], size: int) -> list[tuple[int, int]]:
    """(channels, height) of every ``kinds`` module's output, in call order."""
    seen: list[tuple[int, int]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:3])))
             for m in _modules_of(model, kinds)]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return seen


@pytest.fixture(scope="module")
def googlenet() -> GoogLeNet:
    return GoogLeNet().eval()


def test_googlenet_has_the_nine_inception_modules_of_table_1(googlenet):
    modules = _modules_of(googlenet, InceptionModule)
    assert [m.out_channels for m in modules] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    # The "#5x5" branch really is 5x5 (torchvision's googlenet has a 3x3 there).
    assert all(m.branches[2][1][0].kernel_size == (5, 5) for m in modules)


def test_googlenet_is_the_pre_batch_norm_network_with_two_lrns(googlenet):
    assert not _modules_of(googlenet, nn.BatchNorm2d)
    lrns = _modules_of(googlenet, nn.LocalResponseNorm)
    assert len(lrns) == 2
    assert all((lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0) for lrn in lrns)
    convs = _modules_of(googlenet, nn.Conv2d)
    assert len(convs) == 3 + 9 * 6 and all(c.bias is not None for c in convs)


def test_googlenet_has_no_auxiliary_classifier_and_the_bvlc_parameter_count(googlenet):
    assert len(_modules_of(googlenet, nn.Linear)) == 1
    assert count_params(googlenet) == 6_998_552  # regression pin: no published count (see test_models)


def test_googlenet_feature_maps_shrink_112_56_28_14_7(googlenet):
    sizes = _output_sizes(googlenet, (nn.MaxPool2d, nn.Conv2d), 224)
    stem_conv1, first_pool = sizes[0], sizes[1]
    assert stem_conv1 == (64, 112) and first_pool == (64, 56)
    heights = [h for _, h in sizes]
    assert sorted(set(heights), reverse=True) == [112, 56, 28, 14, 7]
    assert sizes[-1] == (128, 7)  # pool projection of 5b


def test_bn_inception_has_a_batch_norm_after_every_conv_and_no_5x5():
    model = BNInception()
    convs = _modules_of(model, nn.Conv2d)
    units = _modules_of(model, BasicConv2d)
    assert len(units) == len(convs) and all(u.bn.eps == 1e-5 for u in units)
    assert all(c.kernel_size in {(1, 1), (3, 3)} for c in convs[1:])
    assert convs[0].kernel_size == (7, 7)
    assert not _modules_of(model, nn.LocalResponseNorm) and not _modules_of(model, nn.Dropout)


def test_bn_inception_follows_figure_5():
    model = BNInception()
    modules = _modules_of(model, BNInceptionModule)
    assert len(modules) == 10 and not _modules_of(model, SqueezeExcite)
    widths = [256, 320, 576, 576, 576, 608, 608, 1056, 1024, 1024]
    assert [m.out_channels for m in modules] == widths
    heights = [h for _, h in _output_sizes(model, (BNInceptionModule,), 224)]
    assert heights == [28, 28, 14, 14, 14, 14, 14, 7, 7, 7]
    pool_5b = modules[-1].branches.branches[-1][0]
    assert isinstance(pool_5b, nn.MaxPool2d)
    assert isinstance(modules[0].branches.branches[-1][0], nn.AvgPool2d)
    assert count_params(model) == 11_285_224  # regression pin: no published count (see test_models)


def test_se_bn_inception_has_one_squeeze_excite_per_module():
    model = BNInception(se_reduction=16)
    modules = _modules_of(model, BNInceptionModule)
    assert all(isinstance(m.se, SqueezeExcite) for m in modules)
    assert len(_modules_of(model, SqueezeExcite)) == len(modules) == 10
    assert all(m.se.fc1.out_channels == m.out_channels // 16 for m in modules)
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 1000)


def test_inception_v3_loads_a_state_dict_with_an_aux_head_strictly():
    with_aux = InceptionV3(aux_logits=True)
    state = with_aux.state_dict()
    assert any(key.startswith("AuxLogits.") for key in state)
    assert count_params(with_aux) == 27_161_264
    model = InceptionV3()
    assert model.AuxLogits is None
    model.load_state_dict(state, strict=True)
    assert "AuxLogits.fc.weight" in state  # the caller's dict is left alone
    assert torch.equal(model.fc.weight, with_aux.fc.weight)


def test_inception_v3_still_refuses_keys_it_does_not_know():
    state = InceptionV3().state_dict()
    state["Mixed_5b.branch_unknown.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="branch_unknown"):
        InceptionV3().load_state_dict(state, strict=True)


def test_inception_v3_returns_aux_logits_only_when_training_with_the_head():
    model = InceptionV3(num_classes=10, aux_logits=True)
    x = torch.randn(2, 3, 299, 299)  # the aux head's 5x5 conv needs the full 17x17 grid
    with torch.no_grad():
        logits, aux = model.train()(x)
        assert logits.shape == aux.shape == (2, 10)
        assert model.eval()(x).shape == (2, 10)
