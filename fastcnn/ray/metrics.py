"""What ``GET /metrics`` reports: a request-latency histogram and a batch-size histogram, in the
Prometheus text format (version 0.0.4), so that Prometheus scrapes it as it is and a person can
read it with curl.

Counted per Serve replica (each holds its own); a deployment with several replicas answers
``/metrics`` from whichever replica took the request.
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

# Request latency, seconds: from a few ms (a small model on a GPU) to seconds (a big one on a CPU).
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class Histogram:
    """Cumulative-bucket histogram as Prometheus defines it (each bucket counts values <= its bound)."""

    name: str
    help: str
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf only)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def lines(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, count in zip((*self.bounds, "+Inf"), self.counts, strict=True):
            cumulative += count
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {cumulative}')
        return lines + [f"{self.name}_sum {self.total:g}", f"{self.name}_count {self.count}"]


class ServingMetrics:
    """Latency of every answered request (good or bad) and the size of every batch run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # batches finish on a worker thread, requests on the event loop
        self.latency = Histogram("fastcnn_request_latency_seconds", "Time from request to answer, per request.",
                                 LATENCY_BUCKETS_S)
        self.batch_size = Histogram("fastcnn_batch_size", "Requests run together in one engine.infer call.",
                                    BATCH_BUCKETS)

    def record_request(self, seconds: float) -> None:
        with self._lock:
            self.latency.observe(seconds)

    def record_batch(self, size: int) -> None:
        with self._lock:
            self.batch_size.observe(size)

    def prometheus_text(self) -> str:
        with self._lock:
            return "\n".join(self.latency.lines() + self.batch_size.lines()) + "\n"
