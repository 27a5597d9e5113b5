from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Identity,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column, str_enum


class PaymentSource(StrEnum):
    BANK = "bank"  # a reconciled bank credit (or debit, for payables)
    BOOKS = "books"  # lettering in the FEC
    LIFECYCLE = "lifecycle"  # an e-invoicing "cashed" (212) status
    PREPAID = "prepaid"  # paid before the invoice: its e-invoice's prepaid amount (BT-113)
    API = "api"


class Payment(Base):
    """Money received for (or paid on) invoices, split into allocations."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        # one payment per bank transaction; one per lettering code in the books
        UniqueConstraint("company_id", "source", "source_ref"),
        Index(None, "company_id", "id"),
    )

    id: Mapped[str] = id_column()
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    source: Mapped[PaymentSource] = mapped_column(str_enum(PaymentSource, "payment_source"))
    # bank transaction id, lettering code, lifecycle message id … unique per source
    source_ref: Mapped[str] = mapped_column(String(120))
    bank_transaction_id: Mapped[str | None] = mapped_column(ForeignKey("bank_transactions.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    paid_on: Mapped[date] = mapped_column(Date)
    payer_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()


class PaymentAllocation(Base):
    __tablename__ = "payment_allocations"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        UniqueConstraint("payment_id", "invoice_id"),
        Index(None, "invoice_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()
