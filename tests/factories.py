"""Keyword-only factories writing through the real services."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from sqlalchemy.orm import Session
from stdnum import luhn

from escompte.access import keys
from escompte.access.principal import Principal
from escompte.clock import Clock
from escompte.companies import service as companies
from escompte.companies.schemas import CompanyCreate, DebtorCreate
from escompte.invoices import service as invoices
from escompte.invoices.schemas import InvoiceCreate
from escompte.models import Company, Debtor, Invoice, KeyMode, Partner, PrincipalKind
from escompte.schemas import MoneyIn

_seq = itertools.count(10_000_000)
ADMIN = Principal(kind=PrincipalKind.ADMIN, key_id="key_tests", mode=KeyMode.TEST)


def siren() -> str:
    stem = f"{next(_seq) % 100_000_000:08d}"
    return stem + luhn.calc_check_digit(stem)


def partner(session: Session, clock: Clock, *, name: str = "Partner") -> Partner:
    return keys.create_partner(session, clock, name)


def company(
    session: Session, clock: Clock, *, partner_id: str | None = None, name: str = "PME SAS"
) -> Company:
    return companies.create_company(
        session,
        clock,
        ADMIN,
        CompanyCreate(legal_name=name, siren=siren(), contact_email="treso@pme.fr", partner=partner_id),
    )


def debtor(session: Session, clock: Clock, *, company_id: str, name: str = "Client SA") -> Debtor:
    return companies.create_debtor(
        session, clock, ADMIN, DebtorCreate(company=company_id, siren=siren(), legal_name=name)
    )


def invoice(
    session: Session,
    clock: Clock,
    *,
    company_id: str,
    debtor_id: str,
    number: str | None = None,
    amount_cents: int = 1_200_000,
    issue_date: date | None = None,
    days: int = 45,
) -> Invoice:
    issue = issue_date or clock.today()
    return invoices.create_invoice(
        session,
        clock,
        ADMIN,
        InvoiceCreate(
            company=company_id,
            counterparty=debtor_id,
            kind="receivable",  # type: ignore[arg-type]
            number=number or f"F-{next(_seq)}",
            issue_date=issue,
            due_date=issue + timedelta(days=days),
            amount=MoneyIn(amount=amount_cents, currency="EUR"),
        ),
    )


def key(
    session: Session,
    clock: Clock,
    *,
    kind: PrincipalKind,
    company_id: str | None = None,
    partner_id: str | None = None,
) -> str:
    created = keys.create_key(
        session, clock, kind=kind, mode=KeyMode.TEST, company_id=company_id, partner_id=partner_id
    )
    return created.secret


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
