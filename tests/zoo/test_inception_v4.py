"""Inception-v4 and Inception-ResNet-v1/v2: the structure the paper (and the v2 release) fixes.

One 299x299 forward per model (module-scoped fixtures) records every stage's output shape;
the other tests only inspect modules or run small inputs.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import fastcnn
from fastcnn.zoo import inception_resnet  # noqa: F401  (registers inception_resnet_v1/v2)
from fastcnn.zoo.inception_resnet import InceptionResNet, InceptionResNetBlock
from fastcnn.zoo.inception_v4 import InceptionC, ParallelBranches
from tests.helpers import randomize_batchnorm, relative_l2


def _build(name: str) -> nn.Module:
    return randomize_batchnorm(fastcnn.create_model(name, seed=0))


def _stage_shapes(model: nn.Module, stages: nn.Module) -> dict[str, tuple[int, ...]]:
    """Output shape (C, H, W) of each child of ``stages`` for one 299x299 image."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [child.register_forward_hook(
        lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name, child in stages.named_children()]
    with torch.no_grad():
        model(torch.randn(1, 3, 299, 299, generator=torch.Generator().manual_seed(0)))
    for hook in hooks:
        hook.remove()
    return shapes


@pytest.fixture(scope="module")
def v4():
    model = _build("inception_v4")
    return model, _stage_shapes(model, model.features)


@pytest.fixture(scope="module", params=["inception_resnet_v1", "inception_resnet_v2"])
def resnet(request):
    model = _build(request.param)
    return request.param, model, _stage_shapes(model, model)


# --- Inception-v4 ----------------------------------------------------------------------------

def test_v4_block_sequence_is_figure_9():
    kinds = [m.kind for m in fastcnn.create_model("inception_v4").features[3:]]
    assert kinds == (["mixed_3a", "mixed_4a", "mixed_5a"] + ["inception_a"] * 4 + ["reduction_a"]
                     + ["inception_b"] * 7 + ["reduction_b"] + ["inception_c"] * 3)


def test_v4_stage_shapes(v4):
    _, shapes = v4
    assert shapes["2"] == (64, 147, 147)
    assert shapes["3"] == (160, 73, 73)
    assert shapes["4"] == (192, 71, 71)
    assert shapes["5"] == (384, 35, 35)  # after the stem
    assert all(shapes[str(i)] == (384, 35, 35) for i in range(6, 10))
    assert shapes["10"] == (1024, 17, 17)  # Reduction-A
    assert all(shapes[str(i)] == (1024, 17, 17) for i in range(11, 18))
    assert shapes["18"] == (1536, 8, 8)  # Reduction-B
    assert all(shapes[str(i)] == (1536, 8, 8) for i in range(19, 22))


def test_v4_reduction_a_uses_table_1_filters():
    reduction = fastcnn.create_model("inception_v4").features[10]
    assert reduction.branch0.conv.out_channels == 384  # n
    assert [c.conv.out_channels for c in reduction.branch1] == [192, 224, 256]  # k, l, m


def test_v4_has_no_residual_blocks_and_bn_eps_1e_3():
    model = fastcnn.create_model("inception_v4")
    assert not any(isinstance(m, InceptionResNetBlock) for m in model.modules())
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.eps == 1e-3 for bn in bns)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_v4_inception_c_forks_its_branches():
    block = InceptionC().eval()
    with torch.no_grad():
        assert block(torch.randn(1, 1536, 3, 3)).shape == (1, 1536, 3, 3)


# --- Inception-ResNet-v1 / v2 ----------------------------------------------------------------

EXPECTED = {  # stem width, (A, B, C) blocks incl. a final unscaled block8, stage widths
    "inception_resnet_v1": dict(stem=256, counts=(5, 10, 5), widths=(256, 896, 1792), head=1792),
    "inception_resnet_v2": dict(stem=320, counts=(10, 20, 10), widths=(320, 1088, 2080), head=1536),
}


