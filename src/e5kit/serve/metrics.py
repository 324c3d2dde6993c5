"""Prometheus metrics of one server: requests, latency, batch sizes, tokens/s, queue depth.

Each app owns its registry (no global state), so several apps in one process — tests — do not clash.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class ServerMetrics:
    """The metric families the server updates; `render()` gives the Prometheus text format."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_inputs: Callable[[], float], queue_tokens: Callable[[], float]) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("e5kit_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("e5kit_request_duration_seconds", "Request latency by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("e5kit_queue_wait_seconds", "Time from queueing to results, per request",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.batch_inputs = Histogram("e5kit_batch_size", "Inputs per model batch", buckets=BATCH_BUCKETS,
                                      registry=r)
        self.batch_tokens = Histogram("e5kit_batch_tokens", "Real tokens per model batch", buckets=TOKEN_BUCKETS,
                                      registry=r)
        self.batch_seconds = Histogram("e5kit_batch_duration_seconds", "Model time per batch",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("e5kit_tokens", "Real tokens embedded", registry=r)
        self.padded_tokens = Counter("e5kit_padded_tokens", "Tokens run through the model, padding included",
                                     registry=r)
        self.inputs = Counter("e5kit_inputs", "Inputs embedded", registry=r)
        self.tokens_per_second = Gauge("e5kit_tokens_per_second", "Real tokens per second of model time, "
                                       "last batch", registry=r)
        self.shed = Counter("e5kit_rejected_requests", "Requests refused before queueing, by reason",
                            ["reason"], registry=r)
        self.cancelled_inputs = Counter("e5kit_cancelled_inputs", "Queued inputs dropped because the client left",
                                        registry=r)
        self.truncated_inputs = Counter("e5kit_truncated_inputs", "Inputs cut to the model's limit", registry=r)
        depth = Gauge("e5kit_queue_depth", "Inputs waiting for a batch", registry=r)
        depth.set_function(queue_inputs)
        queued = Gauge("e5kit_queue_tokens", "Tokens waiting for a batch", registry=r)
        queued.set_function(queue_tokens)

    def observe_batch(self, *, inputs: int, tokens: int, padded_tokens: int, seconds: float) -> None:
        """Called by the batcher's worker after every model batch."""
        self.batch_inputs.observe(inputs)
        self.batch_tokens.observe(tokens)
        self.batch_seconds.observe(seconds)
        self.tokens.inc(tokens)
        self.padded_tokens.inc(padded_tokens)
        self.inputs.inc(inputs)
        if seconds > 0:
            self.tokens_per_second.set(tokens / seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
