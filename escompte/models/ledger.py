"""The double-entry ledger: accounts, transactions and their postings.

Append-only and balanced, both enforced by the database (migration ``c5f1nanc1ng1``):
a deferred constraint trigger refuses, at commit, any transaction whose postings do not
sum to zero per currency (or that has fewer than two postings), and triggers refuse
UPDATE and DELETE on transactions and postings. A correction is a new, reversing
transaction. Amounts are signed cents: debit positive, credit negative.
"""

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


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # one account per code and currency, platform-wide (company NULL) or per company
        UniqueConstraint("code", "company_id", "currency", postgresql_nulls_not_distinct=True),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(String(60))
    type: Mapped[AccountType] = mapped_column(str_enum(AccountType, "ledger_account_type"))
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"))
    currency: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        # an external fact (a Stripe object, a bank line, an accrual day) is posted once
        UniqueConstraint("kind", "external_ref"),
        Index(None, "advance_id", "id"),
    )

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(40))
    advance_id: Mapped[str | None] = mapped_column(ForeignKey("advances.id"))
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"))
    external_ref: Mapped[str | None] = mapped_column(String(120))
    # the transaction this one reverses, if any
    reverses_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    memo: Mapped[str] = mapped_column(String(300))
    effective_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = created_at_column()


class LedgerPosting(Base):
    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount_cents <> 0", name="amount_not_zero"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        Index(None, "transaction_id"),
        Index(None, "account_id"),
        Index(None, "advance_id", postgresql_where="advance_id IS NOT NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    advance_id: Mapped[str | None] = mapped_column(String(40))  # sub-ledger per advance
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # debit > 0, credit < 0
    currency: Mapped[str] = mapped_column(String(3))
