"""Requests that wait on locks: a worker never hangs when its route threads wait on a
lock that an open transaction holds (a sync route commits in the hop that took the lock,
and there are more threads than database connections for the rest), and a request
gives up with a 503 after the lock timeout."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import Engine, event

from escompte.clock import FrozenClock
from escompte.db import make_engine, make_session_factory
from escompte.models import PrincipalKind
from escompte.settings import Settings
from tests import factories as f
from tests.live import Server

POOL_SIZE = 2  # four connections at most


def _one_route_thread(app: Any) -> Any:
    """The app in an event loop whose thread pool starts with a single thread."""
    started = False

    async def served(scope: Any, receive: Any, send: Any) -> None:
        nonlocal started
        if not started:
            anyio.to_thread.current_default_thread_limiter().total_tokens = 1
            started = True
        await app(scope, receive, send)

    return served


@pytest.fixture
def server(committed_engine: Engine, db_url: str, clock: FrozenClock) -> Iterator[Server]:
    settings = Settings(
        database_url=db_url,
        db_pool_size=POOL_SIZE,
        api_concurrency=8,
        rate_limit_per_second=10_000,
        rate_limit_burst=10_000,
    )
    # a lock wait ends in an error after 5 s: were the worker to hang, the test fails
    # instead of hanging with it
    engine = make_engine(db_url, pool_size=POOL_SIZE)
    event.listen(engine, "connect", lambda conn, _: conn.execute("SET lock_timeout = '5s'"))
    live = Server(settings, engine, clock, wrap=_one_route_thread).start()
    yield live
    live.stop()
    engine.dispose()


def _invoice_body(company_id: str, debtor_id: str) -> dict[str, Any]:
    return {
        "company": company_id,
        "counterparty": debtor_id,
        "kind": "receivable",
        "number": "F-2026-0042",
        "issue_date": "2026-03-01",
        "due_date": "2026-04-30",
        "amount": {"amount": 120_000, "currency": "EUR"},
    }


def test_requests_blocked_on_an_uncommitted_insert_do_not_starve_its_commit(
    server: Server, committed_engine: Engine, clock: FrozenClock
) -> None:
    # Eight creations of the same invoice number at once, as many slots as requests. The
    # first inserts it and must reach its commit while the others block on its
    # uncommitted unique key, each holding a thread and a connection.
    with make_session_factory(committed_engine)() as s, s.begin():
        company = f.company(s, clock)
        debtor = f.debtor(s, clock, company_id=company.id)
        key = f.key(s, clock, kind=PrincipalKind.COMPANY, company_id=company.id)
        company_id, debtor_id = company.id, debtor.id
    body = _invoice_body(company_id, debtor_id)

    def create(i: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            headers = {**f.auth(key), "Idempotency-Key": f"same-number-{i}"}
            return http.post("/v1/invoices", headers=headers, json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(create, range(8)))
    assert codes == [201] + [409] * 7


def test_a_request_waiting_past_the_lock_timeout_gets_a_503_and_changes_nothing(
    committed_engine: Engine, db_url: str, clock: FrozenClock
) -> None:
    settings = Settings(database_url=db_url, db_pool_size=POOL_SIZE, db_lock_timeout_ms=300)
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        company = f.company(s, clock)
        debtor = f.debtor(s, clock, company_id=company.id)
        key = f.key(s, clock, kind=PrincipalKind.COMPANY, company_id=company.id)
        company_id, debtor_id = company.id, debtor.id
    headers = {**f.auth(key), "Idempotency-Key": "waits-too-long"}
    body = _invoice_body(company_id, debtor_id)
    live = Server(settings, None, clock).start()  # the app's own engine, from the settings
    holder = factory()  # another transaction holds the same invoice number, uncommitted
    try:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            f.invoice(holder, clock, company_id=company_id, debtor_id=debtor_id, number=body["number"])
            holder.flush()
            waited = http.post("/v1/invoices", headers=headers, json=body)
            holder.rollback()
            # nothing was kept, not even the idempotency key: the retry goes through
            retried = http.post("/v1/invoices", headers=headers, json=body)
    finally:
        holder.rollback()
        holder.close()
        live.stop()
        live.app.state.engine.dispose()
    assert waited.status_code == 503, waited.text
    assert waited.headers["content-type"] == "application/problem+json"
    assert waited.headers["retry-after"] == "1"
    assert waited.json()["type"] == "urn:escompte:problem:resource_busy"
    assert retried.status_code == 201, retried.text
