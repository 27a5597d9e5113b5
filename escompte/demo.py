"""The demo: a partner platform and three SMEs whose data arrives as real files —
each SME's FEC, bank statement (camt.053) and the OFX export of its last 60 days,
Factur-X invoices and their e-invoicing statuses, plus SIRENE and BODACC extracts —
through the same import pipeline as a partner's uploads (see escompte.demo_files for
what the files contain); then every open invoice gets its explained eligibility
decision."""

from __future__ import annotations

import io
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from escompte import demo_files
from escompte.access import keys
from escompte.access.principal import Principal
from escompte.clock import Clock
from escompte.companies import service as companies
from escompte.companies.schemas import Address, CompanyCreate
from escompte.connectors import service as imports
from escompte.eligibility import service as eligibility
from escompte.models import Company, ImportStatus, KeyMode, PrincipalKind

DEMO_PARTNER = "Comptanova (demo partner)"


class DemoImportFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoKeys:
    admin: str
    partner: str
    company: str
    company_id: str


def already_seeded(session: Session) -> bool:
    first = demo_files.smes()[0].legal_name
    return session.execute(select(Company.id).where(Company.legal_name == first).limit(1)).first() is not None


def _import(session: Session, clock: Clock, company_id: str | None, file: tuple[str, bytes]) -> None:
    name, content = file
    data_import = imports.receive(
        session, clock, None, company_id=company_id, filename=name, stream=io.BytesIO(content)
    )
    imports.process(session, clock, data_import)
    if data_import.status is not ImportStatus.SUCCEEDED:
        raise DemoImportFailed(f"demo file {name} was refused: {data_import.errors[:3]}")


def seed(session: Session, clock: Clock, rng_seed: int = 2026) -> None:
    partner = keys.create_partner(session, clock, DEMO_PARTNER)
    admin = Principal(kind=PrincipalKind.ADMIN, key_id="key_demo_seed", mode=KeyMode.TEST)
    today = clock.today()
    smes = demo_files.smes(rng_seed)
    sirene, bodacc = demo_files.registry_files(smes, today)
    _import(session, clock, None, sirene)
    _import(session, clock, None, bodacc)
    for index, sme in enumerate(smes):
        company = companies.create_company(
            session,
            clock,
            admin,
            CompanyCreate(
                legal_name=sme.legal_name,
                siren=sme.siren,
                siret=demo_files.siret_of(sme.siren),
                vat_number=demo_files.vat_of(sme.siren),
                iban=sme.iban,
                bic=sme.bic,
                contact_email=f"tresorerie@{sme.legal_name.split()[0].lower()}-demo.fr",
                address=Address(line1=sme.street, postal_code=sme.postal_code, city=sme.city),
                partner=partner.id if index > 0 else None,
            ),
        )
        files = demo_files.files_for(sme, today, seed=rng_seed + index)
        _import(session, clock, company.id, files.fec)
        for invoice in files.facturx:
            _import(session, clock, company.id, invoice)
        _import(session, clock, company.id, files.lifecycle)
        _import(session, clock, company.id, files.camt053)
        _import(session, clock, company.id, files.ofx)
        # every open invoice gets its explained eligibility decision
        eligibility.decide_batch(session, clock, admin, company_id=company.id)


def demo_keys(session: Session, clock: Clock) -> DemoKeys:
    """Fresh keys for this demo run (keys are shown once; the old ones stay valid)."""
    admin = keys.create_key(
        session, clock, kind=PrincipalKind.ADMIN, mode=KeyMode.TEST, description="demo admin"
    )
    company = session.execute(
        select(Company).where(Company.legal_name == demo_files.smes()[1].legal_name)
    ).scalar_one()
    partner_key = keys.create_key(
        session,
        clock,
        kind=PrincipalKind.PARTNER,
        mode=KeyMode.TEST,
        partner_id=company.partner_id,
        description="demo partner",
    )
    company_key = keys.create_key(
        session,
        clock,
        kind=PrincipalKind.COMPANY,
        mode=KeyMode.TEST,
        company_id=company.id,
        description="demo company",
    )
    return DemoKeys(
        admin=admin.secret, partner=partner_key.secret, company=company_key.secret, company_id=company.id
    )
