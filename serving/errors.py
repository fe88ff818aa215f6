"""Library errors -> HTTP errors, in one place. Bodies are JSON: {"error": <code>, "detail": <message>}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


class ServiceUnavailable(PersonalizeError):
    """No bundle is loaded (yet)."""


def error_body(code: str, detail: str) -> dict:
    return {"error": code, "detail": detail}


def status_of(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ServiceUnavailable):
        return 503, "not_ready"
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


async def _personalize_error(request: Request, exc: PersonalizeError) -> JSONResponse:
    status, code = status_of(exc)
    return JSONResponse(error_body(code, str(exc)), status_code=status)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # no request data in the log line: ids and attributes stay out of logs
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, _route_of(request))
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "?")


def install(app: FastAPI) -> None:
    app.add_exception_handler(PersonalizeError, _personalize_error)
    app.add_exception_handler(Exception, _unhandled)
