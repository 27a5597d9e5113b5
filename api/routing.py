"""The route class every router uses: one transaction per request, committed at the
edge; Idempotency-Key on every POST; per-key rate limit; problem responses declared."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from datetime import timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Header, Request
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from escompte.access.keys import KEYS_CHANGED
from escompte.api import idempotency
from escompte.api.deps import resolve_deferred, resolve_principal
from escompte.api.problems import problem_responses
from escompte.api.slots import slots_of
from escompte.concurrency import ASYNC_COMMIT, WROTE, waiting_elsewhere
from escompte.db.engine import max_connections
from escompte.errors import DomainError, FieldError, PayloadTooLarge, ValidationFailed


async def idempotency_key_header(  # async: a sync dependency costs a thread hop
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


# The request being served, for the endpoint wrapper that runs a sync route in one hop.
_REQUEST: ContextVar[Request] = ContextVar("escompte_request")


class EscompteRoute(APIRoute):
    """A sync route runs in one thread hop: authentication, the Idempotency-Key claim,
    the endpoint, the response's validation and serialisation, the idempotency record
    and the commit. Each hop hands the request to another thread and back, which cost
    a third of a worker's time on a one-SELECT read when it made four (principal,
    endpoint, response validation, commit). Async routes keep FastAPI's own path and
    end their transaction in one more hop."""

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
        self.in_one_hop = not inspect.iscoroutinefunction(endpoint)
        if self.in_one_hop:
            endpoint = self._one_hop(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def _one_hop(self, endpoint: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Response]]:
        """The sync endpoint behind an async one of the same signature (FastAPI reads the
        parameters through ``__wrapped__``), so that FastAPI neither runs it nor validates
        its result in threads of its own."""

        @functools.wraps(endpoint)
        async def in_one_hop(**values: Any) -> Response:
            request = _REQUEST.get()
            return await run_in_threadpool(self._serve, request, endpoint, values)

        return in_one_hop

    def _serve(self, request: Request, endpoint: Callable[..., Any], values: dict[str, Any]) -> Response:
        """In the request's thread: everything from authentication to the commit."""
        session: Session = request.state.session
        record_id: int | None = None
        try:
            resolve_deferred(request, values)
            key = request.headers.get(idempotency.HEADER)
            replay = None
            if request.method == "POST" and key is not None:
                record_id, replay = _claim(request, session, key, request.state.idempotency_body)
            response = replay if replay is not None else self._render(endpoint(**values))
        except BaseException:
            _end(request, None, None)
            raise
        _end(request, response, record_id)
        return response

    def _render(self, content: Any) -> Response:
        """The endpoint's result as FastAPI would send it (validated against the response
        model, serialised by pydantic), built here so that it can be recorded for
        idempotent replay and committed in the same hop."""
        if isinstance(content, Response):
            return content
        status = self.status_code or 200
        field = self.response_field
        if field is None or not isinstance(self.response_class, DefaultPlaceholder):
            return JSONResponse(jsonable_encoder(content), status_code=status)
        value, errors = field.validate(content, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors=errors, body=content)
        body = field.serialize_json(
            value,
            include=self.response_model_include,
            exclude=self.response_model_exclude,
            by_alias=self.response_model_by_alias,
            exclude_unset=self.response_model_exclude_unset,
            exclude_defaults=self.response_model_exclude_defaults,
            exclude_none=self.response_model_exclude_none,
        )
        return Response(body, status_code=status, media_type="application/json")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        known_query = _query_names(self.dependant)
        in_one_hop = self.in_one_hop

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
            if request.method == "POST" and (key := request.headers.get(idempotency.HEADER)) is not None:
                idempotency.check_key(key)
                # read before the request takes a slot: waiting on the client is no work here
                request.state.idempotency_body = await request.body()
            if not request.url.path.startswith("/v1/"):
                return await serve(request)
            async with slots_of(request.app).slot():
                return await serve(request)

        async def serve(request: Request) -> Response:
            session: Session = request.app.state.session_factory()
            request.state.session = session
            request.state.ended = False
            token = _REQUEST.set(request)
            try:
                if in_one_hop:
                    # the principal is resolved in the endpoint's hop (see _serve)
                    request.state.defer_principal = True
                    response, record_id = await original(request), None
                else:
                    response, record_id = await _run(request, session, original)
            except BaseException:
                await _end_off_thread(request, None, None)
                raise
            finally:
                _REQUEST.reset(token)
            await _end_off_thread(request, response, record_id)
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


def _end(request: Request, response: Response | None, record_id: int | None) -> None:
    """End the request's transaction, once: commit a success (with the response to
    replay for its Idempotency-Key), roll back anything else, close the session."""
    if request.state.ended:
        return
    request.state.ended = True
    session: Session = request.state.session
    try:
        if response is None or response.status_code >= 400 or response.headers.get("Idempotent-Replayed"):
            session.rollback()
            return
        if record_id is not None:
            idempotency.complete(session, record_id, response)
        if session.info.get(WROTE) and not session.info.get(ASYNC_COMMIT):
            with waiting_elsewhere():  # the commit of a write waits on the disk
                session.commit()
        else:
            session.commit()
        if session.info.get(KEYS_CHANGED):
            # this process at once; the others when the commit's notification reaches them
            cache = getattr(request.app.state, "key_cache", None)
            if cache is not None:
                cache.clear()
    finally:
        session.close()


async def _end_off_thread(request: Request, response: Response | None, record_id: int | None) -> None:
    """_end from the event loop: in a thread if the session holds a connection."""
    if request.state.ended:
        return
    if not request.state.session.in_transaction():  # nothing to commit or roll back
        _end(request, response, record_id)
        return
    await run_in_threadpool(_end, request, response, record_id)


def _claim(request: Request, session: Session, key: str, body: bytes) -> tuple[int | None, Response | None]:
    """Claim the Idempotency-Key (or find the response to replay), as the caller."""
    try:
        principal = resolve_principal(request)
    except DomainError:
        return None, None  # the route's own auth dependency answers 401
    settings = request.app.state.settings
    return idempotency.begin(
        session,
        principal,
        key,
        request.method,
        request.url.path,
        body,
        request.app.state.clock.now(),
        timedelta(hours=settings.idempotency_ttl_hours),
        request.headers.get("content-type", ""),
    )


async def _run(
    request: Request,
    session: Session,
    original: Callable[[Request], Coroutine[Any, Any, Response]],
) -> tuple[Response, int | None]:
    """An async route: FastAPI's own path, the key claimed first in a hop of its own."""
    record_id: int | None = None
    key = request.headers.get(idempotency.HEADER)
    if request.method == "POST" and key is not None:
        # one thread hop: authenticate, then claim the key (or find the response to replay)
        record_id, replay = await run_in_threadpool(
            _claim, request, session, key, request.state.idempotency_body
        )
        if replay is not None:
            return replay, None
    return await original(request), record_id
