"""Imports: receive a file, keep it, run its handler all-or-nothing, record the outcome.

Small files are processed within the request; large ones are queued for a worker
(``imports.run`` job) and the client polls ``GET /v1/imports/{id}``. Importing a file
already imported (same company, kind and SHA-256) creates an import marked
``duplicate_of`` that changes nothing.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import IO, Any

import structlog
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.clock import Clock
from escompte.companies.service import company_for_write
from escompte.connectors.base import Handler, ImportContext, ImportRefused
from escompte.connectors.detect import SNIFF_BYTES, detect_kind, not_imported
from escompte.connectors.registry import BEHAVIOUR_AFTER, RECONCILE_AFTER, handler_for
from escompte.errors import FieldError, FileRejected, Forbidden, NotFound, ValidationFailed
from escompte.ids import new_id
from escompte.models import (
    REGISTRY_KINDS,
    Company,
    DataImport,
    ImportFile,
    ImportKind,
    ImportStatus,
)

log = structlog.get_logger("escompte.imports")

CHUNK_BYTES = 1024 * 1024
INLINE_MAX_BYTES = 2 * 1024 * 1024  # larger files go to a worker
MAX_IMPORT_BYTES = 1024 * 1024 * 1024
MAX_FILENAME = 255


def _resolve_kind(first: bytes, kind: ImportKind | None, company: Company | None) -> ImportKind:
    if not first:
        raise ValidationFailed("The file is empty.", [FieldError("file", "empty file")])
    detected = detect_kind(first[:SNIFF_BYTES])
    if detected is None and (reason := not_imported(first)) is not None:
        raise ValidationFailed(
            reason, [FieldError("file", "a document Escompte does not import", code="unsupported")]
        )
    if kind is None:
        if detected is None:
            raise ValidationFailed(
                "Escompte could not tell this file's type; say it with `kind` "
                f"({', '.join(k.value for k in ImportKind)}).",
                [FieldError("kind", "required: the type could not be detected", code="missing")],
            )
        kind = detected
    elif (
        detected is not None
        and detected != kind
        and not ({detected, kind} <= {ImportKind.CII, ImportKind.FACTURX})
    ):
        raise ValidationFailed(
            f"The file looks like {detected.value}, not {kind.value}.",
            [FieldError("kind", f"the content is {detected.value}")],
        )
    if kind in REGISTRY_KINDS and company is not None:
        raise ValidationFailed(
            f"A {kind.value} extract is not one company's data: import it without a company.",
            [FieldError("kind", "registry extracts are imported at /v1/registries/imports")],
        )
    if kind not in REGISTRY_KINDS and company is None:
        raise ValidationFailed(
            f"A {kind.value} file belongs to a company: say which.",
            [FieldError("company", "required", code="missing")],
        )
    return kind


def receive(
    session: Session,
    clock: Clock,
    principal: Principal | None,
    *,
    company_id: str | None,
    filename: str,
    stream: IO[bytes],
    kind: ImportKind | None = None,
    options: dict[str, Any] | None = None,
    max_bytes: int = MAX_IMPORT_BYTES,
) -> DataImport:
    """Store an uploaded file and create its import (status queued, or succeeded when it
    duplicates an earlier import). ``principal`` None: the operator's command line."""
    company: Company | None = None
    if company_id is not None:
        if principal is None:
            company = session.get(Company, company_id)
            if company is None:
                raise NotFound(f"No such company: {company_id}", [FieldError("company", "not found")])
        else:
            company = company_for_write(session, principal, company_id)
    elif principal is not None and not principal.is_admin:
        raise Forbidden("Registry extracts (SIRENE, BODACC) are imported by Escompte staff.")
    first = stream.read(CHUNK_BYTES)
    kind = _resolve_kind(first, kind, company)
    now = clock.now()
    data_import = DataImport(
        id=new_id("imp"),
        company_id=company.id if company else None,
        kind=kind,
        status=ImportStatus.QUEUED,
        filename=(filename or "upload")[:MAX_FILENAME],
        content_sha256="",
        size_bytes=0,
        options=options or {},
        created_count=0,
        updated_count=0,
        unchanged_count=0,
        counts={},
        error_count=0,
        errors=[],
        progress_done=0,
        progress_total=0,
        created_at=now,
    )
    session.add(data_import)
    session.flush()
    data_import.content_sha256, data_import.size_bytes = _store(
        session, data_import.id, first, stream, max_bytes
    )
    data_import.progress_total = data_import.size_bytes
    earlier = session.execute(
        select(DataImport)
        .where(
            DataImport.company_id == data_import.company_id if company else DataImport.company_id.is_(None),
            DataImport.kind == kind,
            DataImport.content_sha256 == data_import.content_sha256,
            DataImport.status == ImportStatus.SUCCEEDED,
            DataImport.id != data_import.id,
        )
        .order_by(DataImport.id)
        .limit(1)
    ).scalar_one_or_none()
    if earlier is not None:
        data_import.status = ImportStatus.SUCCEEDED
        data_import.duplicate_of = earlier.id
        data_import.unchanged_count = earlier.created_count + earlier.updated_count + earlier.unchanged_count
        data_import.progress_done = data_import.size_bytes
        data_import.started_at = data_import.finished_at = now
        session.execute(delete(ImportFile).where(ImportFile.import_id == data_import.id))
    session.flush()
    return data_import


