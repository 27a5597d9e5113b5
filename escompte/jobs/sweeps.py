"""Periodic sweeps. APScheduler only triggers them; each runs under a PostgreSQL
advisory lock so that, with any number of workers, one runs at a time, and each does
bounded, idempotent work."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from escompte.api import idempotency
from escompte.clock import Clock
from escompte.financing import tasks as financing_tasks
from escompte.settings import Settings


@dataclass(frozen=True)
class Sweep:
    name: str
    every: timedelta
    run: Callable[[Session, Clock, Settings], int]


PURGE_BATCH = 10_000
PURGE_MAX_PER_RUN = 500_000


def purge_idempotency_keys(session: Session, clock: Clock, settings: Settings) -> int:
    ttl = timedelta(hours=settings.idempotency_ttl_hours)
    total = 0
    while total < PURGE_MAX_PER_RUN:
        deleted = idempotency.purge_expired(session, clock.now(), ttl, batch=PURGE_BATCH)
        total += deleted
        if deleted < PURGE_BATCH:
            break
    return total


IMPORT_FILE_RETENTION = timedelta(days=30)


def purge_import_files(session: Session, clock: Clock, settings: Settings) -> int:
    """Drop the stored bytes of imports finished more than 30 days ago (the import record,
    its counts and errors stay). Bounded: 2,000 chunks (2 GiB at most) per run."""
    result = session.execute(
        text(
            """
            DELETE FROM import_file_chunks c
            WHERE (c.import_id, c.seq) IN (
                SELECT c2.import_id, c2.seq
                FROM import_file_chunks c2 JOIN imports i ON i.id = c2.import_id
                WHERE i.finished_at < :before
                LIMIT 2000)
            """
        ),
        {"before": clock.now() - IMPORT_FILE_RETENTION},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


SWEEPS: list[Sweep] = [
    Sweep("purge_idempotency_keys", timedelta(minutes=10), purge_idempotency_keys),
    Sweep("purge_import_files", timedelta(hours=1), purge_import_files),
    Sweep("financing_due", timedelta(minutes=5), financing_tasks.due),
    Sweep("financing_notices", timedelta(minutes=30), financing_tasks.notices),
    Sweep("financing_recover", timedelta(minutes=1), financing_tasks.recover),
]


def run_sweep(sweep: Sweep, factory: sessionmaker[Session], clock: Clock, settings: Settings) -> int | None:
    """Run ``sweep`` unless another process is running it; returns rows touched or None."""
    lock_key = zlib.crc32(f"escompte.sweep.{sweep.name}".encode())
    with factory() as session, session.begin():
        got = session.execute(select(func.pg_try_advisory_xact_lock(lock_key))).scalar()
        if not got:
            return None
        return sweep.run(session, clock, settings)
