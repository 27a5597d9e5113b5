from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from escompte.models import DataImport, ImportKind, ImportStatus
from escompte.schemas import Resource


class ImportIssueOut(BaseModel):
    line: int | None = Field(description="1-based line of the file, for text formats.")
    path: str | None = Field(description="XML path or JSON pointer, for structured formats.")
    field: str | None
    message: str


class ImportCounts(BaseModel):
    created: int
    updated: int
    unchanged: int
    by_type: dict[str, int] = Field(description='e.g. {"invoices": 12, "book_lines": 4211}')


class ImportProgress(BaseModel):
    done: int
    total: int


class ImportOut(Resource):
    object: Literal["import"] = "import"
    company: str | None
    kind: ImportKind
    status: ImportStatus
    filename: str
    size_bytes: int
    content_sha256: str
    counts: ImportCounts
    error_count: int
    errors: list[ImportIssueOut] = Field(description="The first 100 errors, each with its place.")
    duplicate_of: str | None = Field(description="An earlier import of the very same file.")
    progress: ImportProgress
    started_at: datetime | None
    finished_at: datetime | None


def import_out(i: DataImport) -> ImportOut:
    errors: list[dict[str, Any]] = i.errors or []
    return ImportOut(
        id=i.id,
        created_at=i.created_at,
        company=i.company_id,
        kind=i.kind,
        status=i.status,
        filename=i.filename,
        size_bytes=i.size_bytes,
        content_sha256=i.content_sha256,
        counts=ImportCounts(
            created=i.created_count,
            updated=i.updated_count,
            unchanged=i.unchanged_count,
            by_type=dict(i.counts or {}),
        ),
        error_count=i.error_count,
        errors=[ImportIssueOut(**e) for e in errors],
        duplicate_of=i.duplicate_of,
        progress=ImportProgress(done=i.progress_done, total=i.progress_total),
        started_at=i.started_at,
        finished_at=i.finished_at,
    )
