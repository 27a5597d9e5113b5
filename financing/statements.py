"""An advance's statement: what was lent, the fee of each day, what was repaid, what is
owed — as JSON and as a readable HTML document, both derived from the same figures
(the day-by-day schedule of ``pricing`` and the advance's ledger postings)."""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from escompte.clock import Clock
from escompte.financing import ledger, pricing, service
from escompte.financing.schemas import rate
from escompte.models import Advance, AdvanceStatus, Company, Event, Invoice, Repayment, RepaymentStatus
from escompte.money import format_cents


def statement(session: Session, clock: Clock, advance: Advance) -> dict[str, Any]:
    repayments = list(
        session.execute(
            select(Repayment).where(Repayment.advance_id == advance.id).order_by(Repayment.id)
        ).scalars()
    )
    events = list(
        session.execute(select(Event).where(Event.object_id == advance.id).order_by(Event.id)).scalars()
    )
    disbursed = advance.status not in (
        AdvanceStatus.ACCEPTED,
        AdvanceStatus.DISBURSING,
        AdvanceStatus.DISBURSEMENT_FAILED,
    )
    through = clock.today()
    if advance.fees_stop_on is not None:
        through = (
            advance.fees_stop_on
            if advance.status is AdvanceStatus.REPAID
            else min(through, advance.fees_stop_on)
        )
    days = (
        pricing.schedule(service._terms(advance), service.principal_repaid(session, advance.id), through)
        if disbursed
        else []
    )
    balances = ledger.advance_balances(session, advance.id)
    o = service.owed(session, advance)
    succeeded = [r for r in repayments if r.status is RepaymentStatus.SUCCEEDED]
    c = advance.currency
    return {
        "object": "advance_statement",
        "advance": advance.id,
        "company": advance.company_id,
        "invoice": advance.invoice_id,
        "status": advance.status.value,
        "currency": c,
        "as_of": clock.today().isoformat(),
        "principal": advance.principal_cents,
        "daily_rate": rate(advance.daily_rate),
        "late_daily_rate": rate(advance.late_daily_rate),
        "min_days": advance.min_days,
        "start_date": advance.start_date.isoformat(),
        "maturity_date": advance.maturity_date.isoformat(),
        "fees_stop_on": advance.fees_stop_on.isoformat() if advance.fees_stop_on else None,
        "days_used": len(days),
        "days": [
            {
                "date": d.on.isoformat(),
                "principal_outstanding": d.principal_cents,
                "fee": rate(d.fee),
                "late_interest": rate(d.late_interest),
                "fees_to_date": d.fee_total_cents,
                "late_interest_to_date": d.late_total_cents,
            }
            for d in days
        ],
        "totals": {
            "lent": advance.principal_cents if disbursed else 0,
            "fees_charged": -balances.get("fee_income", 0),
            "late_interest_charged": -balances.get("late_interest_income", 0),
            "repaid": sum(r.amount_cents for r in succeeded),
            "repaid_principal": sum(r.principal_cents for r in succeeded),
            "repaid_fees": sum(r.fee_cents for r in succeeded),
            "repaid_late_interest": sum(r.late_interest_cents for r in succeeded),
            "surplus_owed_to_company": sum(r.surplus_cents for r in succeeded),
            "owed": o.total_cents,
            "being_collected": o.pending_cents,
        },
        "repayments": [
            {
                "id": r.id,
                "source": r.source.value,
                "status": r.status.value,
                "amount": r.amount_cents,
                "late_interest": r.late_interest_cents,
                "fees": r.fee_cents,
                "principal": r.principal_cents,
                "surplus": r.surplus_cents,
                "value_date": r.value_date.isoformat(),
                "reversible_until": r.reversible_until.isoformat() if r.reversible_until else None,
            }
            for r in repayments
        ],
        "events": [{"type": e.type, "at": e.created_at.isoformat(), "data": e.data} for e in events],
    }


def _eur(cents: int) -> str:
    return html.escape(format_cents(cents))


def render_html(session: Session, data: dict[str, Any]) -> str:
    company = session.get(Company, data["company"])
    invoice = session.get(Invoice, data["invoice"])
    t = data["totals"]
    rows = "\n".join(
        f"<tr><td>{d['date']}</td><td class=n>{_eur(d['principal_outstanding'])}</td>"
        f"<td class=n>{html.escape(d['fee'])}</td><td class=n>{_eur(d['fees_to_date'])}</td>"
        f"<td class=n>{_eur(d['late_interest_to_date'])}</td></tr>"
        for d in data["days"]
    )
    repayments = "\n".join(
        f"<tr><td>{r['value_date']}</td><td>{html.escape(r['source'])}</td><td>{html.escape(r['status'])}</td>"
        f"<td class=n>{_eur(r['amount'])}</td><td class=n>{_eur(r['fees'] + r['late_interest'])}</td>"
        f"<td class=n>{_eur(r['principal'])}</td></tr>"
        for r in data["repayments"]
    )
    events = "\n".join(
        f"<li>{html.escape(e['at'][:19].replace('T', ' '))} — {html.escape(e['type'])}</li>"
        for e in data["events"]
    )
    name = html.escape(company.legal_name if company else data["company"])
    number = html.escape(invoice.number if invoice else data["invoice"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Statement {data["advance"]}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}}.n{{text-align:right}}
dl{{display:grid;grid-template-columns:max-content auto;gap:2px 16px}}</style></head><body>
<h1>Advance statement</h1>
<p>{name} — invoice {number} — advance <code>{data["advance"]}</code>, as of {data["as_of"]}</p>
<dl>
<dt>Status</dt><dd>{html.escape(data["status"])}</dd>
<dt>Lent</dt><dd>{_eur(data["principal"])} on {data["start_date"]}</dd>
<dt>Daily rate</dt><dd>{html.escape(data["daily_rate"])} per day (at least {data["min_days"]} days)</dd>
<dt>Maturity</dt><dd>{data["maturity_date"]}</dd>
<dt>Days used</dt><dd>{data["days_used"]}</dd>
<dt>Fees charged</dt><dd>{_eur(t["fees_charged"])}</dd>
<dt>Late interest</dt><dd>{_eur(t["late_interest_charged"])}</dd>
<dt>Repaid</dt><dd>{_eur(t["repaid"])}</dd>
<dt>Owed now</dt><dd><strong>{_eur(t["owed"])}</strong> (being collected: {_eur(t["being_collected"])})</dd>
</dl>
<h2>Day by day</h2>
<table><tr><th>Day</th><th>Outstanding</th><th>Fee of the day (cents)</th><th>Fees to date</th>
<th>Late interest to date</th></tr>
{rows}
</table>
<h2>Repayments</h2>
<table><tr><th>Value date</th><th>How</th><th>Status</th><th>Amount</th><th>Fees and interest</th>
<th>Principal</th></tr>
{repayments}
</table>
<h2>History</h2><ul>{events}</ul>
</body></html>
"""
