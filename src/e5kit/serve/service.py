"""What the handlers share: the served models (each with its tokenizer and batcher), routing by model
name, the tokenizer threads, token-id reading and the path of one request through the batcher.

Each model asks its `E5` (never the engine) for token ids and vectors; its `DynamicBatcher` runs the
model on one worker thread. The tokenizer threads and the queue-shedding limits are shared by all models.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request

from e5kit import __version__
from e5kit.encode.batching import batch_budget
from e5kit.serve.batcher import DynamicBatcher, QueueFullError, ShuttingDownError
from e5kit.serve.config import ServeConfig
from e5kit.serve.inputs import Inputs
from e5kit.serve.metrics import ServerMetrics
from e5kit.serve.token_ids import CL100K, CL100K_VOCAB, CLIENT_FIX, Cl100kDecoder, TokenIdsUnavailableError
from e5kit.serve.tokens import BadInputError, Prepared, RequestTokenizer

MAX_PREPARING = 256  # requests read but not yet tokenized; beyond, shed (bounds memory before the queue)


class ServeError(Exception):
    """An error answered with `status` and the common error body."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 headers: dict[str, str] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.param, self.headers, self.code = status, kind, param, headers, code


class ClientGone(Exception):
    """The client disconnected while its request waited; nothing is sent back."""


def public_name(name: str) -> str:
    """The name clients see for a model path or id: the hub id, or a local folder's name (never the
    server's file paths)."""
    name = str(name).rstrip("/")
    return Path(name).name if Path(name).expanduser().is_dir() else name


def served_name(model: Any) -> str:
    return public_name(model.name)


class EmbeddingService:
    """One served model: its name, request tokenizer and batcher."""

    def __init__(self, model: Any, name: str, config: ServeConfig, metrics: ServerMetrics) -> None:
        self.model = model
        self.name = name
        self.tokens = RequestTokenizer(model)
        self.created = int(time.time())
        budget = batch_budget(getattr(model, "device_type", "cpu"), config.max_batch_tokens, name="max_batch_tokens")
        self.batcher = DynamicBatcher(model, model.dim, max_batch_tokens=budget,
                                      max_batch_size=config.max_batch_size,
                                      max_queue_tokens=config.max_queue_tokens,
                                      max_wait_s=config.max_queue_seconds, observer=metrics)

    def check_dimensions(self, dimensions: int | None) -> None:
        if dimensions is not None and dimensions != self.model.dim:
            raise BadInputError(f"dimensions: model {self.name!r} gives {self.model.dim}-dimensional vectors only "
                                "(E5 models are not trained for shortened vectors)", "dimensions")


