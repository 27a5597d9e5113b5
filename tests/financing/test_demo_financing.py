"""The demo's financing story runs on the real services and the fake Stripe, and leaves
a balanced ledger that agrees with the provider."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from escompte import demo, demo_financing
from escompte.clock import FrozenClock
from escompte.db import make_session_factory
from escompte.financing import ledger, provider_report, rails
from escompte.financing.stripe_fake import FakeStripe
from escompte.models import Advance, AdvanceStatus, Repayment
from escompte.settings import Settings

pytestmark = pytest.mark.committed


def test_demo_finances_invoices_and_repays_one(
    committed_engine: Engine, pay_settings: Settings, clock: FrozenClock, stripe_fake: FakeStripe
) -> None:
    factory = make_session_factory(committed_engine)
    rail = rails.from_settings(pay_settings)
    with factory() as s, s.begin():
        demo.seed(s, clock)
        advances = demo_financing.seed(
            s, clock, rail, stripe_fake, pay_settings.sepa_debit_cap_cents, pay_settings
        )
    assert len(advances) >= 4
    with factory() as s:
        statuses = demo_financing.summary(s)
        assert statuses.get("repaid") == 1
        # one SME's debits all bounced: overdue past its 5 days, then put in collection
        assert statuses.get("in_collections") == 1
        assert statuses.get("active", 0) == len(advances) - 2
        unpaid = s.execute(select(Advance).where(Advance.status == AdvanceStatus.IN_COLLECTIONS)).scalar_one()
        assert unpaid.duration_days == demo_financing.UNPAID_DAYS
        assert ledger.advance_balances(s, unpaid.id)["late_interest_receivable"] > 0
        failed = s.execute(
            select(func.count()).where(Repayment.advance_id == unpaid.id, Repayment.status == "failed")
        ).scalar_one()
        assert failed >= 2, "presented again after each bounce"
        active = s.execute(select(Advance).where(Advance.status == AdvanceStatus.ACTIVE)).scalars().first()
        assert active is not None and (clock.today() - active.start_date).days == demo_financing.DAYS_AGO
        balances = ledger.advance_balances(s, active.id)
        assert balances["fee_income"] < 0 and balances["fees_receivable"] == -balances["fee_income"]
        assert s.execute(select(func.count()).select_from(Repayment)).scalar_one() >= 1
        payables = s.execute(select(Advance).where(Advance.kind == "payable")).scalars().all()
        assert len(payables) == 1 and payables[0].status is AdvanceStatus.ACTIVE
        assert ledger.trial_balance(s) == {"EUR": 0}
        report = provider_report.reconcile(s, rail)
        assert report.agrees, report.as_dict()
