"""The application factory."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import escompte
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
