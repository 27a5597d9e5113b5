"""The demo's financing story, played through the same services and payment rail as
production (the rail is the local fake Stripe when no Stripe key is configured):

17 days ago each SME set up its payouts and SEPA mandate and financed up to two eligible
invoices; payouts were paid; the days then passed one by one (fees accrued every day);
on day 10 one SME repaid an advance early. One SME also financed an invoice for 5 days
whose SEPA debits all bounced: overdue, with late interest, and today the back-office
put it in collection. Today one SME has a supplier paid (a pain.001 file, confirmed by
the platform account's camt.053). The others are active, their statements show each
day's fee, and the ledger balances and agrees with the provider.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from escompte.access.principal import Principal
from escompte.clock import Clock, FrozenClock
from escompte.companies import service as companies_service
from escompte.companies.schemas import DebtorCreate
from escompte.connectors.samples.bank import SampleEntry, camt053_xml, sample_iban
from escompte.eligibility import service as eligibility
from escompte.financing import sepa, service, webhooks
from escompte.financing.rails import StripeRail
from escompte.invoices import service as invoices_service
from escompte.invoices.schemas import InvoiceCreate
from escompte.models import (
    Advance,
    AdvanceStatus,
    Company,
    EligibilityDecision,
    Invoice,
    InvoiceKind,
    KeyMode,
    PaymentOperation,
    PrincipalKind,
    Repayment,
    RepaymentStatus,
)
from escompte.schemas import MoneyIn
from escompte.settings import Settings

DAYS_AGO = 17
EARLY_REPAYMENT_DAY = 10
UNPAID_DAYS = 5  # the advance whose debits bounce
PER_COMPANY = 2


class Provider(Protocol):
    def settle_payouts(self, at: int | None = None) -> list[dict[str, Any]]: ...

    def settle_payment_intents(self, ids: Any = None) -> list[dict[str, Any]]: ...

    def pending_events(self) -> list[dict[str, Any]]: ...

    def fail_payment_intent(self, payment_intent_id: str, code: str = ...) -> None: ...


def _events(session: Session, clock: Clock, rail: StripeRail, provider: Provider) -> None:
    """What Stripe's webhooks would bring, applied in process (dedup makes a later
    delivery of the same events a no-op)."""
    for event in provider.pending_events():
        webhooks.receive(session, clock, rail, event)


def _finance_a_supplier(session: Session, clock: Clock, admin: Principal, settings: Settings) -> str | None:
    """One SME has its supplier paid: the transfer leaves in a pain.001 file and the
    platform account's camt.053 (generated here, as the bank would send it) confirms it."""
    found = session.execute(
        select(EligibilityDecision.invoice_id, EligibilityDecision.max_duration_days)
        .join(Invoice, Invoice.id == EligibilityDecision.invoice_id)
        .where(
            Invoice.kind == InvoiceKind.PAYABLE,
            EligibilityDecision.eligible.is_(True),
            EligibilityDecision.as_of_date == clock.today(),
            EligibilityDecision.max_duration_days >= 10,
        )
        .order_by(EligibilityDecision.max_amount_cents.desc())
        .limit(1)
    ).first()
    row = (str(found[0]), int(found[1])) if found else _supplier_invoice(session, clock, admin)
    if row is None:
        return None
    quote = service.create_quote(
        session, clock, admin, invoice_id=row[0], amount_cents=None, duration_days=min(30, row[1])
    )
    advance_id = service.accept(session, clock, admin, quote.id, supplier_iban=sample_iban(4242))
    advance = service.disburse(session, clock, None, advance_id)  # type: ignore[arg-type]
    file = service.create_payment_file(session, clock, settings, admin)
    op = session.execute(select(PaymentOperation).where(PaymentOperation.file_id == file.id)).scalar_one()
    statement = camt053_xml(
        settings.platform_iban or "",
        [
            SampleEntry(
                booking_date=clock.today(),
                amount_cents=-op.amount_cents,
                bank_code="PMNT/ICDT/ESCT",
                counterparty_name=advance.payee_name,
                counterparty_iban=advance.payee_iban,
                end_to_end_id=sepa.end_to_end_id(op.id),
            )
        ],
        version="001.08",
        account_name=settings.platform_name,
    )
    service.apply_bank_statement(session, clock, admin, statement)
    return advance.id


def _supplier_invoice(session: Session, clock: Clock, admin: Principal) -> tuple[str, int] | None:
    """The demo's books know their suppliers by account only (no SIREN): the first SME
    receives an invoice from another demo SME it buys from, issued after its books end."""
    companies = list(session.execute(select(Company).order_by(Company.created_at)).scalars())
    if len(companies) < 2:
        return None
    buyer, supplier = companies[0], companies[1]
    debtor = companies_service.create_debtor(
        session,
        clock,
        admin,
        DebtorCreate(company=buyer.id, siren=supplier.siren, legal_name=supplier.legal_name),
    )
    invoice = invoices_service.create_invoice(
        session,
        clock,
        admin,
        InvoiceCreate(
            company=buyer.id,
            counterparty=debtor.id,
            kind="payable",  # type: ignore[arg-type]
            number=f"{supplier.legal_name.split()[0].upper()}-{clock.today():%Y%m}-0042",
            issue_date=clock.today(),
            due_date=clock.today() + timedelta(days=45),
            amount=MoneyIn(amount=1_860_000, currency="EUR"),
        ),
    )
    decision = eligibility.decide(session, clock, admin, invoice.id)
    made = decision.decision or eligibility.get_decision(session, admin, decision.decision_id)
    return (invoice.id, made.max_duration_days) if made.eligible and made.max_duration_days >= 10 else None


