"""The route class every router uses: one transaction per request, committed at the
edge; Idempotency-Key on every POST; per-key rate limit; problem responses declared."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from escompte.api import idempotency
from escompte.api.deps import resolve_principal
from escompte.api.problems import problem_responses
from escompte.db.engine import max_connections
from escompte.errors import DomainError, FieldError, PayloadTooLarge, ValidationFailed


def idempotency_key_header(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            pattern=idempotency.KEY_PATTERN,
            description="Makes the POST safe to retry: the same key and body replay the "
            "first response; another body with the same key is refused. Kept at least 24 h.",
        ),
    ] = None,
) -> None:
    return None


class EscompteRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in (kwargs.get("methods") or [])}
        if "POST" in methods:
            deps = list(kwargs.get("dependencies") or [])
            deps.append(Depends(idempotency_key_header))
            kwargs["dependencies"] = deps
        if path.startswith("/v1/"):
            kwargs["responses"] = {
                **problem_responses(400, 401, 422, 429, 500, 503),
                **(kwargs.get("responses") or {}),
            }
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        known_query = _query_names(self.dependant)

        async def handler(request: Request) -> Response:
            unknown = sorted(set(request.query_params) - known_query)
            if unknown:
                # A typo such as ?stauts=paid must not silently return everything.
                raise ValidationFailed(
                    f"Unknown query parameter(s): {', '.join(unknown)[:200]}.",
                    [
                        FieldError(name[:100], "unknown query parameter", code="unknown")
                        for name in unknown[:10]
                    ],
                )
            state = request.app.state
            _check_length(request, state.settings.max_upload_bytes)
            limiter = getattr(state, "rate_limiter", None)
            if limiter is not None and request.url.path.startswith("/v1/"):
                identity = request.headers.get("authorization") or (
                    request.client.host if request.client else "unknown"
                )
                limiter.check(identity)
            _ensure_route_threads(request.app)
            session: Session = state.session_factory()
            request.state.session = session
            try:
                response, record_id = await _run(request, session, original)
            except BaseException:
                await run_in_threadpool(_finish, session, None, None)
                raise
            # One thread hop: record the response to replay, commit (or roll back), close.
            await run_in_threadpool(_finish, session, response, record_id)
            return response

        return handler


ROUTE_THREADS_ABOVE_CONNECTIONS = 8


def _ensure_route_threads(app: FastAPI) -> None:
    """More threads for sync routes than the database connections a worker can hold.

    A request keeps its transaction, and the locks it took (a row locked FOR UPDATE, a
    unique key just inserted), across several thread hops: the route, the response's
    validation, the commit. Requests blocked on those locks each hold a thread and a
    connection. Were there no more threads than connections, they could hold every
    thread, the lock holder could never reach its commit, and the worker would hang.
    With more threads than connections, a thread is always left for a request that
    holds a connection; the others wait for a connection, at most the pool's timeout.
    Set once per event loop (the thread pool belongs to it).
    """
    loop = asyncio.get_running_loop()
    if getattr(app.state, "route_threads_loop", None) is loop:
        return
    limiter = anyio.to_thread.current_default_thread_limiter()
    wanted = max_connections(app.state.settings.db_pool_size) + ROUTE_THREADS_ABOVE_CONNECTIONS
    limiter.total_tokens = max(limiter.total_tokens, wanted)
    app.state.route_threads_loop = loop


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"The request body is {int(declared) // (1024 * 1024)} MiB; the limit is "
            f"{limit // (1024 * 1024)} MiB.",
            [FieldError("body", "too large", code="too_large")],
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _finish(session: Session, response: Response | None, record_id: int | None) -> None:
    """End the request's transaction: commit a success, roll back anything else."""
    try:
        if response is None or response.status_code >= 400 or response.headers.get("Idempotent-Replayed"):
            session.rollback()
            return
        if record_id is not None:
            idempotency.complete(session, record_id, response)
        session.commit()
    finally:
        session.close()


def _claim(
    request: Request, session: Session, key: str, body: bytes, now: datetime, ttl: timedelta
) -> tuple[int | None, Response | None]:
    try:
        principal = resolve_principal(request)
    except DomainError:
        return None, None  # the route's own auth dependency answers 401
    return idempotency.begin(
        session,
        principal,
        key,
        request.method,
        request.url.path,
        body,
        now,
        ttl,
        request.headers.get("content-type", ""),
    )


async def _run(
    request: Request,
    session: Session,
    original: Callable[[Request], Coroutine[Any, Any, Response]],
) -> tuple[Response, int | None]:
    record_id: int | None = None
    key = request.headers.get(idempotency.HEADER)
    if request.method == "POST" and key is not None:
        idempotency.check_key(key)
        body = await request.body()
        settings = request.app.state.settings
        # one thread hop: authenticate, then claim the key (or find the response to replay)
        record_id, replay = await run_in_threadpool(
            _claim,
            request,
            session,
            key,
            body,
            request.app.state.clock.now(),
            timedelta(hours=settings.idempotency_ttl_hours),
        )
        if replay is not None:
            return replay, None
    return await original(request), record_id
