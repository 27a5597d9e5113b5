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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column, str_enum


class BankAccount(Base):
    __tablename__ = "bank_accounts"
    __table_args__ = (UniqueConstraint("company_id", "iban"),)

    id: Mapped[str] = id_column()
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    iban: Mapped[str] = mapped_column(String(34))
    bic: Mapped[str | None] = mapped_column(String(11))
    name: Mapped[str | None] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = created_at_column()


class BankBalance(Base):
    """An end-of-day (or statement) balance of one account."""

    __tablename__ = "bank_balances"
    __table_args__ = (UniqueConstraint("bank_account_id", "balance_date", "kind"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    bank_account_id: Mapped[str] = mapped_column(ForeignKey("bank_accounts.id"))
    balance_date: Mapped[date] = mapped_column(Date)
    # ISO 20022 balance type: CLBD (closing booked), OPBD (opening booked), ITBD, CLAV …
    kind: Mapped[str] = mapped_column(String(8))
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # signed
    currency: Mapped[str] = mapped_column(String(3))
    import_id: Mapped[str | None] = mapped_column(ForeignKey("imports.id"))


class MatchStatus(StrEnum):
    UNMATCHED = "unmatched"
    PARTIALLY_MATCHED = "partially_matched"
    MATCHED = "matched"
    IGNORED = "ignored"  # debits, fees, transfers between own accounts …


class BankTransaction(Base):
    """A booked bank entry. Credits are positive, debits negative."""

    __tablename__ = "bank_transactions"
    __table_args__ = (
        UniqueConstraint("bank_account_id", "fingerprint"),
        CheckConstraint("amount_cents <> 0", name="amount_not_zero"),
        CheckConstraint("matched_cents >= 0 AND matched_cents <= abs(amount_cents)", name="matched_range"),
        Index(None, "company_id", "id"),
        Index(
            "ix_bank_transactions_unmatched",
            "company_id",
            "booking_date",
            postgresql_where="match_status IN ('unmatched', 'partially_matched') AND amount_cents > 0",
        ),
    )

    id: Mapped[str] = id_column()
    # company_id and import_id carry no foreign key (bulk loads check them per row; the
    # account's own key ties the transaction to its company)
    company_id: Mapped[str] = mapped_column(String(40))
    bank_account_id: Mapped[str] = mapped_column(ForeignKey("bank_accounts.id"))
    import_id: Mapped[str | None] = mapped_column(String(40))
    # The bank's or aggregator's id (AcctSvcrRef, FITID, aggregator transaction id).
    external_id: Mapped[str | None] = mapped_column(String(120))
    # external_id when there is one, else a hash of (date, amount, counterparty, text):
    # what makes a re-import of the same statement change nothing.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # Where the line came from: camt, ofx, csv or agg (an aggregator's push). The same
    # movement read again from another source becomes a BankLineAlias of this line.
    source: Mapped[str] = mapped_column(String(8))
    booking_date: Mapped[date] = mapped_column(Date)
    value_date: Mapped[date | None] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    counterparty_name: Mapped[str | None] = mapped_column(String(200))
    counterparty_iban: Mapped[str | None] = mapped_column(String(34))
    remittance_info: Mapped[str | None] = mapped_column(Text)  # unstructured
    structured_reference: Mapped[str | None] = mapped_column(String(64))  # e.g. RF creditor ref
    end_to_end_id: Mapped[str | None] = mapped_column(String(64))
    bank_code: Mapped[str | None] = mapped_column(String(40))  # bank transaction code
    # The line of the SME's books (a 512 bank account line) recording this same movement,
    # when the books already settled invoices with it (FEC lettering).
    book_line_id: Mapped[int | None] = mapped_column(ForeignKey("book_lines.id"), unique=True)
    match_status: Mapped[MatchStatus] = mapped_column(str_enum(MatchStatus, "match_status"))
    matched_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = created_at_column()


class BankLineAlias(Base):
    """A bank line read from a second source (say the OFX export of an account already
    known from its camt.053 statement) that is a movement already stored: the same
    account, booking date and signed amount, not yet seen from that source. It stores no
    second transaction; its fingerprint makes reading it again change nothing."""

    __tablename__ = "bank_line_aliases"
    __table_args__ = (Index(None, "bank_transaction_id", "source"),)

    bank_account_id: Mapped[str] = mapped_column(ForeignKey("bank_accounts.id"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    bank_transaction_id: Mapped[str] = mapped_column(ForeignKey("bank_transactions.id"))
    source: Mapped[str] = mapped_column(String(8))
    external_id: Mapped[str | None] = mapped_column(String(120))
    import_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = created_at_column()
