"""Payments and their allocations to invoices — from the bank (reconciliation), the
books (lettering) or an e-invoicing "cashed" status — and the invoice totals they drive.

One payment per (company, source, source_ref): recording the same bank transaction or
lettering code again changes nothing. An invoice's ``amount_paid_cents`` is always the
sum of its allocations, recomputed set-based, and its status follows:
open → partially_paid → paid (a disputed or cancelled invoice keeps its status).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from escompte.errors import invariant
from escompte.ids import new_id
from escompte.models import Payment, PaymentAllocation, PaymentSource


@dataclass(frozen=True)
class Allocation:
    invoice_id: str
    amount_cents: int


def record_payment(
    session: Session,
    now: datetime,
    *,
    company_id: str,
    source: PaymentSource,
    source_ref: str,
    amount_cents: int,
    currency: str,
    paid_on: date,
    allocations: Sequence[Allocation],
    payer_name: str | None = None,
    bank_transaction_id: str | None = None,
) -> Payment | None:
    """Record a payment and its allocations; None if this payment was already recorded.

    Call ``refresh_invoices`` for the allocated invoices afterwards (once per batch).
    """
    invariant(amount_cents > 0, "a payment is positive")
    invariant(all(a.amount_cents > 0 for a in allocations), "allocations are positive")
    invariant(sum(a.amount_cents for a in allocations) <= amount_cents, "over-allocated payment")
    payment_id = new_id("pay")
    inserted = session.execute(
        insert(Payment)
        .values(
            id=payment_id,
            company_id=company_id,
            source=source,
            source_ref=source_ref[:120],
            bank_transaction_id=bank_transaction_id,
            amount_cents=amount_cents,
            currency=currency,
            paid_on=paid_on,
            payer_name=(payer_name or None) and payer_name[:200],
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["company_id", "source", "source_ref"])
        .returning(Payment.id)
    ).scalar_one_or_none()
    if inserted is None:
        return None
    if allocations:
        session.execute(
            insert(PaymentAllocation),
            [
                {
                    "payment_id": payment_id,
                    "invoice_id": a.invoice_id,
                    "amount_cents": a.amount_cents,
                    "created_at": now,
                }
                for a in allocations
            ],
        )
    return session.get(Payment, payment_id)


def refresh_invoices(session: Session, invoice_ids: Iterable[str], now: datetime) -> int:
    """Recompute amount_paid from allocations and move statuses accordingly (set-based).

    Allocations beyond an invoice's amount are capped at the amount (the surplus stays
    on the payment, unallocated, for back-office).
    """
    ids = sorted(set(invoice_ids))
    if not ids:
        return 0
    result = session.execute(
        text(
            """
            WITH paid AS (
                SELECT i.id,
                       LEAST(i.amount_cents, COALESCE(SUM(a.amount_cents), 0)) AS paid_cents
                FROM invoices i
                LEFT JOIN payment_allocations a ON a.invoice_id = i.id
                WHERE i.id = ANY(:ids)
                GROUP BY i.id
            )
            UPDATE invoices i
            SET amount_paid_cents = paid.paid_cents,
                status = CASE
                    WHEN i.status IN ('disputed', 'cancelled') THEN i.status
                    WHEN paid.paid_cents >= i.amount_cents THEN 'paid'
                    WHEN paid.paid_cents > 0 THEN 'partially_paid'
                    ELSE 'open'
                END,
                updated_at = :now
            FROM paid
            WHERE i.id = paid.id
              AND (i.amount_paid_cents <> paid.paid_cents
                   OR i.status NOT IN ('disputed', 'cancelled')
                      AND i.status <> CASE
                          WHEN paid.paid_cents >= i.amount_cents THEN 'paid'
                          WHEN paid.paid_cents > 0 THEN 'partially_paid'
                          ELSE 'open' END)
            """
        ),
        {"ids": ids, "now": now},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def allocated_cents(session: Session, invoice_id: str) -> int:
    return int(
        session.execute(
            select(func.coalesce(func.sum(PaymentAllocation.amount_cents), 0)).where(
                PaymentAllocation.invoice_id == invoice_id
            )
        ).scalar_one()
    )
