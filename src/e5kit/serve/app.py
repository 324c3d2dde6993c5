"""The HTTP app: OpenAI-compatible /v1/embeddings, TEI-style /embed and /similarity, health and metrics.

Handlers only validate, tokenize (in a thread) and wait on the dynamic batcher; the model runs in
the batcher's worker thread. Every error has one JSON shape, {"error": {message, type, param,
code}}, and no stack trace ever reaches a client.
"""

# No `from __future__ import annotations`: FastAPI must see the per-model request classes made in
# _add_routes as real objects, not as names it would look up in this module.
import asyncio
import base64
import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from e5kit import __version__
from e5kit.serve.batcher import DynamicBatcher, QueueFullError, ShuttingDownError
from e5kit.serve.config import ServeConfig
from e5kit.serve.guard import Guard, error_body
from e5kit.serve.metrics import ServerMetrics
from e5kit.serve.schemas import (
    EmbeddingsResponse,
    ErrorResponse,
    request_models,
)
from e5kit.serve.tokens import BadInputError, InputTooLongError, Prepared, RequestTokenizer

log = logging.getLogger("e5kit.serve")

ERRORS = {code: {"model": ErrorResponse} for code in (401, 413, 422, 429, 503)}
MAX_PREPARING = 256  # requests read but not yet tokenized; beyond, shed (bounds memory before the queue)


