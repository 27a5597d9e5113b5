"""Exception handlers: everything leaves the API as application/problem+json."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg import errors as pg_errors
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from escompte.api.problems import problem_response
from escompte.api.slots import NoSlot
from escompte.errors import DomainError, FieldError, RateLimited

log = structlog.get_logger("escompte.api")

_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Validation failed"),
    429: ("rate_limited", "Too many requests"),
}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts)


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.extra.get("retry_after_seconds", 1))}
    return problem_response(
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        instance=request.url.path,
        request_id=_request_id(request),
        errors=[_field_error(e) for e in exc.errors],
        extra=exc.extra,
        headers=headers,
    )


def _field_error(e: FieldError) -> dict[str, Any]:
    item: dict[str, Any] = {"field": e.field, "message": e.message, "code": e.code}
    if e.line is not None:
        item["line"] = e.line
    if e.path is not None:
        item["path"] = e.path
    return item


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        field = _field(tuple(err.get("loc", ())))
        if err.get("type") == "json_invalid":
            field = "body"
        errors.append({"field": field, "message": _message(err), "code": str(err.get("type"))})
    if errors:
        first = errors[0]
        detail = f"{first['field']}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
    else:
        detail = "The request is invalid."
    return problem_response(
        422,
        "validation_error",
        "Validation failed",
        detail,
        instance=request.url.path,
        request_id=_request_id(request),
        errors=errors,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}."
    if exc.status_code == 405:
        # Starlette reports the methods of the first route matching the path only.
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; use {', '.join(allowed)}."
    return problem_response(
        exc.status_code,
        code,
        title,
        detail,
        instance=request.url.path,
        request_id=_request_id(request),
        headers=headers or None,
    )


def _allowed_methods(request: Request) -> list[str]:
    methods = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.append(method)
    return methods


async def integrity_error(request: Request, exc: Exception) -> Response:
    """A constraint refused the write (e.g. two concurrent creates of the same object)."""
    assert isinstance(exc, IntegrityError)
    orig = exc.orig
    constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
    if isinstance(orig, pg_errors.UniqueViolation):
        return problem_response(
            409,
            "conflict",
            "Conflict",
            "This object already exists (it may have been created by a concurrent request).",
            instance=request.url.path,
            request_id=_request_id(request),
            extra={"constraint": constraint},
        )
    log.warning("integrity_error", constraint=constraint, error=str(orig))
    return problem_response(
        422,
        "constraint_violation",
        "Validation failed",
        "The data breaks a rule of the database" + (f" ({constraint})." if constraint else "."),
        instance=request.url.path,
        request_id=_request_id(request),
        extra={"constraint": constraint},
    )


async def data_error(request: Request, exc: Exception) -> Response:
    log.warning("data_error", error=str(getattr(exc, "orig", exc)))
    return problem_response(
        422,
        "invalid_value",
        "Validation failed",
        "A value cannot be stored as given (out of range or not valid text).",
        instance=request.url.path,
        request_id=_request_id(request),
    )


def _busy(request: Request, code: str, why: str, error: object) -> Response:
    """Nothing was done; the client may retry in a moment (a POST with the same key)."""
    log.warning(code, path=request.url.path, error=str(error))
    return problem_response(
        503,
        code,
        "Service busy",
        f"{why}; nothing was done. Retry in a moment (POSTs with the same Idempotency-Key).",
        instance=request.url.path,
        request_id=_request_id(request),
        headers={"Retry-After": "1"},
    )


async def database_busy(request: Request, exc: Exception) -> Response:
    """Every database connection of this process stayed busy past the pool's timeout (a
    burst larger than the pool)."""
    return _busy(request, "database_busy", "All database connections are busy", exc)


async def server_busy(request: Request, exc: Exception) -> Response:
    """Every request slot of this process stayed busy past the queue's timeout (more
    requests than the processes serve, or slots held by long lock waits)."""
    return _busy(request, "server_busy", "The server stayed busy with other requests", exc)


async def operational_error(request: Request, exc: Exception) -> Response:
    """A lock held elsewhere past ``ESCOMPTE_DB_LOCK_TIMEOUT_MS`` (a long import of the
    same bank account, a transaction left open)."""
    assert isinstance(exc, OperationalError)
    if not isinstance(exc.orig, pg_errors.LockNotAvailable):
        return await unexpected_error(request, exc)
    why = "Another operation is changing the same data and did not finish in time"
    return _busy(request, "resource_busy", why, exc.orig)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled_error", path=request.url.path, exc_info=exc)
    rid = _request_id(request)
    return problem_response(
        500,
        "internal_error",
        "Internal server error",
        f"An unexpected error occurred; it was logged with request id {rid}.",
        instance=request.url.path,
        request_id=rid,
        # this response is sent from outside the request-id middleware
        headers={"x-request-id": rid} if rid else None,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(DataError, data_error)
    app.add_exception_handler(PoolTimeout, database_busy)
    app.add_exception_handler(NoSlot, server_busy)
    app.add_exception_handler(OperationalError, operational_error)
    app.add_exception_handler(Exception, unexpected_error)
