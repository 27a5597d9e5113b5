"""An API process runs at most ESCOMPTE_API_CONCURRENCY requests at once; the others
wait their turn in the event loop, holding no thread and no connection."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine, event, make_url

from escompte import concurrency
from escompte.api import slots as slots_module
from escompte.api.slots import TAKE_BACK_WAIT_S, HeldSlot, Slots
from escompte.clock import FrozenClock
from escompte.concurrency import waiting_elsewhere
from escompte.db import make_engine, make_session_factory
from escompte.models import Invoice, PrincipalKind
from escompte.settings import Settings
from tests import factories as f
from tests.live import Server

CLIENTS = 8


class Connections:
    """How many connections the app's engine had checked out at most at once."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self.out = 0
        self.most = 0
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "checkin", self._checkin)

    def _checkout(self, *_: object) -> None:
        with self._lock:
            self.out += 1
            self.most = max(self.most, self.out)

    def _checkin(self, *_: object) -> None:
        with self._lock:
            self.out -= 1


@pytest.fixture
def invoice_and_key(committed_engine: Engine, clock: FrozenClock) -> tuple[str, str]:
    with make_session_factory(committed_engine)() as s, s.begin():
        company = f.company(s, clock)
        debtor = f.debtor(s, clock, company_id=company.id)
        invoice = f.invoice(s, clock, company_id=company.id, debtor_id=debtor.id)
        key = f.key(s, clock, kind=PrincipalKind.COMPANY, company_id=company.id)
        return invoice.id, key


@pytest.fixture
def serve(db_url: str, clock: FrozenClock) -> Iterator[Callable[[int], tuple[Server, Connections]]]:
    started: list[tuple[Server, Engine]] = []

    def start(concurrency: int) -> tuple[Server, Connections]:
        settings = Settings(
            database_url=db_url,
            api_concurrency=concurrency,
            db_pool_size=CLIENTS,
            rate_limit_per_second=10_000,
            rate_limit_burst=10_000,
        )
        engine = make_engine(db_url, pool_size=CLIENTS)
        connections = Connections(engine)
        server = Server(settings, engine, clock).start()
        started.append((server, engine))
        return server, connections

    yield start
    for server, engine in started:
        server.stop()
        engine.dispose()


def _load(server: Server, invoice_id: str, key: str) -> list[int]:
    def client(_: int) -> list[int]:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            return [
                http.get(f"/v1/invoices/{invoice_id}", headers=f.auth(key)).status_code for _ in range(25)
            ]

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [code for codes in pool.map(client, range(CLIENTS)) for code in codes]


Serve = Callable[[int], tuple[Server, "Connections"]]


def test_no_more_requests_run_at_once_than_the_slots(serve: Serve, invoice_and_key: tuple[str, str]) -> None:
    invoice_id, key = invoice_and_key
    server, connections = serve(2)
    assert set(_load(server, invoice_id, key)) == {200}
    assert 1 <= connections.most <= 2


def test_with_more_slots_requests_do_run_at_once(serve: Serve, invoice_and_key: tuple[str, str]) -> None:
    # the counter above can see requests overlap: without the limit they do
    invoice_id, key = invoice_and_key
    server, connections = serve(CLIENTS)
    assert set(_load(server, invoice_id, key)) == {200}
    assert connections.most > 2


def test_a_lent_slot_is_taken_back_when_it_frees_and_not_waited_for_long() -> None:
    """The slots alone, one slot: a request lends it for a call out and another request
    runs meanwhile. The first takes the slot back once it is free, or goes on without it
    after a bounded wait (it may hold locks the other waits on); no slot is lost."""

    async def scenario(other_holds_s: float) -> tuple[bool, float, bool]:
        slots = Slots(1)
        loop = asyncio.get_running_loop()
        other_running = asyncio.Event()

        async def other() -> None:
            async with slots.slot():
                other_running.set()
                await asyncio.sleep(other_holds_s)

        async def calling_out() -> tuple[bool, float]:
            async with slots.slot():
                held = concurrency._slot.get()
                assert isinstance(held, HeldSlot)

                def call_out() -> float:
                    with waiting_elsewhere():  # the slot is lent: `other` gets it
                        asyncio.run_coroutine_threadsafe(other_running.wait(), loop).result(5)
                        started = time.monotonic()
                    return time.monotonic() - started  # how long taking it back took

                waited = await asyncio.to_thread(call_out)
                return held.holding, waited

        (holding, waited), _ = await asyncio.gather(calling_out(), other())
        return holding, waited, slots.all_free

    holding, waited, all_free = asyncio.run(scenario(0.05))
    assert holding and 0.03 <= waited < TAKE_BACK_WAIT_S and all_free
    holding, waited, all_free = asyncio.run(scenario(TAKE_BACK_WAIT_S + 0.5))
    assert not holding and TAKE_BACK_WAIT_S - 0.05 <= waited < TAKE_BACK_WAIT_S + 0.4 and all_free