def seed(
    session: Session,
    now_clock: Clock,
    rail: StripeRail,
    provider: Provider,
    cap_cents: int,
    settings: Settings | None = None,
) -> list[str]:
    admin = Principal(kind=PrincipalKind.ADMIN, key_id="key_demo_seed", mode=KeyMode.TEST)
    clock = FrozenClock(now_clock.now() - timedelta(days=DAYS_AGO))
    advances: list[str] = []
    for company in session.execute(select(Company).order_by(Company.created_at)).scalars():
        if not company.iban:
            continue
        service.set_up_payments(
            session,
            clock,
            rail,
            admin,
            company.id,
            iban=company.iban,
            holder=company.legal_name,
            ip_address="192.0.2.10",
            user_agent="Escompte demo",
        )
        eligibility.decide_batch(session, clock, admin, company_id=company.id)
        candidates = (
            session.execute(
                select(EligibilityDecision)
                .where(
                    EligibilityDecision.company_id == company.id,
                    EligibilityDecision.eligible.is_(True),
                    EligibilityDecision.as_of_date == clock.today(),
                    EligibilityDecision.max_duration_days >= 20,
                )
                .order_by(EligibilityDecision.max_amount_cents.desc())
                .limit(PER_COMPANY)
            )
            .scalars()
            .all()
        )
        for decision in candidates:
            quote = service.create_quote(
                session,
                clock,
                admin,
                invoice_id=decision.invoice_id,
                amount_cents=None,
                duration_days=min(30, decision.max_duration_days),
            )
            advance_id = service.accept(session, clock, admin, quote.id)
            service.disburse(session, clock, rail, advance_id)
            advances.append(advance_id)
    unpaid = _finance_short(session, clock, admin, rail, advances)
    provider.settle_payouts()
    _events(session, clock, rail, provider)
    for day in range(1, DAYS_AGO + 1):
        clock.advance(timedelta(days=1))
        if day == EARLY_REPAYMENT_DAY and advances:
            service.repay(
                session,
                clock,
                rail,
                admin,
                advances[0],
                method="sepa_debit",
                amount_cents=None,
                cap_cents=cap_cents,
            )
            provider.settle_payment_intents()
            _events(session, clock, rail, provider)
        service.run_due(session, clock, rail, cap_cents)
        if unpaid is not None:
            _bounce(session, clock, rail, provider, unpaid)
    if unpaid is not None:
        late = session.get(Advance, unpaid)
        if late is not None and late.status is AdvanceStatus.OVERDUE:
            service.escalate(
                session,
                now_clock,
                admin,
                unpaid,
                AdvanceStatus.IN_COLLECTIONS,
                "Débits SEPA rejetés, relances sans effet : dossier transmis au recouvrement",
            )
        advances.append(unpaid)
    if settings is not None and settings.platform_iban:
        # today: an invoice issued today is after the books' last closed month
        supplier = _finance_a_supplier(session, now_clock, admin, settings)
        if supplier:
            advances.append(supplier)
    # today's decisions see what is financed now
    for company_id in {a.company_id for a in session.execute(select(Advance)).scalars()}:
        eligibility.decide_batch(session, now_clock, admin, company_id=company_id)
    session.flush()
    return advances


def _finance_short(
    session: Session, clock: Clock, admin: Principal, rail: StripeRail, financed: list[str]
) -> str | None:
    """The last SME finances one more invoice, for 5 days (its account will be empty)."""
    taken = {a.invoice_id for a in session.execute(select(Advance)).scalars()}
    decision = (
        session.execute(
            select(EligibilityDecision)
            .join(Company, Company.id == EligibilityDecision.company_id)
            .where(
                EligibilityDecision.eligible.is_(True),
                EligibilityDecision.as_of_date == clock.today(),
                EligibilityDecision.min_duration_days <= UNPAID_DAYS,
                EligibilityDecision.max_duration_days >= UNPAID_DAYS,
                EligibilityDecision.invoice_id.not_in(taken),
            )
            .order_by(Company.created_at.desc(), EligibilityDecision.max_amount_cents)
            .limit(1)
        )
        .scalars()
        .first()
    )
    if decision is None or not financed:
        return None
    quote = service.create_quote(
        session, clock, admin, invoice_id=decision.invoice_id, amount_cents=None, duration_days=UNPAID_DAYS
    )
    advance_id = service.accept(session, clock, admin, quote.id)
    service.disburse(session, clock, rail, advance_id)
    return advance_id


def _bounce(session: Session, clock: Clock, rail: StripeRail, provider: Provider, advance_id: str) -> None:
    """Each SEPA debit of the unpaid advance comes back unpaid (insufficient funds)."""
    pending = session.execute(
        select(PaymentOperation.external_id)
        .join(Repayment, Repayment.operation_id == PaymentOperation.id)
        .where(
            Repayment.advance_id == advance_id,
            Repayment.status == RepaymentStatus.PENDING,
            PaymentOperation.external_id.is_not(None),
        )
    ).scalars()
    ids = [pi for pi in pending if pi]
    for pi in ids:
        provider.fail_payment_intent(pi, "insufficient_funds")
    if ids:
        provider.settle_payment_intents(ids)
        _events(session, clock, rail, provider)


def summary(session: Session) -> dict[str, int]:
    rows = session.execute(select(Advance.status)).scalars().all()
    return {s.value: sum(1 for r in rows if r is s) for s in AdvanceStatus if s in rows}
