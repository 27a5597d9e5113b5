"""``escompte worker``: polls the job queue and triggers the sweeps (APScheduler).

Run as many as you like, on as many machines: jobs are claimed with SKIP LOCKED and
sweeps take an advisory lock.
"""

from __future__ import annotations

import importlib
import logging
import threading

import structlog
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.orm import Session, sessionmaker

from escompte.clock import Clock
from escompte.jobs import queue
from escompte.jobs.sweeps import SWEEPS, run_sweep
from escompte.settings import Settings

log = structlog.get_logger("escompte.worker")


def drain(factory: sessionmaker[Session], clock: Clock, stop: threading.Event) -> None:
    """Run due jobs until none is left (or asked to stop)."""
    while not stop.is_set() and queue.run_due(factory, clock) > 0:
        pass


def _quiet_scheduler_logs() -> None:
    # APScheduler logs every run at INFO ("Running job …"): once a second is noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


# Modules whose @handler job kinds a worker runs.
TASK_MODULES = ("escompte.connectors.tasks",)


def load_task_modules() -> None:
    for name in TASK_MODULES:
        importlib.import_module(name)


def run_worker(
    factory: sessionmaker[Session], clock: Clock, settings: Settings, poll_seconds: float = 1.0
) -> None:
    _quiet_scheduler_logs()
    load_task_modules()
    stop = threading.Event()
    scheduler = BlockingScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    scheduler.add_job(
        drain, "interval", seconds=poll_seconds, args=[factory, clock, stop], id="queue", name="job queue"
    )
    for sweep in SWEEPS:
        scheduler.add_job(
            run_sweep,
            "interval",
            seconds=sweep.every.total_seconds(),
            args=[sweep, factory, clock, settings],
            id=sweep.name,
            name=sweep.name,
            next_run_time=clock.now(),  # once at start, then every interval
        )
    log.info("worker_started", sweeps=[s.name for s in SWEEPS])
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop.set()
        log.info("worker_stopped")
