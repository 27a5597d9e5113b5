"""A worker never hangs when its route threads wait on a lock that an open transaction
holds: there are always more route threads than database connections."""

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
        database_url=db_url, db_pool_size=POOL_SIZE, rate_limit_per_second=10_000, rate_limit_burst=10_000
    )
    # a lock wait ends in an error after 5 s: were the worker to hang, the test fails
    # instead of hanging with it
    engine = make_engine(db_url, pool_size=POOL_SIZE)
    event.listen(engine, "connect", lambda conn, _: conn.execute("SET lock_timeout = '5s'"))
    live = Server(settings, engine, clock, wrap=_one_route_thread).start()
    yield live
    live.stop()
    engine.dispose()


def test_requests_blocked_on_an_uncommitted_insert_do_not_starve_its_commit(
    server: Server, committed_engine: Engine, clock: FrozenClock
) -> None:
    # Eight creations of the same invoice number at once. The first inserts it, leaves
    # its thread and needs another one to validate its response and commit; the others
    # block on its uncommitted unique key, each holding a thread and a connection.
    with make_session_factory(committed_engine)() as s, s.begin():
        company = f.company(s, clock)
        debtor = f.debtor(s, clock, company_id=company.id)
        key = f.key(s, clock, kind=PrincipalKind.COMPANY, company_id=company.id)
        company_id, debtor_id = company.id, debtor.id
    body = {
        "company": company_id,
        "counterparty": debtor_id,
        "kind": "receivable",
        "number": "F-2026-0042",
        "issue_date": "2026-03-01",
        "due_date": "2026-04-30",
        "amount": {"amount": 120_000, "currency": "EUR"},
    }

    def create(i: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            headers = {**f.auth(key), "Idempotency-Key": f"same-number-{i}"}
            return http.post("/v1/invoices", headers=headers, json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(create, range(8)))
    assert codes == [201] + [409] * 7
