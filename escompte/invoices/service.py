"""Invoices entered through the API (imports add more sources later)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from escompte.access.principal import Principal
from escompte.clock import Clock
from escompte.companies.service import company_for_write, get_debtor
from escompte.errors import Conflict, FieldError, NotFound, ValidationFailed
from escompte.ids import new_id
from escompte.invoices import repository, states
from escompte.invoices.schemas import InvoiceCreate
from escompte.models import Invoice, InvoiceKind, InvoiceStatus


def create_invoice(session: Session, clock: Clock, principal: Principal, data: InvoiceCreate) -> Invoice:
    company = company_for_write(session, principal, data.company)
    if data.due_date < data.issue_date:
        raise ValidationFailed(
            "The due date is before the issue date.",
            [FieldError("due_date", f"must be on or after the issue date {data.issue_date}")],
        )
    try:
        debtor = get_debtor(session, principal, data.counterparty)
    except NotFound:
        raise NotFound(
            f"No such debtor: {data.counterparty}", [FieldError("counterparty", "not found")]
        ) from None
    if debtor.company_id != company.id:
        raise ValidationFailed(
            "The counterparty belongs to another company.",
            [FieldError("counterparty", f"is not a counterparty of {company.id}")],
        )
    existing = repository.invoice_by_number(session, company.id, debtor.id, data.number)
    if existing is not None:
        raise Conflict(
            f"Invoice number {data.number} already exists for this counterparty: {existing.id}.",
            [FieldError("number", "already used for this counterparty", code="duplicate")],
            extra={"existing_id": existing.id},
        )
    now = clock.now()
    invoice = Invoice(
        id=new_id("inv"),
        company_id=company.id,
        debtor_id=debtor.id,
        kind=InvoiceKind(data.kind),
        number=data.number,
        issue_date=data.issue_date,
        due_date=data.due_date,
        amount_cents=data.amount.amount,
        amount_paid_cents=0,
        currency=data.amount.currency,
        status=InvoiceStatus.OPEN,
        created_at=now,
        updated_at=now,
    )
    session.add(invoice)
    session.flush()
    return invoice


def get_invoice(session: Session, principal: Principal, invoice_id: str) -> Invoice:
    invoice = repository.get_visible(session, principal, invoice_id)
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id}")
    return invoice


def cancel_invoice(session: Session, clock: Clock, principal: Principal, invoice_id: str) -> Invoice:
    invoice = repository.get_visible(session, principal, invoice_id, for_update=True)
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id}")
    return states.transition_to(session, invoice, InvoiceStatus.CANCELLED, clock.now())


list_invoices = repository.list_invoices
