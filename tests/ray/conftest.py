"""A local Ray instance per test module, and a small model file every actor can load.

Ray is started once per module (about 5 s on 2 cores) with the dashboard off and a small
object store; each module's fixture shuts it down, so no Ray process outlives its tests.
The model is LeNet-5 (32 x 32 grayscale, 10 classes) with weights from seed 0, written as an
ONNX file: every actor loads exactly the weights the test's own engine has.
"""
from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any, Callable

import pytest
import ray

import fastcnn

# Every wait on Ray is bounded: a hung job fails its test instead of CI's whole run.
JOB_TIMEOUT_S = 120


def start_local_ray() -> None:
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


@pytest.fixture(scope="module")
def local_ray():
    start_local_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "lenet5.onnx"
    fastcnn.export_onnx(fastcnn.create_model("lenet5", seed=0), path, input_size=(1, 32, 32))
    return path


@pytest.fixture(scope="module")
def lenet_engine(lenet_file):
    return fastcnn.load(str(lenet_file))


def bounded(call: Callable[[], Any], timeout_s: float = JOB_TIMEOUT_S) -> Any:
    """``call()``, failing the test if it takes longer than ``timeout_s``."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(call).result(timeout=timeout_s)
    finally:
        pool.shutdown(wait=False)
