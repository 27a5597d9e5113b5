"""How each debtor pays, from its matched payment history — set-based, in SQL.

For every debtor with receivable invoices (of one company, of a list of debtors, or of
all companies):

- ``paid_invoice_count``: its receivable invoices now ``paid`` that carry allocations
  (any source: bank reconciliation, lettering in the books, an e-invoicing "cashed").
- days late of a paid invoice = the ``paid_on`` of the latest payment allocated to it
  minus its due date, floored at 0 (paid early counts as on time).
- ``avg_days_late``: their mean, rounded half away from zero to 0.01 day.
- ``p90_days_late``: the nearest-rank 90th percentile (the smallest value that at least
  90 % of the paid invoices do not exceed; no interpolation).
- ``share_paid_late``: paid invoices with days late > 0 ÷ paid invoices, rounded half
  away from zero to 4 decimals (0 when nothing was paid yet).
- ``unpaid_count`` / ``unpaid_overdue_cents``: invoices open or partially paid whose due
  date is before the clock's today, and what remains due on them. Disputed invoices are
  left out: a dispute is a disagreement, not a payment habit.

Rows are upserted (one per debtor) with ``computed_at`` from the clock. Figures come
from the invoices of ``document_type = invoice`` only (credit notes are not paid).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from escompte.clock import Clock
from escompte.models import DebtorBehaviour

# Evaluated debtor by debtor (LATERAL on the debtor_id index) so the plan stays the same
# whatever the statistics say: right after a reconciliation has just marked thousands of
# invoices paid, the planner still believes there are none and would pick a nested loop
# across all of them.
_FIGURES = """
SELECT d.id AS debtor_id,
       CAST(COALESCE(pf.paid_count, 0) AS integer) AS paid_invoice_count,
       CAST(COALESCE(pf.avg_late, 0) AS numeric(8, 2)) AS avg_days_late,
       CAST(COALESCE(pf.p90_late, 0) AS numeric(8, 2)) AS p90_days_late,
       CAST(COALESCE(pf.share_late, 0) AS numeric(5, 4)) AS share_paid_late,
       CAST(COALESCE(u.unpaid_count, 0) AS integer) AS unpaid_count,
       CAST(COALESCE(u.overdue, 0) AS bigint) AS unpaid_overdue_cents,
       CAST(:now AS timestamptz) AS computed_at
FROM debtors d
CROSS JOIN LATERAL (
    SELECT COUNT(*) AS paid_count,
           ROUND(AVG(paid.days_late), 2) AS avg_late,
           percentile_disc(0.9) WITHIN GROUP (ORDER BY paid.days_late) AS p90_late,
           ROUND(COUNT(*) FILTER (WHERE paid.days_late > 0)::numeric / NULLIF(COUNT(*), 0), 4) AS share_late
    FROM (
        SELECT GREATEST(0, MAX(p.paid_on) - i.due_date) AS days_late
        FROM invoices i
        JOIN payment_allocations a ON a.invoice_id = i.id
        JOIN payments p ON p.id = a.payment_id
        WHERE i.debtor_id = d.id AND i.kind = 'receivable' AND i.document_type = 'invoice'
          AND i.status = 'paid'
        GROUP BY i.id, i.due_date
    ) paid
) pf
CROSS JOIN LATERAL (
    SELECT COUNT(*) AS unpaid_count, SUM(i.amount_cents - i.amount_paid_cents) AS overdue
    FROM invoices i
    WHERE i.debtor_id = d.id AND i.kind = 'receivable' AND i.document_type = 'invoice'
      AND i.status IN ('open', 'partially_paid') AND i.due_date < :today
) u
WHERE {where}
  AND EXISTS (SELECT 1 FROM invoices r WHERE r.debtor_id = d.id AND r.kind = 'receivable')
"""

_UPSERT = """
INSERT INTO debtor_behaviours (debtor_id, paid_invoice_count, avg_days_late, p90_days_late,
                               share_paid_late, unpaid_count, unpaid_overdue_cents, computed_at)
{figures}
ON CONFLICT (debtor_id) DO UPDATE SET
    paid_invoice_count = EXCLUDED.paid_invoice_count,
    avg_days_late = EXCLUDED.avg_days_late,
    p90_days_late = EXCLUDED.p90_days_late,
    share_paid_late = EXCLUDED.share_paid_late,
    unpaid_count = EXCLUDED.unpaid_count,
    unpaid_overdue_cents = EXCLUDED.unpaid_overdue_cents,
    computed_at = EXCLUDED.computed_at
"""


def _scope(company_id: str | None, debtor_ids: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    conditions = ["TRUE"]
    params: dict[str, Any] = {}
    if company_id is not None:
        conditions.append("d.company_id = :company")
        params["company"] = company_id
    if debtor_ids is not None:
        conditions.append("d.id = ANY(:debtors)")
        params["debtors"] = list(debtor_ids)
    return " AND ".join(conditions), params


def compute_debtor_behaviour(
    session: Session,
    clock: Clock,
    company_id: str | None = None,
    *,
    debtor_ids: Sequence[str] | None = None,
) -> int:
    """Recompute and store the figures of the debtors in scope; returns how many rows."""
    if debtor_ids is not None and not debtor_ids:
        return 0
    where, params = _scope(company_id, debtor_ids)
    session.flush()
    result = session.execute(
        text(_UPSERT.format(figures=_FIGURES.format(where=where))),
        {**params, "today": clock.today(), "now": clock.now()},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def behaviour_of(session: Session, clock: Clock, debtor_id: str) -> DebtorBehaviour:
    """The stored figures of a debtor; computed now (and not stored) when there are none."""
    stored = session.get(DebtorBehaviour, debtor_id)
    if stored is not None:
        return stored
    where, params = _scope(None, [debtor_id])
    row = (
        session.execute(
            text(_FIGURES.format(where=where)), {**params, "today": clock.today(), "now": clock.now()}
        )
        .mappings()
        .one_or_none()
    )
    if row is None:  # no receivable invoice at all
        return DebtorBehaviour(
            debtor_id=debtor_id,
            paid_invoice_count=0,
            avg_days_late=Decimal("0.00"),
            p90_days_late=Decimal("0.00"),
            share_paid_late=Decimal("0.0000"),
            unpaid_count=0,
            unpaid_overdue_cents=0,
            computed_at=clock.now(),
        )
    return DebtorBehaviour(**dict(row))
