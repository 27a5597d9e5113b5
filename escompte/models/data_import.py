from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column, str_enum


class ImportKind(StrEnum):
    FEC = "fec"
    FACTURX = "facturx"
    CII = "cii"
    UBL = "ubl"
    CAMT053 = "camt053"
    OFX = "ofx"
    BANK_CSV = "bank_csv"
    LIFECYCLE = "lifecycle"  # e-invoicing lifecycle statuses: CDAR XML or the JSON equivalent
    SIRENE = "sirene"
    BODACC = "bodacc"


REGISTRY_KINDS = frozenset({ImportKind.SIRENE, ImportKind.BODACC})


class ImportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DataImport(Base):
    """One file handed to Escompte, its processing and its outcome (all or nothing)."""

    __tablename__ = "imports"
    __table_args__ = (
        CheckConstraint(
            "created_count >= 0 AND updated_count >= 0 AND unchanged_count >= 0 AND error_count >= 0",
            name="counts_positive",
        ),
        Index(None, "company_id", "id"),
        Index(None, "company_id", "kind", "content_sha256"),
    )

    id: Mapped[str] = id_column()
    # NULL for registry extracts (SIRENE, BODACC), which are not one company's data.
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"))
    kind: Mapped[ImportKind] = mapped_column(str_enum(ImportKind, "import_kind"))
    status: Mapped[ImportStatus] = mapped_column(str_enum(ImportStatus, "import_status"))
    filename: Mapped[str] = mapped_column(String(255))
    content_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    unchanged_count: Mapped[int] = mapped_column(Integer, default=0)
    # What was created, per object type, e.g. {"invoices": 12, "ledger_lines": 4211}.
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    # [{"line": 12, "path": null, "field": "Debit", "message": "…"}], capped.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    duplicate_of: Mapped[str | None] = mapped_column(ForeignKey("imports.id"))
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportFile(Base):
    """The file's bytes in chunks of at most 1 MiB, kept in PostgreSQL so any worker on
    any machine can stream it back without loading it whole."""

    __tablename__ = "import_file_chunks"

    import_id: Mapped[str] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