def _store(
    session: Session, import_id: str, first: bytes, stream: IO[bytes], max_bytes: int
) -> tuple[str, int]:
    """Keep the file in 1 MiB chunks; returns (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    seq = 0
    chunk = first
    while chunk:
        size += len(chunk)
        if size > max_bytes:
            raise ValidationFailed(
                f"The file is larger than {max_bytes // (1024 * 1024)} MiB.",
                [FieldError("file", "too large")],
            )
        digest.update(chunk)
        session.execute(insert(ImportFile).values(import_id=import_id, seq=seq, content=chunk))
        seq += 1
        chunk = stream.read(CHUNK_BYTES)
    return digest.hexdigest(), size


class _ChunkReader(io.RawIOBase):
    """Streams an import's file back from PostgreSQL, one chunk in memory at a time."""

    def __init__(self, session: Session, import_id: str) -> None:
        self._session = session
        self._import_id = import_id
        self._seq = 0
        self._buffer = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer and not self._done:
            content = self._session.execute(
                select(ImportFile.content).where(
                    ImportFile.import_id == self._import_id, ImportFile.seq == self._seq
                )
            ).scalar_one_or_none()
            if content is None:
                self._done = True
            else:
                self._buffer = bytes(content)
                self._seq += 1
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def open_stored(session: Session, import_id: str) -> IO[bytes]:
    return io.BufferedReader(_ChunkReader(session, import_id), buffer_size=CHUNK_BYTES)


def process(
    session: Session,
    clock: Clock,
    data_import: DataImport,
    progress: Callable[[int, int], None] | None = None,
    handler: Handler | None = None,
) -> DataImport:
    """Run the import's handler in a savepoint: everything or nothing is written, and the
    import records the outcome (counts, or every error with its place)."""
    if data_import.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
        return data_import
    company = session.get(Company, data_import.company_id) if data_import.company_id else None
    data_import.status = ImportStatus.RUNNING
    data_import.started_at = clock.now()
    session.flush()
    total = data_import.size_bytes

    def report(done: int, of: int) -> None:
        data_import.progress_done = done
        if progress is not None:
            progress(done, of or total)

    ctx = ImportContext(
        session=session,
        clock=clock,
        company=company,
        data_import=data_import,
        open_stream=lambda: open_stored(session, data_import.id),
        size_bytes=total,
        options=dict(data_import.options or {}),
        progress=report,
    )
    try:
        with session.begin_nested():
            outcome = (handler or handler_for(data_import.kind))(ctx)
            ctx.issues.raise_if_any()
            session.flush()
    except ImportRefused as refused:
        _fail(data_import, clock, [i.as_dict() for i in refused.issues], refused.total)
        return data_import
    except Exception as exc:  # an unreadable file must not take the service down
        log.exception("import_crashed", import_id=data_import.id, kind=data_import.kind)
        _fail(
            data_import,
            clock,
            [
                {
                    "line": None,
                    "path": None,
                    "field": None,
                    "message": f"The file could not be read as {data_import.kind.value} "
                    f"({type(exc).__name__}). Nothing was imported.",
                }
            ],
            1,
        )
        return data_import
    data_import.status = ImportStatus.SUCCEEDED
    data_import.created_count = outcome.created
    data_import.updated_count = outcome.updated
    data_import.unchanged_count = outcome.unchanged
    data_import.counts = dict(outcome.counts)
    data_import.progress_done = total
    data_import.finished_at = clock.now()
    session.flush()
    if company is not None:
        _after_import(session, clock, company.id, data_import.kind)
    return data_import


