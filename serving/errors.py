"""Every error the service returns, in one shape and one place: ``{"error": code, "detail": text, "field": where}``.

* library errors (:class:`~personalize.errors.PersonalizeError` and its kinds) map to 4xx/503 by type;
* validation errors (422) name the field (``query.k``, ``body.events[3].timestamp``) and never echo
  the input (it may hold personal data, NaN or text that cannot be encoded);
* HTTP errors (401, 403, 404 for unknown routes, 405, 413) keep their status;
* anything unexpected is a 500 whose log line names only the exception type and the route template,
  never the request: :class:`CatchAllMiddleware` answers it and does not re-raise, so no server
  traceback (which would print the request's values) reaches the log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from personalize.errors import (BundleError, DataError, MissingComponentError, NotFittedError, PersonalizeError,
                                UnknownIdError)

log = logging.getLogger("personalize.serving")

# most specific first
_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (UnknownIdError, 404, "not_found"),
    (MissingComponentError, 409, "not_in_bundle"),   # e.g. churn risk asked of a bundle published without churn
    (BundleError, 503, "bundle_unavailable"),
    (NotFittedError, 503, "model_not_ready"),
    (DataError, 422, "invalid_data"),
    (PersonalizeError, 400, "bad_request"),
)
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "request_too_large", 422: "invalid_request",
               429: "too_many_requests", 503: "not_ready"}


class ServiceUnavailable(PersonalizeError):
    """No bundle is loaded (yet)."""


def error_body(code: str, detail: str, field: str | None = None) -> dict:
    return {"error": code, "detail": detail, "field": field}


def error_response(status: int, code: str, detail: str, field: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, detail, field), status_code=status, headers=headers)


def status_of(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ServiceUnavailable):
        return 503, "not_ready"
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def _loc(loc: Any) -> str | None:
    """("body", "events", 3, "timestamp") -> "body.events[3].timestamp"."""
    if not loc:
        return None
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def _safe(text: Any) -> str:
    """Text that always encodes (lone surrogates replaced): an error message must never fail to send."""
    return str(text).encode("utf-8", "replace").decode("utf-8")


async def _personalize_error(request: Request, exc: PersonalizeError) -> JSONResponse:
    status, code = status_of(exc)
    field = getattr(exc, "column", None) if isinstance(exc, DataError) else None
    return error_response(status, code, _safe(exc), field)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    fields = [f for f in (_loc(e.get("loc")) for e in errors) if f]
    detail = "; ".join(f"{_loc(e.get('loc')) or 'request'}: {_safe(e.get('msg', 'invalid'))}" for e in errors[:5])
    if len(errors) > 5:
        detail += f" (and {len(errors) - 5} more)"
    return error_response(422, "invalid_request", detail or "invalid request", _loc(first.get("loc")) or
                          (fields[0] if fields else None))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail, field = exc.detail, None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # serving.deps.limit
        field = _loc(detail[0].get("loc"))
        detail = "; ".join(_safe(d.get("msg", "")) for d in detail)
    return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), _safe(detail), field,
                          headers=getattr(exc, "headers", None))


def _route_of(scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", "unmatched")


class CatchAllMiddleware:
    """Innermost-but-one ASGI middleware: an unexpected exception becomes a JSON 500 and one log line
    (exception type and route template only); it is not re-raised, so nothing prints the request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = [False]

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the one place that turns the unexpected into a 500
            log.error("unhandled %s on %s %s", type(exc).__name__, scope.get("method"), _route_of(scope))
            if started[0]:  # a streamed response already began: the connection is closed by the server
                return
            body = json.dumps(error_body("internal_error", "internal server error")).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def install(app: FastAPI) -> None:
    app.add_exception_handler(PersonalizeError, _personalize_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
