"""The /metrics histograms and the bounded body reader, without Ray."""
from __future__ import annotations

import asyncio

import pytest

from fastcnn.errors import InputError
from fastcnn.ray.metrics import ServingMetrics
from fastcnn.ray.requests import BodyTooLargeError, read_body


def test_histograms_are_cumulative_prometheus_text():
    metrics = ServingMetrics()
    for size in (1, 3, 3, 8):
        metrics.record_batch(size)
    metrics.record_request(0.02)
    text = metrics.prometheus_text()
    assert "# TYPE fastcnn_batch_size histogram" in text
    assert 'fastcnn_batch_size_bucket{le="1"} 1\n' in text and 'fastcnn_batch_size_bucket{le="4"} 3\n' in text
    assert 'fastcnn_batch_size_bucket{le="8"} 4\n' in text and 'fastcnn_batch_size_bucket{le="+Inf"} 4\n' in text
    assert "fastcnn_batch_size_sum 15\nfastcnn_batch_size_count 4\n" in text
    assert 'fastcnn_request_latency_seconds_bucket{le="0.01"} 0\n' in text
    assert 'fastcnn_request_latency_seconds_bucket{le="0.025"} 1\n' in text


async def _chunks(parts, seen):
    for part in parts:
        seen.append(part)
        yield part


def test_a_declared_size_past_the_limit_is_refused_before_reading():
    seen = []
    with pytest.raises(BodyTooLargeError, match="2000 bytes declared, the limit is 1000"):
        asyncio.run(read_body({"content-length": "2000"}, _chunks([b"x" * 10], seen), limit=1000))
    assert seen == []


def test_an_undeclared_body_stops_being_read_at_the_limit():
    seen = []
    with pytest.raises(BodyTooLargeError, match="more than 1000 bytes"):
        asyncio.run(read_body({}, _chunks([b"x" * 600] * 10, seen), limit=1000))
    assert len(seen) == 2


def test_a_body_within_the_limit_is_read_whole_and_an_empty_one_refused():
    assert asyncio.run(read_body({}, _chunks([b"ab", b"cd"], []), limit=4)) == b"abcd"
    with pytest.raises(InputError, match="empty request body"):
        asyncio.run(read_body({}, _chunks([], []), limit=4))
