"""Server settings as one plain dataclass: limits, batching budget, auth and defaults."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from e5kit.options import positive_int

INPUT_TYPES = ("query", "passage", "none")
# How /v1/embeddings reads token-id input: as tiktoken cl100k_base ids (what OpenAI clients send), as ids
# of the served model's own vocabulary, or not at all (422).
TOKEN_ID_MODES = ("cl100k", "model", "reject")
API_KEY_ENV = "E5KIT_API_KEY"


@dataclass(frozen=True)
class ServeConfig:
    """What the HTTP server accepts and how it batches.

    Limits bound memory whatever the clients send: a request may carry at most `max_request_inputs`
    texts and `max_request_tokens` tokens (after truncation), its body at most `max_body_bytes`;
    the queue holds at most `max_queue_tokens` tokens and at most `max_queue_seconds` of work at the
    model's measured speed, beyond which requests are shed with 429 and Retry-After.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    # padded tokens per forward pass (batch size x longest); None: e5kit's default for the model's device, 4,096 on
    # CPU (larger CPU batches page-fault their activations anew, docs/bench-encode.md) and 16,384 on GPU
    max_batch_tokens: int | None = None
    max_batch_size: int = 256  # inputs per forward pass
    max_request_inputs: int = 2048
    max_request_tokens: int = 262144
    max_queue_tokens: int = 1048576
    max_queue_seconds: float | None = 10.0  # shed when more than this much work (at measured speed) waits
    max_body_bytes: int = 16 * 1024 * 1024
    max_concurrency: int = 1024  # open connections; uvicorn answers 503 beyond
    default_input_type: str = "query"  # E5: "query: " on symmetric tasks and features (docs/serve.md)
    auto_truncate: bool = False  # default of the per-request `truncate` flag
    graceful_timeout_s: float = 30.0
    token_ids: str = "cl100k"  # how /v1/embeddings reads lists of ints (TOKEN_ID_MODES)

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_batch_size", "max_request_inputs", "max_request_tokens",
                     "max_queue_tokens", "max_body_bytes", "max_concurrency"):
            value = getattr(self, name)
            if not (name == "max_batch_tokens" and value is None):
                positive_int(name, value)
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be an int in [0, 65535], got {self.port!r}")
        if self.max_queue_seconds is not None and not (isinstance(self.max_queue_seconds, (int, float))
                                                       and self.max_queue_seconds > 0):
            raise ValueError(f"max_queue_seconds must be a positive number or None, got {self.max_queue_seconds!r}")
        if self.default_input_type not in INPUT_TYPES:
            raise ValueError(f"default_input_type must be one of {list(INPUT_TYPES)}, got {self.default_input_type!r}")
        if self.token_ids not in TOKEN_ID_MODES:
            raise ValueError(f"token_ids must be one of {list(TOKEN_ID_MODES)}, got {self.token_ids!r}")
        if self.max_queue_tokens < self.max_request_tokens:
            raise ValueError(f"max_queue_tokens ({self.max_queue_tokens}) must be >= max_request_tokens "
                             f"({self.max_request_tokens}), else a full-size request could never be queued")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise ValueError("api_key must be a non-empty string or None")

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def api_key_from_env(explicit: str | None) -> str | None:
    """The API key given on the command line, else the E5KIT_API_KEY environment variable, else None."""
    if explicit:
        return explicit
    return os.environ.get(API_KEY_ENV) or None
