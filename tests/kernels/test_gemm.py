"""fused_gemm against float64 torch: ``activation(A @ W' + bias)``.

Cases are drawn from a fixed seed: M = 1 (the matrix-vector kernel) and M > 1 (tl.dot), odd
N and K, A and out as strided slices of wider buffers, every activation, with and without
bias, split-K with uneven slices. Outputs and workspaces start as NaN.

Triton 3.9's interpreter multiplies bfloat16 ``tl.dot`` operands as their raw 16-bit
patterns (it stores bf16 as uint16 and hands those to numpy.matmul), so bf16 runs only the
matrix-vector kernel here; the dot path's bf16 build is covered by the compile check.
"""
from __future__ import annotations

import os
import random

import pytest
import torch
import torch.nn.functional as F

from fastcnn.kernels import gemm as g
from fastcnn.kernels.elementwise import ACTIVATIONS
from tests.helpers import relative_l2
from tests.kernels.tensors import DEVICE, NAN, TOL, untouched_outside

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def _reference(a, w_nk, bias, activation, alpha, lo, hi):
    y = a.double() @ w_nk.double().t()
    if bias is not None:
        y = y + bias.double()
    return {"none": lambda: y, "relu": lambda: y.relu(), "sigmoid": lambda: y.sigmoid(), "tanh": lambda: y.tanh(),
            "clip": lambda: y if lo is None and hi is None else y.clamp(lo, hi),
            "leaky_relu": lambda: F.leaky_relu(y, alpha)}[activation]()


def _cases(count, seed):
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        m = rng.choice([1, 1, 3, 17, 37])
        dtype = rng.choice([torch.float32, torch.float16, torch.bfloat16])
        if dtype == torch.bfloat16 and INTERPRETED:
            m = 1
        split = rng.choice([1, 2, 3, 5])
        cases.append(dict(
            m=m, n=rng.choice([5, 33, 70]), k=rng.choice([7, 64, 129, 300]), dtype=dtype,
            activation=ACTIVATIONS[i % len(ACTIVATIONS)], alpha=rng.uniform(0.01, 0.3),
            clip=(rng.choice([None, -0.5]), rng.choice([None, 1.0])), bias=rng.random() < 0.7,
            a_slice=rng.random() < 0.5, out_slice=rng.random() < 0.5, trans_b=rng.random() < 0.5,
            config=None if rng.random() < 0.4 else g.GemmConfig(
                1 if m == 1 else 16, rng.choice([16, 32, 64]), rng.choice([16, 32, 64]), split)))
    return cases


def _ids(c):
    return f"m{c['m']}n{c['n']}k{c['k']}-{str(c['dtype'])[6:]}-{c['activation']}-" + \
        (f"s{c['config'].split_k}" if c["config"] else "auto")


def _run(case, gen):
    m, n, k, dtype = case["m"], case["n"], case["k"], case["dtype"]
    a_buf = torch.randn(m, k + 5, generator=gen).to(DEVICE, dtype)
    a = a_buf[:, 3:3 + k] if case["a_slice"] else a_buf[:, :k].contiguous()
    w_nk = (torch.randn(n, k, generator=gen) / k ** 0.5).to(DEVICE, dtype)
    w = w_nk if case["trans_b"] else w_nk.t().contiguous()  # as the IR holds it
    bias = torch.randn(n, generator=gen).to(DEVICE) if case["bias"] else None
    out_buf = torch.full((m, n + 4), NAN, dtype=dtype, device=DEVICE)
    out = out_buf[:, 1:1 + n] if case["out_slice"] else out_buf[:, :n]
    config = case["config"] or g.choose_gemm_config(m, n, k, dtype)
    workspace = torch.full((max(1, g.gemm_workspace_numel(m, n, k, config)),), NAN, device=DEVICE)
    lo, hi = case["clip"]
    g.fused_gemm(a, g.pack_gemm_weight(w, case["trans_b"], dtype), out, bias, activation=case["activation"],
                 alpha=case["alpha"], clip_min=lo, clip_max=hi, config=config, workspace=workspace)
    ref = _reference(a, w_nk, bias, case["activation"], case["alpha"], lo, hi)
    return out_buf, out, ref


@pytest.mark.parametrize("case", _cases(16, 0), ids=_ids)
def test_fused_gemm(case):
    out_buf, out, ref = _run(case, torch.Generator().manual_seed(1))
    assert relative_l2(out, ref) < TOL[case["dtype"]]
    assert untouched_outside(out_buf, out)


def test_split_k_uneven_slices_matrix_vector():
    """K = 300 in slices of 128: 128, 128, 44; the reduce kernel adds bias and activation."""
    config = g.GemmConfig(1, 32, 64, split_k=3)
    assert config.k_per_split(300) == 128 and config.splits(300) == 3
    case = dict(m=1, n=70, k=300, dtype=torch.float32, activation="relu", alpha=0.1, clip=(None, None),
                bias=True, a_slice=True, out_slice=True, trans_b=True, config=config)
    _, out, ref = _run(case, torch.Generator().manual_seed(2))
    assert relative_l2(out, ref) < 1e-5


