"""What moves money outside Escompte: each SME's payment profile at the payment provider
(connected account for payouts, customer and SEPA mandate for debits), every operation
sent to a rail (transfer, payout, debit, reversal, credit transfer) and the provider's
webhook events, deduplicated by id."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column, str_enum


class PaymentProfile(Base):
    __tablename__ = "payment_profiles"

    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    stripe_account_id: Mapped[str] = mapped_column(String(60), unique=True)
    stripe_bank_account_id: Mapped[str | None] = mapped_column(String(60))
    payout_iban_last4: Mapped[str | None] = mapped_column(String(4))
    stripe_customer_id: Mapped[str] = mapped_column(String(60))
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(60))
    stripe_mandate_id: Mapped[str | None] = mapped_column(String(60))
    mandate_status: Mapped[str] = mapped_column(String(20))  # active, inactive, pending
    mandate_accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperationKind(StrEnum):
    TRANSFER = "transfer"  # platform balance → the SME's connected account
    PAYOUT = "payout"  # connected account → the SME's IBAN
    TRANSFER_REVERSAL = "transfer_reversal"  # money back after a failed payout
    DEBIT = "debit"  # SEPA Direct Debit on the SME's mandate
    CREDIT_TRANSFER = "credit_transfer"  # SEPA credit transfer (pain.001) to a supplier


class OperationStatus(StrEnum):
    PENDING = "pending"  # recorded, not (yet) acknowledged by the rail
    PROCESSING = "processing"  # acknowledged, money in flight
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISPUTED = "disputed"  # a debit charged back (SEPA 8-week right)


class PaymentOperation(Base):
    __tablename__ = "payment_operations"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        Index("uq_payment_operations_idempotency_key", "idempotency_key", unique=True),
        Index(
            "uq_payment_operations_external_id",
            "rail",
            "external_id",
            unique=True,
            postgresql_where="external_id IS NOT NULL",
        ),
        Index(None, "advance_id", "id"),
        Index(
            "ix_payment_operations_unsettled",
            "status",
            "created_at",
            postgresql_where="status IN ('pending', 'processing')",
        ),
    )

    id: Mapped[str] = id_column()
    advance_id: Mapped[str] = mapped_column(ForeignKey("advances.id"))
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    rail: Mapped[str] = mapped_column(String(20))  # stripe, sepa_file
    kind: Mapped[OperationKind] = mapped_column(str_enum(OperationKind, "operation_kind"))
    status: Mapped[OperationStatus] = mapped_column(str_enum(OperationStatus, "operation_status"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # sent to the rail with every attempt: a retry never moves money twice
    idempotency_key: Mapped[str] = mapped_column(String(120))
    external_id: Mapped[str | None] = mapped_column(String(80))
    external_account: Mapped[str | None] = mapped_column(String(60))
    expected_on: Mapped[date | None] = mapped_column(Date)
    # credit transfers: the pain.001 file that carries the order
    file_id: Mapped[str | None] = mapped_column(ForeignKey("payment_files.id"))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PaymentFile(Base):
    """A SEPA credit transfer file (pain.001.001.03) of the platform's bank account, to be
    sent to the bank; its orders are confirmed by the account's camt.053 statement."""

    __tablename__ = "payment_files"

    id: Mapped[str] = id_column()
    format: Mapped[str] = mapped_column(String(20))  # pain.001.001.03
    content: Mapped[bytes] = mapped_column(LargeBinary)
    transactions: Mapped[int] = mapped_column(Integer)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    execution_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = created_at_column()
    created_by_key_id: Mapped[str | None] = mapped_column(String(40))


class StripeEvent(Base):
    """A webhook event received from Stripe, kept once by its id."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    type: Mapped[str] = mapped_column(String(80))
    account: Mapped[str | None] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(40))  # handled, ignored: <why>
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