class ServeError(Exception):
    """An error answered with `status` and the common error body."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.param, self.headers = status, kind, param, headers


class ClientGone(Exception):
    """The client disconnected while its request waited; nothing is sent back."""


def served_name(model: Any) -> str:
    """The name clients see: the hub id, or a local folder's name (never the server's file paths)."""
    name = str(model.name).rstrip("/")
    return Path(name).name if Path(name).expanduser().is_dir() else name


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")).encode(), status, headers,
                    media_type="application/json")


class EmbeddingService:
    """What the handlers share: the model's tokenizer, the batcher, limits and metrics."""

    def __init__(self, model: Any, config: ServeConfig) -> None:
        self.model = model
        self.config = config
        self.name = served_name(model)
        self.tokens = RequestTokenizer(model)
        self.metrics = ServerMetrics(lambda: self.batcher.queue_inputs, lambda: self.batcher.queue_tokens)
        self.batcher = DynamicBatcher(model, model.dim, max_batch_tokens=config.max_batch_tokens,
                                      max_batch_size=config.max_batch_size,
                                      max_queue_tokens=config.max_queue_tokens,
                                      max_wait_s=config.max_queue_seconds, observer=self.metrics)
        # tokenizing is CPU work: a few threads (not the 40 of the default pool) keep the cores for the model
        self.tokenize_pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                                thread_name_prefix="e5kit-tokenize")
        self.preparing = 0

    def info(self) -> dict[str, Any]:
        c = self.config
        return {**self.model.info(), "model": self.name, "version": __version__,
                "max_input_tokens": self.tokens.max_length, "default_input_type": c.default_input_type,
                "auto_truncate": c.auto_truncate, "max_batch_tokens": c.max_batch_tokens,
                "max_request_inputs": c.max_request_inputs, "max_request_tokens": c.max_request_tokens,
                "max_queue_tokens": c.max_queue_tokens, "max_queue_seconds": c.max_queue_seconds,
                "max_body_bytes": c.max_body_bytes}

    async def embed(self, request: Request, inputs: Sequence[str] | Sequence[Sequence[int]], *, role: str | None,
                    role_param: str, truncate: bool | None, normalize: bool, token_ids: bool = False
                    ) -> tuple[np.ndarray, Prepared]:
        """Embeddings of a request's inputs through the shared batcher; cancels them if the client leaves."""
        c = self.config
        if len(inputs) > c.max_request_inputs:
            raise ServeError(413, f"request has {len(inputs)} inputs, the limit is {c.max_request_inputs}",
                             param="input")
        role = c.default_input_type if role is None else role
        prefix = self.tokens.prefix(role, role_param)
        cut = c.auto_truncate if truncate is None else truncate
        fn = self.tokens.token_ids if token_ids else self.tokens.texts
        try:
            self.batcher.check_capacity()  # shed before spending CPU on tokenizing
            if self.preparing >= MAX_PREPARING:
                raise QueueFullError(f"{self.preparing} requests are waiting to be tokenized", 1.0)
            self.preparing += 1
            try:
                prepared = await asyncio.get_running_loop().run_in_executor(
                    self.tokenize_pool, partial(fn, inputs, prefix=prefix, truncate=cut))
            finally:
                self.preparing -= 1
            if prepared.tokens > c.max_request_tokens:
                raise ServeError(413, f"request has {prepared.tokens} tokens, the limit is "
                                 f"{c.max_request_tokens}", param="input")
            job = self.batcher.submit(prepared.ids, normalize=normalize)
        except QueueFullError as exc:
            self.metrics.shed.labels("queue_full").inc()
            raise ServeError(429, str(exc), "rate_limit_error",
                             headers={"Retry-After": str(int(np.ceil(exc.retry_after)))}) from None
        except ShuttingDownError as exc:
            self.metrics.shed.labels("shutting_down").inc()
            raise ServeError(503, str(exc), "server_error", headers={"Retry-After": "5"}) from None
        self.metrics.truncated_inputs.inc(prepared.truncated)
        result = asyncio.wrap_future(job.future)
        watcher = asyncio.ensure_future(_disconnected(request))
        with self.metrics.queue_wait.time():
            try:
                await asyncio.wait({result, watcher}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                self.metrics.cancelled_inputs.inc(self.batcher.cancel(job))
                raise
            finally:
                watcher.cancel()
        if not result.done():
            self.metrics.cancelled_inputs.inc(self.batcher.cancel(job))
            result.cancel()
            raise ClientGone
        return result.result(), prepared


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is already read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _error(status: int, message: str, kind: str, param: str | None = None, code: str | None = None,
           headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(status, message, kind, param, code), status, headers, media_type="application/json")


UNION_FIELDS = {
    "input": "a string, or a non-empty list of strings, of token ids (ints in [0, vocabulary size)) or of "
             "non-empty token-id lists",
    "inputs": "a string or a non-empty list of strings",
}


def _field(loc: list[str]) -> str:
    return loc[0] + "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc[1:])


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One line naming the field (e.g. "input[2]", "inputs.sentences") and what is wrong with it."""
    parts, param, unions = [], None, {}
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())][1:]  # drop "body"
        kind = err.get("type", "")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "json_invalid":
            parts.append(f"body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
        elif not loc:
            parts.append("body must be a JSON object" if kind != "missing" else "body is missing: send a JSON object")
        elif len(loc) > 1 and ("[" in loc[1] or loc[1] in ("str", "int", "bool")):  # a union member's path
            path = [loc[0], *loc[2:]]
            if loc[0] in UNION_FIELDS:
                # the member that got furthest says most; a wrong value beats a wrong type
                score = (len(path), not kind.endswith("_type"))
                if loc[0] not in unions or score > unions[loc[0]][2]:
                    unions[loc[0]] = (path, msg, score)
                if f"{loc[0]}:" not in "".join(parts):
                    parts.append(f"{loc[0]}:")
            else:
                parts.append(f"{_field(path)}: {msg}")
            param = param or loc[0]
        else:
            param = param or _field(loc)
            parts.append(f"{_field(loc)}: {'unknown field (check its spelling)' if kind == 'extra_forbidden' else msg}")
    for root, (path, msg, _) in unions.items():
        detail = f" ({_field(path)}: {msg})" if len(path) > 1 else ""
        parts[parts.index(f"{root}:")] = f"{root}: must be {UNION_FIELDS[root]}{detail}"
    return "; ".join(list(dict.fromkeys(parts))[:5]) or "invalid request", param


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        message, param = _validation_message(exc)
        return _error(422, message, "invalid_request_error", param, "invalid_value")

    @app.exception_handler(ServeError)
    async def _serve_error(_: Request, exc: ServeError) -> Response:
        return _error(exc.status, str(exc), exc.kind, exc.param, headers=exc.headers)

    @app.exception_handler(InputTooLongError)
    async def _too_long(_: Request, exc: InputTooLongError) -> Response:
        return _error(413, str(exc), "invalid_request_error", "input", "input_too_long")

    @app.exception_handler(BadInputError)
    async def _bad_input(_: Request, exc: BadInputError) -> Response:
        return _error(422, str(exc), "invalid_request_error", exc.param, "invalid_value")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> Response:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error(exc.status_code, str(exc.detail), kind, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; the status shows in metrics and logs

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> Response:
        log.error("internal error", exc_info=exc)
        return _error(500, "internal server error (details are in the server log)", "server_error")


def create_app(model: Any, config: ServeConfig | None = None) -> Any:
    """The ASGI app serving `model` (a loaded `E5`); the batcher starts and drains with the app's lifespan."""
    config = config or ServeConfig()
    svc = EmbeddingService(model, config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.batcher.start()
        try:
            yield
        finally:  # uvicorn has finished in-flight requests (or timed out): drain what is left
            await run_in_threadpool(svc.batcher.close, drain=True, timeout=config.graceful_timeout_s)
            svc.tokenize_pool.shutdown(wait=False)

    app = FastAPI(title="e5kit embedding server", version=__version__, lifespan=lifespan,
                  description="E5 embeddings with the right prefixes, pooling and normalization.")
    app.state.service = svc
    _install_error_handlers(app)
    _add_routes(app, svc)
    return Guard(app, max_body_bytes=config.max_body_bytes, api_key=config.api_key, metrics=svc.metrics)


def _add_routes(app: FastAPI, svc: EmbeddingService) -> None:
    models = request_models(roles=svc.tokens.roles, vocab_size=svc.tokens.vocab_size, dim=svc.model.dim)
    EmbeddingsRequest, EmbedRequest, SimilarityRequest = (  # noqa: N806 (classes)
        models["embeddings"], models["embed"], models["similarity"])

    @app.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=ERRORS)
    async def embeddings(body: EmbeddingsRequest, request: Request) -> Response:
        """OpenAI-compatible embeddings; `input_type` chooses the E5 prefix."""
        raw = body.input
        token_ids = isinstance(raw, list) and isinstance(raw[0], (int, list))
        inputs = [raw] if isinstance(raw, str) or (token_ids and isinstance(raw[0], int)) else raw
        vectors, prepared = await svc.embed(request, inputs, role=body.input_type, role_param="input_type",
                                            truncate=body.truncate, normalize=True, token_ids=token_ids)
        if body.encoding_format == "base64":
            data = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
        else:
            data = vectors.tolist()
        return json_response({"object": "list", "model": svc.name,
                              "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
                              "usage": {"prompt_tokens": prepared.tokens, "total_tokens": prepared.tokens}})

    @app.post("/embed", response_model=list[list[float]], responses=ERRORS)
    async def embed(body: EmbedRequest, request: Request) -> Response:
        """TEI-style: a list of vectors, one per input."""
        inputs = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        vectors, _ = await svc.embed(request, inputs, role=body.prompt_name, role_param="prompt_name",
                                     truncate=body.truncate, normalize=body.normalize)
        return json_response(vectors.tolist())

    @app.post("/similarity", response_model=list[float], responses=ERRORS)
    async def similarity(body: SimilarityRequest, request: Request) -> Response:
        """Cosine similarity of `source_sentence` to each of `sentences` (same prompt on all)."""
        texts = [body.inputs.source_sentence, *body.inputs.sentences]
        vectors, _ = await svc.embed(request, texts, role=body.prompt_name, role_param="prompt_name",
                                     truncate=body.truncate, normalize=True)
        return json_response((vectors[1:] @ vectors[0]).tolist())

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": ErrorResponse}})
    async def ready() -> Response:
        """Readiness: the model is loaded and the batcher takes work."""
        if svc.batcher.closing or not svc.batcher.running:
            return _error(503, "not ready", "server_error", headers={"Retry-After": "1"})
        return json_response({"status": "ready"})

    @app.get("/info")
    async def info() -> dict[str, Any]:
        """Model, dim, token limit, precision, prompts, version and the server's limits."""
        return svc.info()

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(svc.metrics.render(), media_type=svc.metrics.content_type)
