"""The demo's financing story, played through the same services and payment rail as
production (the rail is the local fake Stripe when no Stripe key is configured):

17 days ago each SME set up its payouts and SEPA mandate and financed up to two eligible
invoices; payouts were paid; the days then passed one by one (fees accrued every day);
on day 10 one SME repaid an advance early. Today the others are active, their statements
show each day's fee, and the ledger balances and agrees with the provider.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from escompte.access.principal import Principal
from escompte.clock import Clock, FrozenClock
from escompte.eligibility import service as eligibility
from escompte.financing import service, webhooks
from escompte.financing.rails import StripeRail
from escompte.models import Advance, AdvanceStatus, Company, EligibilityDecision, KeyMode, PrincipalKind

DAYS_AGO = 17
EARLY_REPAYMENT_DAY = 10
PER_COMPANY = 2


class Provider(Protocol):
    def settle_payouts(self, at: int | None = None) -> list[dict[str, Any]]: ...

    def settle_payment_intents(self, ids: Any = None) -> list[dict[str, Any]]: ...

    def pending_events(self) -> list[dict[str, Any]]: ...


def _events(session: Session, clock: Clock, rail: StripeRail, provider: Provider) -> None:
    """What Stripe's webhooks would bring, applied in process (dedup makes a later
    delivery of the same events a no-op)."""
    for event in provider.pending_events():
        webhooks.receive(session, clock, rail, event)


def seed(
    session: Session, now_clock: Clock, rail: StripeRail, provider: Provider, cap_cents: int
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
            advance = service.accept(session, clock, admin, quote.id)
            service.disburse(session, clock, rail, advance.id)
            advances.append(advance.id)
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
    # today's decisions see what is financed now
    for company_id in {a.company_id for a in session.execute(select(Advance)).scalars()}:
        eligibility.decide_batch(session, now_clock, admin, company_id=company_id)
    session.flush()
    return advances


def summary(session: Session) -> dict[str, int]:
    rows = session.execute(select(Advance.status)).scalars().all()
    return {s.value: sum(1 for r in rows if r is s) for s in AdvanceStatus if s in rows}
