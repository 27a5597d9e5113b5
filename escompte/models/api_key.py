from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column, str_enum


class PrincipalKind(StrEnum):
    ADMIN = "admin"
    PARTNER = "partner"
    COMPANY = "company"


class KeyMode(StrEnum):
    TEST = "test"
    LIVE = "live"


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; the secret is shown once at creation."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'admin' AND partner_id IS NULL AND company_id IS NULL)"
            " OR (kind = 'partner' AND partner_id IS NOT NULL AND company_id IS NULL)"
            " OR (kind = 'company' AND company_id IS NOT NULL)",
            name="owner_matches_kind",
        ),
    )

    id: Mapped[str] = id_column()
    kind: Mapped[PrincipalKind] = mapped_column(str_enum(PrincipalKind, "principal_kind"))
    mode: Mapped[KeyMode] = mapped_column(str_enum(KeyMode, "key_mode"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(24))
    description: Mapped[str | None] = mapped_column(String(200))
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"), index=True)
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"), index=True)
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
