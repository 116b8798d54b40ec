"""Structural facts from the papers of VGG, SqueezeNet, ResNet, pre-activation ResNet,
DenseNet and SE-ResNet that the parameter counts alone do not pin down."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import fastcnn
from fastcnn.zoo.blocks import SqueezeExcite
from fastcnn.zoo.densenet import DenseBlock, DenseLayer
from fastcnn.zoo.resnet import BasicBlock, Bottleneck, ResidualBlock
from fastcnn.zoo.squeezenet import Fire


def _modules(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def _execution_order(block: nn.Module, x: torch.Tensor) -> list[str]:
    """Class names of the leaf modules in the order a forward pass runs them."""
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(type(m).__name__))
             for m in block.modules() if not list(m.children())]
    with torch.no_grad():
        block(x)
    for h in hooks:
        h.remove()
    return order


# --- VGG ------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, convs", [(11, 8), (13, 10), (16, 13), (19, 16)])
@pytest.mark.parametrize("bn", ["", "_bn"])
def test_vgg_has_depth_minus_3_convs_all_3x3(depth, convs, bn):
    model = fastcnn.create_model(f"vgg{depth}{bn}")
    conv_layers = _modules(model, nn.Conv2d)
    assert len(conv_layers) == convs
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1)
               for c in conv_layers)
    assert len(_modules(model, nn.Linear)) == 3
    assert len(_modules(model, nn.MaxPool2d)) == 5
    assert len(_modules(model, nn.BatchNorm2d)) == (convs if bn else 0)


# --- SqueezeNet -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, stem_kernel", [("squeezenet1_0", 7), ("squeezenet1_1", 3)])
def test_squeezenet_has_eight_fire_modules_and_no_linear_layer(name, stem_kernel):
    model = fastcnn.create_model(name)
    fires = _modules(model, Fire)
    assert len(fires) == 8
    assert [f.squeeze.out_channels for f in fires] == [16, 16, 32, 32, 48, 48, 64, 64]
    assert all(f.expand1x1.out_channels == f.expand3x3.out_channels == 4 * f.squeeze.out_channels
               for f in fires)
    assert model.features[0].kernel_size == (stem_kernel, stem_kernel)
    assert not _modules(model, nn.Linear)


def test_fire_concatenates_its_expand_branches():
    fire = Fire(8, 4, 6)
    assert fire(torch.randn(1, 8, 5, 5)).shape == (1, 12, 5, 5)


# --- ResNet ---------------------------------------------------------------------------------

RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                 152: (3, 8, 36, 3)}


def _stages(model: nn.Module) -> list[nn.Sequential]:
    return [getattr(model, f"layer{i}") for i in range(1, 5)]


def _block_strides(block: ResidualBlock) -> list[int]:
    return [getattr(block, f"conv{k}").stride[0] for k in range(1, block.num_convs + 1)]


@pytest.mark.parametrize("depth", sorted(RESNET_BLOCKS))
def test_resnet_block_counts_and_downsampling(depth):
    model = fastcnn.create_model(f"resnet{depth}")
    stages = _stages(model)
    assert tuple(len(s) for s in stages) == RESNET_BLOCKS[depth]
    kind = BasicBlock if depth < 50 else Bottleneck
    assert all(isinstance(b, kind) for s in stages for b in s)
    # Only the first block of layer2-4 strides; layer1 follows the stride-2 max pooling.
    for index, stage in enumerate(stages):
        for position, block in enumerate(stage):
            expected = 2 if index > 0 and position == 0 else 1
            assert max(_block_strides(block)) == expected
            projects = block.downsample is not None
            assert projects == (position == 0 and (index > 0 or kind is Bottleneck))


def test_resnet_bottleneck_strides_the_3x3_like_torchvision():
    block = fastcnn.create_model("resnet50").layer2[0]
    assert _block_strides(block) == [1, 2, 1]


def test_bottleneck_can_stride_the_1x1_as_in_the_paper():
    block = Bottleneck(256, 128, stride=2, stride_in_1x1=True)
    assert _block_strides(block) == [2, 1, 1]
    assert block.conv2.kernel_size == (3, 3)


def test_resnet_output_follows_the_stage_resolutions():
    model = fastcnn.create_model("resnet18", seed=0)
    x = model.stem(torch.randn(1, 3, 64, 64))
    assert x.shape == (1, 64, 16, 16)
    for stage, (channels, size) in zip(_stages(model), [(64, 16), (128, 8), (256, 4), (512, 2)]):
        x = stage(x)
        assert x.shape == (1, channels, size, size)


# --- Pre-activation ResNet ------------------------------------------------------------------

POSTACT_BASIC = ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU"]
PREACT_BASIC = ["BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]


def test_basic_blocks_activate_after_or_before_their_convolutions():
    x = torch.randn(1, 64, 8, 8)
    post = fastcnn.create_model("resnet18").layer1[1]
    pre = fastcnn.create_model("preact_resnet18").layer1[1]
    assert _execution_order(post, x) == POSTACT_BASIC  # the last ReLU follows the addition
    assert _execution_order(pre, x) == PREACT_BASIC  # the last convolution feeds the addition


@pytest.mark.parametrize("name", ["preact_resnet18", "preact_resnet50"])
def test_preact_units_start_with_bn_and_end_with_a_convolution(name):
    model = fastcnn.create_model(name)
    blocks = [b for s in _stages(model) for b in s]
    first, rest = blocks[0], blocks[1:]
    # The first unit takes its activation from the stem's conv1-BN-ReLU (2016, Section 4).
    assert not hasattr(first, "bn1")
    for block in rest:
        assert list(block.named_children())[0][0] == "bn1"
    for block in blocks:
        last = block.num_convs
        assert not hasattr(block, f"bn{last + 1}")  # no BN after the final convolution
        for k in range(2, last + 1):  # each BN normalises its convolution's input
            assert getattr(block, f"bn{k}").num_features == getattr(block, f"conv{k}").in_channels
        if block.downsample is not None:  # the projection is a bare convolution
            assert not _modules(block.downsample, nn.BatchNorm2d)
    assert model.final_bn.num_features == model.fc.in_features


def test_preact_resnet50_strides_the_first_1x1_as_the_authors_code():
    model = fastcnn.create_model("preact_resnet50")
    assert [_block_strides(s[0]) for s in _stages(model)] == [[1, 1, 1], [2, 1, 1], [2, 1, 1],
                                                             [2, 1, 1]]


# --- DenseNet -------------------------------------------------------------------------------

DENSENETS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
}


@pytest.mark.parametrize("name", sorted(DENSENETS))
def test_densenet_growth_rate_blocks_and_layer_input_widths(name):
    growth, config, stem = DENSENETS[name]
    features = fastcnn.create_model(name).features
    assert features.conv0.out_channels == stem
    channels = stem
    for index, num_layers in enumerate(config, start=1):
        block: DenseBlock = getattr(features, f"denseblock{index}")
        layers = list(block.values())
        assert len(layers) == num_layers
        for layer in layers:  # input = block input + growth of every earlier layer
            assert layer.conv1.in_channels == channels
            assert layer.conv1.out_channels == 4 * growth and layer.conv2.out_channels == growth
            channels += growth
        if index < len(config):
            transition = getattr(features, f"transition{index}")
            assert transition.conv.out_channels == channels // 2
            channels //= 2
    assert features.norm5.num_features == channels


def test_dense_block_output_concatenates_input_and_every_layer():
    torch.manual_seed(0)
    block = DenseBlock(3, 5, growth_rate=4).eval()
    x = torch.randn(2, 5, 6, 6)
    with torch.no_grad():
        out = block(x)
        assert out.shape == (2, 5 + 3 * 4, 6, 6)
        assert torch.equal(out[:, :5], x)  # the block input passes through unchanged
        first = block.denselayer1([x])
        assert torch.allclose(out[:, 5:9], first)


def test_dense_layer_reads_torchvision_legacy_checkpoint_names():
    layer = DenseLayer(8, 4)
    state = {k.replace("norm1", "norm.1").replace("conv2", "conv.2"):
             torch.rand_like(v) if v.is_floating_point() else v
             for k, v in layer.state_dict().items()}
    assert any("norm.1" in k for k in state)
    fresh = DenseLayer(8, 4)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.norm1.weight, state["norm.1.weight"])


# --- SE-ResNet ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, blocks", [("se_resnet50", (3, 4, 6, 3)),
                                          ("se_resnet101", (3, 4, 23, 3))])
def test_se_resnet_gates_every_bottleneck_with_reduction_16(name, blocks):
    model = fastcnn.create_model(name)
    stages = _stages(model)
    assert tuple(len(s) for s in stages) == blocks
    for stage in stages:
        for block in stage:
            assert isinstance(block.se_module, SqueezeExcite)
            channels = block.conv3.out_channels
            assert block.se_module.fc1.out_channels == channels // 16
            assert block.se_module.fc2.out_channels == channels
    assert len(_modules(model, SqueezeExcite)) == sum(blocks)


def test_se_resnet_strides_the_first_1x1_and_pools_like_caffe():
    model = fastcnn.create_model("se_resnet50")
    assert [_block_strides(s[0]) for s in _stages(model)] == [[1, 1, 1], [2, 1, 1], [2, 1, 1],
                                                             [2, 1, 1]]
    assert model.pool0.ceil_mode and model.pool0.padding == 0
    assert model.last_linear.in_features == 2048


def test_se_gate_scales_the_residual_branch_before_the_addition():
    torch.manual_seed(0)
    block = Bottleneck(16, 4, se_reduction=4).eval()
    block.se_module.fc2.bias.data.fill_(-1e4)  # gate closed: the block is ReLU(identity)
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(x))
