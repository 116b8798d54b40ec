"""``fastcnn serve``: one model behind HTTP on Ray Serve, requests batched dynamically.

Requests that arrive within ``batch_wait_ms`` of each other (up to ``max_batch``) run as one
``engine.infer`` call (``@serve.batch``): a batch of 8 costs far less than 8 batches of 1 on
every backend, so under load the server answers more requests per second at little extra
latency. The engine runs on a worker thread, so the event loop keeps reading requests (and
forming the next batch) while a batch computes.

HTTP API (all answers JSON but ``/metrics``):

- ``POST /predict``: an image file, or a JSON array in the model's input shape (C x H x W, or
  1 x C x H x W). Answer: ``{"logits": [...], "top": [{"index", "probability", "name"}...]}``.
  Bad input: HTTP 400, ``{"error": "..."}`` naming the problem (not an image, wrong shape, too
  large, empty); the server carries on.
- ``GET /healthz``: ``{"status": "ok", "model": ..., "backend": ..., "device": ...}``.
- ``GET /metrics``: Prometheus text: latency histogram and batch-size histogram (see
  :mod:`fastcnn.ray.metrics`).
"""
# No `from __future__ import annotations` here: FastAPI reads the route methods' annotations
# (``request: Request``) at run time, and Serve's ingress wrapper hides the module they name.
import asyncio
import signal
import threading
import time
from typing import Any

import numpy as np
import ray
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from ray import serve

from fastcnn.errors import FastCNNError, InputError
from fastcnn.labels import top_classes
from fastcnn.ray.loading import load_everywhere_alike
from fastcnn.ray.metrics import ServingMetrics
from fastcnn.ray.predictor import assigned_device
from fastcnn.ray.requests import MAX_BODY_BYTES, body_to_input, read_body
from fastcnn.ray.rows import infer_rows

TOP = 5  # classes listed per answer, beside the full logits
app = FastAPI(title="fastcnn")


def _answer(logits: np.ndarray, error: str) -> dict:
    if error:  # checked before batching, so only a failure inside the engine lands here
        raise FastCNNError(error)
    top = top_classes(torch.from_numpy(logits[None]), TOP)[0]
    return {"logits": logits.tolist(), "top": [{"index": p.index, "probability": p.probability, "name": p.name}
                                               for p in top]}


# Serve pickles the decorated class at decoration time, with the module globals its methods use:
# everything the methods call must be defined above this line.
@serve.deployment
@serve.ingress(app)
class ModelServer:
    """One replica: one engine, its batcher and its metrics."""

    def __init__(self, model: Any, max_batch: int = 8, batch_wait_ms: float = 10.0,
                 max_body_bytes: int = MAX_BODY_BYTES, load_options: dict | None = None) -> None:
        self.model = str(model)
        self.engine = load_everywhere_alike(model, device=assigned_device(), **(load_options or {}))
        self.max_body_bytes = max_body_bytes
        self.metrics = ServingMetrics()
        self.infer_batch.set_max_batch_size(max_batch)
        self.infer_batch.set_batch_wait_timeout_s(batch_wait_ms / 1000)

    @app.post("/predict")
    async def predict(self, request: Request) -> JSONResponse:
        start = time.perf_counter()
        try:
            body = await read_body(request.headers, request.stream(), self.max_body_bytes)
            # decoding a large image takes a while: off the event loop, which keeps forming batches
            row = await asyncio.to_thread(body_to_input, self.engine, body, request.headers.get("content-type", ""))
            answer = JSONResponse(_answer(*await self.infer_batch(row)))
        except InputError as exc:
            answer = JSONResponse({"error": str(exc)}, status_code=400)
        self.metrics.record_request(time.perf_counter() - start)
        return answer

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def infer_batch(self, rows: list[np.ndarray]) -> list[tuple[np.ndarray, str]]:
        """Every waiting request's input in one engine call (rows were checked one by one before)."""
        self.metrics.record_batch(len(rows))
        logits, errors = await asyncio.to_thread(infer_rows, self.engine, rows, [""] * len(rows))
        return list(zip(logits, errors, strict=True))

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok", "model": self.model, "backend": self.engine.backend, "device": str(self.engine.device)}

    @app.get("/metrics")
    async def metrics(self) -> PlainTextResponse:
        return PlainTextResponse(self.metrics.prometheus_text(), media_type="text/plain; version=0.0.4")


def server_app(model: Any, max_batch: int = 8, batch_wait_ms: float = 10.0, max_body_bytes: int = MAX_BODY_BYTES,
               replicas: int = 1, gpus_per_replica: float = 0, **load_options: Any) -> Any:
    """The Serve application for ``serve.run``: ``replicas`` copies of :class:`ModelServer`.

    A replica takes up to 4 batches' worth of requests at once, so that the next batch fills
    while one runs (Serve's default, 5, would cap every batch at 5)."""
    if max_batch < 1 or batch_wait_ms < 0:
        raise InputError(f"max_batch must be >= 1 and batch_wait_ms >= 0, got {max_batch} and {batch_wait_ms}")
    deployment = ModelServer.options(num_replicas=replicas, max_ongoing_requests=4 * max_batch,
                                     ray_actor_options={"num_gpus": gpus_per_replica})
    return deployment.bind(model, max_batch, batch_wait_ms, max_body_bytes, load_options)


def run_server(model: Any, host: str = "127.0.0.1", port: int = 8000, **app_options: Any) -> None:
    """Deploy :func:`server_app` at ``http://host:port`` and answer until Ctrl-C or SIGTERM.

    ``ray.init()`` joins the Ray cluster of this machine when there is one (``ray start
    --head``, or ``RAY_ADDRESS``), so replicas then spread over its nodes; otherwise it starts a
    local Ray instance, which stops with the server.
    """
    ray.init(ignore_reinit_error=True)
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()  # remembered even where Serve swallows the KeyboardInterrupt (a signal during serve.run)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)  # docker stop, systemd, kill: the same clean stop as Ctrl-C
    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(server_app(model, **app_options), route_prefix="/")
        if not stop.is_set():
            print(f"serving {model} at http://{host}:{port}: POST /predict, GET /healthz, GET /metrics; "
                  "Ctrl-C stops", flush=True)
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:  # Ctrl-C, also while the replicas are still starting
        pass
    finally:
        print("stopping: shutting the replicas down", flush=True)
        serve.shutdown()
