"""Every error the server answers, in one shape: OpenAI's {"error": {message, type, param, code}}.

Validation errors become one line naming the field and item (`input[2]`, `inputs.sentences[0]`); no
stack trace ever reaches a client (internal errors are logged and answered with a generic 500).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from e5kit.serve.guard import ORIGINAL_CONTENT_TYPE, error_body
from e5kit.serve.service import ClientGone, ServeError
from e5kit.serve.token_ids import StillLoadingError
from e5kit.serve.tokens import BadInputError, InputTooLongError

log = logging.getLogger("e5kit.serve")

UNION_FIELDS = {"inputs": "a string or a non-empty list of strings"}


def error_response(status: int, message: str, kind: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(status, message, kind, param, code), status, headers, media_type="application/json")


def _field(loc: list[str]) -> str:
    return loc[0] + "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc[1:])


def validation_message(errors: list[dict[str, Any]], content_type: str | None = None) -> tuple[str, str | None]:
    """One line naming the field (e.g. "input[2]", "inputs.sentences") and what is wrong with it."""
    parts, param, unions = [], None, {}
    for err in errors:
        loc = [str(x) for x in err.get("loc", ())][1:]  # drop "body"
        kind = err.get("type", "")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "json_invalid":
            hint = (f" (the body was sent as {content_type}; this server reads JSON)"
                    if content_type and "json" not in content_type else "")
            parts.append(f"body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')}){hint}")
        elif not loc:
            parts.append(msg if kind == "value_error" else "body must be a JSON object" if kind != "missing"
                         else "body is missing: send a JSON object")
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
            field = _field(loc)
            param = param or loc[0]
            if kind == "extra_forbidden":
                parts.append(f"{field}: unknown field (check its spelling)")
            elif msg.startswith((f"{field}[", f"{field}:")):  # the message already names the item
                parts.append(msg)
            else:
                parts.append(f"{field}: {msg}")
    for root, (path, msg, _) in unions.items():
        detail = f" ({_field(path)}: {msg})" if len(path) > 1 else ""
        parts[parts.index(f"{root}:")] = f"{root}: must be {UNION_FIELDS[root]}{detail}"
    return "; ".join(list(dict.fromkeys(parts))[:5]) or "invalid request", param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        message, param = validation_message(list(exc.errors()), request.scope.get(ORIGINAL_CONTENT_TYPE))
        return error_response(422, message, "invalid_request_error", param, "invalid_value")

    @app.exception_handler(ServeError)
    async def _serve_error(_: Request, exc: ServeError) -> Response:
        return error_response(exc.status, str(exc), exc.kind, exc.param, exc.code, headers=exc.headers)

    @app.exception_handler(InputTooLongError)
    async def _too_long(_: Request, exc: InputTooLongError) -> Response:
        return error_response(413, str(exc), "invalid_request_error", "input", "input_too_long")

    @app.exception_handler(BadInputError)
    async def _bad_input(_: Request, exc: BadInputError) -> Response:
        return error_response(422, str(exc), "invalid_request_error", exc.param, exc.code)

    @app.exception_handler(StillLoadingError)
    async def _loading(_: Request, exc: StillLoadingError) -> Response:
        return error_response(503, str(exc), "server_error", headers={"Retry-After": "5"})

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> Response:
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):  # FastAPI answers 400 "error parsing the body"
            return error_response(422, f"body is not valid UTF-8 (byte {cause.start}: "
                                  f"{cause.object[cause.start:cause.start + 1]!r}); send JSON encoded as UTF-8",
                                  "invalid_request_error", None, "invalid_value")
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return error_response(exc.status_code, str(exc.detail), kind, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; the status shows in metrics and logs

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> Response:
        log.error("internal error", exc_info=exc)
        return error_response(500, "internal server error (details are in the server log)", "server_error")
