from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.models import Company, Debtor, Invoice, Partner, PrincipalKind
from tests import factories as f


@dataclass
class Tenant:
    company: Company
    debtor: Debtor
    invoice: Invoice
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return f.auth(self.key)


@dataclass
class World:
    """Two partners; company A and B under partner 1, C under partner 2, D direct."""

    admin_key: str
    partner1: Partner
    partner2: Partner
    partner1_key: str
    partner2_key: str
    a: Tenant
    b: Tenant
    c: Tenant


def _tenant(session: Session, clock: FrozenClock, partner_id: str | None, name: str) -> Tenant:
    company = f.company(session, clock, partner_id=partner_id, name=name)
    debtor = f.debtor(session, clock, company_id=company.id)
    invoice = f.invoice(session, clock, company_id=company.id, debtor_id=debtor.id)
    key = f.key(session, clock, kind=PrincipalKind.COMPANY, company_id=company.id)
    return Tenant(company, debtor, invoice, key)


@pytest.fixture
def world(session: Session, clock: FrozenClock) -> World:
    p1 = f.partner(session, clock, name="Partner One")
    p2 = f.partner(session, clock, name="Partner Two")
    w = World(
        admin_key=f.key(session, clock, kind=PrincipalKind.ADMIN),
        partner1=p1,
        partner2=p2,
        partner1_key=f.key(session, clock, kind=PrincipalKind.PARTNER, partner_id=p1.id),
        partner2_key=f.key(session, clock, kind=PrincipalKind.PARTNER, partner_id=p2.id),
        a=_tenant(session, clock, p1.id, "Alpha SAS"),
        b=_tenant(session, clock, p1.id, "Beta SARL"),
        c=_tenant(session, clock, p2.id, "Gamma SA"),
    )
    session.commit()
    return w
