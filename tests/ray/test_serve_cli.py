"""``fastcnn serve`` from the command line: its options, and (slow: a Ray instance of its own)
the real command answering on 127.0.0.1 until Ctrl-C."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from fastcnn.cli import build_parser
from tests.ray.test_serve import _free_port, _post, _wait_healthy


def test_serve_options():
    args = build_parser().parse_args(["serve", "resnet50", "--port", "9000", "--max-batch", "16",
                                      "--batch-wait-ms", "5", "--weights", "w.pt"])
    assert (args.model, args.host, args.port, args.max_batch, args.batch_wait_ms, args.weights) == (
        "resnet50", "127.0.0.1", 9000, 16, 5.0, "w.pt")


STOP_TIMEOUT_S = 180


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_command_serves_until_stopped(lenet_file, lenet_engine, stop):
    port = _free_port()
    command = [sys.executable, "-m", "fastcnn", "serve", str(lenet_file), "--port", str(port), "--max-batch", "4"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failure = None
    try:
        url = f"http://127.0.0.1:{port}"
        assert _wait_healthy(url, timeout_s=120)["status"] == "ok"
        row = np.random.default_rng(3).standard_normal((1, 32, 32)).astype(np.float32)
        status, answer = _post(url, json.dumps(row.tolist()).encode(), "application/json")
        assert status == 200
        np.testing.assert_allclose(answer["logits"], lenet_engine.infer(row[None]).numpy()[0], rtol=1e-5, atol=1e-5)
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            assert b"fastcnn_batch_size_count 1" in response.read()
    except Exception as exc:  # noqa: BLE001 - re-raised below with the server's own output
        failure = exc
    finally:
        server.send_signal(stop)
        try:  # about 10 s alone; once over 60 s while two test suites shared the 2 cores
            output, _ = server.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
            failure = failure or TimeoutError(f"fastcnn serve did not stop within {STOP_TIMEOUT_S} s of {stop.name}")
    if failure is not None:  # the server's log says why it never answered (seen once under load)
        raise AssertionError(f"{failure!r}; fastcnn serve's output:\n{output[-4000:]}") from failure
    assert server.returncode == 0, output
