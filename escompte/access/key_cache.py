"""The principals of the API keys an API process has authenticated, kept in memory while
PostgreSQL can tell the process that a key changed.

Looking the key up cost a read per request, about a tenth of a light request's time. The
cache holds a principal only while its listener is connected: a connection of its own,
``LISTEN escompte_api_keys``, which a trigger on ``api_keys`` notifies at the commit of
any UPDATE, DELETE or TRUNCATE (migration g9a1k3ycach3). On a notification every entry is
forgotten. While the listener is not connected (not started yet, lost, or refused, as
behind a pooler that does not pass LISTEN through), nothing is cached and every request
reads its key. Entries also expire after ``max_age_s``, in case a connection died without
the process noticing. Unknown and revoked keys are never cached.

A request that read its key before a revocation committed must not store what it read
after the notification has cleared the cache: each read takes the generation before its
SELECT, and ``put`` stores only if no clear happened in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from escompte.access.principal import Principal

CHANNEL = "escompte_api_keys"
MAX_ENTRIES = 10_000
# how long the listener waits for a notification before it checks that it should go on
POLL_S = 0.25
# a round trip on the listener's connection this often: a dead connection is noticed
PING_EVERY_S = 10.0
RETRY_AFTER_S = 1.0

log = structlog.get_logger("escompte.access")


class KeyCache:
    def __init__(self, connect: Callable[[], Any], max_age_s: float) -> None:
        """``connect``: a new psycopg connection to the application's database."""
        self._connect = connect
        self.max_age_s = max_age_s
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._generation = 0
        self._live = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the request's side ----------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._live

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, key_hash: str) -> Principal | None:
        if not self._live:
            return None
        entry = self._entries.get(key_hash)
        if entry is None or time.monotonic() - entry[1] > self.max_age_s:
            return None
        return entry[0]

    def put(self, key_hash: str, principal: Principal, generation: int) -> None:
        """Store what was read under ``generation``, unless the cache was cleared since."""
        with self._lock:
            if not self._live or generation != self._generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (principal, time.monotonic())

    def clear(self) -> None:
        """Forget every key (a key changed)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    # --- the listener ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        # each listener its own event: one stopped and not yet gone never resumes
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, args=(self._stop,), name="escompte-key-cache", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop using the cache at once; the listener closes its connection within POLL_S."""
        self._stop.set()
        self._go_dark()
        self._thread = None

    def wait_live(self, timeout: float) -> bool:
        """For start-up and tests: True once the listener is connected."""
        deadline = time.monotonic() + timeout
        while not self._live and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.01)
        return self._live

    def _go_dark(self) -> None:
        with self._lock:
            self._live = False
            self._generation += 1
            self._entries.clear()

    def _listen(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                with self._connect() as conn:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {CHANNEL}")
                    with self._lock:
                        if not stop.is_set():
                            self._generation += 1  # anything stored before is from the dark
                            self._entries.clear()
                            self._live = True
                    if failures:
                        log.warning("api key cache listening again", after_failures=failures)
                    failures = 0
                    pinged = time.monotonic()
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=POLL_S):
                            self.clear()
                        if time.monotonic() - pinged > PING_EVERY_S:
                            conn.execute("SELECT 1")
                            pinged = time.monotonic()
            except Exception as exc:  # any failure: no cache until listening again
                if stop.is_set():
                    break  # stopped (``stop`` went dark already); a newer listener may be live
                self._go_dark()
                failures += 1
                if failures == 1:
                    log.warning("api key cache off: cannot listen for key changes", error=str(exc)[:300])
                stop.wait(min(RETRY_AFTER_S * failures, 30.0))