def test_both_versions_share_the_block_and_network_classes():
    for name in EXPECTED:
        model = fastcnn.create_model(name)
        assert type(model) is InceptionResNet
        blocks = [m for m in model.modules() if isinstance(m, InceptionResNetBlock)]
        assert {type(b) for b in blocks} == {InceptionResNetBlock}


def test_block_counts_and_scales(resnet):
    name, model, _ = resnet
    a, b, c = EXPECTED[name]["counts"]
    assert len(model.repeat) == a and len(model.repeat_1) == b
    assert all(blk.scale == 0.17 for blk in model.repeat)
    assert all(blk.scale == 0.10 for blk in model.repeat_1)
    assert all(blk.scale == 0.20 for blk in model.repeat_2)
    assert all(isinstance(blk.act, nn.ReLU) for s in ("repeat", "repeat_1", "repeat_2")
               for blk in getattr(model, s))
    if name == "inception_resnet_v1":  # the paper: five identical C blocks, all with ReLU
        assert len(model.repeat_2) == c and not hasattr(model, "block8")
        assert not hasattr(model, "conv2d_7b")
    else:  # the release: nine C blocks, then block8 unscaled and without ReLU, then conv2d_7b
        assert len(model.repeat_2) == c - 1
        assert model.block8.scale == 1.0 and isinstance(model.block8.act, nn.Identity)
        assert model.conv2d_7b.conv.out_channels == 1536


def test_stage_shapes(resnet):
    name, _, shapes = resnet
    stem, (wa, wb, wc) = EXPECTED[name]["stem"], EXPECTED[name]["widths"]
    stem_end = "conv2d_4b" if name == "inception_resnet_v1" else "mixed_5b"
    assert shapes["conv2d_4a"] == (192, 71, 71)
    assert shapes[stem_end] == (stem, 35, 35)
    assert shapes["repeat"] == (wa, 35, 35)
    assert shapes["mixed_6a"] == shapes["repeat_1"] == (wb, 17, 17)
    assert shapes["mixed_7a"] == shapes["repeat_2"] == (wc, 8, 8)
    assert shapes["avgpool"] == (EXPECTED[name]["head"], 1, 1)
    assert shapes["classif"] == (1000,)


def test_reduction_a_filters_follow_table_1():
    for name, (k, l, m, n) in [("inception_resnet_v1", (192, 192, 256, 384)),
                               ("inception_resnet_v2", (256, 256, 384, 384))]:
        reduction = fastcnn.create_model(name).mixed_6a
        assert reduction.branch0.conv.out_channels == n
        assert [c.conv.out_channels for c in reduction.branch1] == [k, l, m]


def test_residual_projection_is_a_linear_1x1_back_to_the_input_width():
    model = fastcnn.create_model("inception_resnet_v1")
    branch_widths = {"block35": 32 + 32 + 32, "block17": 128 + 128, "block8": 192 + 192}
    for block in (m for m in model.modules() if isinstance(m, InceptionResNetBlock)):
        # a bare convolution with bias: no batch norm, no activation ("Linear" in the figures)
        assert type(block.conv2d) is nn.Conv2d and block.conv2d.bias is not None
        assert block.conv2d.kernel_size == (1, 1)
        assert block.conv2d.in_channels == branch_widths[block.kind]
        assert block.conv2d.out_channels == block.out_channels


def test_block_output_is_x_plus_scaled_residual_and_leaves_x_alone():
    torch.manual_seed(0)
    model = fastcnn.create_model("inception_resnet_v1")
    block = model.repeat[0].eval()
    x = torch.randn(2, 256, 9, 9)
    x_before = x.clone()
    with torch.no_grad():
        branches = ParallelBranches.forward(block, x)
        expected = torch.relu(x + 0.17 * block.conv2d(branches))
        out = block(x)
    assert torch.equal(x, x_before)
    assert relative_l2(out, expected) < 1e-6


def test_final_block_without_relu_can_go_negative():
    block = fastcnn.create_model("inception_resnet_v2").block8.eval()
    x = -torch.rand(1, 2080, 3, 3)
    with torch.no_grad():
        assert (block(x) < 0).any()
