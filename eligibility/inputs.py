"""From the rows ``queries`` read to a decision's inputs: the company snapshot kept fresh,
the inputs fingerprint, and the ``Facts`` the rules evaluate.

The inputs fingerprint hashes every value read — the seller's, the debtor's and the
invoice's rows (change markers included), the company snapshot, the book match, the
policy version and the date — so any change to any of them gives a new decision, and
equal inputs give the stored one. The seller's and debtor's parts are hashed once per
batch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic_core import to_json
from sqlalchemy.orm import Session

from escompte.clock import Clock
from escompte.eligibility import queries, repository
from escompte.eligibility.facts import BankFigures, Facts
from escompte.eligibility.policy import PolicySettings
from escompte.eligibility.queries import LAST_DECISION_COLUMNS, SNAPSHOT_COLUMNS, BookMatch
from escompte.eligibility.rules import (
    APPROVED,
    CANCELLED,
    DIRECT_PAYMENT,
    DISPUTED,
    PARTIALLY_APPROVED,
    REFUSED,
    SUSPENDED,
)

# statuses after which an earlier approval by the buyer no longer stands
APPROVAL_UNDONE = frozenset({PARTIALLY_APPROVED, DISPUTED, SUSPENDED, CANCELLED, DIRECT_PAYMENT, *REFUSED})
_NOT_INPUTS = frozenset({*LAST_DECISION_COLUMNS, *SNAPSHOT_COLUMNS, "book_lines", "book_debit"})


def company_markers(company: dict[str, Any], settings: PolicySettings) -> str:
    return (
        f"btx:{company['m_btx']}|bal:{company['m_bal_count']}:{company['m_bal_date']}"
        f"|imp:{company['m_imports']}|w:{settings.bank_window_days}"
    )[:400]


def fresh_snapshot(
    session: Session, clock: Clock, company: dict[str, Any], settings: PolicySettings, today: date
) -> dict[str, Any]:
    """The company's bank and books figures: the stored snapshot if its markers, date and
    age still hold, else recomputed (and stored for the next decisions)."""
    markers = company_markers(company, settings)
    now = clock.now()
    computed_at = company["snap_computed_at"]
    if (
        company["snap_markers"] == markers
        and company["snap_as_of"] == today
        and computed_at is not None
        and computed_at >= now - timedelta(seconds=settings.bank_snapshot_max_age_seconds)
    ):
        figures: dict[str, Any] = company["snap_figures"]
        return figures
    figures = queries.snapshot_figures(session, company["company_id"], today, settings.bank_window_days)
    repository.save_snapshot(session, company["company_id"], markers, today, figures, now)
    return figures


_input_names: dict[tuple[str, ...], tuple[tuple[str, ...], bytes]] = {}


def _key(part: dict[str, Any]) -> bytes:
    """Every input value of a row, by name in a fixed order (whatever the statement's
    column order), as JSON (a type JSON lacks by its ``repr``) after the names."""
    columns = tuple(part)
    known = _input_names.get(columns)
    if known is None:
        names = tuple(sorted(n for n in columns if n not in _NOT_INPUTS))
        known = _input_names[columns] = (names, repr(names).encode())
    names, label = known
    return label + to_json([part[n] for n in names], fallback=repr)


def _digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@dataclass
class Keys:
    """The hashed-once parts of a batch's fingerprints: the seller's and the debtor's
    inputs, each hashed once, so that an invoice's fingerprint hashes their digests and
    its own row only."""

    companies: dict[str, str] = field(default_factory=dict)
    debtors: dict[str, str] = field(default_factory=dict)

    def company(self, company: dict[str, Any], snapshot: dict[str, Any]) -> str:
        key = self.companies.get(company["company_id"])
        if key is None:
            figures = json.dumps(snapshot, sort_keys=True, default=str).encode()
            key = self.companies[company["company_id"]] = _digest(_key(company) + b"|" + figures)
        return key

    def debtor(self, debtor: dict[str, Any]) -> str:
        key = self.debtors.get(debtor["debtor_id"])
        if key is None:
            key = self.debtors[debtor["debtor_id"]] = _digest(_key(debtor))
        return key


def inputs_fingerprint(
    *,
    today: date,
    version: int,
    company_key: str,
    debtor_key: str,
    invoice: dict[str, Any],
    book: BookMatch,
) -> str:
    head = f"{today.isoformat()}|{version}|{company_key}|{debtor_key}|".encode()
    return _digest(head + _key(invoice) + f"|{book.lines}|{book.debit_cents}".encode())


def _whole(value: Decimal | None) -> int | None:
    return None if value is None else int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _bps(share: Decimal | None) -> int | None:
    return None if share is None else int((share * 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _bank(snapshot: dict[str, Any]) -> BankFigures:
    bank = dict(snapshot["bank"])
    last = bank.get("last_booking_date")
    bank["last_booking_date"] = date.fromisoformat(last) if last else None
    return BankFigures(**bank)


def book_of(invoice: dict[str, Any]) -> BookMatch:
    """The book match read with the invoice (one-invoice statement)."""
    return BookMatch(int(invoice.get("book_lines") or 0), int(invoice.get("book_debit") or 0))


def build_facts(
    invoice: dict[str, Any],
    company: dict[str, Any],
    debtor: dict[str, Any],
    *,
    today: date,
    version: int,
    snapshot: dict[str, Any],
    book: BookMatch,
) -> Facts:
    books_as_of = date.fromisoformat(snapshot["books_as_of"]) if snapshot.get("books_as_of") else None
    code = invoice["lc_code"] if invoice["lc_code"] is not None else invoice["lifecycle_status_code"]
    approved = bool(invoice["approved_ever"] or code in APPROVED) and code not in APPROVAL_UNDONE
    stamps: list[datetime] = [
        s
        for s in (
            invoice["invoice_updated_at"],
            company["imports_as_of"],
            debtor["bh_computed_at"],
            company["seller_reg_updated_at"],
            debtor["debtor_reg_updated_at"],
        )
        if s is not None
    ]
    return Facts(
        as_of_date=today,
        policy_version=version,
        invoice_id=invoice["invoice_id"],
        company_id=invoice["company_id"],
        debtor_id=invoice["debtor_id"],
        kind=str(invoice["kind"]),
        document_type=str(invoice["document_type"]),
        status=str(invoice["status"]),
        number=invoice["number"],
        issue_date=invoice["issue_date"],
        due_date=invoice["due_date"],
        due_date_estimated=bool(invoice["due_date_estimated"]),
        amount_cents=int(invoice["amount_cents"]),
        amount_paid_cents=int(invoice["amount_paid_cents"]),
        currency=invoice["currency"],
        invoice_fingerprint=invoice["fingerprint"],
        lifecycle_code=code,
        lifecycle_amount_cents=invoice["lc_amount"],
        buyer_approved=approved,
        seller_siren=company["seller_siren"],
        seller_in_registry=company["seller_reg_siren"] is not None,
        seller_active=company["seller_active"],
        seller_ceased_on=company["seller_ceased_on"],
        seller_proceeding=company["seller_proceeding"],
        seller_proceeding_date=company["seller_proceeding_date"],
        debtor_siren=debtor["debtor_siren"],
        debtor_name=debtor["debtor_name"],
        debtor_in_registry=debtor["debtor_reg_siren"] is not None,
        debtor_active=debtor["debtor_active"],
        debtor_legal_form=debtor["debtor_legal_form"],
        debtor_proceeding=debtor["debtor_proceeding"],
        debtor_proceeding_date=debtor["debtor_proceeding_date"],
        related_party=debtor["related_party"],
        behaviour_paid_count=debtor["bh_paid"],
        behaviour_avg_days_late=_whole(debtor["bh_avg_days_late"]),
        behaviour_share_paid_late_bps=_bps(debtor["bh_share_late"]),
        behaviour_unpaid_overdue_count=debtor["bh_unpaid"],
        behaviour_unpaid_overdue_cents=debtor["bh_unpaid_cents"],
        books_connected=books_as_of is not None,
        books_as_of=books_as_of,
        books_lines=book.lines,
        books_debit_cents=book.debit_cents,
        bank=_bank(snapshot),
        financed_here=int(invoice["financed_here"]),
        financed_elsewhere=int(invoice["financed_elsewhere"]),
        debtor_outstanding_cents=int(debtor["debtor_outstanding"]),
        seller_outstanding_cents=int(company["seller_outstanding"]),
        seller_debtor_outstanding_cents=int(debtor["seller_debtor_outstanding"]),
        data_as_of=max(stamps).astimezone(UTC),
    )
