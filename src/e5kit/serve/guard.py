"""ASGI middleware in front of every route: body size limit (413), bearer auth (401), request metrics,
and JSON bodies read as JSON whatever Content-Type says (`curl -d` sends form-urlencoded, some clients
text/plain), so a valid body is never refused for its label.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: it adds no task per request and can stop a
body that grows past the limit while it streams in, before it is buffered.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
KNOWN_PATHS = frozenset({"/v1/embeddings", "/embeddings", "/", "/embed", "/similarity", "/v1/models", "/info",
                         "/metrics", *OPEN_PATHS})
ORIGINAL_CONTENT_TYPE = "e5kit.content_type"  # scope key: the Content-Type a POST arrived with, if not JSON


def json_content_type(scope: Scope) -> None:
    """Label a POST body as JSON (FastAPI reads only application/json and +json bodies as JSON); the
    original label is kept in the scope so a parse error can mention it."""
    headers = list(scope.get("headers") or [])
    value = next((v for k, v in headers if k == b"content-type"), None)
    main = (value or b"").split(b";")[0].strip().lower()
    if main == b"application/json" or main.endswith(b"+json"):
        return
    scope[ORIGINAL_CONTENT_TYPE] = value.decode("latin-1") if value else "no Content-Type"
    scope["headers"] = [(k, v) for k, v in headers if k != b"content-type"] + [(b"content-type", b"application/json")]


def error_body(status: int, message: str, kind: str, param: str | None = None, code: str | None = None) -> bytes:
    """The one error shape of every response: OpenAI's {"error": {message, type, param, code}}."""
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}}).encode()


async def send_error(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Wraps the app: refuses bodies over `max_body_bytes`, checks the API key, records metrics."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, api_key: str | None, metrics: Any) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key.encode() if api_key else None
        self.metrics = metrics

    def _authorized(self, scope: Scope) -> bool:
        if self.api_key is None or scope["path"] in OPEN_PATHS:
            return True
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        # compare_digest on equal-type bytes: time does not depend on where the key differs
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in KNOWN_PATHS else "other"
        start = time.perf_counter()
        status = {"code": 500}

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if not self._authorized(scope):
                await send_counted_error(send_counted, 401, "missing or wrong API key: send 'Authorization: "
                                         "Bearer <key>'", "authentication_error", [(b"www-authenticate", b"Bearer")])
                return
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await send_counted_error(send_counted, 413, f"request body has {int(length)} bytes, the limit is "
                                         f"{self.max_body_bytes}", "invalid_request_error")
                return
            if scope.get("method") == "POST":
                json_content_type(scope)
            received = 0

            async def receive_limited() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:  # a streamed body without Content-Length
                        raise HTTPException(413, f"request body is over the limit of {self.max_body_bytes} bytes")
                return message

            await self.app(scope, receive_limited, send_counted)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


async def send_counted_error(send: Send, status: int, message: str, kind: str,
                             headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send_error(send, status, error_body(status, message, kind), list(headers))
