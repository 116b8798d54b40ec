"""Structural facts of the classic networks from their papers: LeNet-5, AlexNet, ZFNet, NiN."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import fastcnn
from fastcnn.zoo.lenet import (C3_CONNECTIONS, EuclideanRBF, PartialConv2d, ScaledTanh,
                               TrainableSubsampling)

# Table I of LeCun et al. 1998 as printed: row = S2 map, column = C3 map, X = connected.
PAPER_TABLE_I = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


def _paper_connections() -> dict[int, set[int]]:
    """S2 map -> the C3 maps it feeds, read from the printed table."""
    rows = PAPER_TABLE_I.split()
    return {s2: {c3 for c3, mark in enumerate(row) if mark == "X"} for s2, row in enumerate(rows)}


def _params(module: nn.Module, trainable: bool | None = None) -> int:
    return sum(p.numel() for p in module.parameters()
               if trainable is None or p.requires_grad == trainable)


def _output_shapes(model: nn.Module, input_size, kinds=(nn.Conv2d, nn.MaxPool2d)) -> dict[str, tuple]:
    """Output shape (without batch) of each module of ``kinds``, by its name."""
    shapes, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            hook = (lambda n: lambda m, i, o: shapes.__setitem__(n, tuple(o.shape[1:])))(name)
            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, *input_size))
    for handle in handles:
        handle.remove()
    return shapes


# ---------------------------------------------------------------- LeNet-5


@pytest.fixture(scope="module")
def lenet():
    return fastcnn.create_model("lenet5", seed=0)


def test_lenet5_layer_parameters_match_the_paper(lenet):
    counts = {name: _params(getattr(lenet, name)) for name in ("c1", "s2", "c3", "s4", "c5", "f6")}
    assert counts == {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164}
    assert _params(lenet.output) == 840 and _params(lenet.output, trainable=True) == 0
    assert _params(lenet, trainable=True) == 60_000


def test_lenet5_c3_stores_only_the_used_kernels(lenet):
    assert lenet.c3.weight.shape == (60, 5, 5) and lenet.c3.bias.shape == (16,)
    # The placement buffers are rebuilt from the table, not saved with the weights.
    assert {k for k in lenet.state_dict() if k.startswith("c3.")} == {"c3.weight", "c3.bias"}


def test_lenet5_c3_connections_follow_table_i(lenet):
    """Zeroing one S2 map changes exactly the C3 maps that Table I connects it to."""
    c3 = lenet.c3
    x = torch.randn(1, 6, 14, 14, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = c3(x)
        for s2_map, expected in _paper_connections().items():
            cut = x.clone()
            cut[:, s2_map] = 0
            changed = (c3(cut) - reference).abs().amax(dim=(0, 2, 3)) > 0
            assert set(changed.nonzero().flatten().tolist()) == expected, f"S2 map {s2_map}"


def test_lenet5_c3_is_a_masked_dense_convolution(lenet):
    weight = lenet.c3.dense_weight()
    connected = weight.abs().sum((2, 3)) > 0  # 16 x 6
    table = _paper_connections()
    assert connected.T.tolist() == [[c3 in table[s2] for c3 in range(16)] for s2 in range(6)]


def test_subsampling_is_a_scaled_block_sum_plus_bias():
    layer = TrainableSubsampling(2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, -2.0]))
        layer.bias.copy_(torch.tensor([1.0, 0.25]))
    x = torch.arange(32.0).reshape(1, 2, 4, 4)
    block_sums = x.reshape(1, 2, 2, 2, 2, 2).sum((3, 5))  # N x C x 2 x 2
    expected = block_sums * torch.tensor([0.5, -2.0]).reshape(1, 2, 1, 1) + torch.tensor(
        [1.0, 0.25]).reshape(1, 2, 1, 1)
    torch.testing.assert_close(layer(x), expected)


def test_squashing_function_is_the_papers():
    f = ScaledTanh()
    torch.testing.assert_close(f(torch.tensor([0.0, 1.0, -1.0, 100.0])),
                               torch.tensor([0.0, 1.0, -1.0, 1.7159]), atol=1e-4, rtol=0)


def test_rbf_output_is_minus_the_squared_distance_to_fixed_prototypes(lenet):
    rbf = lenet.output
    prototypes = rbf.prototypes
    assert prototypes.shape == (10, 84) and not prototypes.requires_grad
    assert set(prototypes.unique().tolist()) == {-1.0, 1.0}
    # Rows of a Hadamard matrix: every pair differs in exactly half the places.
    torch.testing.assert_close(prototypes @ prototypes.T, 84 * torch.eye(10))
    x = torch.randn(3, 84, generator=torch.Generator().manual_seed(0))
    distances = ((x[:, None, :] - prototypes[None]) ** 2).sum(-1)
    torch.testing.assert_close(rbf(x), -distances, rtol=1e-5, atol=1e-4)


def test_rbf_code_is_the_same_in_every_build():
    a = fastcnn.create_model("lenet5", seed=1).output.prototypes
    b = fastcnn.create_model("lenet5", seed=2).output.prototypes
    assert torch.equal(a, b)
    assert fastcnn.create_model("lenet5", num_classes=26).output.prototypes.shape == (26, 84)


def test_lenet5_custom_layers_count_their_multiply_adds():
    """One batch of 2 through each layer, against the count by hand."""
    s2 = TrainableSubsampling(6)
    c3 = PartialConv2d(C3_CONNECTIONS, in_channels=6, kernel_size=5)
    rbf = EuclideanRBF(84, 10)
    x = torch.zeros(2, 6, 28, 28)
    y = s2(x)
    assert s2.multiply_adds((x,), y) == 2 * 6 * 14 * 14 * 4  # one product per block element
    z = c3(y)
    # 10 x 10 positions, each: (6 maps x 3 + 6 x 4 + 3 x 4 + 1 x 6) = 60 kernels of 25 taps.
    assert c3.multiply_adds((y,), z) == 2 * 10 * 10 * 60 * 25 == 300_000
    f = torch.zeros(2, 84)
    assert rbf.multiply_adds((f,), rbf(f)) == 2 * 10 * 84


def test_lenet5_initialisation_is_uniform_in_2_4_over_fan_in(lenet):
    assert lenet.c1.weight.abs().max() <= 2.4 / 25
    assert lenet.c5.weight.abs().max() <= 2.4 / 400
    assert lenet.f6.weight.abs().max() <= 2.4 / 120
    dense = lenet.c3.dense_weight()
    assert dense[15].abs().max() <= 2.4 / 150 < dense[:6].abs().max() <= 2.4 / 75


def test_lenet5_registers_the_papers_input_levels():
    info = fastcnn.model_info("lenet5")
    assert info.input_size == (1, 32, 32) and info.num_classes == 10
    background, foreground = ((v - info.mean[0]) / info.std[0] for v in (0.0, 1.0))
    assert background == pytest.approx(-0.1) and foreground == pytest.approx(1.175)


# ---------------------------------------------------------------- AlexNet and ZFNet

# The issue's table, biases included; its conv1 figure (34,848) omits conv1's 96 biases.
ALEXNET_PARAMS = {"conv1": 34_944, "conv2": 307_456, "conv3": 885_120, "conv4": 663_936,
                  "conv5": 442_624, "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000}


@pytest.fixture(scope="module")
def alexnet():
    return fastcnn.create_model("alexnet", seed=0)


@pytest.fixture(scope="module")
def zfnet():
    return fastcnn.create_model("zfnet", seed=0)


def _named_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {**dict(model.features.named_children()), **dict(model.classifier.named_children())}


def test_alexnet_layer_parameters_match_the_paper(alexnet):
    layers = _named_layers(alexnet)
    assert {name: _params(layers[name]) for name in ALEXNET_PARAMS} == ALEXNET_PARAMS


def test_alexnet_splits_conv2_4_5_over_two_gpus(alexnet):
    layers = _named_layers(alexnet)
    assert {f"conv{i}": layers[f"conv{i}"].groups for i in range(1, 6)} == {
        "conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}


def test_alexnet_layer_order(alexnet):
    assert list(dict(alexnet.features.named_children())) == [
        "conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2",
        "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5"]
    assert list(dict(alexnet.classifier.named_children())) == [
        "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]


@pytest.mark.parametrize("name", ["alexnet", "zfnet"])
def test_response_normalisation_and_overlapping_pooling(name, request):
    model = request.getfixturevalue(name)
    norms = [m for m in model.modules() if isinstance(m, nn.LocalResponseNorm)]
    assert [(m.size, m.alpha, m.beta, m.k) for m in norms] == [(5, 1e-4, 0.75, 2.0)] * 2
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(m.kernel_size, m.stride) for m in pools] == [(3, 2)] * 3
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.modules()) == 2
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_alexnet_feature_maps_are_the_papers(alexnet):
    shapes = _output_shapes(alexnet, (3, 227, 227))
    assert shapes["features.conv1"] == (96, 55, 55)
    assert shapes["features.pool1"] == (96, 27, 27) and shapes["features.conv2"] == (256, 27, 27)
    assert shapes["features.pool2"] == (256, 13, 13) and shapes["features.conv5"] == (256, 13, 13)
    assert shapes["features.pool5"] == (256, 6, 6)


def test_alexnet_initialisation_is_the_papers(alexnet):
    layers = _named_layers(alexnet)
    unit_bias = {name for name in ALEXNET_PARAMS if torch.all(layers[name].bias == 1)}
    zero_bias = {name for name in ALEXNET_PARAMS if torch.all(layers[name].bias == 0)}
    assert unit_bias == {"conv2", "conv4", "conv5", "fc6", "fc7"}
    assert zero_bias == {"conv1", "conv3", "fc8"}
    assert layers["fc6"].weight.std().item() == pytest.approx(0.01, rel=0.01)


def test_zfnet_first_layers_and_dense_connections(zfnet):
    layers = _named_layers(zfnet)
    conv1, conv2 = layers["conv1"], layers["conv2"]
    assert (conv1.out_channels, conv1.kernel_size, conv1.stride) == (96, (7, 7), (2, 2))
    assert (conv2.out_channels, conv2.kernel_size, conv2.stride) == (256, (5, 5), (2, 2))
    assert all(layers[f"conv{i}"].groups == 1 for i in range(1, 6))
    assert [layers[f"conv{i}"].out_channels for i in range(3, 6)] == [384, 384, 256]
    # Section 2: convolution, ReLU, pooling, then normalisation across maps.
    order = list(dict(zfnet.features.named_children()))
    assert order[:4] == ["conv1", "relu1", "pool1", "norm1"]


def test_zfnet_feature_maps_are_figure_3s(zfnet):
    shapes = _output_shapes(zfnet, (3, 224, 224))
    sides = [shapes[f"features.{name}"][1] for name in
             ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")]
    assert sides == [110, 55, 26, 13, 13, 13, 13, 6]
    assert shapes["features.pool5"] == (256, 6, 6)
    assert all(torch.all(m.bias == 0) for m in zfnet.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


# ---------------------------------------------------------------- Network in Network


@pytest.fixture(scope="module")
def nin():
    return fastcnn.create_model("nin", seed=0)


def test_nin_has_no_fully_connected_layer_and_pools_globally(nin):
    assert not any(isinstance(m, nn.Linear) for m in nin.modules())
    last = list(nin.children())[-1]
    assert isinstance(last, nn.AdaptiveAvgPool2d) and last.output_size in (1, (1, 1))


def test_nin_is_four_mlpconv_blocks_ending_in_class_maps(nin):
    blocks = [m for name, m in nin.features.named_children() if name.startswith("mlpconv")]
    assert len(blocks) == 4
    for block in blocks:
        convs = [m for m in block if isinstance(m, nn.Conv2d)]
        relus = [m for m in block if isinstance(m, nn.ReLU)]
        assert len(convs) == len(relus) == 3
        assert [c.kernel_size for c in convs[1:]] == [(1, 1), (1, 1)]
    assert [b.conv.out_channels for b in blocks] == [96, 256, 384, 1024]
    assert [(b.conv.kernel_size[0], b.conv.stride[0]) for b in blocks] == [(11, 4), (5, 1), (3, 1), (3, 1)]
    assert blocks[-1].cccp2.out_channels == 1000
    shapes = _output_shapes(nin, (3, 224, 224))
    assert shapes["features.mlpconv4.cccp2"] == (1000, 6, 6)
    assert [shapes[f"features.pool{i}"][1] for i in (1, 2, 3)] == [27, 13, 6]
