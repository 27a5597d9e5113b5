"""Repaying in every way an SME or a debtor does, late or early, fully or partly, and
what the ledger, the provider and the SME's mailbox see."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from escompte.financing import pricing, tasks
from escompte.models import Advance, Event
from tests.financing.conftest import Env, advance, days, quote, seller, set_up_payments
from tests.financing.test_advances import _deliver, _disbursed, _ledger_balanced, _sweep

pytestmark = pytest.mark.committed


def _problem(r: Any) -> str:
    return str(r.json()["type"]).rsplit(":", 1)[-1]


def test_partial_early_repayment_pays_fees_first_then_principal(env: Env) -> None:
    who = seller(env, amount_cents=1_000_000)
    adv = _disbursed(env, who)
    rate = Decimal(str(adv["daily_rate"]))
    days(env, 10)
    r = env.http.post(
        f"/v1/advances/{adv['id']}/repayments",
        headers=who.headers,
        json={"amount": {"amount": 400_000, "currency": "EUR"}},
    )
    assert r.status_code == 201, r.text
    env.fake.settle_payment_intents()
    _deliver(env)
    (rep,) = env.http.get(f"/v1/advances/{adv['id']}/repayments", headers=who.headers).json()["data"]
    fee_10 = pricing.fee_cents(1_000_000, rate, 10)
    assert rep["fees"]["amount"] == fee_10
    assert rep["principal"]["amount"] == 400_000 - fee_10
    assert rep["reversible_until"] is not None  # SEPA Core: 8 weeks
    remaining = 1_000_000 - (400_000 - fee_10)
    days(env, 5)
    _sweep(env)
    a = advance(env, who, str(adv["id"]))
    # days 11-15 on what is left of the principal
    assert a["owed"]["fees"]["amount"] == pricing.fee_cents(remaining, rate, 5)
    assert a["owed"]["principal"]["amount"] == remaining
    assert a["status"] == "active"
    _ledger_balanced(env)


def test_notified_mode_surplus_goes_back_to_the_sme(env: Env) -> None:
    who = seller(env, amount_cents=1_000_000)
    adv = _disbursed(env, who)
    days(env, 20)
    r = env.http.post(
        f"/v1/advances/{adv['id']}/repayments",
        headers={"Authorization": f"Bearer {who.admin_key}"},
        json={"method": "collection_account", "amount": {"amount": 1_000_000, "currency": "EUR"}},
    )
    assert r.status_code == 201, r.text
    (rep,) = r.json()["data"]
    fee = pricing.fee_cents(1_000_000, Decimal(str(adv["daily_rate"])), 20)
    # the debtor paid the invoice's 10,000 EUR: the advance took 10,000 EUR + 20 days of fees
    assert rep["status"] == "succeeded"
    assert rep["fees"]["amount"] == fee
    assert rep["principal"]["amount"] == 1_000_000 - fee
    a = advance(env, who, str(adv["id"]))
    assert a["status"] == "active" and a["owed"]["principal"]["amount"] == fee
    # an SME key cannot claim money arrived on the collection account
    r = env.http.post(
        f"/v1/advances/{adv['id']}/repayments",
        headers=who.headers,
        json={"method": "collection_account", "amount": {"amount": 100, "currency": "EUR"}},
    )
    assert r.status_code == 403
    _ledger_balanced(env)


def test_collection_account_surplus(env: Env) -> None:
    who = seller(env, amount_cents=1_200_000)
    q = quote(env, who, amount={"amount": 600_000, "currency": "EUR"})
    set_up_payments(env, who)
    r = env.http.post("/v1/advances", headers=who.headers, json={"quote": q["id"]})
    env.fake.settle_payouts()
    _deliver(env)
    adv = r.json()
    days(env, 10)
    r = env.http.post(
        f"/v1/advances/{adv['id']}/repayments",
        headers={"Authorization": f"Bearer {who.admin_key}"},
        json={"method": "collection_account", "amount": {"amount": 1_200_000, "currency": "EUR"}},
    )
    (rep,) = r.json()["data"]
    fee = pricing.fee_cents(600_000, Decimal(str(adv["daily_rate"])), 10)
    assert rep["surplus"]["amount"] == 1_200_000 - 600_000 - fee
    assert advance(env, who, adv["id"])["status"] == "repaid"
    # the surplus went back to the SME: transfer to its account, payout to its IBAN
    surplus = 1_200_000 - 600_000 - fee
    transfers = sorted(t["amount"] for t in env.fake.objects("transfer"))
    assert transfers == sorted([600_000, surplus])
    accounts = env.http.get("/v1/ledger/accounts", headers=who.headers).json()["data"]
    assert {a["code"]: a["balance"] for a in accounts}["payable_to_company"] == 0
    env.fake.settle_payouts()
    _deliver(env)
    assert advance(env, who, adv["id"])["status"] == "repaid"
    _ledger_balanced(env)


def test_overdue_accrues_late_interest_and_a_bounced_debit_reopens(env: Env) -> None:
    who = seller(env, amount_cents=500_000, days=60)
    adv = _disbursed(env, who, adv_days=10)
    rate, late = Decimal(str(adv["daily_rate"])), Decimal(str(adv["late_daily_rate"]))
    env.fake.fail_next_payment_intent("insufficient_funds")
    days(env, 9)
    _sweep(env)  # debit at maturity
    env.fake.settle_payment_intents()
    _deliver(env)
    a = advance(env, who, str(adv["id"]))
    assert a["owed"]["being_collected"]["amount"] == 0  # the debit bounced
    with env.session() as s:
        types = set(s.execute(select(Event.type).where(Event.object_id == adv["id"])).scalars())
    assert "advance.repayment_failed" in types
    days(env, 1)
    _sweep(env)  # not presented again at once
    assert len(env.fake.objects("payment_intent")) == 1
    days(env, 3)  # 13 days: 3 past maturity, 3 days after the bounce
    _sweep(env)
    assert len(env.fake.objects("payment_intent")) == 2  # presented again
    a = advance(env, who, str(adv["id"]))
    assert a["status"] == "overdue"
    assert a["owed"]["late_interest"]["amount"] == pricing.fee_cents(500_000, late, 3)
    assert a["owed"]["fees"]["amount"] == pricing.fee_cents(500_000, rate, 13)
    _ledger_balanced(env)


def test_quote_whose_eligibility_changed_is_refused_with_the_reason(env: Env) -> None:
    who = seller(env)
    set_up_payments(env, who)
    q = quote(env, who)
    r = env.http.get("/v1/eligibility/policy", headers={"Authorization": f"Bearer {who.admin_key}"})
    settings = r.json()["settings"]
    settings["debtor_limit_cents"] = 800_000
    r = env.http.post(
        "/v1/eligibility/policy",
        headers={"Authorization": f"Bearer {who.admin_key}"},
        json={"settings": settings, "note": "lower buyer limit"},
    )
    assert r.status_code == 201, r.text
    r = env.http.post("/v1/advances", headers=who.headers, json={"quote": q["id"]})
    assert r.status_code == 409 and _problem(r) == "eligibility_changed"
    assert "800000" in r.json()["detail"]
    with env.session() as s:
        assert s.execute(select(func.count()).select_from(Advance)).scalar_one() == 0
    assert env.fake.performed[("POST", "/v1/transfers")] == 0


def test_expired_quote_and_replayed_acceptance(env: Env) -> None:
    who = seller(env, invoices=1)
    set_up_payments(env, who)
    q = quote(env, who)
    headers = {**who.headers, "Idempotency-Key": "accept-1"}
    first = env.http.post("/v1/advances", headers=headers, json={"quote": q["id"]})
    again = env.http.post("/v1/advances", headers=headers, json={"quote": q["id"]})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    other = env.http.post("/v1/advances", headers=who.headers, json={"quote": q["id"]})
    assert other.status_code == 409 and _problem(other) == "quote_already_accepted"
    assert other.json()["advance"] == first.json()["id"]
    assert env.fake.performed[("POST", "/v1/payouts")] == 1

    late = seller(env)
    set_up_payments(env, late)
    q2 = quote(env, late)
    days(env, 1)
    r = env.http.post("/v1/advances", headers=late.headers, json={"quote": q2["id"]})
    assert r.status_code == 409 and _problem(r) == "quote_expired"


def test_maturity_notice_is_emailed_a_week_before(env: Env, smtp_sink: Any) -> None:
    who = seller(env, amount_cents=300_000)
    adv = _disbursed(env, who, adv_days=30)
    settings = env.settings.model_copy(update={"smtp_url": smtp_sink.url})
    with env.session() as s, s.begin():
        assert tasks.notices(s, env.clock, settings) == 0
    days(env, 23)
    with env.session() as s, s.begin():
        assert tasks.notices(s, env.clock, settings) == 1
    with env.session() as s, s.begin():
        assert tasks.notices(s, env.clock, settings) == 0  # once
    (message,) = smtp_sink.messages
    assert adv["id"] in message["Subject"]
    body = message.get_payload()
    fee = pricing.fee_cents(300_000, Decimal(str(adv["daily_rate"])), 30)
    from escompte.money import format_cents

    assert format_cents(300_000 + fee) in body


def test_provider_report_agrees_with_the_ledger(env: Env) -> None:
    who = seller(env, amount_cents=400_000)
    adv = _disbursed(env, who)
    days(env, 10)
    env.http.post(f"/v1/advances/{adv['id']}/repayments", headers=who.headers, json={})
    env.fake.settle_payment_intents()
    _deliver(env)
    (pi,) = env.fake.objects("payment_intent")
    env.fake.dispute_charge(pi["latest_charge"])
    _deliver(env)
    env.fake.top_up(1_000_000)
    admin = {"Authorization": f"Bearer {who.admin_key}"}
    report = env.http.get("/v1/ledger/provider-reconciliation", headers=admin).json()
    assert report["agrees"], report
    assert report["matched"] == 3  # transfer, collected debit, chargeback
    assert report["unposted_funding"] == env.fake.initial_balance_cents + 1_000_000
    tb = env.http.get("/v1/ledger/trial-balance", headers=admin).json()
    assert tb["balanced"] and tb["totals"] == {"EUR": 0}
    assert env.http.get("/v1/ledger/trial-balance", headers=who.headers).status_code == 403


def _overdue_unpaid(env: Env) -> tuple[Any, dict[str, Any]]:
    """An advance past maturity whose two SEPA debits bounced: overdue, nothing in flight."""
    who = seller(env, amount_cents=500_000, days=60)
    adv = _disbursed(env, who, adv_days=10)
    for wait in (9, 4):
        env.fake.fail_next_payment_intent("insufficient_funds")
        days(env, wait)
        _sweep(env)
        env.fake.settle_payment_intents()
        _deliver(env)
    a = advance(env, who, str(adv["id"]))
    assert a["status"] == "overdue" and a["owed"]["being_collected"]["amount"] == 0
    return who, a


def _escalate(env: Env, key: str, advance_id: str, status: str) -> Any:
    return env.http.post(
        f"/v1/advances/{advance_id}/escalations",
        headers={"Authorization": f"Bearer {key}"},
        json={"status": status, "reason": "relances sans effet"},
    )


def test_collection_escalation_provisions_then_writes_off(env: Env) -> None:
    from escompte.financing import ledger
    from escompte.models import FinancedFingerprint

    who, a = _overdue_unpaid(env)
    adv_id = str(a["id"])
    assert _escalate(env, who.key, adv_id, "in_collections").status_code == 403  # back-office only
    skipped = _escalate(env, who.admin_key, adv_id, "defaulted")
    assert skipped.status_code == 409 and _problem(skipped) == "invalid_state_transition"
    assert _escalate(env, who.admin_key, adv_id, "in_collections").json()["status"] == "in_collections"
    days(env, 2)  # late interest runs on while the case is in collection
    r = _escalate(env, who.admin_key, adv_id, "defaulted")
    assert r.status_code == 200, r.text
    owed = r.json()["owed"]
    total = sum(owed[k]["amount"] for k in ("principal", "fees", "late_interest"))
    assert owed["late_interest"]["amount"] == pricing.fee_cents(
        500_000, Decimal(str(a["late_daily_rate"])), 5
    ), "brought up to date before the provision"
    with env.session() as s:
        balances = ledger.advance_balances(s, adv_id)
    assert (balances["provision_expense"], balances["provisions"]) == (total, -total)
    r = _escalate(env, who.admin_key, adv_id, "written_off")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "written_off"
    with env.session() as s:
        balances = ledger.advance_balances(s, adv_id)
        fingerprint = s.execute(
            select(FinancedFingerprint).where(FinancedFingerprint.advance_id == adv_id)
        ).scalar_one()
        types = list(
            s.execute(select(Event.type).where(Event.object_id == adv_id).order_by(Event.id)).scalars()
        )
    assert balances["write_offs"] == total
    for code in ("principal_receivable", "fees_receivable", "late_interest_receivable"):
        assert balances[code] == 0, code
    assert balances["provisions"] == 0 and balances["provision_expense"] == 0  # released: the loss is booked
    # nothing outstanding, but the invoice stays financed: it can never be financed again
    assert (fingerprint.outstanding_cents, fingerprint.released_at) == (0, None)
    assert types[-3:] == ["advance.in_collections", "advance.defaulted", "advance.written_off"]
    again = _escalate(env, who.admin_key, adv_id, "written_off")
    assert again.status_code == 409
    late = env.http.post(
        f"/v1/advances/{adv_id}/repayments",
        headers={"Authorization": f"Bearer {who.admin_key}"},
        json={"method": "collection_account", "amount": {"amount": 100_00, "currency": "EUR"}},
    )
    assert late.status_code == 409 and _problem(late) == "invalid_state_transition"
    _ledger_balanced(env)


def test_defaulted_advance_recovered_releases_its_provision(env: Env) -> None:
    from escompte.financing import ledger

    who, a = _overdue_unpaid(env)
    adv_id = str(a["id"])
    for status in ("in_collections", "defaulted"):
        assert _escalate(env, who.admin_key, adv_id, status).status_code == 200
    owed = advance(env, who, adv_id)["owed"]
    total = sum(owed[k]["amount"] for k in ("principal", "fees", "late_interest"))
    r = env.http.post(
        f"/v1/advances/{adv_id}/repayments",
        headers={"Authorization": f"Bearer {who.admin_key}"},
        json={"method": "collection_account", "amount": {"amount": total, "currency": "EUR"}},
    )
    assert r.status_code == 201, r.text
    assert advance(env, who, adv_id)["status"] == "repaid"
    with env.session() as s:
        balances = ledger.advance_balances(s, adv_id)
    assert balances.get("provisions", 0) == 0 and balances.get("provision_expense", 0) == 0
    assert balances.get("write_offs", 0) == 0
    _ledger_balanced(env)
