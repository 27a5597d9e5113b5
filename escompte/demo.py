"""The demo dataset: a partner platform, SMEs with their customers and a year of invoices.

Everything goes through the same services as the API (validation included). Later
issues extend it with bank and accounting files, advances and collection cases.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from schwifty import IBAN
from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum import luhn
from stdnum.fr import siren as std_siren

from escompte.access import keys
from escompte.access.principal import Principal
from escompte.clock import Clock
from escompte.companies import service as companies
from escompte.companies.schemas import Address, CompanyCreate, DebtorCreate, valid_siren
from escompte.invoices import service as invoices
from escompte.invoices import states
from escompte.invoices.schemas import InvoiceCreate
from escompte.models import Company, Invoice, InvoiceKind, InvoiceStatus, KeyMode, PrincipalKind
from escompte.schemas import MoneyIn

DEMO_PARTNER = "Comptanova (demo partner)"

SMES = [
    # legal name, siren stem, city, postal code, street, bank code, sector
    ("Atelier Lumière SAS", "81234567", "Lyon", "69002", "12 rue de la République", "30004"),
    ("Boulangeries Martin SARL", "52398741", "Nantes", "44000", "3 quai de la Fosse", "10278"),
    ("TechNord Solutions SAS", "89012345", "Lille", "59000", "45 rue Nationale", "30003"),
]

DEBTORS = [
    ("Groupe Hôtelier Bellecour SA", "40512378", 45),
    ("Distribution Rhône-Alpes SAS", "38274619", 60),
    ("Cabinet Architectes Vauban SARL", "49182736", 30),
    ("Transports Loire Atlantique SA", "33019284", 45),
    ("Clinique Saint-Roch SAS", "77483920", 30),
    ("Industries Métallurgiques du Nord SA", "31275648", 60),
    ("Restaurants Le Comptoir SAS", "85102937", 30),
    ("Mairie-Services Délégués SEM", "42918374", 60),
]


@dataclass(frozen=True)
class DemoKeys:
    admin: str
    partner: str
    company: str
    company_id: str


def already_seeded(session: Session) -> bool:
    return (
        session.execute(select(Company.id).where(Company.legal_name == SMES[0][0]).limit(1)).first()
        is not None
    )


def seed(session: Session, clock: Clock, rng_seed: int = 2026) -> None:
    rng = random.Random(rng_seed)
    partner = keys.create_partner(session, clock, DEMO_PARTNER)
    admin = Principal(kind=PrincipalKind.ADMIN, key_id="key_demo_seed", mode=KeyMode.TEST)
    today = clock.today()
    for index, (name, stem, city, postal, street, bank) in enumerate(SMES):
        siren = valid_siren(stem)
        iban = IBAN.generate("FR", bank_code=bank + "00001", account_code=f"{rng.randrange(10**10):011d}")
        company = companies.create_company(
            session,
            clock,
            admin,
            CompanyCreate(
                legal_name=name,
                siren=siren,
                siret=_siret(siren, rng),
                vat_number=_fr_vat(siren),
                iban=str(iban.compact),
                contact_email=f"tresorerie@{name.split()[0].lower()}-demo.fr",
                address=Address(line1=street, postal_code=postal, city=city),
                partner=partner.id if index > 0 else None,
            ),
        )
        company_principal = Principal(
            kind=PrincipalKind.COMPANY,
            key_id="key_demo_seed",
            mode=KeyMode.TEST,
            company_id=company.id,
        )
        chosen = rng.sample(DEBTORS, k=5)
        for dname, dstem, terms in chosen:
            debtor = companies.create_debtor(
                session,
                clock,
                company_principal,
                DebtorCreate(
                    siren=valid_siren(dstem),
                    legal_name=dname,
                    payment_terms_days=terms,
                    contact_email=f"comptabilite@{dname.split()[0].lower()}-demo.fr",
                    vat_number=_fr_vat(valid_siren(dstem)),
                ),
            )
            for n in range(rng.randint(6, 10)):
                issue = today - timedelta(days=rng.randint(0, 330))
                amount = rng.choice([rng.randint(800, 9_000), rng.randint(9_000, 60_000)]) * 100
                invoice = invoices.create_invoice(
                    session,
                    clock,
                    company_principal,
                    InvoiceCreate(
                        counterparty=debtor.id,
                        kind=InvoiceKind.RECEIVABLE,
                        number=f"F{issue:%Y}-{index + 1}{n:02d}{rng.randint(100, 999)}",
                        issue_date=issue,
                        due_date=issue + timedelta(days=terms),
                        amount=MoneyIn(amount=amount, currency="EUR"),
                    ),
                )
                _age(session, clock, invoice, rng)
        # one supplier invoice per SME, to show payables financing
        supplier = companies.create_debtor(
            session,
            clock,
            company_principal,
            DebtorCreate(
                siren=valid_siren(f"6{index}918273"),
                legal_name="Fournitures Pro Ouest SAS",
                payment_terms_days=45,
            ),
        )
        invoices.create_invoice(
            session,
            clock,
            company_principal,
            InvoiceCreate(
                counterparty=supplier.id,
                kind=InvoiceKind.PAYABLE,
                number=f"FPO-{index}4471",
                issue_date=today - timedelta(days=10),
                due_date=today + timedelta(days=35),
                amount=MoneyIn(amount=1_845_600, currency="EUR"),
            ),
        )


def _age(session: Session, clock: Clock, invoice: Invoice, rng: random.Random) -> None:
    """Past-due invoices were mostly paid; a few are partly paid, disputed or cancelled."""
    if invoice.due_date >= clock.today():
        return
    roll = rng.random()
    if roll < 0.70:
        invoice.amount_paid_cents = invoice.amount_cents
        states.transition_to(session, invoice, InvoiceStatus.PAID, clock.now())
    elif roll < 0.80:
        invoice.amount_paid_cents = invoice.amount_cents // 2
        states.transition_to(session, invoice, InvoiceStatus.PARTIALLY_PAID, clock.now())
    elif roll < 0.85:
        states.transition_to(session, invoice, InvoiceStatus.DISPUTED, clock.now())
    elif roll < 0.88:
        states.transition_to(session, invoice, InvoiceStatus.CANCELLED, clock.now())


def _siret(siren: str, rng: random.Random) -> str:
    """The head office's SIRET: SIREN + 4-digit establishment number + Luhn digit."""
    stem = f"{siren}{rng.randrange(1, 100):04d}"
    return stem + luhn.calc_check_digit(stem)


def _fr_vat(siren: str) -> str:
    return "FR" + str(std_siren.to_tva(siren))


def demo_keys(session: Session, clock: Clock) -> DemoKeys:
    """Fresh keys for this demo run (keys are shown once; the old ones stay valid)."""
    admin = keys.create_key(
        session, clock, kind=PrincipalKind.ADMIN, mode=KeyMode.TEST, description="demo admin"
    )
    company = session.execute(select(Company).where(Company.legal_name == SMES[1][0])).scalar_one()
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
