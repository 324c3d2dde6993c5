"""The HTTP app: OpenAI-compatible /v1/embeddings (and /embeddings), /v1/models, TEI-style / , /embed
and /similarity, health, info and metrics, for one model or several routed by name.

Handlers only validate, tokenize (in a thread) and wait on the model's dynamic batcher; the model
runs in the batcher's worker thread. Errors: see errors.py.
"""

# No `from __future__ import annotations`: FastAPI must see the per-app request classes made in
# _add_routes as real objects, not as names it would look up in this module.
import base64
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from e5kit import __version__
from e5kit.serve.config import ServeConfig
from e5kit.serve.errors import error_response, install_error_handlers
from e5kit.serve.guard import Guard
from e5kit.serve.schemas import EmbeddingsResponse, ErrorResponse, ModelList, request_models
from e5kit.serve.service import Backend, EmbeddingService, model_map

ERRORS = {code: {"model": ErrorResponse} for code in (401, 404, 413, 422, 429, 503)}

def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")).encode(), status, headers,
                    media_type="application/json")


def create_app(models: Any, config: ServeConfig | None = None) -> Any:
    """The ASGI app serving `models`: one loaded `E5`, or {name: E5} / [(name, E5)] for several (the
    first is the default). Batchers start and drain with the app's lifespan."""
    config = config or ServeConfig()
    backend = Backend(model_map(models), config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        backend.start()
        try:
            yield
        finally:  # uvicorn has finished in-flight requests (or timed out): drain what is left
            await run_in_threadpool(backend.close, config.graceful_timeout_s)

    app = FastAPI(title="e5kit embedding server", version=__version__, lifespan=lifespan,
                  description="E5 embeddings with the right prefixes, pooling and normalization.")
    app.state.backend = backend
    app.state.service = backend.default
    install_error_handlers(app)
    _add_routes(app, backend)
    return Guard(app, max_body_bytes=config.max_body_bytes, api_key=config.api_key, metrics=backend.metrics)


def _validate(model: type[BaseModel], body: Any) -> Any:
    """`model` from an already parsed body; errors as FastAPI's own, so they read the same."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _add_routes(app: FastAPI, backend: Backend) -> None:
    services = list(backend.services.values())
    roles = tuple(sorted({r for s in services for r in s.tokens.roles}))
    vocab, vocab_name = backend.id_vocab
    models = request_models(roles=roles, dims=tuple(sorted({s.model.dim for s in services})), vocab=vocab,
                            vocab_name=vocab_name, instruct=any(s.model.policy.instruct for s in services))
    EmbeddingsRequest, EmbedRequest, SimilarityRequest = (  # noqa: N806 (classes)
        models["embeddings"], models["embed"], models["similarity"])
    config = backend.config

    def prefix(svc: EmbeddingService, role: str | None, param: str, instruction: str | None = None) -> str:
        return svc.tokens.prefix(config.default_input_type if role is None else role, param, instruction)

    def cut(truncate: bool | None) -> bool:
        return config.auto_truncate if truncate is None else truncate

    async def embed_texts(request: Request, texts: Sequence[str], *, model: str | None, role: str | None,
                          truncate: bool | None, direction: str | None, normalize: bool = True,
                          instruction: str | None = None) -> np.ndarray:
        svc = backend.route(model)
        pre, keep_end = prefix(svc, role, "prompt_name", instruction), (direction or "right").lower() == "left"
        vectors, _ = await backend.embed(request, svc, len(texts), lambda: svc.tokens.texts(
            texts, prefix=pre, truncate=cut(truncate), keep_end=keep_end), normalize=normalize)
        return vectors

    async def tei_embed(request: Request, body: Any) -> Response:
        inputs = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        vectors = await embed_texts(request, inputs, model=body.model, role=body.prompt_name,
                                    truncate=body.truncate, direction=body.truncation_direction,
                                    normalize=body.normalize, instruction=body.instruction)
        return json_response(vectors.tolist())

    async def tei_similarity(request: Request, body: Any) -> Response:
        texts = [body.inputs.source_sentence, *body.inputs.sentences]
        vectors = await embed_texts(request, texts, model=body.model, role=body.option("prompt_name"),
                                    truncate=body.option("truncate"),
                                    direction=body.option("truncation_direction"),
                                    instruction=body.option("instruction"))
        return json_response((vectors[1:] @ vectors[0]).tolist())

    async def openai_embeddings(body: EmbeddingsRequest, request: Request) -> Response:
        """OpenAI-compatible embeddings; `input_type` chooses the E5 prefix. Token ids are read as
        --token-ids says (tiktoken cl100k_base by default, as OpenAI clients send them)."""
        svc = backend.route(body.model)
        svc.check_dimensions(body.dimensions)
        inputs = body.input
        prepare = backend.prepare_inputs(svc, inputs, prefix=prefix(svc, body.input_type, "input_type",
                                                                     body.instruction),
                                         truncate=cut(body.truncate))
        vectors, prepared = await backend.embed(request, svc, inputs.count, prepare, normalize=True)
        if body.encoding_format == "base64":
            data = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
        else:
            data = vectors.tolist()
        return json_response({"object": "list", "model": svc.name,
                              "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
                              "usage": {"prompt_tokens": prepared.tokens, "total_tokens": prepared.tokens}})

    for path in ("/v1/embeddings", "/embeddings"):
        app.post(path, response_model=EmbeddingsResponse, responses=ERRORS,
                 summary="Embeddings (OpenAI)" + (", alias of /v1/embeddings" if path == "/embeddings" else ""),
                 )(openai_embeddings)

    @app.post("/embed", response_model=list[list[float]], responses=ERRORS)
    async def embed(body: EmbedRequest, request: Request) -> Response:
        """TEI-style: a list of vectors, one per input."""
        return await tei_embed(request, body)

    @app.post("/similarity", response_model=list[float], responses=ERRORS)
    async def similarity(body: SimilarityRequest, request: Request) -> Response:
        """Cosine similarity of `source_sentence` to each of `sentences` (same prompt on all); options at
        the top level or in TEI's `parameters`."""
        return await tei_similarity(request, body)

    root_body = {"oneOf": [{"$ref": "#/components/schemas/EmbedRequest"},
                           {"$ref": "#/components/schemas/SimilarityRequest"}]}

    @app.post("/", responses={**ERRORS, 200: {"description": "vectors (an /embed body) or scores (a /similarity "
                                                            "body)"}},
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"application/json": {"schema": root_body}}}})
    async def root(request: Request, body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        """TEI's root route, as huggingface_hub's InferenceClient(model=URL) calls it: an /embed body gives
        vectors, a /similarity body (`inputs` with `source_sentence`) gives scores."""
        if isinstance(body.get("inputs"), Mapping):
            return await tei_similarity(request, _validate(SimilarityRequest, body))
        return await tei_embed(request, _validate(EmbedRequest, body))

    @app.get("/v1/models", response_model=ModelList)
    async def list_models() -> Response:
        """The served models (OpenAI shape); `model` in a request picks one."""
        return json_response({"object": "list", "data": [_card(s) for s in services]})

    @app.get("/v1/models/{name:path}", responses={404: {"model": ErrorResponse}})
    async def get_model(name: str) -> Response:
        svc = backend.services.get(name)
        if svc is None:
            return error_response(404, f"The model {name!r} is not served here; served models: "
                                  f"{list(backend.services)}", "invalid_request_error", "model", "model_not_found")
        return json_response(_card(svc))

    _add_status_routes(app, backend)


def _card(svc: EmbeddingService) -> dict[str, Any]:
    return {"id": svc.name, "object": "model", "created": svc.created, "owned_by": "e5kit"}


def _add_status_routes(app: FastAPI, backend: Backend) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": ErrorResponse}})
    async def ready() -> Response:
        """Readiness: the models are loaded and their batchers take work."""
        if not backend.ready:
            return error_response(503, "not ready", "server_error", headers={"Retry-After": "1"})
        return json_response({"status": "ready"})

    @app.get("/info")
    async def info() -> dict[str, Any]:
        """The default model (dim, token limit, precision, prompts), every served model, version, limits."""
        return backend.info()

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(backend.metrics.render(), media_type=backend.metrics.content_type)
