"""fused_conv2d as an implicit GEMM against float64 torch (F.conv2d with the prologue and the
epilogue composed around it).

Geometry cases are drawn from a fixed seed (odd sizes, strides 1/2, asymmetric paddings,
dilation 2, groups 2, 1x1 to 7x7 and 1x7/7x1 windows, NCHW/NHWC/channel-prefix inputs,
outputs alone or in a slice of a wider buffer); each feature then has a test of its own.
Every output starts as NaN, and the channels of a wider buffer outside the written slice
must stay NaN. Tiles are large so that the interpreter runs few programs.

Triton 3.9's interpreter hands bfloat16 ``tl.dot`` operands to ``numpy.matmul`` as their raw
16-bit patterns; the ``bf16_dot`` fixture (conftest.py) upcasts them first, so the bf16 path
of the kernel runs here too.
"""
from __future__ import annotations

import dataclasses
import math
import random

import pytest
import torch
import torch.nn.functional as F

from fastcnn.kernels.conv2d import (
    ACTIVATIONS,
    ConvConfig,
    choose_conv_config,
    conv2d,
    conv2d_calls,
    epilogue_vectorizes,
    pack_conv_weight,
    packed_columns,
)
from fastcnn.kernels.conv_direct import conv_direct, pack_direct_weight
from tests.helpers import relative_l2
from tests.kernels.tensors import NAN, NAN_IN_DOT_IS_AN_ERROR, NHWC, TOL, strided, untouched_outside

pytestmark = NAN_IN_DOT_IS_AN_ERROR


