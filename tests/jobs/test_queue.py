"""The job queue and the sweeps, with real commits and concurrent workers."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from escompte.clock import Clock, FrozenClock
from escompte.db import make_session_factory
from escompte.jobs import queue
from escompte.jobs.sweeps import SWEEPS, run_sweep
from escompte.models import IdempotencyRecord, Job, JobStatus
from escompte.settings import Settings

RUNS: Counter[str] = Counter()
RUNS_LOCK = threading.Lock()


@queue.handler("test.count")
def _count(session: Session, clock: Clock, payload: dict[str, Any]) -> None:
    session.execute(text("SELECT pg_sleep(0.002)"))
    with RUNS_LOCK:
        RUNS[payload["n"]] += 1


@queue.handler("test.fail")
def _fail(session: Session, clock: Clock, payload: dict[str, Any]) -> None:
    raise RuntimeError("always fails")


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNS.clear()


def test_two_workers_run_each_job_exactly_once(committed_engine: Engine, clock: FrozenClock) -> None:
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        for n in range(200):
            queue.enqueue(s, clock, "test.count", {"n": str(n)})

    def work() -> None:
        while queue.run_due(factory, clock, limit=10):
            pass

    workers = [threading.Thread(target=work) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len(RUNS) == 200
    assert set(RUNS.values()) == {1}
    with factory() as s:
        statuses = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    assert statuses == [(JobStatus.SUCCEEDED, 200)]


def test_failing_job_retries_with_backoff_then_fails(committed_engine: Engine, clock: FrozenClock) -> None:
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        job_id = queue.enqueue(s, clock, "test.fail", max_attempts=3).id
    for _ in range(3):
        assert queue.run_due(factory, clock) == 1
        assert queue.run_due(factory, clock) == 0  # backing off
        clock.advance(timedelta(hours=1))
    assert queue.run_due(factory, clock) == 0
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert job.status is JobStatus.FAILED and job.attempts == 3
        assert "always fails" in (job.last_error or "")


def test_a_crashed_workers_job_is_taken_over_after_its_lease(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        queue.enqueue(s, clock, "test.count", {"n": "lease"})
    with factory() as s, s.begin():
        assert len(queue.claim(s, clock.now(), 10)) == 1  # claimed, then the worker "dies"
    assert queue.run_due(factory, clock) == 0
    clock.advance(queue.LEASE + timedelta(seconds=1))
    assert queue.run_due(factory, clock) == 1
    assert RUNS["lease"] == 1


def test_purge_sweep_keeps_keys_24h(committed_engine: Engine, clock: FrozenClock) -> None:
    factory = make_session_factory(committed_engine)
    settings = Settings(database_url="postgresql+psycopg://x@y/z")
    with factory() as s, s.begin():
        for age_hours in (1, 23, 25, 48):
            s.add(
                IdempotencyRecord(
                    scope="company:x",
                    key=f"k{age_hours}",
                    request_hash="h",
                    method="POST",
                    path="/",
                    response_status=201,
                    response_body=b"{}",
                    response_content_type="application/json",
                    created_at=clock.now() - timedelta(hours=age_hours),
                )
            )
    sweep = next(s for s in SWEEPS if s.name == "purge_idempotency_keys")
    assert run_sweep(sweep, factory, clock, settings) == 2
    with factory() as s:
        assert sorted(s.execute(select(IdempotencyRecord.key)).scalars()) == ["k1", "k23"]


def test_sweep_runs_in_one_process_at_a_time(committed_engine: Engine, clock: FrozenClock) -> None:
    factory = make_session_factory(committed_engine)
    settings = Settings(database_url="postgresql+psycopg://x@y/z")
    sweep = SWEEPS[0]
    import zlib

    with committed_engine.connect() as holder:
        holder.execute(
            text("SELECT pg_advisory_lock(:k)"),
            {"k": zlib.crc32(f"escompte.sweep.{sweep.name}".encode())},
        )
        assert run_sweep(sweep, factory, clock, settings) is None
        holder.rollback()
        holder.execute(text("SELECT pg_advisory_unlock_all()"))
    assert run_sweep(sweep, factory, clock, settings) == 0


def test_job_whose_last_attempt_died_is_failed(committed_engine: Engine, clock: FrozenClock) -> None:
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        job_id = queue.enqueue(s, clock, "test.count", {"n": "last"}, max_attempts=1).id
    with factory() as s, s.begin():
        assert len(queue.claim(s, clock.now(), 10)) == 1  # the only attempt; the worker dies
    clock.advance(queue.LEASE + timedelta(seconds=1))
    assert queue.run_due(factory, clock) == 0
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status is JobStatus.FAILED
        assert "lease expired" in (job.last_error or "")
    assert RUNS["last"] == 0


def test_purge_import_files_keeps_recent_ones(committed_engine: Engine, clock: FrozenClock) -> None:
    import io

    from escompte.connectors import service
    from escompte.jobs.sweeps import purge_import_files
    from escompte.models import ImportFile
    from tests import factories as f

    factory = make_session_factory(committed_engine)
    settings = Settings(database_url="postgresql+psycopg://x@y/z")
    with factory() as s, s.begin():
        company = f.company(s, clock)
        old = service.receive(
            s,
            clock,
            None,
            company_id=company.id,
            filename="old",
            stream=io.BytesIO(b"JournalCode\tJournalLib\told"),
        )
        old.finished_at = clock.now() - timedelta(days=31)
        new = service.receive(
            s,
            clock,
            None,
            company_id=company.id,
            filename="new",
            stream=io.BytesIO(b"JournalCode\tJournalLib\tnew"),
        )
        new.finished_at = clock.now() - timedelta(days=1)
    with factory() as s, s.begin():
        assert purge_import_files(s, clock, settings) == 1
    with factory() as s:
        assert [c.import_id for c in s.execute(select(ImportFile)).scalars()] == [new.id]