def rejection(data_import: DataImport) -> FileRejected:
    """The problem to answer when a file processed within the request is refused."""
    issues = data_import.errors or []
    first = issues[0]["message"] if issues else "invalid file"
    return FileRejected(
        f"{data_import.filename} was refused as {data_import.kind.value}: "
        f"{data_import.error_count} error(s), nothing was imported. First: {first}",
        [
            FieldError(
                field=i.get("field") or "file",
                message=i["message"],
                code="invalid_content",
                line=i.get("line"),
                path=i.get("path"),
            )
            for i in issues
        ],
        extra={"kind": data_import.kind.value, "error_count": data_import.error_count},
    )


def _fail(data_import: DataImport, clock: Clock, errors: list[dict[str, Any]], total: int) -> None:
    data_import.status = ImportStatus.FAILED
    data_import.errors = errors
    data_import.error_count = total
    data_import.created_count = data_import.updated_count = data_import.unchanged_count = 0
    data_import.counts = {}
    data_import.finished_at = clock.now()


def _after_import(session: Session, clock: Clock, company_id: str, kind: ImportKind) -> None:
    """New credits or open invoices are matched now (reconciliation refreshes the debtors
    it touches); payments from the books or e-invoicing statuses refresh the company's
    debtor history. Own savepoint: a failure here never undoes the import."""
    if kind not in RECONCILE_AFTER and kind not in BEHAVIOUR_AFTER:
        return
    from escompte.connectors import behaviour, reconciliation

    try:
        with session.begin_nested():
            if kind in RECONCILE_AFTER:
                reconciliation.reconcile(session, clock, company_id)
            if kind in BEHAVIOUR_AFTER:
                behaviour.compute_debtor_behaviour(session, clock, company_id)
    except Exception:
        log.exception("after_import_failed", company_id=company_id, kind=kind)


def mark_running(bind: Any, import_id: str) -> None:
    """Make 'running' visible to pollers before a long import starts (own transaction)."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            conn.execute(
                update(DataImport)
                .where(DataImport.id == import_id, DataImport.status == ImportStatus.QUEUED)
                .values(status=ImportStatus.RUNNING)
            )


def get_import(session: Session, principal: Principal, import_id: str) -> DataImport:
    query = select(DataImport).where(DataImport.id == import_id)
    if not principal.is_admin:
        query = query.where(
            DataImport.company_id.is_not(None), visible_company_ids(principal, DataImport.company_id)
        )
    data_import = session.execute(query).scalar_one_or_none()
    if data_import is None:
        raise NotFound(f"No such import: {import_id}")
    return data_import


def list_imports(
    session: Session,
    principal: Principal,
    *,
    company_id: str | None,
    kind: ImportKind | None,
    status: ImportStatus | None,
    limit: int,
    starting_after: str | None,
) -> list[DataImport]:
    query = select(DataImport)
    if not principal.is_admin:
        query = query.where(
            DataImport.company_id.is_not(None), visible_company_ids(principal, DataImport.company_id)
        )
    if company_id:
        query = query.where(DataImport.company_id == company_id)
    if kind:
        query = query.where(DataImport.kind == kind)
    if status:
        query = query.where(DataImport.status == status)
    if starting_after:
        query = query.where(DataImport.id < starting_after)
    return list(session.execute(query.order_by(DataImport.id.desc()).limit(limit)).scalars())
