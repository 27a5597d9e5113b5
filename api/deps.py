"""Dependencies shared by the routes: session, clock, principal, pagination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from escompte.access.keys import authenticate, check_secret
from escompte.access.principal import Principal
from escompte.clock import Clock
from escompte.ids import ID_PATTERN

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="esk_live_… / esk_test_…",
    description="An Escompte API key: `Authorization: Bearer esk_test_…`.",
)


async def get_session(request: Request) -> Session:  # async: no thread hop
    session: Session = request.state.session
    return session


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _bearer_secret(request: Request) -> str | None:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else None


def resolve_principal(request: Request) -> Principal:
    """Authenticate once per request (the idempotency layer may have done it already)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal = authenticate(
        request.state.session, _bearer_secret(request), getattr(request.app.state, "key_cache", None)
    )
    request.state.principal = principal
    return principal


class _Deferred:
    """Stands for the caller's principal until the route's thread resolves it."""

    def __repr__(self) -> str:
        return "<principal resolved in the route's thread>"


DEFERRED = _Deferred()


async def get_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Async, so that it costs no thread hop of its own: a sync route authenticates in
    the hop that runs it (``resolve_deferred``); an async one in a hop here."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if getattr(request.state, "defer_principal", False):
        # What cannot be a key is refused here, before the body is validated: a missing
        # or malformed key gets its 401 first. A well-formed one is looked up in the hop.
        check_secret(_bearer_secret(request))
        return cast(Principal, DEFERRED)
    return await run_in_threadpool(resolve_principal, request)


def resolve_deferred(request: Request, values: dict[str, object]) -> None:
    """In the route's thread: the principal in place of its stand-in (401 if the key is bad)."""
    for name, value in values.items():
        if value is DEFERRED:
            values[name] = resolve_principal(request)


@dataclass(frozen=True)
class Page:
    limit: int
    starting_after: str | None


async def get_page(
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 20,
    starting_after: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="Id of the last object of the previous page."),
    ] = None,
) -> Page:
    return Page(limit=limit, starting_after=starting_after)


SessionDep = Annotated[Session, Depends(get_session)]
ClockDep = Annotated[Clock, Depends(get_clock)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PageDep = Annotated[Page, Depends(get_page)]
