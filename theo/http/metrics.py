"""Theo's own Prometheus metrics, served on BentoML's ``/metrics`` beside its own.

The metrics are created on first use, inside a serving worker: BentoML sets
``PROMETHEUS_MULTIPROC_DIR`` only when the worker starts, and ``prometheus_client`` picks its
storage when a metric is created, so one made at import time would never reach ``/metrics``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# Waits from immediate to the longest queue wait worth measuring, in seconds.
WAIT_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@cache
def _metrics() -> dict[str, Any]:
    """The process's metric objects (Prometheus allows each name once per process)."""
    import prometheus_client as prom  # deferred: see the module docstring

    return {
        "queued": prom.Gauge(
            "theo_requests_queued",
            "Requests waiting for a model's admission queue.",
            ["model"],
            multiprocess_mode="livesum",
        ),
        "in_progress": prom.Gauge(
            "theo_requests_in_progress",
            "Requests being decoded or transcribed, per model.",
            ["model"],
            multiprocess_mode="livesum",
        ),
        "wait": prom.Histogram(
            "theo_queue_wait_seconds",
            "Time requests waited in their model's queue before being admitted.",
            ["model"],
            buckets=WAIT_BUCKETS,
        ),
        "decoded_bytes": prom.Gauge(
            "theo_decoded_audio_bytes",
            "Bytes of decoded audio (16 kHz int16) requests hold now, while it is cut.",
            multiprocess_mode="livesum",
        ),
        "decoded_seconds": prom.Gauge(
            "theo_decoded_audio_seconds",
            "Seconds of decoded audio requests hold now, while it is cut.",
            multiprocess_mode="livesum",
        ),
        "decode": prom.Histogram(
            "theo_decode_seconds",
            "Time a request spent decoding its upload and cutting it into windows.",
            ["model"],
            buckets=WAIT_BUCKETS,
        ),
        "refused": prom.Counter(
            "theo_requests_refused",  # exposed as theo_requests_refused_total
            "Requests refused with 503 by a model's queue, by reason.",
            ["model", "reason"],
        ),
    }


class AdmissionMetrics:
    """Per model: requests waiting and in progress, time waited and decoding, refusals;
    and the decoded audio held now."""

    def set_load(self, model: str, *, queued: int, in_progress: int) -> None:
        _metrics()["queued"].labels(model=model).set(queued)
        _metrics()["in_progress"].labels(model=model).set(in_progress)

    def observe_wait(self, model: str, seconds: float) -> None:
        _metrics()["wait"].labels(model=model).observe(seconds)

    def set_decoded_audio(self, held_bytes: int) -> None:
        _metrics()["decoded_bytes"].set(held_bytes)
        _metrics()["decoded_seconds"].set(held_bytes / 2 / 16_000)

    def observe_decode(self, model: str, seconds: float) -> None:
        _metrics()["decode"].labels(model=model).observe(seconds)

    def count_refusal(self, model: str, reason: str) -> None:
        _metrics()["refused"].labels(model=model, reason=reason).inc()
