from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column


class Debtor(Base):
    """A counterparty of one seller, by SIREN: the customer owing its receivable invoices
    (and, for payables financing, the supplier the seller owes)."""

    __tablename__ = "debtors"
    __table_args__ = (
        UniqueConstraint("company_id", "siren"),
        # debtors found in the books are known by their auxiliary account until a SIREN is
        # learnt (e-invoice, the SME, the partner)
        UniqueConstraint("company_id", "aux_account_num"),
        CheckConstraint("siren ~ '^[0-9]{9}$'", name="siren_format"),
        CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="payment_terms_days_range"),
        Index(None, "company_id", "id"),
    )

    id: Mapped[str] = id_column()
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    siren: Mapped[str | None] = mapped_column(String(9))
    aux_account_num: Mapped[str | None] = mapped_column(String(40))
    legal_name: Mapped[str] = mapped_column(String(200))
    vat_number: Mapped[str | None] = mapped_column(String(20))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    created_at: Mapped[datetime] = created_at_column()
