"""The application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import escompte
from escompte.access.key_cache import KeyCache
from escompte.api import errors
from escompte.api.middleware import RequestContextMiddleware
from escompte.api.ratelimit import RateLimiter
from escompte.api.routes import (
    access,
    bank,
    companies,
    debtors,
    eligibility,
    events,
    financing,
    health,
    imports,
    invoices,
    ledger,
    reconciliation,
    webhooks,
)
from escompte.clock import Clock, SystemClock
from escompte.db import make_engine, make_session_factory
from escompte.db.embedded import resolve_database_url
from escompte.logging import configure as configure_logging
from escompte.settings import Settings, get_settings

DESCRIPTION = """
Escompte finances SME invoices one by one: real-time explained eligibility, a price per
day actually used, and a collection workflow running alongside until the advance is repaid.

**Conventions** — `Authorization: Bearer esk_test_…`; errors are RFC 9457
`application/problem+json`; every POST takes an `Idempotency-Key`; lists are cursor-paginated
(`limit`, `starting_after`); money is `{amount: <cents>, currency: "EUR"}`; ids are prefixed
(`cmp_`, `dbt_`, `inv_`, …). A key sees only its own tenant: another tenant's object is a 404.
"""


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    session_factory: sessionmaker[Session] | None = None,
    clock: Clock | None = None,
    configure_logs: bool = True,
) -> FastAPI:
    settings = settings or get_settings()
    if configure_logs:
        configure_logging(settings.log_level, settings.log_format)
    if engine is None:
        url = resolve_database_url(settings.database_url, settings.data_dir)
        engine = make_engine(
            url, pool_size=settings.db_pool_size, lock_timeout_ms=settings.db_lock_timeout_ms
        )
    app = FastAPI(
        lifespan=_lifespan,
        title="Escompte API",
        version=escompte.__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory or make_session_factory(engine)
    app.state.clock = clock or SystemClock()
    app.state.key_cache = (
        KeyCache(_listener_connect(engine), settings.api_key_cache_seconds)
        if settings.api_key_cache_seconds
        else None
    )
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    errors.install(app)
    app.add_middleware(RequestContextMiddleware)
    for module in (
        health,
        companies,
        debtors,
        invoices,
        eligibility,
        financing,
        events,
        ledger,
        imports,
        bank,
        reconciliation,
        access,
        webhooks,
    ):
        app.include_router(module.router)
    return app


def serve_app() -> FastAPI:
    """The app as ``escompte serve`` runs it in each API process: ``create_app()`` whose
    start-up also freezes the heap built so far (ADR-019)."""
    app = create_app()
    app.state.freeze_heap = True
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The key cache listens while the app serves (nothing is cached without lifespan).

    In a served process the objects made by imports and ``create_app`` (modules, models,
    routes, schemas: about 200,000) are moved out of the cyclic garbage collector's
    reach once started: they live as long as the process, and each full collection
    otherwise walked them all, stopping every request in the process for over 100 ms
    under load (ADR-019). They are handed back at shutdown."""
    cache: KeyCache | None = app.state.key_cache
    freeze = getattr(app.state, "freeze_heap", False)
    if cache is not None:
        cache.start()
    if freeze:
        gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()
        if cache is not None:
            cache.stop()


def _listener_connect(engine: Engine) -> Any:
    """A new driver connection to the engine's database, outside its pool."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    params = {**cparams, "connect_timeout": 10, "application_name": "escompte-key-cache"}
    return lambda: engine.dialect.loaded_dbapi.connect(*cargs, **params)