def test_a_request_that_waits_too_long_for_a_slot_gets_a_503_and_nothing_is_done(
    serve: Serve,
    invoice_and_key: tuple[str, str],
    committed_engine: Engine,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The only slot is held by a creation waiting on another transaction's uncommitted
    # invoice number; a read that arrives meanwhile waits its 0.3 s and is refused.
    monkeypatch.setattr(slots_module, "QUEUE_TIMEOUT_S", 0.3)
    invoice_id, key = invoice_and_key
    server, _ = serve(1)
    factory = make_session_factory(committed_engine)
    with factory() as s:
        held = s.get(Invoice, invoice_id)
        assert held is not None
        company_id, debtor_id = held.company_id, held.debtor_id
    holder = factory()
    body = {
        "company": company_id,
        "counterparty": debtor_id,
        "kind": "receivable",
        "number": "F-2026-SLOT",
        "issue_date": "2026-03-01",
        "due_date": "2026-04-30",
        "amount": {"amount": 120_000, "currency": "EUR"},
    }
    try:
        f.invoice(holder, clock, company_id=company_id, debtor_id=debtor_id, number=body["number"])
        holder.flush()
        with httpx.Client(base_url=server.url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
            blocked = pool.submit(
                http.post, "/v1/invoices", headers={**f.auth(key), "Idempotency-Key": "slot-1"}, json=body
            )
            time.sleep(0.2)  # the creation holds the slot, waiting on the lock
            with httpx.Client(base_url=server.url, timeout=5) as other:  # fails, not hangs, if unbounded
                refused = other.get(f"/v1/invoices/{invoice_id}", headers=f.auth(key))
            holder.rollback()  # the creation goes through
            assert blocked.result().status_code == 201
    finally:
        holder.rollback()
        holder.close()
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"] == "urn:escompte:problem:server_busy"


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("postgresql+psycopg://u@/db?host=/var/run/postgresql", None, 1),  # a socket: this machine
        ("postgresql+psycopg://u@127.0.0.1:5432/db", None, 1),
        ("postgresql+psycopg://u@localhost/db", None, 1),
        ("postgresql+psycopg://u@db.internal:5432/db", None, 2),
        ("postgresql+psycopg://u@/db?host=db.internal", None, 2),
        ("postgresql+psycopg://u@db.internal/db", 6, 6),  # ESCOMPTE_API_CONCURRENCY wins
    ],
)
def test_slots_by_where_postgresql_runs(url: str, configured: int | None, expected: int) -> None:
    assert slots_module.request_slots(configured, make_url(url)) == expected


def test_a_request_coming_back_from_elsewhere_gets_the_next_slot_before_new_ones() -> None:
    """It holds a transaction and maybe locks: it goes before requests not started yet."""

    async def scenario() -> list[str]:
        slots = Slots(1)
        order: list[str] = []
        assert await slots.acquire(returning=False, timeout=1)  # a request runs

        async def take(name: str, returning: bool) -> None:
            assert await slots.acquire(returning=returning, timeout=1)
            order.append(name)
            await asyncio.sleep(0.01)
            slots.release()

        new = [asyncio.create_task(take(f"new {i}", False)) for i in range(3)]
        await asyncio.sleep(0.01)
        back = asyncio.create_task(take("back from Stripe", True))
        await asyncio.sleep(0.01)
        slots.release()
        await asyncio.gather(*new, back)
        assert slots.all_free
        return order

    assert asyncio.run(scenario()) == ["back from Stripe", "new 0", "new 1", "new 2"]


def test_a_request_that_gave_up_waiting_does_not_keep_a_free_slot_from_others() -> None:
    async def scenario() -> bool:
        slots = Slots(1)
        assert await slots.acquire(returning=False, timeout=1)
        assert not await slots.acquire(returning=False, timeout=0.01)  # gave up
        waiter = asyncio.create_task(slots.acquire(returning=False, timeout=1))
        await asyncio.sleep(0)
        waiter.cancel()  # the client went away
        await asyncio.gather(waiter, return_exceptions=True)
        slots.release()
        assert slots.all_free
        return await slots.acquire(returning=False, timeout=0.01)

    assert asyncio.run(scenario())


def test_slots_lent_and_taken_back_from_threads_are_never_lost_or_doubled() -> None:
    """Threads lend and take back (the lock, no loop round trip when a slot is free)
    while requests queue in the loop: at no time do more requests hold a slot than
    there are slots, and every slot is free at the end."""

    async def scenario() -> tuple[int, bool, int]:
        slots = Slots(2)
        holders = 0
        most = 0
        guard = threading.Lock()
        served = 0

        def enter() -> None:
            nonlocal holders, most
            with guard:
                holders += 1
                most = max(most, holders)

        def leave() -> None:
            nonlocal holders
            with guard:
                holders -= 1

        def in_thread(held: HeldSlot) -> None:
            for _ in range(5):
                leave()
                held.lend()
                time.sleep(0.0005)  # waiting on another service
                held.take_back()
                if held.holding:
                    enter()
                else:  # went on without a slot; next time it has nothing to lend
                    return

        async def request() -> None:
            nonlocal served
            async with slots.slot():
                held = concurrency._slot.get()
                assert isinstance(held, HeldSlot)
                enter()
                await asyncio.to_thread(in_thread, held)
                if held.holding:
                    leave()
                served += 1

        await asyncio.gather(*(request() for _ in range(12)))
        return most, slots.all_free, served

    most, all_free, served = asyncio.run(scenario())
    assert most <= 2 and all_free and served == 12
