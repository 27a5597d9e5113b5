from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column


class Company(Base):
    """An SME (seller / borrower), identified by its SIREN."""

    __tablename__ = "companies"
    __table_args__ = (
        # One company per SIREN per onboarding partner (NULL partner: onboarded directly).
        UniqueConstraint("partner_id", "siren", postgresql_nulls_not_distinct=True),
        CheckConstraint("siren ~ '^[0-9]{9}$'", name="siren_format"),
        CheckConstraint("siret IS NULL OR left(siret, 9) = siren", name="siret_of_siren"),
        Index(None, "partner_id", "id"),
    )

    id: Mapped[str] = id_column()
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    legal_name: Mapped[str] = mapped_column(String(200))
    siren: Mapped[str] = mapped_column(String(9))
    siret: Mapped[str | None] = mapped_column(String(14))
    vat_number: Mapped[str | None] = mapped_column(String(20))
    iban: Mapped[str | None] = mapped_column(String(34))
    bic: Mapped[str | None] = mapped_column(String(11))
    contact_email: Mapped[str] = mapped_column(String(254))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = created_at_column()
