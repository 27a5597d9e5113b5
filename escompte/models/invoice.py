from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column, str_enum


class InvoiceKind(StrEnum):
    RECEIVABLE = "receivable"
    PAYABLE = "payable"


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    DISPUTED = "disputed"
    CANCELLED = "cancelled"


class InvoiceSource(StrEnum):
    API = "api"
    FEC = "fec"
    FACTURX = "facturx"
    CII = "cii"
    UBL = "ubl"


class DocumentType(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("company_id", "debtor_id", "number"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "amount_paid_cents >= 0 AND amount_paid_cents <= amount_cents",
            name="amount_paid_range",
        ),
        CheckConstraint("due_date >= issue_date", name="due_after_issue"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        Index(None, "company_id", "id"),
        Index(None, "debtor_id"),
    )

    id: Mapped[str] = id_column()
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    debtor_id: Mapped[str] = mapped_column(ForeignKey("debtors.id"))
    kind: Mapped[InvoiceKind] = mapped_column(str_enum(InvoiceKind, "invoice_kind"))
    number: Mapped[str] = mapped_column(String(64))
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    amount_paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[InvoiceStatus] = mapped_column(str_enum(InvoiceStatus, "invoice_status"))
    source: Mapped[InvoiceSource] = mapped_column(
        str_enum(InvoiceSource, "invoice_source"), server_default=InvoiceSource.API.value
    )
    document_type: Mapped[DocumentType] = mapped_column(
        str_enum(DocumentType, "document_type"), server_default=DocumentType.INVOICE.value
    )
    # A FEC carries no due date: it is derived from the debtor's payment terms and marked
    # estimated until an e-invoice, the SME or the partner confirms it.
    due_date_estimated: Mapped[bool] = mapped_column(Boolean, server_default=false())
    net_cents: Mapped[int | None] = mapped_column(BigInteger)
    vat_cents: Mapped[int | None] = mapped_column(BigInteger)
    payment_iban: Mapped[str | None] = mapped_column(String(34))
    import_id: Mapped[str | None] = mapped_column(ForeignKey("imports.id"))
    # latest e-invoicing lifecycle status (e.g. 205 "approved"), see InvoiceLifecycleEvent
    lifecycle_status_code: Mapped[int | None] = mapped_column(Integer)
    lifecycle_status: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
