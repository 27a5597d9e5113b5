"""Work that waits on another service lends its API request's slot meanwhile.

An API process runs at most ``ESCOMPTE_API_CONCURRENCY`` requests at once (the others
wait their turn, see ``escompte.api.slots``). A request that calls Stripe waits on the
network, not on this machine: while it waits, its slot serves the next request, and it
takes a slot again to go on. Outside an API request (workers, commands, tests)
``waiting_elsewhere`` does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session


class Slot(Protocol):
    def lend(self) -> None:
        """Let another request run in this slot (from the request's thread)."""

    def take_back(self) -> None:
        """Take a slot again, waiting for one a bounded time (from the request's thread)."""


# set by the API for the request being served
_slot: ContextVar[Slot | None] = ContextVar("escompte_request_slot", default=None)


def hold(slot: Slot) -> None:
    """The current request runs in ``slot``."""
    _slot.set(slot)


@contextmanager
def waiting_elsewhere() -> Iterator[None]:
    """Around a call that waits on another service."""
    slot = _slot.get()
    if slot is None:
        yield
        return
    slot.lend()
    try:
        yield
    finally:
        slot.take_back()


# In a session's ``info``, what its commit will wait on. WROTE: the unit of work wrote
# rows, so the commit waits for the disk, which is waiting elsewhere too (the API lends
# the request's slot for it). ASYNC_COMMIT: it need not wait (``synchronous_commit``
# off, as for eligibility decisions).
WROTE = "escompte_wrote"
ASYNC_COMMIT = "escompte_async_commit"


@event.listens_for(Session, "after_flush")
def _note_writes(session: Session, _context: object) -> None:
    if session.new or session.dirty or session.deleted:
        session.info[WROTE] = True
