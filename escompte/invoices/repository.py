from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.models import LIVE_STATUSES, Advance, EligibilityDecision, Invoice, InvoiceKind, InvoiceStatus

# What Escompte records without deciding again and that ends any chance of financing:
# decisions are made on demand, so the latest one may predate these.
_CLOSED = (InvoiceStatus.PAID, InvoiceStatus.CANCELLED)


def invoice_by_number(session: Session, company_id: str, debtor_id: str, number: str) -> Invoice | None:
    return session.execute(
        select(Invoice).where(
            Invoice.company_id == company_id,
            Invoice.debtor_id == debtor_id,
            Invoice.number == number,
        )
    ).scalar_one_or_none()


def get_visible(
    session: Session, principal: Principal, invoice_id: str, *, for_update: bool = False
) -> Invoice | None:
    query = select(Invoice).where(
        Invoice.id == invoice_id, visible_company_ids(principal, Invoice.company_id)
    )
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def list_invoices(
    session: Session,
    principal: Principal,
    *,
    company_id: str | None,
    counterparty_id: str | None,
    kind: InvoiceKind | None,
    status: InvoiceStatus | None,
    eligible: bool | None = None,
    limit: int,
    starting_after: str | None,
) -> list[Invoice]:
    query = select(Invoice).where(visible_company_ids(principal, Invoice.company_id))
    if company_id:
        query = query.where(Invoice.company_id == company_id)
    if counterparty_id:
        query = query.where(Invoice.debtor_id == counterparty_id)
    if kind:
        query = query.where(Invoice.kind == kind)
    if status:
        query = query.where(Invoice.status == status)
    if eligible is not None:
        # as last decided, unless the invoice was paid, cancelled or financed since; an
        # invoice never decided is in neither list
        latest = (
            select(EligibilityDecision.eligible)
            .where(EligibilityDecision.invoice_id == Invoice.id)
            .order_by(EligibilityDecision.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        holds = _still_financeable()
        if eligible:
            query = query.where(latest.is_(True), holds)
        else:
            query = query.where(or_(latest.is_(False), and_(latest.is_not(None), not_(holds))))
    if starting_after:
        query = query.where(Invoice.id < starting_after)
    return list(session.execute(query.order_by(Invoice.id.desc()).limit(limit)).scalars())


def _still_financeable() -> ColumnElement[bool]:
    """The invoice is neither closed (paid, cancelled) nor financed by a live advance."""
    financed = exists().where(Advance.invoice_id == Invoice.id, Advance.status.in_(LIVE_STATUSES))
    return and_(Invoice.status.not_in(_CLOSED), not_(financed))
