"""Prometheus metrics of one server (its own registry, so several servers can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class ServerMetrics:
    """Counters and histograms exported at ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge(
            "whisper_streaming_sessions_active", "Sessions being served.", registry=r
        )
        self.sessions_total = Counter(
            "whisper_streaming_sessions", "Sessions admitted.", ["protocol"], registry=r
        )
        self.refused_total = Counter(
            "whisper_streaming_refused", "Clients refused because the server was full.", registry=r
        )
        self.audio_seconds = Counter(
            "whisper_streaming_audio_seconds", "Seconds of audio received.", registry=r
        )
        self.inference_seconds = Counter(
            "whisper_streaming_inference_seconds", "Seconds spent in model calls.", registry=r
        )
        self.queue_wait = Histogram(
            "whisper_streaming_queue_wait_seconds",
            "Time a session with pending audio waited for a worker.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.update_latency = Histogram(
            "whisper_streaming_update_latency_seconds",
            "Time from the newest audio of a request arriving to its update being sent.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decode_seconds = Histogram(
            "whisper_streaming_decode_seconds",
            "Wall time of one model call, by request kind.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag_seconds = Histogram(
            "whisper_streaming_lag_seconds",
            "How far behind real time a session is when a decode's result is delivered: seconds "
            "of its audio received but not yet in any decode.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.buffer_seconds = Histogram(
            "whisper_streaming_buffer_seconds",
            "Audio a session's processor holds when a decode returns (its memory): bounded by "
            "max_buffer_s for live audio and by max_backlog_s for a client sending faster.",
            buckets=(1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0),
            registry=r,
        )
        self.loop_lag = Histogram(
            "whisper_streaming_event_loop_lag_seconds",
            "How late a 250 ms timer on the event loop fires (work that blocks the loop).",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.errors = Counter(
            "whisper_streaming_errors", "Errors reported to clients, by code.", ["code"], registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return bytes(generate_latest(self.registry))
