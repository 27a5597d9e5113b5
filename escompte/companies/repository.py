from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.models import Company, Debtor


def company_by_siren(session: Session, partner_id: str | None, siren: str) -> Company | None:
    query = select(Company).where(Company.siren == siren)
    query = query.where(Company.partner_id == partner_id if partner_id else Company.partner_id.is_(None))
    return session.execute(query).scalar_one_or_none()


def list_companies(
    session: Session, principal: Principal, *, limit: int, starting_after: str | None
) -> list[Company]:
    query = select(Company).where(visible_company_ids(principal, Company.id))
    if starting_after:
        query = query.where(Company.id < starting_after)
    return list(session.execute(query.order_by(Company.id.desc()).limit(limit)).scalars())


def debtor_by_siren(session: Session, company_id: str, siren: str) -> Debtor | None:
    return session.execute(
        select(Debtor).where(Debtor.company_id == company_id, Debtor.siren == siren)
    ).scalar_one_or_none()


def list_debtors(
    session: Session,
    principal: Principal,
    *,
    company_id: str | None,
    limit: int,
    starting_after: str | None,
) -> list[Debtor]:
    query = select(Debtor).where(visible_company_ids(principal, Debtor.company_id))
    if company_id:
        query = query.where(Debtor.company_id == company_id)
    if starting_after:
        query = query.where(Debtor.id < starting_after)
    return list(session.execute(query.order_by(Debtor.id.desc()).limit(limit)).scalars())
