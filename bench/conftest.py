"""The suite's record beyond pytest-benchmark's own: the software and the device's peaks in
``machine_info``, and every absent or wrong case, with its reason, under ``"absent"``."""
from __future__ import annotations

import importlib.metadata
import time

import pytest
import torch

from fastcnn.benchmark.implementations import bench_device
from fastcnn.benchmark.roofline import gpu_peaks, probe_cpu

_ABSENT: list[dict] = []


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def pytest_benchmark_update_machine_info(config, machine_info):
    DEVICE = bench_device()
    software = {p: _version(p) for p in ("fastcnn", "torch", "onnxruntime", "onnxruntime-gpu", "openvino",
                                         "triton", "pytest-benchmark")}
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else machine_info.get("cpu", {}).get("brand_raw", "cpu")
    peaks = gpu_peaks(name) if DEVICE == "cuda" else probe_cpu()
    machine_info.update(fastcnn_device=DEVICE, fastcnn_device_name=name, software=software,
                        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), threads=torch.get_num_threads(),
                        peaks=peaks.to_dict() if peaks is not None else None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and hasattr(item, "callspec") and item.originalname == "test_latency":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _ABSENT.append({**item.callspec.params, "reason": reason.removeprefix("Skipped: ")})


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["absent"] = list(_ABSENT)
