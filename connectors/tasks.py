"""Queued work of the connectors: large imports run by a worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from escompte.clock import Clock
from escompte.connectors import service
from escompte.jobs.queue import handler
from escompte.models import DataImport, ImportStatus

RUN_IMPORT = "imports.run"


@handler(RUN_IMPORT)
def run_import(session: Session, clock: Clock, payload: dict[str, Any]) -> None:
    """Idempotent: an import already finished is left alone."""
    import_id = str(payload["import_id"])
    service.mark_running(session.get_bind(), import_id)
    data_import = session.execute(
        select(DataImport).where(DataImport.id == import_id).with_for_update()
    ).scalar_one_or_none()
    if data_import is None or data_import.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
        return
    service.process(session, clock, data_import)
