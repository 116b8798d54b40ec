"""The direct convolution (depthwise and thin grouped layers) against float64 torch, with the
prologue, epilogue, output views and pooled sums of the implicit GEMM (see test_conv2d)."""
from __future__ import annotations

import pytest
import torch

from fastcnn.kernels.conv_direct import (
    DirectConfig,
    choose_direct_config,
    conv_direct_call,
    pack_direct_weight,
    prefers_direct,
)
from tests.kernels.test_conv2d import run_case

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")
BIG = DirectConfig(block_m=64, block_c=32, num_warps=4)


def test_depthwise_3x3_prologue_relu6():
    """MobileNet's depthwise layer with the batch norm + ReLU before it as a prologue (positive
    shifts: the padded zeros must stay 0) and ReLU6 as a clip."""
    gen = torch.Generator().manual_seed(20)
    run_case(gen, n=2, cin=40, cout=40, hw=(7, 6), kernel=(3, 3), padding=(1, 1, 1, 1), groups=40,
             prologue=True, prologue_relu=True, activation="clip", clip=(0.0, 6.0), direct=BIG)


def test_depthwise_stride2_asymmetric_padding_into_slice():
    gen = torch.Generator().manual_seed(21)
    run_case(gen, n=1, cin=24, cout=24, hw=(9, 8), kernel=(3, 3), stride=(2, 2), padding=(0, 0, 1, 1), groups=24,
             dtype=torch.float16, in_layout="prefix", out_layout="slice", activation="relu", direct=BIG)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_depthwise_multiplier_dilation_nchw(dtype):
    """Two output channels per input channel, 5x5 dilated by 2, a plain NCHW input."""
    gen = torch.Generator().manual_seed(22)
    run_case(gen, n=1, cin=8, cout=16, hw=(11, 9), kernel=(5, 5), padding=(4, 4, 4, 4), dilation=(2, 2), groups=8,
             in_layout="nchw", dtype=dtype, activation="leaky_relu", direct=BIG)


def test_thin_groups_residual_pooled():
    """ResNeXt-like: 8 groups of 4 channels in and out, residual, ReLU after it, pooled sums."""
    gen = torch.Generator().manual_seed(23)
    run_case(gen, n=2, cin=32, cout=32, hw=(5, 5), kernel=(3, 3), padding=(1, 1, 1, 1), groups=8, residual=True,
             post_activation="relu", pooled=True, prologue=True, direct=BIG)


def test_direct_out_splits_and_partial_channel_tile():
    gen = torch.Generator().manual_seed(24)
    run_case(gen, n=1, cin=20, cout=20, hw=(6, 6), kernel=(3, 3), padding=(1, 1, 1, 1), groups=20,
             activation="sigmoid", splits=[(5, "nhwc"), (9, "slice"), (6, "nchw")],
             direct=DirectConfig(32, 16, 4))


def test_default_config_and_choice():
    gen = torch.Generator().manual_seed(25)
    run_case(gen, n=1, cin=16, cout=16, hw=(4, 4), kernel=(3, 3), padding=(1, 1, 1, 1), groups=16,
             direct=choose_direct_config(16))
    assert prefers_direct(1, 1) and prefers_direct(4, 4) and not prefers_direct(3, 64)


def test_invalid_arguments():
    x, out = torch.zeros(1, 8, 5, 5), torch.zeros(1, 8, 5, 5)
    w = pack_direct_weight(torch.zeros(8, 1, 3, 3), torch.float32)
    with pytest.raises(ValueError, match="pack_direct_weight"):
        conv_direct_call(x, w, out, kernel_size=3, padding=1, groups=4)
    with pytest.raises(ValueError, match="residual must have shape"):
        conv_direct_call(x, w, out, residual=torch.zeros(8), kernel_size=3, padding=1, groups=8)
    with pytest.raises(ValueError, match="power"):
        DirectConfig(block_c=24)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [90, 80])
def test_default_config_compiles_without_spills(arch):
    """The heaviest fusion (prologue, residual, post-ReLU, pooled sums, four views) over NHWC
    depthwise and over NCHW thin groups."""
    from fastcnn.kernels.compile_check import compile_calls

    calls = []
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for nchw, cin_g in ((False, 1), (True, 4)):
            n, c, hw = 32, 128, 28
            def view(ch):
                t = torch.empty(n, ch, hw, hw, dtype=dtype)
                return t if nchw else t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
            calls.append(conv_direct_call(
                view(c), pack_direct_weight(torch.empty(c, cin_g, 3, 3), dtype), [view(c // 4) for _ in range(4)],
                torch.empty(c), view(c), torch.empty(c), torch.empty(c), torch.empty(n, c), kernel_size=3, padding=1,
                groups=c // cin_g, activation="clip", clip_max=6.0, post_activation="relu", prologue_relu=True))
    for call, report in zip(calls, compile_calls(calls, arch)):
        assert report.spills == 0, f"{call.constexprs} spills on sm_{arch}"
