"""Companies and debtors: create, read, list — always through the caller's tenancy."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.clock import Clock
from escompte.companies import repository
from escompte.companies.schemas import CompanyCreate, DebtorCreate
from escompte.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from escompte.ids import new_id
from escompte.models import Company, Debtor, Partner, PrincipalKind


def _check_vat(vat: str | None, siren: str) -> None:
    if vat and vat.startswith("FR") and vat[-9:] != siren:
        raise ValidationFailed(
            "The French VAT number does not belong to this SIREN.",
            [FieldError("vat_number", f"FR VAT numbers end with the SIREN ({siren})")],
        )


def create_company(session: Session, clock: Clock, principal: Principal, data: CompanyCreate) -> Company:
    if principal.kind is PrincipalKind.COMPANY:
        raise Forbidden("A company key cannot create companies.")
    if data.siret and data.siret[:9] != data.siren:
        raise ValidationFailed(
            "The SIRET does not belong to this SIREN.",
            [FieldError("siret", f"must start with the SIREN {data.siren}")],
        )
    _check_vat(data.vat_number, data.siren)
    partner_id = principal.partner_id
    if data.partner is not None:
        if not principal.is_admin:
            raise Forbidden("Only admins choose the partner of a company.")
        if session.get(Partner, data.partner) is None:
            raise NotFound(f"No such partner: {data.partner}", [FieldError("partner", "not found")])
        partner_id = data.partner
    existing = repository.company_by_siren(session, partner_id, data.siren)
    if existing is not None:
        raise Conflict(
            f"A company with SIREN {data.siren} already exists: {existing.id}.",
            [FieldError("siren", "already registered", code="duplicate")],
            extra={"existing_id": existing.id},
        )
    address = data.address
    company = Company(
        id=new_id("cmp"),
        partner_id=partner_id,
        legal_name=data.legal_name,
        siren=data.siren,
        siret=data.siret,
        vat_number=data.vat_number,
        iban=data.iban,
        bic=data.bic,
        contact_email=str(data.contact_email),
        address_line1=address.line1 if address else None,
        address_line2=address.line2 if address else None,
        postal_code=address.postal_code if address else None,
        city=address.city if address else None,
        country=address.country if address else None,
        created_at=clock.now(),
    )
    session.add(company)
    session.flush()
    return company


def get_company(session: Session, principal: Principal, company_id: str) -> Company:
    company = session.execute(
        select(Company).where(Company.id == company_id, visible_company_ids(principal, Company.id))
    ).scalar_one_or_none()
    if company is None:
        raise NotFound(f"No such company: {company_id}")
    return company


def company_for_write(
    session: Session, principal: Principal, company_id: str | None, field: str = "company"
) -> Company:
    """The company a write is for: a company key writes for itself; others must name it."""
    if company_id is None:
        if principal.kind is PrincipalKind.COMPANY and principal.company_id:
            company_id = principal.company_id
        else:
            raise ValidationFailed(
                "Say which company this is for.", [FieldError(field, "required", code="missing")]
            )
    company = session.execute(
        select(Company).where(Company.id == company_id, visible_company_ids(principal, Company.id))
    ).scalar_one_or_none()
    if company is None:
        raise NotFound(f"No such company: {company_id}", [FieldError(field, "not found")])
    return company


def list_companies(
    session: Session, principal: Principal, *, limit: int, starting_after: str | None
) -> list[Company]:
    return repository.list_companies(session, principal, limit=limit, starting_after=starting_after)


def create_debtor(session: Session, clock: Clock, principal: Principal, data: DebtorCreate) -> Debtor:
    company = company_for_write(session, principal, data.company)
    _check_vat(data.vat_number, data.siren)
    if data.siren == company.siren:
        raise ValidationFailed(
            "A company cannot be its own debtor.",
            [FieldError("siren", "same SIREN as the seller")],
        )
    existing = repository.debtor_by_siren(session, company.id, data.siren)
    if existing is not None:
        raise Conflict(
            f"This company already has a debtor with SIREN {data.siren}: {existing.id}.",
            [FieldError("siren", "already registered for this company", code="duplicate")],
            extra={"existing_id": existing.id},
        )
    debtor = Debtor(
        id=new_id("dbt"),
        company_id=company.id,
        siren=data.siren,
        legal_name=data.legal_name,
        vat_number=data.vat_number,
        contact_email=str(data.contact_email) if data.contact_email else None,
        payment_terms_days=data.payment_terms_days,
        created_at=clock.now(),
    )
    session.add(debtor)
    session.flush()
    return debtor


def get_debtor(session: Session, principal: Principal, debtor_id: str) -> Debtor:
    debtor = session.execute(
        select(Debtor).where(Debtor.id == debtor_id, visible_company_ids(principal, Debtor.company_id))
    ).scalar_one_or_none()
    if debtor is None:
        raise NotFound(f"No such debtor: {debtor_id}")
    return debtor


def list_debtors(
    session: Session,
    principal: Principal,
    *,
    company_id: str | None,
    limit: int,
    starting_after: str | None,
) -> list[Debtor]:
    return repository.list_debtors(
        session, principal, company_id=company_id, limit=limit, starting_after=starting_after
    )
