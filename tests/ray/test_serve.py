"""``fastcnn serve``'s deployment on a local Ray Serve at 127.0.0.1: a burst of concurrent
requests (JSON arrays and PNG files) each get engine.infer's answer, batches larger than one
form, and bad requests get 400 with the problem named while good ones keep succeeding."""
from __future__ import annotations

import http.client
import io
import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import ray
from PIL import Image
from ray import serve

from fastcnn.preprocess import decode_image
from fastcnn.ray.server import server_app
from tests.ray.conftest import start_local_ray

MAX_BODY = 64 * 1024  # a 1 x 32 x 32 JSON array is about 20 KiB
REQUESTS = 32


@pytest.fixture(scope="module")
def server(lenet_file) -> str:
    """The server's base URL; Serve and Ray are shut down after the module."""
    start_local_ray()
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    # a long batch wait, so that the burst's requests surely meet in batches
    serve.run(server_app(str(lenet_file), max_batch=8, batch_wait_ms=100, max_body_bytes=MAX_BODY), route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url)
    yield url
    serve.shutdown()
    ray.shutdown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 36), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _batch_sizes(url: str) -> dict[str, int]:
    """The batch-size histogram's cumulative buckets, e.g. {"1": 3, "2": 5, ..., "+Inf": 9}."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {line.split('"')[1]: int(line.split()[-1]) for line in text.splitlines()
            if line.startswith("fastcnn_batch_size_bucket")}


def test_healthz(server):
    assert _wait_healthy(server)["status"] == "ok"


def test_a_burst_gets_engine_answers_in_batches(server, lenet_engine):
    arrays = np.random.default_rng(0).standard_normal((REQUESTS // 2, 1, 32, 32)).astype(np.float32)
    pngs = [_png(seed) for seed in range(REQUESTS // 2)]
    bodies = [(json.dumps(a.tolist()).encode(), "application/json") for a in arrays] + [(p, "image/png") for p in pngs]
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        answers = list(pool.map(lambda body: _post(server, *body), bodies))
    assert [status for status, _ in answers] == [200] * REQUESTS, answers
    expected = np.concatenate([lenet_engine.infer(arrays).numpy(),
                               lenet_engine.infer(lenet_engine.preprocess([decode_image(p) for p in pngs])).numpy()])
    np.testing.assert_allclose(np.array([answer["logits"] for _, answer in answers]), expected, rtol=1e-5, atol=1e-5)
    assert answers[0][1]["top"][0]["index"] == int(expected[0].argmax())
    sizes = _batch_sizes(server)
    assert sizes["+Inf"] - sizes["1"] > 0, f"no batch of more than one request: {sizes}"


def _chunked_post(url: str, size: int) -> tuple[int, dict]:
    """A body sent without Content-Length (chunked), so only reading it can find its size."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b"[" + b"0," * 4096 for _ in range(size // 8193 + 1))
    connection.request("POST", "/predict", body=chunks, headers={"Content-Type": "application/json"},
                       encode_chunked=True)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


@pytest.mark.parametrize("body, content_type, problem", [
    (b"hello, not a picture", "image/png", "not an image"),
    (json.dumps(np.zeros((3, 32, 32)).tolist()).encode(), "application/json", "wrong shape: got 3 x 32 x 32"),
    (b"[[1, 2], [3]]", "application/json", "not a JSON array of numbers"),
    (b"", "image/png", "empty request body"),
    (b"\0" * (MAX_BODY + 1), "image/png", "too large"),
])
def test_bad_requests_get_400_and_good_ones_still_succeed(server, body, content_type, problem):
    status, answer = _post(server, body, content_type)
    assert status == 400 and problem in answer["error"], answer
    good = json.dumps(np.zeros((1, 32, 32)).tolist()).encode()
    assert _post(server, good, "application/json")[0] == 200


def test_a_body_too_large_without_content_length_is_refused_while_read(server):
    status, answer = _chunked_post(server, 4 * MAX_BODY)
    assert status == 400 and "too large: more than" in answer["error"], answer
