"""How many requests an API process runs at once.

Each API process serves its /v1 requests through ``ESCOMPTE_API_CONCURRENCY`` slots. A
request takes a slot before it runs (before its thread, its connection, its first
query) and gives it back when its transaction has ended; the others wait in the event
loop, first come first served, holding nothing.

Why: the work of a request is Python holding the GIL most of the time, so in one
process only one request progresses at a time however many threads run them. With as
many threads as clients (16 per process at 32 clients), the threads hand the GIL to
each other and every request's few milliseconds of work are spread over a hundred:
measured on 2 cores, 2 processes, 32 clients reading an invoice, 650 requests/s with a
p99 of 180 ms at 16 threads a process, 1,210/s with a p99 of 41 ms at 2.

A request that waits on another service (Stripe) gives its slot back for that wait
(``escompte.concurrency.waiting_elsewhere``), so slow calls out do not hold the
process's requests back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from escompte.concurrency import hold_slot


class Slots:
    """The slots of one event loop (an API process has one)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = asyncio.Semaphore(size)
        self._loop = asyncio.get_running_loop()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._free.acquire()
        given_back = False

        def give_back_here() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self._free.release()

        def give_back() -> None:  # from the request's thread, or the loop
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                give_back_here()
            else:
                self._loop.call_soon_threadsafe(give_back_here)

        hold_slot(give_back)
        try:
            yield
        finally:
            give_back_here()


def slots_of(app: FastAPI) -> Slots:
    """This process's slots (made on first use, in the loop that serves the app)."""
    slots: Slots | None = getattr(app.state, "slots", None)
    loop = asyncio.get_running_loop()
    if slots is None or slots._loop is not loop:
        slots = Slots(app.state.settings.api_concurrency)
        app.state.slots = slots
    return slots
