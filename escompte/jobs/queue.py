"""A job queue in PostgreSQL: any number of workers claim due jobs with
``FOR UPDATE SKIP LOCKED``; a lease lets another worker take over a crashed one's job.

Handlers are registered by kind (``@handler("kind")``), take (session, clock, payload),
must be idempotent (a job may run again after a crash) and only flush: the runner commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from escompte.clock import Clock
from escompte.errors import invariant
from escompte.ids import new_id
from escompte.models import Job, JobStatus

log = structlog.get_logger("escompte.jobs")

Handler = Callable[[Session, Clock, dict[str, Any]], None]
_HANDLERS: dict[str, Handler] = {}

MAX_BATCH = 100
LEASE = timedelta(minutes=5)
MAX_ERROR_CHARS = 2000


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        invariant(kind not in _HANDLERS or _HANDLERS[kind] is fn, f"job kind {kind} registered twice")
        _HANDLERS[kind] = fn
        return fn

    return register


def enqueue(
    session: Session,
    clock: Clock,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    max_attempts: int = 5,
) -> Job:
    invariant(kind in _HANDLERS, f"no handler for job kind {kind}")
    now = clock.now()
    job = Job(
        id=new_id("job"),
        kind=kind,
        payload=payload or {},
        status=JobStatus.QUEUED,
        run_at=run_at or now,
        attempts=0,
        max_attempts=max_attempts,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job


@dataclass(frozen=True)
class Claimed:
    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def claim(session: Session, now: datetime, limit: int) -> list[Claimed]:
    # A worker that died during a job's last attempt left it running: fail it for good.
    session.execute(
        update(Job)
        .where(
            Job.status == JobStatus.RUNNING,
            Job.locked_until < now,
            Job.attempts >= Job.max_attempts,
        )
        .values(
            status=JobStatus.FAILED,
            finished_at=now,
            locked_until=None,
            last_error="lease expired during the last attempt (the worker stopped?)",
        )
    )
    due = (
        select(Job.id)
        .where(
            Job.attempts < Job.max_attempts,
            or_(
                and_(Job.status == JobStatus.QUEUED, Job.run_at <= now),
                and_(Job.status == JobStatus.RUNNING, Job.locked_until < now),
            ),
        )
        .order_by(Job.run_at)
        .limit(min(limit, MAX_BATCH))
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(due.scalar_subquery()))
        .values(status=JobStatus.RUNNING, attempts=Job.attempts + 1, locked_until=now + LEASE)
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts)
    ).all()
    return [Claimed(r.id, r.kind, r.payload, r.attempts, r.max_attempts) for r in rows]


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 5 * 2 ** (attempts - 1)))


def run_due(factory: sessionmaker[Session], clock: Clock, limit: int = 20) -> int:
    """Claim up to ``limit`` due jobs and run each in its own transaction."""
    with factory() as session, session.begin():
        claimed = claim(session, clock.now(), limit)
    for job in claimed:
        fn = _HANDLERS.get(job.kind)
        try:
            if fn is None:
                raise LookupError(f"no handler for job kind {job.kind}")
            with factory() as session, session.begin():
                fn(session, clock, job.payload)
                session.execute(
                    update(Job)
                    .where(Job.id == job.id)
                    .values(
                        status=JobStatus.SUCCEEDED,
                        finished_at=clock.now(),
                        locked_until=None,
                        last_error=None,
                    )
                )
        except Exception as exc:
            final = job.attempts >= job.max_attempts
            log.warning(
                "job_failed",
                job_id=job.id,
                kind=job.kind,
                attempts=job.attempts,
                final=final,
                error=repr(exc),
            )
            with factory() as session, session.begin():
                session.execute(
                    update(Job)
                    .where(Job.id == job.id)
                    .values(
                        status=JobStatus.FAILED if final else JobStatus.QUEUED,
                        run_at=clock.now() + _backoff(job.attempts),
                        locked_until=None,
                        last_error=repr(exc)[:MAX_ERROR_CHARS],
                        finished_at=clock.now() if final else None,
                    )
                )
    return len(claimed)
