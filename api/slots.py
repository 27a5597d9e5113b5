"""How many requests an API process runs at once.

Each API process serves its /v1 requests through ``ESCOMPTE_API_CONCURRENCY`` slots (by
default 1 when PostgreSQL runs on the same machine, 2 when it runs elsewhere). A
request takes a slot before it runs (before its thread, its connection, its first
query) and gives it back when its transaction has ended; the others wait in the event
loop, first come first served, holding nothing.

Why: the work of a request is Python holding the GIL most of the time, so in one
process only one request progresses at a time however many threads run them. With as
many threads as clients (16 per process at 32 clients), the threads hand the GIL to
each other and every request's few milliseconds of work are spread over a hundred:
measured on 2 cores, 2 processes, 32 clients reading an invoice, 650 requests/s with a
p99 of 180 ms at 16 threads a process, 1,320/s with a p99 of 34 ms at 4 slots.

A request that waits on another service (Stripe) lends its slot for that wait
(``escompte.concurrency.waiting_elsewhere``) and then takes one again, waiting at most
``TAKE_BACK_WAIT_S``: it may hold row locks, and the requests in every slot could be
waiting on them; past that wait it goes on without a slot rather than stall them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Gauge, Histogram
from sqlalchemy import URL

from escompte import concurrency

TAKE_BACK_WAIT_S = 0.5
# A request that waited this long for a slot gets a 503 server_busy (Retry-After), as one
# that waited as long for a database connection gets a 503 database_busy: the queue is
# bounded in time, and a client that gave up is not served long after.
QUEUE_TIMEOUT_S = 10.0


class NoSlot(Exception):
    """Every slot of this process stayed busy for QUEUE_TIMEOUT_S."""


# what an operator watches to size ESCOMPTE_API_CONCURRENCY and --workers: requests
# queueing for a slot means the processes are busy, not that they are too few slots
WAITING = Gauge(
    "escompte_api_requests_waiting", "Requests waiting for a slot to run", multiprocess_mode="livesum"
)
SLOT_WAIT = Histogram(
    "escompte_api_slot_wait_seconds",
    "Time a request waited for a slot before it ran",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class HeldSlot:
    """One request's slot: held, lent, held again (or not)."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self.holding = True

    def release(self) -> None:
        if self.holding:
            self.holding = False
            self._slots.release()

    def lend(self) -> None:  # from the request's thread
        self.release()

    def take_back(self) -> None:  # from the request's thread
        self.holding = self._slots.take(TAKE_BACK_WAIT_S)


class _Waiter:
    """A request waiting for a slot: in the event loop (a future) or in its thread (an
    event). ``granted`` is set, under the lock, when a slot is handed to it: the wake-up
    may come later than a timeout, and the slot is its own all the same."""

    __slots__ = ("event", "future", "granted")

    def __init__(self, future: asyncio.Future[None] | None = None) -> None:
        self.future = future
        self.event = threading.Event() if future is None else None
        self.granted = False


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Slots:
    """The slots of one event loop (an API process has one).

    A freed slot goes to a request coming back from a wait elsewhere before any request
    that has not started: the one coming back holds a transaction, perhaps locks others
    wait on, and a connection, and it is nearer its end. Among each kind, first come
    first served. (With one slot and a queue of new requests, a plain FIFO made every
    acceptance coming back from Stripe wait behind the whole queue, holding its locks.)

    The count is kept under a lock, so that a request's thread lends its slot and takes
    one back without a round trip through the event loop when a slot is free (two
    hand-overs between threads per call to Stripe and per durable commit otherwise)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self._lock = threading.Lock()
        self._returning: deque[_Waiter] = deque()
        self._arriving: deque[_Waiter] = deque()
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @property
    def all_free(self) -> bool:
        return self.busy == 0

    def _free_one(self, returning: bool) -> bool:
        """Take a free slot if no one is ahead (under the lock)."""
        ahead = self._returning if returning else (self._returning or self._arriving)
        if self.busy < self.size and not ahead:
            self.busy += 1
            return True
        return False

    async def acquire(self, *, returning: bool, timeout: float) -> bool:
        """Wait for a slot, at most ``timeout`` seconds (False: none came)."""
        queue = self._returning if returning else self._arriving
        with self._lock:
            if self._free_one(returning):
                return True
            waiter = _Waiter(self.loop.create_future())
            queue.append(waiter)
        assert waiter.future is not None
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
            return True
        except TimeoutError:
            with self._lock:
                if waiter.granted:  # handed over as the wait ended
                    return True
                queue.remove(waiter)
            return False
        except asyncio.CancelledError:
            with self._lock:
                handed_over = waiter.granted
                if not handed_over:
                    queue.remove(waiter)
            if handed_over:
                self.release()  # handed over to a request that is gone
            raise

    def take(self, timeout: float) -> bool:
        """From a request's thread, coming back from a wait elsewhere: a slot, waiting at
        most ``timeout`` seconds (False: none came)."""
        with self._lock:
            if self._free_one(True):
                return True
            waiter = _Waiter()
            self._returning.append(waiter)
        assert waiter.event is not None
        if waiter.event.wait(timeout):
            return True
        with self._lock:
            if waiter.granted:
                return True
            self._returning.remove(waiter)
        return False

    def release(self) -> None:
        """Hand the slot to the next waiter, or free it (from any thread)."""
        with self._lock:
            for queue in (self._returning, self._arriving):
                if queue:
                    waiter = queue.popleft()
                    waiter.granted = True  # the slot changes hands: busy stays
                    break
            else:
                self.busy -= 1
                return
        if waiter.event is not None:
            waiter.event.set()
            return
        future = waiter.future
        assert future is not None
        if threading.get_ident() == self._loop_thread:
            _wake(future)
        else:
            self.loop.call_soon_threadsafe(_wake, future)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        started = time.perf_counter()
        WAITING.inc()
        try:
            if not await self.acquire(returning=False, timeout=QUEUE_TIMEOUT_S):
                raise NoSlot(f"no request slot free within {QUEUE_TIMEOUT_S:g} s")
        finally:
            WAITING.dec()
            SLOT_WAIT.observe(time.perf_counter() - started)
        held = HeldSlot(self)
        concurrency.hold(held)
        try:
            yield
        finally:
            held.release()


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def request_slots(configured: int | None, database_url: URL) -> int:
    """``ESCOMPTE_API_CONCURRENCY``, else by where PostgreSQL runs. A request's time is
    Python holding the GIL plus waits on PostgreSQL. With PostgreSQL on this machine its
    work takes the same cores, so one request at a time per process keeps them busy and
    a second only shares the GIL (measured, ADR-016). With PostgreSQL elsewhere, a second
    request runs while the first waits on the network."""
    if configured is not None:
        return configured
    host = database_url.host or database_url.query.get("host") or ""
    if not isinstance(host, str):  # ?host=a&host=b: several servers
        return 2
    return 1 if host == "" or host.startswith("/") or host in LOCAL_HOSTS else 2


def slots_of(app: FastAPI) -> Slots:
    """This process's slots (made on first use, in the loop that serves the app)."""
    slots: Slots | None = getattr(app.state, "slots", None)
    if slots is None or slots.loop is not asyncio.get_running_loop():
        slots = Slots(request_slots(app.state.settings.api_concurrency, app.state.engine.url))
        app.state.slots = slots
    return slots