class Backend:
    """The served models and what their requests share; `route` picks a model by the request's name."""

    def __init__(self, models: Mapping[str, Any], config: ServeConfig) -> None:
        if not models:
            raise ValueError("serve at least one model")
        self.config = config
        self.metrics = ServerMetrics(lambda: sum(s.batcher.queue_inputs for s in self.services.values()),
                                     lambda: sum(s.batcher.queue_tokens for s in self.services.values()))
        self.services = {name: EmbeddingService(m, name, config, self.metrics) for name, m in models.items()}
        self.default = next(iter(self.services.values()))
        # tokenizing is CPU work: a few threads (not the 40 of the default pool) keep the cores for the model
        self.tokenize_pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                                thread_name_prefix="e5kit-tokenize")
        self.preparing = 0
        self.decoder = Cl100kDecoder()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for svc in self.services.values():
            svc.batcher.start()
        if self.config.token_ids == "cl100k":
            self.decoder.start()

    def close(self, timeout: float) -> None:
        """Stop taking work and drain every model's queue (within `timeout` seconds in all)."""
        for svc in self.services.values():
            svc.batcher.close(drain=True, timeout=timeout)
        self.tokenize_pool.shutdown(wait=False)

    @property
    def ready(self) -> bool:
        return all(s.batcher.running and not s.batcher.closing for s in self.services.values())

    # -- what clients see ------------------------------------------------------------------------
    def route(self, name: str | None) -> EmbeddingService:
        """The model a request names; a server with one model takes any name (and none)."""
        if len(self.services) == 1 or name is None:
            return self.default
        svc = self.services.get(name)
        if svc is None:
            raise ServeError(404, f"The model {name!r} is not served here; served models: {list(self.services)} "
                             "(GET /v1/models)", param="model", code="model_not_found")
        return svc

    def info(self) -> dict[str, Any]:
        c = self.config
        models = [{**s.model.info(), "model": s.name, "max_input_tokens": s.tokens.max_length,
                   "max_batch_tokens": s.batcher.max_batch_tokens} for s in self.services.values()]
        return {**models[0], "models": models, "version": __version__,
                "default_input_type": c.default_input_type, "token_ids": c.token_ids,
                "cl100k": self.decoder.status if c.token_ids == "cl100k" else "not used",
                "auto_truncate": c.auto_truncate,
                "max_request_inputs": c.max_request_inputs, "max_request_tokens": c.max_request_tokens,
                "max_queue_tokens": c.max_queue_tokens, "max_queue_seconds": c.max_queue_seconds,
                "max_body_bytes": c.max_body_bytes}

    @property
    def id_vocab(self) -> tuple[int | None, str]:
        """Bound and name of the vocabulary token ids are read in on the OpenAI route."""
        if self.config.token_ids == "cl100k":
            return CL100K_VOCAB, f"tiktoken {CL100K}"
        if self.config.token_ids == "model":
            return max(s.tokens.vocab_size for s in self.services.values()), "the model's vocabulary"
        return None, "the vocabulary"

    # -- one request -----------------------------------------------------------------------------
    def prepare_inputs(self, svc: EmbeddingService, inputs: Inputs, *, prefix: str, truncate: bool
                       ) -> Callable[[], Prepared]:
        """The tokenizing work for OpenAI `input` (texts or token ids, read as --token-ids says)."""
        if inputs.texts is not None:
            return lambda: svc.tokens.texts(inputs.texts, prefix=prefix, truncate=truncate)
        mode = self.config.token_ids
        if mode == "reject":
            raise TokenIdsUnavailableError(
                "input holds token ids, but this server reads text only (started with --token-ids reject). "
                f"Fix on the client: {CLIENT_FIX}", "input")
        if mode == "model":
            return lambda: svc.tokens.token_ids(inputs.arrays, prefix=prefix, truncate=truncate)
        return lambda: svc.tokens.texts(self.decoder.decode(inputs.arrays, nested=not inputs.single),
                                        prefix=prefix, truncate=truncate)

    async def embed(self, request: Request, svc: EmbeddingService, count: int, prepare: Callable[[], Prepared],
                    *, normalize: bool) -> tuple[np.ndarray, Prepared]:
        """Embeddings of a request's `count` inputs (tokenized by `prepare` in a thread) through the model's
        batcher; cancels them if the client leaves."""
        c = self.config
        if count > c.max_request_inputs:
            raise ServeError(413, f"request has {count} inputs, the limit is {c.max_request_inputs}", param="input")
        try:
            svc.batcher.check_capacity()  # shed before spending CPU on tokenizing
            if self.preparing >= MAX_PREPARING:
                raise QueueFullError(f"{self.preparing} requests are waiting to be tokenized", 1.0)
            self.preparing += 1
            try:
                prepared = await asyncio.get_running_loop().run_in_executor(self.tokenize_pool, prepare)
            finally:
                self.preparing -= 1
            if prepared.tokens > c.max_request_tokens:
                raise ServeError(413, f"request has {prepared.tokens} tokens, the limit is "
                                 f"{c.max_request_tokens}", param="input")
            job = svc.batcher.submit(prepared.ids, normalize=normalize)
        except QueueFullError as exc:
            self.metrics.shed.labels("queue_full").inc()
            raise ServeError(429, str(exc), "rate_limit_error",
                             headers={"Retry-After": str(int(np.ceil(exc.retry_after)))}) from None
        except ShuttingDownError as exc:
            self.metrics.shed.labels("shutting_down").inc()
            raise ServeError(503, str(exc), "server_error", headers={"Retry-After": "5"}) from None
        self.metrics.truncated_inputs.inc(prepared.truncated)
        return await self._wait(request, svc, job), prepared

    async def _wait(self, request: Request, svc: EmbeddingService, job: Any) -> np.ndarray:
        result = asyncio.wrap_future(job.future)
        watcher = asyncio.ensure_future(_disconnected(request))
        with self.metrics.queue_wait.time():
            try:
                await asyncio.wait({result, watcher}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                self.metrics.cancelled_inputs.inc(svc.batcher.cancel(job))
                raise
            finally:
                watcher.cancel()
        if not result.done():
            self.metrics.cancelled_inputs.inc(svc.batcher.cancel(job))
            result.cancel()
            raise ClientGone
        return result.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is already read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def model_map(models: Any | Mapping[str, Any] | Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """{name: E5} from one model, a mapping, or (name, model) pairs; names must be unique and non-empty."""
    if isinstance(models, Mapping):
        pairs = list(models.items())
    elif isinstance(models, (list, tuple)):
        pairs = list(models)
    else:
        pairs = [(served_name(models), models)]
    out: dict[str, Any] = {}
    for name, model in pairs:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a served model needs a non-empty name, got {name!r}")
        if name in out:
            raise ValueError(f"two models are served as {name!r}; give one another name with --model NAME=PATH")
        out[name] = model
    return out
