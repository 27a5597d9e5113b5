"""Invoices and debtors found in imported files (books, e-invoices): one way to match
them with what is already known, and to refuse silent overwrites.

- A counterparty is matched by SIREN, else by its auxiliary account in the books; a
  SIREN learnt later (from an e-invoice) is added to the debtor found by account.
- An invoice is matched by (seller, counterparty, number). The same facts again →
  unchanged. A different amount, kind or issue date → an error in the file's report:
  updates are explicit, never silent. A confirmed due date replaces an estimated one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from sqlalchemy import select

from escompte.connectors.base import ImportContext
from escompte.errors import invariant
from escompte.ids import new_id
from escompte.models import (
    Debtor,
    DocumentType,
    Invoice,
    InvoiceKind,
    InvoiceSource,
    InvoiceStatus,
)
from escompte.money import format_cents

DEFAULT_PAYMENT_TERMS_DAYS = 30  # L441-10: 30 days when nothing is agreed (see docs)

Change = Literal["created", "updated", "unchanged", "refused"]


def find_or_create_debtor(
    ctx: ImportContext,
    *,
    legal_name: str,
    siren: str | None = None,
    aux_account_num: str | None = None,
    vat_number: str | None = None,
) -> tuple[Debtor, Change]:
    company = ctx.company
    invariant(company is not None, "debtors belong to a company")
    assert company is not None
    invariant(bool(siren or aux_account_num), "a debtor needs a SIREN or an account")
    session = ctx.session
    debtor: Debtor | None = None
    if siren:
        debtor = session.execute(
            select(Debtor).where(Debtor.company_id == company.id, Debtor.siren == siren)
        ).scalar_one_or_none()
    if debtor is None and aux_account_num:
        debtor = session.execute(
            select(Debtor).where(Debtor.company_id == company.id, Debtor.aux_account_num == aux_account_num)
        ).scalar_one_or_none()
    if debtor is not None:
        changed = False
        if siren and debtor.siren is None:
            debtor.siren = siren
            changed = True
        if aux_account_num and debtor.aux_account_num is None:
            debtor.aux_account_num = aux_account_num
            changed = True
        if vat_number and debtor.vat_number is None:
            debtor.vat_number = vat_number
            changed = True
        return debtor, "updated" if changed else "unchanged"
    debtor = Debtor(
        id=new_id("dbt"),
        company_id=company.id,
        siren=siren,
        aux_account_num=aux_account_num,
        legal_name=legal_name[:200] or (aux_account_num or siren or "?"),
        vat_number=vat_number,
        payment_terms_days=DEFAULT_PAYMENT_TERMS_DAYS,
        created_at=ctx.clock.now(),
    )
    session.add(debtor)
    session.flush()
    return debtor, "created"


@dataclass(frozen=True)
class InvoiceFacts:
    kind: InvoiceKind
    number: str
    issue_date: date
    due_date: date | None  # None: estimated from the debtor's payment terms
    amount_cents: int  # incl. VAT, > 0 (a credit note's amount is positive too)
    currency: str
    source: InvoiceSource
    document_type: DocumentType = DocumentType.INVOICE
    net_cents: int | None = None
    vat_cents: int | None = None
    payment_iban: str | None = None


def upsert_invoice(
    ctx: ImportContext,
    debtor: Debtor,
    facts: InvoiceFacts,
    *,
    line: int | None = None,
    path: str | None = None,
) -> tuple[Invoice | None, Change]:
    company = ctx.company
    assert company is not None
    session = ctx.session
    due_date = facts.due_date
    estimated = due_date is None
    if due_date is None:
        due_date = facts.issue_date + timedelta(days=debtor.payment_terms_days)
    existing = session.execute(
        select(Invoice).where(
            Invoice.company_id == company.id,
            Invoice.debtor_id == debtor.id,
            Invoice.number == facts.number,
        )
    ).scalar_one_or_none()
    if existing is None:
        if due_date < facts.issue_date:
            ctx.issues.add(
                f"invoice {facts.number}: due date {due_date} is before issue date {facts.issue_date}",
                line=line,
                path=path,
                field="due_date",
            )
            return None, "refused"
        now = ctx.clock.now()
        invoice = Invoice(
            id=new_id("inv"),
            company_id=company.id,
            debtor_id=debtor.id,
            kind=facts.kind,
            number=facts.number,
            issue_date=facts.issue_date,
            due_date=due_date,
            due_date_estimated=estimated,
            amount_cents=facts.amount_cents,
            amount_paid_cents=0,
            currency=facts.currency,
            status=InvoiceStatus.OPEN,
            source=facts.source,
            document_type=facts.document_type,
            net_cents=facts.net_cents,
            vat_cents=facts.vat_cents,
            payment_iban=facts.payment_iban,
            import_id=ctx.data_import.id,
            created_at=now,
            updated_at=now,
        )
        session.add(invoice)
        return invoice, "created"
    differences = []
    if existing.amount_cents != facts.amount_cents or existing.currency != facts.currency:
        differences.append(
            f"amount {format_cents(existing.amount_cents, existing.currency)} known, "
            f"{format_cents(facts.amount_cents, facts.currency)} in this file"
        )
    if existing.kind != facts.kind:
        differences.append(f"kind {existing.kind} known, {facts.kind} in this file")
    if existing.issue_date != facts.issue_date:
        differences.append(f"issue date {existing.issue_date} known, {facts.issue_date} in this file")
    if differences:
        ctx.issues.add(
            f"invoice {facts.number} ({existing.id}) already exists with other facts: "
            + "; ".join(differences)
            + ". Escompte never overwrites silently: correct the file or update the invoice explicitly.",
            line=line,
            path=path,
            field="number",
        )
        return existing, "refused"
    changed = False
    if not estimated and (existing.due_date_estimated or existing.due_date != due_date):
        if existing.due_date_estimated:
            existing.due_date = due_date
            existing.due_date_estimated = False
            changed = True
        else:
            ctx.issues.add(
                f"invoice {facts.number} ({existing.id}) already has due date {existing.due_date}; "
                f"this file says {due_date}.",
                line=line,
                path=path,
                field="due_date",
            )
            return existing, "refused"
    for attr in ("net_cents", "vat_cents", "payment_iban"):
        value = getattr(facts, attr)
        if value is not None and getattr(existing, attr) is None:
            setattr(existing, attr, value)
            changed = True
    if changed:
        existing.updated_at = ctx.clock.now()
        return existing, "updated"
    return existing, "unchanged"
