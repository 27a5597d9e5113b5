from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column


class InvoiceLifecycleEvent(Base):
    """An e-invoicing lifecycle status of an invoice (AFNOR XP Z12-012 codes: 200 Déposée
    … 205 Approuvée, 207 En litige, 210 Refusée, 212 Encaissée …), from a CDAR message
    exchanged between platforms or its JSON equivalent."""

    __tablename__ = "invoice_lifecycle_events"
    __table_args__ = (
        UniqueConstraint("invoice_id", "message_id", "status_code"),
        Index(None, "invoice_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    import_id: Mapped[str | None] = mapped_column(ForeignKey("imports.id"))
    message_id: Mapped[str] = mapped_column(String(120))
    status_code: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(40))  # e.g. "approved", "disputed", "cashed"
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issuer_role: Mapped[str | None] = mapped_column(String(40))  # buyer, seller, platform …
    reason: Mapped[str | None] = mapped_column(Text)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)  # partial approval, payment
    created_at: Mapped[datetime] = created_at_column()
