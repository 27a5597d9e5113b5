"""Work that waits on another service gives back its API request's slot.

An API process runs at most ``ESCOMPTE_API_CONCURRENCY`` requests at once (the others
wait their turn, see ``escompte.api.slots``). A request that calls Stripe waits on the
network, not on this machine: while it waits, its slot serves the next request.
Outside an API request (workers, commands, tests) ``waiting_elsewhere`` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# set by the API for the request being served: gives its slot back, once
_give_back: ContextVar[Callable[[], None] | None] = ContextVar("escompte_give_back_slot", default=None)


def hold_slot(give_back: Callable[[], None]) -> None:
    """The current request holds a slot that ``give_back`` returns (idempotent)."""
    _give_back.set(give_back)


@contextmanager
def waiting_elsewhere() -> Iterator[None]:
    """Around a call that waits on another service: the request's slot is given back
    for good (taking it again could wait behind requests blocked on this one's locks)."""
    give_back = _give_back.get()
    if give_back is not None:
        give_back()
    yield