def test_split_k_uneven_slices_dot():
    config = g.GemmConfig(16, 32, 32, split_k=4)  # K = 129: 64, 64, 1
    assert config.splits(129) == 3
    case = dict(m=37, n=33, k=129, dtype=torch.float16, activation="sigmoid", alpha=0.1, clip=(None, None),
                bias=False, a_slice=False, out_slice=False, trans_b=False, config=config)
    _, out, ref = _run(case, torch.Generator().manual_seed(3))
    assert relative_l2(out, ref) < 1e-2


def test_tf32_flag():
    gen = torch.Generator().manual_seed(4)
    a, w = torch.randn(20, 96, generator=gen).to(DEVICE), torch.randn(40, 96, generator=gen).to(DEVICE)
    out = torch.full((20, 40), NAN, device=DEVICE)
    g.fused_gemm(a, g.pack_gemm_weight(w, True, torch.float32), out, tf32=True,
                 config=g.GemmConfig(16, 32, 32))
    assert relative_l2(out, a.double() @ w.double().t()) < 2e-3  # TF32 keeps 10 mantissa bits
    call = g.fused_gemm_calls(a, g.pack_gemm_weight(w, True, torch.float32), out, tf32=True)[0]
    assert call.constexprs["PRECISION"] == "tf32"
    assert g.fused_gemm_calls(a, g.pack_gemm_weight(w, True, torch.float32), out)[0].constexprs["PRECISION"] == "ieee"


def test_flattened_nhwc_activation_with_permuted_weight():
    """The caller flattens an NHWC activation in (H, W, C) order and permutes W's K axis."""
    gen = torch.Generator().manual_seed(5)
    n, c, h, w = 2, 3, 4, 5
    x = torch.randn(n, h, w, c, generator=gen).to(DEVICE).permute(0, 3, 1, 2)  # NCHW shape, NHWC storage
    weight = torch.randn(7, c * h * w, generator=gen).to(DEVICE)  # torch's Linear after Flatten: (C, H, W) order
    a = x.permute(0, 2, 3, 1).reshape(n, h * w * c)  # a view: no copy
    assert a.data_ptr() == x.data_ptr()
    w_hwc = weight.view(7, c, h, w).permute(0, 2, 3, 1).reshape(7, -1)
    out = torch.full((n, 7), NAN, device=DEVICE)
    g.fused_gemm(a, g.pack_gemm_weight(w_hwc, True, torch.float32), out)
    assert relative_l2(out, x.double().flatten(1) @ weight.double().t()) < 1e-5


def test_pack_layout():
    w = torch.randn(300, 10)  # (K, N) as ONNX Gemm holds it without trans_b
    packed = g.pack_gemm_weight(w, False, torch.float16)
    assert packed.shape == (10, 384) and packed.dtype == torch.float16 and packed.is_contiguous()
    assert torch.equal(packed[:, :300], w.t().half()) and not packed[:, 300:].any()
    assert torch.equal(g.pack_gemm_weight(w.t(), True, torch.float32)[:, :300], w.t())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_config_streams_vgg_fc1_over_the_whole_gpu(dtype):
    m, n, k = 1, 4096, 25088
    config = g.choose_gemm_config(m, n, k, dtype, sm_count=132)
    programs = -(-n // config.block_n) * config.splits(k)
    assert config.block_m == 1 and config.splits(k) > 1 and programs >= 4 * 132
    assert config.k_per_split(k) % config.block_k == 0 and config.k_per_split(k) >= 4 * config.block_k
    assert config.block_k * (4 if dtype == torch.float32 else 2) * config.block_n == 16384  # 16 KB per step


def test_config_rules():
    full = g.choose_gemm_config(512, 4096, 4096, torch.float16)
    assert (full.block_m, full.block_n, full.split_k) == (128, 128, 1)  # a full wave: no split
    assert g.choose_gemm_config(64, 4096, 4096, torch.float16).split_k == 4  # partials <= W / 4
    few = g.choose_gemm_config(256, 1000, 2048, torch.float16)
    assert (few.block_m, few.block_n, few.split_k) == (64, 64, 1)  # 16 big tiles: smaller ones
    assert g.choose_gemm_config(256, 4096, 4096, torch.float32).block_m == 64  # fp32 stays 64 x 64
    assert g.choose_gemm_config(1, 4096, 84, torch.float32).split_k == 1  # too little K to split
    assert g.choose_gemm_config(8, 10, 84, torch.float16).block_m == 16


def test_launcher_refuses_bad_arguments():
    a = torch.randn(4, 100, device=DEVICE)
    w = g.pack_gemm_weight(torch.randn(8, 100, device=DEVICE), True, torch.float32)
    out = torch.empty(4, 8, device=DEVICE)
    with pytest.raises(ValueError, match="workspace"):
        g.fused_gemm(a, w, out, config=g.GemmConfig(16, 16, 16, split_k=2))
    with pytest.raises(ValueError, match="pack_gemm_weight"):
        g.fused_gemm(a, torch.randn(8, 100, device=DEVICE), out)
    with pytest.raises(ValueError, match="dtype"):
        g.fused_gemm(a.half(), w, out.half())
    with pytest.raises(ValueError, match="bias"):
        g.fused_gemm(a, w, out, torch.randn(8, device=DEVICE).half())
    with pytest.raises(ValueError, match="shape"):
        g.fused_gemm(a, w, torch.empty(4, 9, device=DEVICE))
    with pytest.raises(ValueError, match="activation"):
        g.fused_gemm(a, w, out, activation="gelu")