# -- tensors in the layouts the engine uses (on the CPU, like every tensor in this file) ---------
def activation_view(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x`` (N, C, H, W) as ``nchw``, ``nhwc`` or ``prefix`` (the first C channels of a wider
    NHWC buffer, as DenseNet reads its block's buffer; the channels past them are NaN)."""
    if layout == "nchw":
        return x.contiguous()
    _, view = strided(x.shape, NHWC, x.dtype, widen=5 if layout == "prefix" else 0, device=x.device)
    return view.copy_(x)


def output_view(shape: tuple, dtype: torch.dtype, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A NaN output view and its buffer: ``nhwc``, ``nchw``, or ``slice`` (channels 3.. of a
    wider NHWC concat buffer)."""
    if layout == "nchw":
        return strided(shape, (0, 1, 2, 3), dtype, device="cpu")
    return strided(shape, NHWC, dtype, widen=7 if layout == "slice" else 0, start=3, device="cpu")


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)


def reference(x, w, bias=None, residual=None, scale=None, shift=None, *, stride=1, padding=(0, 0, 0, 0),
              dilation=1, groups=1, activation="none", clip_min=None, clip_max=None, alpha=0.01,
              post_activation="none", prologue_relu=False):
    x = x.double()
    if scale is not None:
        x = x * scale.double().view(1, -1, 1, 1) + shift.double().view(1, -1, 1, 1)
    if prologue_relu:
        x = x.relu()
    top, left, bottom, right = padding
    y = F.conv2d(F.pad(x, (left, right, top, bottom)), w.double(), None if bias is None else bias.double(),
                 stride, 0, dilation, groups)
    if activation == "clip" and (clip_min is not None or clip_max is not None):
        y = y.clamp(clip_min, clip_max)
    elif activation in ("relu", "sigmoid", "tanh"):
        y = getattr(y, activation)()
    elif activation == "leaky_relu":
        y = F.leaky_relu(y, alpha)
    if residual is not None:
        y = y + residual.double()
    return y.relu() if post_activation == "relu" else y


def assert_close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    assert not out.isnan().any(), f"{int(out.isnan().sum())} outputs unwritten (still NaN)"
    err = relative_l2(out, ref)
    assert err < TOL[dtype], f"relative L2 error {err:.3g} >= {TOL[dtype]}"


def out_size(h, w, k, stride, padding, dilation):
    (kh, kw), (sh, sw), (dh, dw) = k, stride, dilation
    top, left, bottom, right = padding
    return (h + top + bottom - dh * (kh - 1) - 1) // sh + 1, (w + left + right - dw * (kw - 1) - 1) // sw + 1


# -- one convolution, end to end -------------------------------------------------------------------
def run_case(gen, *, n, cin, cout, hw, kernel, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1,
             dtype=torch.float32, in_layout="nhwc", out_layout="nhwc", bias=True, prologue=False,
             prologue_relu=False, activation="none", clip=(None, None), alpha=0.1, residual=False,
             post_activation="none", pooled=False, splits=None, config=None, allow_tf32=False, direct=None):
    """Build random inputs, run ``conv2d`` (``conv_direct`` with a ``direct`` config), compare
    with :func:`reference`; returns the outputs and the reference."""
    h, w = hw
    ho, wo = out_size(h, w, kernel, stride, padding, dilation)
    x = torch.randn(n, cin, h, w, generator=gen).to(dtype)
    wt = (torch.randn(cout, cin // groups, *kernel, generator=gen) / math.sqrt(cin // groups * kernel[0] * kernel[1]))
    wt = wt.to(dtype)
    b = torch.randn(cout, generator=gen) if bias else None
    scale = torch.rand(cin, generator=gen) + 0.5 if prologue else None
    shift = torch.rand(cin, generator=gen) + 0.2 if prologue else None  # positive: relu(shift) != 0
    res = nhwc(torch.randn(n, cout, ho, wo, generator=gen).to(dtype)) if residual else None
    pool = torch.zeros(n, cout) if pooled else None
    if splits:
        bufs_views = [output_view((n, c, ho, wo), dtype, lay) for c, lay in splits]
    else:
        bufs_views = [output_view((n, cout, ho, wo), dtype, out_layout)]
    views = [v for _, v in bufs_views]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, activation=activation,
                  clip_min=clip[0], clip_max=clip[1], alpha=alpha, post_activation=post_activation,
                  prologue_relu=prologue_relu)
    out_arg = views if splits else views[0]
    if direct is not None:
        conv_direct(activation_view(x, in_layout), pack_direct_weight(wt, dtype), out_arg, b, res, scale, shift, pool,
                    kernel_size=kernel, config=direct, **kwargs)
    else:
        conv2d(activation_view(x, in_layout), pack_conv_weight(wt, groups, dtype), out_arg, b, res, scale, shift,
               pool, kernel_size=kernel, config=config, allow_tf32=allow_tf32, **kwargs)
    ref = reference(x, wt, b, res, scale, shift, **kwargs)
    out = torch.cat(views, dim=1)
    assert_close(out, ref, dtype)
    for buf, view in bufs_views:
        assert untouched_outside(buf, view), "the kernel wrote outside its output view"
    if pooled:
        assert relative_l2(pool, ref.sum(dim=(2, 3))) < TOL[dtype]
    return out, ref


def big_tiles(cin_g: int, cout_g: int, split_k: int = 1) -> ConvConfig:
    """Few programs for the interpreter: 64 rows, 32 or 64 columns, 16 or 32 channels."""
    block_k = 32 if cin_g % 32 == 0 else 16
    return ConvConfig(block_m=64, block_n=32 if cout_g <= 32 else 64, block_k=block_k, num_warps=4,
                      num_stages=1, split_k=split_k)


# -- sampled geometry --------------------------------------------------------------------------------
def sampled_cases(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    kernels = [(1, 1), (3, 3), (7, 7), (1, 7), (7, 1), (3, 3), (5, 5)]
    cases = []
    while len(cases) < count:
        kernel = rng.choice(kernels)
        dilation = (2, 2) if max(kernel) > 1 and rng.random() < 0.35 else (1, 1)
        groups = rng.choice([1, 1, 2])
        cin = groups * rng.choice([3, 16, 24, 32])
        cout = groups * rng.choice([8, 24, 40])
        padding = tuple(rng.randint(0, k // 2 + 1) for k in (kernel[0], kernel[1], kernel[0], kernel[1]))
        case = dict(n=rng.choice([1, 2]), cin=cin, cout=cout, hw=(rng.choice([7, 9, 11]), rng.choice([5, 8, 13])),
                    kernel=kernel, stride=rng.choice([(1, 1), (2, 2), (2, 1)]), padding=padding, dilation=dilation,
                    groups=groups, dtype=rng.choice([torch.float32, torch.float32, torch.float16]),
                    in_layout=rng.choice(["nchw", "nhwc", "prefix"]), out_layout=rng.choice(["nhwc", "slice", "nchw"]),
                    bias=rng.random() < 0.7, activation=rng.choice(ACTIVATIONS),
                    clip=(rng.choice([None, -0.5]), rng.choice([None, 0.5])))
        if min(out_size(*case["hw"], kernel, case["stride"], padding, dilation)) >= 1:
            cases.append(case)
    return cases


def case_id(c: dict) -> str:
    return (f"{c['n']}x{c['cin']}x{c['hw'][0]}x{c['hw'][1]}-k{c['kernel'][0]}x{c['kernel'][1]}"
            f"-s{c['stride'][0]}{c['stride'][1]}-g{c['groups']}-d{c['dilation'][0]}-{str(c['dtype'])[6:]}"
            f"-{c['in_layout']}-{c['out_layout']}-{c['activation']}")


@pytest.mark.parametrize("case", sampled_cases(12, seed=2024), ids=case_id)
def test_sampled_geometry(case):
    gen = torch.Generator().manual_seed(1)
    cfg = big_tiles(case["cin"] // case["groups"], case["cout"] // case["groups"])
    run_case(gen, config=cfg, **case)


# -- the features, one by one ------------------------------------------------------------------------
def test_dilation_2_asymmetric_padding():
    gen = torch.Generator().manual_seed(18)
    run_case(gen, n=2, cin=16, cout=24, hw=(9, 8), kernel=(3, 3), dilation=(2, 2), padding=(2, 1, 0, 3),
             activation="relu", config=big_tiles(16, 24))


def test_stem_reads_nchw_rgb_directly():
    """The network input: 3 channels, plain NCHW, 7x7 stride 2 pad 3, gathered K (147 columns)."""
    gen = torch.Generator().manual_seed(2)
    cfg = big_tiles(3, 16)
    assert cfg.block_k == 16 and 3 % cfg.block_k  # the gathered K loop
    run_case(gen, n=1, cin=3, cout=16, hw=(19, 17), kernel=(7, 7), stride=(2, 2), padding=(3, 3, 3, 3),
             in_layout="nchw", activation="relu", config=cfg)


def test_alexnet_11x11_stride4():
    gen = torch.Generator().manual_seed(3)
    run_case(gen, n=1, cin=3, cout=24, hw=(31, 31), kernel=(11, 11), stride=(4, 4), padding=(2, 2, 2, 2),
             in_layout="nchw", activation="relu", config=big_tiles(3, 24))


def test_groups_2_alexnet_style():
    gen = torch.Generator().manual_seed(4)
    run_case(gen, n=2, cin=32, cout=48, hw=(7, 7), kernel=(5, 5), padding=(2, 2, 2, 2), groups=2,
             activation="relu", config=big_tiles(16, 24))


def test_prologue_positive_shift_pads_zeros():
    """relu(x*scale + shift) with shift > 0 is positive everywhere, but padded positions are 0."""
    gen = torch.Generator().manual_seed(5)
    for cin, layout in ((16, "nhwc"), (3, "nchw")):  # the channel loop and the gathered K loop
        run_case(gen, n=2, cin=cin, cout=24, hw=(6, 7), kernel=(3, 3), padding=(1, 1, 1, 1), in_layout=layout,
                 prologue=True, prologue_relu=True, bias=False, config=big_tiles(cin, 24))


def test_prologue_relu_without_affine():
    gen = torch.Generator().manual_seed(6)
    run_case(gen, n=1, cin=16, cout=8, hw=(5, 5), kernel=(3, 3), padding=(1, 0, 2, 1), prologue_relu=True,
             config=big_tiles(16, 8))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation(activation):
    gen = torch.Generator().manual_seed(7)
    run_case(gen, n=1, cin=16, cout=24, hw=(6, 5), kernel=(3, 3), padding=(1, 1, 1, 1), activation=activation,
             clip=(-0.3, 0.4), alpha=0.2, config=big_tiles(16, 24))


def test_clip_with_one_bound():
    gen = torch.Generator().manual_seed(8)
    run_case(gen, n=1, cin=16, cout=8, hw=(5, 5), kernel=(1, 1), activation="clip", clip=(None, 0.25),
             config=big_tiles(16, 8))


def test_residual_and_post_relu():
    gen = torch.Generator().manual_seed(9)
    run_case(gen, n=2, cin=32, cout=40, hw=(5, 7), kernel=(1, 1), activation="none", residual=True,
             post_activation="relu", out_layout="slice", config=big_tiles(32, 40))


def test_out_splits_into_three_buffers():
    """A merged sibling convolution: channels 0..9 to one tensor, 10..29 into a concat slice,
    30..39 to an NCHW tensor."""
    gen = torch.Generator().manual_seed(10)
    run_case(gen, n=2, cin=16, cout=40, hw=(5, 6), kernel=(1, 1), activation="relu",
             splits=[(10, "nhwc"), (20, "slice"), (10, "nchw")], config=big_tiles(16, 40))


def test_pooled_sums_per_image():
    """Sums over Ho*Wo per (image, channel); the tiles never span two images (Ho*Wo = 35 < 64)."""
    gen = torch.Generator().manual_seed(11)
    run_case(gen, n=3, cin=16, cout=24, hw=(5, 7), kernel=(3, 3), padding=(1, 1, 1, 1), activation="relu",
             residual=True, pooled=True, config=big_tiles(16, 24))


@pytest.mark.parametrize("split_k", [2, 3])
def test_split_k(split_k):
    """K = 3*3*48 = 432: 14 blocks of 32, not divisible by 3; the reduction runs the epilogue."""
    gen = torch.Generator().manual_seed(12)
    run_case(gen, n=1, cin=48, cout=40, hw=(5, 5), kernel=(3, 3), padding=(1, 1, 1, 1), prologue=True,
             prologue_relu=True, activation="sigmoid", residual=True, post_activation="relu", pooled=True,
             config=dataclasses.replace(big_tiles(48, 40), block_k=32, split_k=split_k))


def test_split_k_out_splits_and_gathered_k():
    gen = torch.Generator().manual_seed(13)
    run_case(gen, n=1, cin=3, cout=40, hw=(9, 9), kernel=(7, 7), stride=(2, 2), padding=(3, 3, 3, 3),
             in_layout="nchw", activation="leaky_relu", splits=[(16, "nhwc"), (24, "slice")],
             config=dataclasses.replace(big_tiles(3, 40), split_k=3))


def test_split_k_with_a_partial_workspace():
    """The caller's workspace is used as given (NaN at first: every partial is written)."""
    gen = torch.Generator().manual_seed(14)
    x = nhwc(torch.randn(1, 32, 4, 4, generator=gen))
    w = torch.randn(24, 32, 1, 1, generator=gen)
    _, out = output_view((1, 24, 4, 4), torch.float32, "nhwc")
    workspace = torch.full((2, 16, 24), NAN)
    conv2d(x, pack_conv_weight(w, 1, torch.float32), out, workspace=workspace, kernel_size=1,
           config=ConvConfig(64, 32, 16, split_k=2, num_stages=1))
    assert_close(out, reference(x, w), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit(dtype, bf16_dot):
    gen = torch.Generator().manual_seed(15)
    run_case(gen, n=2, cin=32, cout=40, hw=(7, 6), kernel=(3, 3), stride=(2, 1), padding=(0, 1, 1, 1),
             dtype=dtype, prologue=True, activation="tanh", residual=True, out_layout="slice",
             config=big_tiles(32, 40))
    run_case(gen, n=1, cin=3, cout=16, hw=(11, 9), kernel=(7, 7), stride=(2, 2), padding=(3, 3, 3, 3),
             in_layout="nchw", dtype=dtype, activation="relu", config=big_tiles(3, 16))


def test_tf32_flag():
    """TF32 is asked for by the launcher's flag only (the interpreter multiplies in fp32)."""
    gen = torch.Generator().manual_seed(16)
    run_case(gen, n=1, cin=16, cout=8, hw=(5, 5), kernel=(3, 3), padding=(1, 1, 1, 1), allow_tf32=True,
             config=big_tiles(16, 8))
    x = torch.randn(1, 16, 5, 5)
    w = pack_conv_weight(torch.randn(8, 16, 1, 1), 1, torch.float32)
    out = torch.empty(1, 8, 5, 5)
    for tf32, precision in ((False, "ieee"), (True, "tf32")):
        call, = conv2d_calls(x, w, out, kernel_size=1, allow_tf32=tf32)
        assert call.constexprs["DOT_PRECISION"] == precision


# -- configs, packing, errors ------------------------------------------------------------------------------
def test_choose_conv_config_rules():
    stem = choose_conv_config(32, 3, 64, (112, 112), (7, 7), dtype=torch.float16)
    assert 3 % stem.block_k and stem.split_k == 1 and stem.block_m == 128  # gathered K, many tiles
    late = choose_conv_config(1, 512, 512, (7, 7), (3, 3), dtype=torch.float16)  # ResNet-50, batch 1
    assert late.split_k > 1 and 512 % late.block_k == 0
    assert choose_conv_config(1, 512, 512, (7, 7), (3, 3), sm_count=8).split_k == 1
    fp32 = choose_conv_config(64, 256, 256, (14, 14), (3, 3))
    assert fp32.block_n <= 64 and fp32.block_k == 32
    big = choose_conv_config(128, 256, 256, (28, 28), (3, 3), dtype=torch.bfloat16)
    assert (big.block_m, big.block_n, big.num_warps) == (128, 128, 8)
    strided = choose_conv_config(128, 256, 256, (28, 28), (3, 3), dtype=torch.bfloat16, vector_epilogue=False)
    assert strided.block_n == 64  # element-wise epilogue addresses: 32 accumulators a thread at most
    # exact fp32 (FMA, A and B in registers): 8 warps at 128 rows and with a 16-deep K step, which
    # takes 32 columns (128x32x32 at 4 warps spilled on sm_80; test_triton_compile's slow tests)
    fp32_narrow = choose_conv_config(64, 256, 32, (28, 28), (3, 3))
    assert (fp32_narrow.block_m, fp32_narrow.block_n, fp32_narrow.num_warps) == (128, 32, 8)
    fp32_k16 = choose_conv_config(1, 48, 64, (28, 28), (3, 3))
    assert (fp32_k16.block_m, fp32_k16.block_k, fp32_k16.block_n, fp32_k16.num_warps) == (64, 16, 32, 8)
    assert choose_conv_config(1, 64, 64, (28, 28), (3, 3)).num_warps == 4  # 64x64x32
    # a 16-bit split 64x64 tile with a prologue steps 32 deep (64 spilled on sm_80)
    plain, pre = (choose_conv_config(1, 256, 64, (14, 14), (3, 3), dtype=torch.float16, prologue=p) for p in (0, 1))
    assert (plain.block_k, pre.block_k) == (64, 32) and plain.split_k > 1 and pre.split_k > 1
    for cfg in (stem, late, fp32, big, strided, fp32_narrow, fp32_k16):
        assert cfg.block_m * cfg.block_n // (32 * cfg.num_warps) <= 64  # accumulators a thread


def test_epilogue_vectorizes():
    nhwc_out = torch.empty(2, 5, 5, 64, dtype=torch.float16).permute(0, 3, 1, 2)
    assert epilogue_vectorizes([nhwc_out], None, 64)
    assert not epilogue_vectorizes([torch.empty(2, 64, 5, 5, dtype=torch.float16)], None, 64)  # NCHW
    assert not epilogue_vectorizes([nhwc_out], torch.empty(2, 64, 5, 5, dtype=torch.float16), 64)
    odd = torch.empty(2, 5, 5, 70, dtype=torch.float16).permute(0, 3, 1, 2)
    assert not epilogue_vectorizes([odd[:, :33], odd[:, 33:]], None, 70)  # a split at channel 33


def test_pack_conv_weight_layout():
    w = torch.randn(6, 2, 3, 1)  # 2 groups of 3 output channels, 2 input channels each
    packed = pack_conv_weight(w, 2, torch.float16)
    assert packed.shape == (2, 3 * 1 * 2, packed_columns(3)) and packed.dtype == torch.float16
    # K ordered (kh, kw, cin): k = kh*KW*Cin_g + kw*Cin_g + c
    assert packed[1, 2 * 2 + 1, 2] == w[5, 1, 2, 0].half()
    assert (packed[:, :, 3:] == 0).all()
    assert packed_columns(3) == 32 and packed_columns(33) == 64 and packed_columns(1000) == 1024


@pytest.mark.parametrize("change, message", [
    (dict(kernel_size=5, padding=2), "weight must be packed"),
    (dict(groups=3), "groups=3"),
    (dict(bias=torch.zeros(7)), "bias must have shape"),
    (dict(bias=torch.zeros(8, dtype=torch.float16)), "bias must be one of"),
    (dict(scale=torch.ones(16)), "both scale and shift"),
    (dict(residual=torch.zeros(1, 8, 4, 4)), "residual must have shape"),
    (dict(pooled=torch.zeros(1, 8, 1, 1)), "pooled must have shape"),
    (dict(out=[torch.zeros(1, 4, 5, 5)] * 5), "1 to 4 tensors"),
    (dict(out=torch.zeros(1, 8, 4, 4)), "out\\[0\\] must have shape"),
    (dict(activation="gelu"), "activation must be one of"),
    (dict(post_activation="tanh"), "post_activation must be one of"),
    (dict(padding=(1, 2, 3)), "padding must be"),
    (dict(stride=0), "stride must be"),
    (dict(x=torch.zeros(1, 16, 5, 5, dtype=torch.float16)), "weight must be one of"),
    (dict(config=ConvConfig(split_k=2), workspace=torch.zeros(3)), "workspace"),
    (dict(x=torch.zeros(1, 16, 1, 1), padding=0, kernel_size=3,
          weight=pack_conv_weight(torch.zeros(8, 16, 3, 3), 1, torch.float32)), "does not fit"),
])
def test_invalid_arguments(change, message):
    args = dict(x=torch.zeros(1, 16, 5, 5), weight=pack_conv_weight(torch.zeros(8, 16, 3, 3), 1, torch.float32),
                out=torch.zeros(1, 8, 5, 5), kernel_size=3, padding=1)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        conv2d_calls(args.pop("x"), args.pop("weight"), args.pop("out"), **args)


def test_config_validation():
    with pytest.raises(ValueError, match="power of two"):
        ConvConfig(block_m=48)


def test_default_config_runs_split_k():
    """No config: the rules pick split-K for a one-tile layer and the launcher allocates the
    workspace."""
    gen = torch.Generator().manual_seed(17)
    cfg = choose_conv_config(1, 16, 8, (5, 5), (3, 3))
    assert cfg.split_k == 2 and len(conv2d_calls(torch.zeros(1, 16, 5, 5), pack_conv_weight(
        torch.zeros(8, 16, 3, 3), 1, torch.float32), torch.zeros(1, 8, 5, 5), kernel_size=3, padding=1)) == 2
    run_case(gen, n=1, cin=16, cout=8, hw=(5, 5), kernel=(3, 3), padding=(1, 1, 1, 1), activation="relu",
             residual=True, pooled=True)


# -- the GPU build, without a GPU --------------------------------------------------------------------------
def _heaviest_calls(dtype):
    """Default configs with every fusion on (prologue, residual, post-ReLU, pooled sums, four
    output views): a large layer, the gathered stem, and batch 1 (split-K and its reduction)."""
    def views(n, c, hw, parts):
        return [torch.empty(n, hw, hw, c // parts, dtype=dtype).permute(0, 3, 1, 2) for _ in range(parts)]

    calls = []
    for n, cin, hw, cout, k, stride, nchw_in in ((128, 256, 28, 256, 3, 1, False), (32, 3, 224, 64, 7, 2, True),
                                                (1, 512, 7, 512, 3, 1, False)):
        ho = (hw + 2 * (k // 2) - k) // stride + 1
        x = torch.empty(n, cin, hw, hw, dtype=dtype)
        x = x if nchw_in else x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        calls += conv2d_calls(x, pack_conv_weight(torch.empty(cout, cin, k, k), 1, dtype), views(n, cout, ho, 4),
                              torch.empty(cout), views(n, cout, ho, 1)[0], torch.empty(cin), torch.empty(cin),
                              torch.empty(n, cout), kernel_size=k, stride=stride, padding=k // 2, activation="relu",
                              post_activation="relu", prologue_relu=True)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("arch", [90, 80])
def test_default_configs_compile_without_spills(arch):
    from fastcnn.kernels.compile_check import compile_calls

    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        calls = _heaviest_calls(dtype)
        for call, report in zip(calls, compile_calls(calls, arch)):
            assert report.spills == 0, f"{call.name} {call.constexprs} spills on sm_{arch}"
            if call.name == "conv2d":
                assert report.tensor_cores == (dtype != torch.float32), report.math
