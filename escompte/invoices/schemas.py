from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field

from escompte.models import InvoiceKind, InvoiceStatus
from escompte.schemas import InputModel, IsoDate, Money, MoneyIn, Resource, money, ref, text


class InvoiceCreate(InputModel):
    company: ref("cmp", "The seller; defaults to the caller's company for company keys.") | None = None  # type: ignore[valid-type]
    counterparty: ref("dbt", "The debtor (receivable) or supplier (payable), a debtor id.")  # type: ignore[valid-type]
    kind: InvoiceKind = Field(description="receivable: the SME is owed; payable: the SME owes.")
    number: text(64) = Field(description="Unique per seller and counterparty.")  # type: ignore[valid-type]
    issue_date: IsoDate
    due_date: IsoDate
    amount: MoneyIn = Field(description="Amount including VAT (TTC).")


class InvoiceOut(Resource):
    object: Literal["invoice"] = "invoice"
    company: str
    counterparty: str
    kind: InvoiceKind
    number: str
    issue_date: date
    due_date: date
    amount: Money
    amount_paid: Money
    amount_due: Money
    status: InvoiceStatus


def invoice_out(i: Any) -> InvoiceOut:
    return InvoiceOut(
        id=i.id,
        created_at=i.created_at,
        company=i.company_id,
        counterparty=i.debtor_id,
        kind=i.kind,
        number=i.number,
        issue_date=i.issue_date,
        due_date=i.due_date,
        amount=money(i.amount_cents, i.currency),
        amount_paid=money(i.amount_paid_cents, i.currency),
        amount_due=money(i.amount_cents - i.amount_paid_cents, i.currency),
        status=i.status,
    )
