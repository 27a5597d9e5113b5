"""Financing: the versioned pricing grid, quotes, advances and their repayments.

An advance finances one invoice. ``status`` follows ``escompte.financing.states``; the
partial unique index ``uq_advances_live_invoice`` makes sure an invoice has at most one
live advance whatever the concurrency.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column, str_enum

RATE = Numeric(12, 10)


class PricingGrid(Base):
    """One version of the daily rates per risk grade. Never edited: a change is a new
    version, which the next quote uses."""

    __tablename__ = "pricing_grids"
    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # validated by escompte.financing.pricing.GridSettings
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
    created_by_key_id: Mapped[str | None] = mapped_column(String(40))


class AdvanceKind(StrEnum):
    RECEIVABLE = "receivable"  # the SME is paid against its customer's invoice
    PAYABLE = "payable"  # the SME's supplier is paid, the SME repays later


class Quote(Base):
    __tablename__ = "quotes"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("duration_days BETWEEN 3 AND 120", name="duration_range"),
        CheckConstraint("daily_rate > 0 AND daily_rate < 0.01", name="daily_rate_range"),
        Index(None, "company_id", "id"),
        Index(None, "invoice_id"),
    )

    id: Mapped[str] = id_column()
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    decision_id: Mapped[str] = mapped_column(ForeignKey("eligibility_decisions.id"))
    grid_version: Mapped[int] = mapped_column(ForeignKey("pricing_grids.version"))
    risk_grade: Mapped[str] = mapped_column(String(1))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    duration_days: Mapped[int] = mapped_column(Integer)
    daily_rate: Mapped[Decimal] = mapped_column(RATE)
    late_daily_rate: Mapped[Decimal] = mapped_column(RATE)
    min_days: Mapped[int] = mapped_column(Integer)
    fee_cents: Mapped[int] = mapped_column(BigInteger)
    start_date: Mapped[date] = mapped_column(Date)
    maturity_date: Mapped[date] = mapped_column(Date)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    created_by_key_id: Mapped[str | None] = mapped_column(String(40))


class AdvanceStatus(StrEnum):
    ACCEPTED = "accepted"
    DISBURSING = "disbursing"
    ACTIVE = "active"  # disbursed
    OVERDUE = "overdue"
    IN_COLLECTIONS = "in_collections"
    DEFAULTED = "defaulted"
    REPAID = "repaid"
    WRITTEN_OFF = "written_off"
    DISBURSEMENT_FAILED = "disbursement_failed"


LIVE_STATUSES = (
    AdvanceStatus.ACCEPTED,
    AdvanceStatus.DISBURSING,
    AdvanceStatus.ACTIVE,
    AdvanceStatus.OVERDUE,
    AdvanceStatus.IN_COLLECTIONS,
    AdvanceStatus.DEFAULTED,
)
_LIVE_SQL = "status IN (" + ", ".join(f"'{s.value}'" for s in LIVE_STATUSES) + ")"


class Advance(Base):
    __tablename__ = "advances"
    __table_args__ = (
        CheckConstraint("principal_cents > 0", name="principal_positive"),
        CheckConstraint("duration_days BETWEEN 3 AND 120", name="duration_range"),
        CheckConstraint("maturity_date > start_date", name="maturity_after_start"),
        # exactly one live advance per invoice, whatever the concurrency
        Index("uq_advances_live_invoice", "invoice_id", unique=True, postgresql_where=text(_LIVE_SQL)),
        Index("uq_advances_quote", "quote_id", unique=True),
        Index(None, "company_id", "id"),
        Index("ix_advances_due", "status", "maturity_date"),
    )

    id: Mapped[str] = id_column()
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"))
    kind: Mapped[AdvanceKind] = mapped_column(str_enum(AdvanceKind, "advance_kind"))
    status: Mapped[AdvanceStatus] = mapped_column(str_enum(AdvanceStatus, "advance_status"))
    principal_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    risk_grade: Mapped[str] = mapped_column(String(1))
    grid_version: Mapped[int] = mapped_column(ForeignKey("pricing_grids.version"))
    daily_rate: Mapped[Decimal] = mapped_column(RATE)
    late_daily_rate: Mapped[Decimal] = mapped_column(RATE)
    min_days: Mapped[int] = mapped_column(Integer)
    duration_days: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date] = mapped_column(Date)
    maturity_date: Mapped[date] = mapped_column(Date)
    # payables: the supplier paid by SEPA credit transfer
    payee_name: Mapped[str | None] = mapped_column(String(140))
    payee_iban: Mapped[str | None] = mapped_column(String(34))
    # the platform-wide identity of the financed invoice (eligibility.facts.invoice_fingerprint)
    fingerprint: Mapped[str] = mapped_column(String(64))
    # fees and late interest are accrued (ledger postings) up to and including this day
    accrued_through: Mapped[date | None] = mapped_column(Date)
    # the day the repayment was collected or initiated: fees stop counting then
    fees_stop_on: Mapped[date | None] = mapped_column(Date)
    debit_initiated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # after a bounced debit, the next one is not presented before this day
    debit_retry_on: Mapped[date | None] = mapped_column(Date)
    notice_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disbursed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    repaid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by_key_id: Mapped[str | None] = mapped_column(String(40))


class RepaymentSource(StrEnum):
    SEPA_DEBIT = "sepa_debit"  # the SME's mandate, at maturity or once its debtor paid
    VOLUNTARY = "voluntary"  # the SME repays early, on its own initiative
    COLLECTION_ACCOUNT = "collection_account"  # notified mode: the debtor pays the platform


class RepaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERSED = "reversed"  # a SEPA debit disputed within 8 weeks


class Repayment(Base):
    """Money collected (or being collected) for an advance, split by the waterfall: late
    interest, then fees, then principal; any surplus goes back to the SME."""

    __tablename__ = "repayments"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(
            "late_interest_cents >= 0 AND fee_cents >= 0 AND principal_cents >= 0 AND surplus_cents >= 0",
            name="parts_not_negative",
        ),
        CheckConstraint(
            "status = 'pending' OR status = 'failed' OR "
            "late_interest_cents + fee_cents + principal_cents + surplus_cents = amount_cents",
            name="parts_sum",
        ),
        Index(None, "advance_id", "id"),
    )

    id: Mapped[str] = id_column()
    advance_id: Mapped[str] = mapped_column(ForeignKey("advances.id"))
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    source: Mapped[RepaymentSource] = mapped_column(str_enum(RepaymentSource, "repayment_source"))
    status: Mapped[RepaymentStatus] = mapped_column(str_enum(RepaymentStatus, "repayment_status"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    late_interest_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    principal_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    surplus_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    operation_id: Mapped[str | None] = mapped_column(ForeignKey("payment_operations.id"))
    value_date: Mapped[date] = mapped_column(Date)
    # a SEPA Core debit can be disputed for 8 weeks: until then it is not final
    reversible_until: Mapped[date | None] = mapped_column(Date)
    failure_code: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
