"""The invoice state machine: one table of allowed transitions, one ``transition_to``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from escompte.errors import InvalidTransition
from escompte.models import Invoice, InvoiceStatus

S = InvoiceStatus

ALLOWED: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    S.OPEN: frozenset({S.PARTIALLY_PAID, S.PAID, S.DISPUTED, S.CANCELLED}),
    S.PARTIALLY_PAID: frozenset({S.PAID, S.DISPUTED}),
    S.DISPUTED: frozenset({S.OPEN, S.PARTIALLY_PAID, S.PAID, S.CANCELLED}),
    S.PAID: frozenset(),
    S.CANCELLED: frozenset(),
}


def can_transition(current: InvoiceStatus, target: InvoiceStatus) -> bool:
    return target in ALLOWED[current]


def transition_to(session: Session, invoice: Invoice, target: InvoiceStatus, at: datetime) -> Invoice:
    """Move ``invoice`` to ``target`` with compare-and-set; a 409 if not allowed or raced."""
    current = invoice.status
    if not can_transition(current, target):
        raise InvalidTransition(
            f"Invoice {invoice.id} is {current}; it cannot become {target}.",
            extra={"current_status": str(current), "requested_status": str(target)},
        )
    result = session.execute(
        update(Invoice)
        .where(Invoice.id == invoice.id, Invoice.status == current)
        .values(status=target, updated_at=at)
        .returning(Invoice.id)
    )
    if result.scalar_one_or_none() is None:
        raise InvalidTransition(f"Invoice {invoice.id} changed while this request ran; read it again.")
    session.refresh(invoice)
    return invoice
