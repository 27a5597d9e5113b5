"""Financing an invoice end to end, as an SME or a partner would: quote, accept, money
out through the fake Stripe, webhooks back, days passing, the debtor paying, the SME
debited, every account balanced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from escompte.financing import ledger, pricing, tasks
from escompte.models import Advance, FinancedFingerprint, Invoice, KeyMode, LedgerTransaction, PrincipalKind
from tests import factories as f
from tests.financing.conftest import Env, Seller, advance, days, finance, quote, seller, set_up_payments
from tests.live import Server

pytestmark = pytest.mark.committed


def _sweep(env: Env) -> None:
    with env.session() as s, s.begin():
        tasks.due(s, env.clock, env.settings)


def _deliver(env: Env) -> list[tuple[str, int]]:
    results = env.fake.deliver()
    assert all(status == 200 for _, status in results), results
    return results


def _disbursed(env: Env, who: Seller, adv_days: int = 30) -> dict[str, object]:
    set_up_payments(env, who)
    adv = finance(env, who, adv_days)
    assert adv["status"] == "disbursing"
    env.fake.settle_payouts()
    _deliver(env)
    adv = advance(env, who, str(adv["id"]))
    assert adv["status"] == "active"
    return adv


def _debtor_pays(env: Env, who: Seller, amount: int) -> None:
    with env.session() as s:
        from escompte.models import Invoice

        number = s.get(Invoice, who.invoice_id).number  # type: ignore[union-attr]
    r = env.http.post(
        f"/v1/companies/{who.company_id}/bank-transactions",
        headers=who.headers,
        json={
            "account": {"iban": "FR7630006000011234567890189"},
            "transactions": [
                {
                    "id": f"agg-{number}",
                    "booking_date": env.clock.today().isoformat(),
                    "amount": {"amount": amount, "currency": "EUR"},
                    "counterparty": {"name": "Grands Magasins SA"},
                    "remittance_information": f"Paiement facture {number}",
                }
            ],
        },
    )
    assert r.status_code in (200, 201), r.text


def _wait_performed(env: Env, call: tuple[str, str], n: int = 1) -> None:
    import time

    deadline = time.monotonic() + 10
    while env.fake.performed[call] < n:
        assert time.monotonic() < deadline, f"{call} never performed"
        time.sleep(0.05)


def _ledger_balanced(env: Env) -> None:
    with env.session() as s:
        assert ledger.trial_balance(s) in ({"EUR": 0}, {})
        assert ledger.unbalanced_transactions(s) == []


def test_seventeen_days_then_the_debtor_pays(env: Env) -> None:
    who = seller(env)
    q = quote(env, who, days=30)
    assert q["amount"] == {"amount": 1_200_000, "currency": "EUR"}  # 100 % incl. VAT, no holdback
    rate = Decimal(q["daily_rate"])
    assert q["fee_at_maturity"]["amount"] == pricing.fee_cents(1_200_000, rate, 30)
    adv = _disbursed(env, who)
    start = env.clock.today()

    days(env, 17)
    _debtor_pays(env, who, 1_200_000)
    _sweep(env)  # reconciliation saw the debtor pay: the SME is debited at once
    adv = advance(env, who, str(adv["id"]))
    expected_fee = pricing.fee_cents(1_200_000, rate, 17)
    assert adv["owed"]["fees"]["amount"] == expected_fee
    assert adv["owed"]["being_collected"]["amount"] == 1_200_000 + expected_fee
    # 12,000 EUR + fee is above the 10,000 EUR SEPA cap: two debits
    debits = env.fake.objects("payment_intent")
    assert sorted(pi["amount"] for pi in debits) == sorted([1_000_000, 200_000 + expected_fee])

    days(env, 5)
    env.fake.settle_payment_intents()
    _deliver(env)
    adv = advance(env, who, str(adv["id"]))
    assert adv["status"] == "repaid"
    assert adv["owed"]["total"]["amount"] == 0
    _ledger_balanced(env)

    r = env.http.get(f"/v1/advances/{adv['id']}/statement", headers=who.headers)
    st = r.json()
    assert st["days_used"] == 17
    assert st["days"][0]["date"] == (start + timedelta(days=1)).isoformat()
    assert st["totals"]["fees_charged"] == expected_fee
    assert st["totals"]["repaid"] == 1_200_000 + expected_fee
    assert st["totals"]["repaid_fees"] == expected_fee
    html = env.http.get(f"/v1/advances/{adv['id']}/statement", headers={**who.headers, "Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and "Day by day" in html.text
    with env.session() as s:
        live = s.execute(
            select(func.count()).where(
                FinancedFingerprint.invoice_id == who.invoice_id, FinancedFingerprint.released_at.is_(None)
            )
        ).scalar_one()
        assert live == 0


def test_maturity_debit_two_business_days_before(env: Env) -> None:
    who = seller(env, amount_cents=500_000, days=60)
    adv = _disbursed(env, who, adv_days=30)
    maturity = pricing.date.fromisoformat(str(adv["maturity_date"]))
    from escompte.financing.service import debit_day

    days(env, (debit_day(maturity) - env.clock.today()).days - 1)
    _sweep(env)
    assert env.fake.objects("payment_intent") == []
    days(env, 1)
    _sweep(env)
    (pi,) = env.fake.objects("payment_intent")
    assert pi["amount"] == 500_000 + pricing.fee_cents(500_000, Decimal(str(adv["daily_rate"])), 30)
    env.fake.settle_payment_intents()
    _deliver(env)
    assert advance(env, who, str(adv["id"]))["status"] == "repaid"
    _ledger_balanced(env)


def test_fifty_concurrent_acceptances_of_one_invoice(env: Env) -> None:
    import threading

    who = seller(env)
    set_up_payments(env, who)
    quotes = [quote(env, who)["id"] for _ in range(50)]
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(50)

    def accept(quote_id: str) -> None:
        import httpx

        with httpx.Client(base_url=env.server.url, timeout=60) as c:
            barrier.wait()
            for _ in range(20):  # as a client should: a busy server's 503 is retried, same key
                r = c.post(
                    "/v1/advances",
                    headers={**who.headers, "Idempotency-Key": f"k-{quote_id}"},
                    json={"quote": quote_id},
                )
                if r.status_code != 503:
                    break
                assert r.json()["type"].endswith(":database_busy"), r.text
                time.sleep(float(r.headers["Retry-After"]))
            results.append((r.status_code, r.json().get("type", "").rsplit(":", 1)[-1]))

    threads = [threading.Thread(target=accept, args=(q,)) for q in quotes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 50, f"{50 - len(results)} acceptance(s) still running after 120 s"
    statuses = sorted(s for s, _ in results)
    assert statuses == [201] + [409] * 49, results
    assert {code for s, code in results if s == 409} == {"invoice_already_financed"}
    assert env.fake.performed[("POST", "/v1/transfers")] == 1
    assert env.fake.performed[("POST", "/v1/payouts")] == 1
    with env.session() as s:
        assert s.execute(select(func.count()).select_from(Advance)).scalar_one() == 1
    _ledger_balanced(env)


def test_a_crash_between_stripe_and_the_webhook_pays_once(env: Env) -> None:
    who = seller(env)
    set_up_payments(env, who)
    q = quote(env, who)
    # Stripe creates the payout but its answer never reaches us: as if the process died
    # right after the call, before recording it.
    env.fake.inject("POST /v1/payouts", timeout=3.0, perform=True)
    r = env.http.post("/v1/advances", headers=who.headers, json={"quote": q["id"]})
    assert r.status_code == 201
    adv = r.json()
    assert adv["status"] == "disbursing"
    env.server.stop()  # kill the API
    _wait_performed(env, ("POST", "/v1/payouts"))

    from tests.financing.conftest import WEBHOOK_SECRET
    from tests.live import Server

    env.server = Server(env.settings, env.server.app.state.engine, env.clock).start()  # restart
    env.fake.set_webhook(env.server.url + "/v1/webhooks/stripe", WEBHOOK_SECRET)
    env.http = __import__("httpx").Client(base_url=env.server.url, timeout=30)
    env.clock.advance(timedelta(minutes=5))
    with env.session() as s, s.begin():  # the recovery sweep retries with the same keys
        tasks.recover(s, env.clock, env.settings)
    env.fake.settle_payouts()
    _deliver(env)
    assert env.fake.performed[("POST", "/v1/payouts")] == 1
    profile = env.http.get(f"/v1/companies/{who.company_id}/payment-profile", headers=who.headers).json()
    assert len(env.fake.objects("payout", account=profile["payout_account"])) == 1
    assert advance(env, who, adv["id"])["status"] == "active"
    _ledger_balanced(env)


def test_webhook_before_recovery_also_finishes_the_disbursement(env: Env) -> None:
    who = seller(env)
    set_up_payments(env, who)
    q = quote(env, who)
    env.fake.inject("POST /v1/payouts", timeout=3.0, perform=True)
    adv = env.http.post("/v1/advances", headers=who.headers, json={"quote": q["id"]}).json()
    _wait_performed(env, ("POST", "/v1/payouts"))
    env.fake.settle_payouts()
    _deliver(env)
    assert advance(env, who, adv["id"])["status"] == "active"
    assert env.fake.performed[("POST", "/v1/payouts")] == 1


def test_payout_failure_reverses_everything(env: Env) -> None:
    who = seller(env)
    set_up_payments(env, who)
    env.fake.fail_next_payout("account_closed")
    adv = finance(env, who)
    env.fake.settle_payouts()
    _deliver(env)
    adv = advance(env, who, adv["id"])
    assert adv["status"] == "disbursement_failed"
    assert adv["failure_code"] == "account_closed"
    assert len(env.fake.objects("transfer_reversal")) == 1
    with env.session() as s:
        balances = ledger.advance_balances(s, adv["id"])
        assert balances.get("principal_receivable", 0) == 0
        assert (
            s.execute(
                select(func.count()).where(LedgerTransaction.kind == "disbursement_reversal")
            ).scalar_one()
            == 1
        )
    _ledger_balanced(env)
    # the invoice can be financed again
    quote(env, who)


def test_webhooks_replayed_badly_signed_or_unknown_change_nothing(env: Env) -> None:
    who = seller(env)
    _disbursed(env, who)
    paid = next(e for e in env.fake.events if e["type"] == "payout.paid")
    again = env.fake.deliver(paid["id"])
    assert again == [(paid["id"], 200)]
    import json

    payload = json.dumps(paid).encode()
    bad = env.http.post(
        "/v1/webhooks/stripe",
        content=payload,
        headers={
            "Stripe-Signature": env.fake.sign(payload, "whsec_wrong"),
            "Content-Type": "application/json",
        },
    )
    assert bad.status_code == 400 and bad.json()["type"].rsplit(":", 1)[-1] == "invalid_signature"
    stale = env.http.post(
        "/v1/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": env.fake.sign(payload, "whsec_test_escompte", timestamp=1_000_000_000)},
    )
    assert stale.status_code == 400
    unknown = dict(paid, id="evt_unknown_object_1")
    unknown["data"] = {"object": dict(paid["data"]["object"], id="po_not_ours", metadata={})}
    body = json.dumps(unknown).encode()
    r = env.http.post(
        "/v1/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": env.fake.sign(body, "whsec_test_escompte")},
    )
    assert r.status_code == 200 and r.json()["outcome"].startswith("ignored")
    with env.session() as s:
        assert (
            s.execute(select(func.count()).select_from(LedgerTransaction)).scalar_one() == 1
        )  # the disbursement


def test_disputed_debit_reopens_what_is_owed(env: Env) -> None:
    who = seller(env, amount_cents=400_000)
    adv = _disbursed(env, who)
    days(env, 10)
    r = env.http.post(f"/v1/advances/{adv['id']}/repayments", headers=who.headers, json={})
    assert r.status_code == 201, r.text
    env.fake.settle_payment_intents()
    _deliver(env)
    assert advance(env, who, str(adv["id"]))["status"] == "repaid"
    (pi,) = env.fake.objects("payment_intent")
    days(env, 20)
    env.fake.dispute_charge(pi["latest_charge"])
    _deliver(env)
    adv = advance(env, who, str(adv["id"]))
    assert adv["status"] == "active"
    assert adv["owed"]["principal"]["amount"] == 400_000
    assert adv["owed"]["fees"]["amount"] == pricing.fee_cents(400_000, Decimal(str(adv["daily_rate"])), 30)
    _ledger_balanced(env)


def test_extend_within_120_days(env: Env) -> None:
    who = seller(env, days=100)
    adv = _disbursed(env, who, adv_days=60)
    r = env.http.post(f"/v1/advances/{adv['id']}/extend", headers=who.headers, json={"additional_days": 30})
    assert r.status_code == 200, r.text
    assert r.json()["duration_days"] == 90
    r = env.http.post(f"/v1/advances/{adv['id']}/extend", headers=who.headers, json={"additional_days": 31})
    assert r.status_code == 409 and r.json()["type"].rsplit(":", 1)[-1] == "extension_refused"


def test_a_quote_reads_back_as_it_was_given(env: Env) -> None:
    """What POST /v1/quotes answered is what was stored: GET shows the same figures, to
    its owner only."""
    who, other = seller(env), seller(env)
    given = quote(env, who, days=45)
    r = env.http.get(f"/v1/quotes/{given['id']}", headers=who.headers)
    assert r.status_code == 200, r.text
    assert r.json() == given
    assert env.http.get(f"/v1/quotes/{given['id']}", headers=other.headers).status_code == 404


def test_other_tenants_see_nothing(env: Env) -> None:
    who = seller(env)
    other = seller(env)
    adv = _disbursed(env, who)
    for path in (f"/v1/advances/{adv['id']}", f"/v1/advances/{adv['id']}/statement"):
        assert env.http.get(path, headers=other.headers).status_code == 404
    r = env.http.post(f"/v1/advances/{adv['id']}/extend", headers=other.headers, json={"additional_days": 1})
    assert r.status_code == 404
    r = env.http.post(
        "/v1/quotes", headers=other.headers, json={"invoice": who.invoice_id, "duration_days": 30}
    )
    assert r.status_code == 404
    assert (
        env.http.get(f"/v1/companies/{who.company_id}/payment-profile", headers=other.headers).status_code
        == 404
    )
    listed = env.http.get("/v1/advances", headers=other.headers).json()
    assert listed["data"] == []


def test_a_financed_invoice_leaves_the_eligible_list(env: Env) -> None:
    who = seller(env, invoices=2)
    set_up_payments(env, who)

    def listed(eligible: str) -> set[str]:
        r = env.http.get("/v1/invoices", params={"eligible": eligible}, headers=who.headers)
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["data"]}

    both = {i["id"] for i in env.http.get("/v1/invoices", headers=who.headers).json()["data"]}
    for invoice_id in both:
        r = env.http.post(f"/v1/invoices/{invoice_id}/eligibility", headers=who.headers)
        assert r.status_code == 200 and r.json()["eligible"] is True, r.text
    assert listed("true") == both and listed("false") == set()
    finance(env, who)  # its last decision (the acceptance's re-check) said eligible
    assert listed("true") == both - {who.invoice_id}
    assert listed("false") == {who.invoice_id}


def test_ineligible_invoice_gets_no_quote(env: Env) -> None:
    who = seller(env, days=200)
    r = env.http.post(
        "/v1/quotes", headers=who.headers, json={"invoice": who.invoice_id, "duration_days": 30}
    )
    assert r.status_code == 409
    assert r.json()["type"].rsplit(":", 1)[-1] == "not_eligible"
    assert "duration_fits" in r.json()["failed_checks"]


def test_acceptance_without_payment_profile_is_refused(env: Env) -> None:
    who = seller(env)
    q = quote(env, who)
    r = env.http.post("/v1/advances", headers=who.headers, json={"quote": q["id"]})
    assert r.status_code == 409 and r.json()["type"].rsplit(":", 1)[-1] == "payment_setup_required"
    with env.session() as s:
        assert s.execute(select(func.count()).select_from(Advance)).scalar_one() == 0


def test_stripe_5xx_leaves_the_advance_accepted_until_the_sweep_retries(env: Env) -> None:
    who = seller(env, invoices=2)
    set_up_payments(env, who)
    with env.session() as s:
        from escompte.models import Invoice

        other = s.execute(
            select(Invoice.id).where(Invoice.company_id == who.company_id, Invoice.id != who.invoice_id)
        ).scalar_one()
    sent = env.http.post("/v1/advances", headers=who.headers, json={"quote": quote(env, who, other)["id"]})
    assert sent.json()["status"] == "disbursing"  # payout in flight: not the sweep's business
    q = quote(env, who)
    env.fake.inject("POST /v1/transfers", status=503)
    r = env.http.post("/v1/advances", headers=who.headers, json={"quote": q["id"]})
    assert r.status_code == 201 and r.json()["status"] == "accepted"
    assert env.fake.performed[("POST", "/v1/transfers")] == 1
    env.clock.advance(timedelta(minutes=2))
    with env.session() as s, s.begin():
        assert tasks.recover(s, env.clock, env.settings) == 1  # the stuck one only
    assert advance(env, who, r.json()["id"])["status"] == "disbursing"
    assert env.fake.performed[("POST", "/v1/transfers")] == 2
    _ledger_balanced(env)


def test_events_out_of_order_and_twice_converge(env: Env) -> None:
    who = seller(env, amount_cents=300_000)
    set_up_payments(env, who)
    adv = finance(env, who)
    env.fake.settle_payouts()
    results = env.fake.deliver(reverse=True, twice=True)  # payout.paid before payout.created, each twice
    assert {status for _, status in results} == {200}
    assert advance(env, who, adv["id"])["status"] == "active"
    with env.session() as s:
        assert s.execute(select(func.count()).select_from(LedgerTransaction)).scalar_one() == 1


def test_the_advance_is_committed_durably_before_money_moves(env: Env) -> None:
    from sqlalchemy import text

    from escompte.access.principal import Principal
    from escompte.financing import service
    from escompte.models import KeyMode, PrincipalKind

    who = seller(env)
    set_up_payments(env, who)
    q = quote(env, who)
    admin = Principal(kind=PrincipalKind.ADMIN, key_id="key_t", mode=KeyMode.TEST)
    with env.session() as s:
        service.accept(s, env.clock, admin, q["id"])
        # a decision alone would turn it off for its transaction; an advance's leaves it on
        assert s.execute(text("SHOW synchronous_commit")).scalar() == "on"
        s.rollback()


def test_partners_see_their_companies_advances_only(env: Env) -> None:
    from escompte.models import PrincipalKind
    from tests import factories as f

    with env.session() as s, s.begin():
        p1, p2 = f.partner(s, env.clock, name="Platform One"), f.partner(s, env.clock, name="Platform Two")
        k1 = f.key(s, env.clock, kind=PrincipalKind.PARTNER, partner_id=p1.id)
        k2 = f.key(s, env.clock, kind=PrincipalKind.PARTNER, partner_id=p2.id)
        p1_id = p1.id
    who = seller(env, partner_id=p1_id)
    adv = _disbursed(env, who)
    mine, theirs = f.auth(k1), f.auth(k2)
    assert env.http.get(f"/v1/advances/{adv['id']}", headers=mine).status_code == 200
    assert [a["id"] for a in env.http.get("/v1/advances", headers=mine).json()["data"]] == [adv["id"]]
    for path in (
        f"/v1/advances/{adv['id']}",
        f"/v1/advances/{adv['id']}/statement",
        f"/v1/advances/{adv['id']}/repayments",
    ):
        assert env.http.get(path, headers=theirs).status_code == 404
    assert env.http.get("/v1/advances", headers=theirs).json()["data"] == []
    r = env.http.post(f"/v1/advances/{adv['id']}/repayments", headers=theirs, json={})
    assert r.status_code == 404
    r = env.http.post("/v1/quotes", headers=theirs, json={"invoice": who.invoice_id, "duration_days": 30})
    assert r.status_code == 404
    assert env.http.get("/v1/ledger/accounts", headers=theirs).json()["data"] == []
    assert env.http.get("/v1/ledger/trial-balance", headers=mine).status_code == 403
    events = env.http.get("/v1/events", headers=mine, params={"object": adv["id"]}).json()["data"]
    assert [e["type"] for e in events] == ["advance.accepted", "advance.disbursing", "advance.disbursed"]
    assert env.http.get(f"/v1/events/{events[0]['id']}", headers=mine).status_code == 200
    assert env.http.get(f"/v1/events/{events[0]['id']}", headers=theirs).status_code == 404
    assert env.http.get("/v1/events", headers=theirs).json()["data"] == []
    assert env.http.post("/v1/payment-files", headers=mine).status_code == 403


def test_a_webhook_applied_while_stripe_is_down_is_refused_and_kept_for_the_retry(env: Env) -> None:
    who = seller(env)
    set_up_payments(env, who)
    adv = finance(env, who)
    env.fake.settle_payouts()
    env.fake.inject("GET /v1/payouts", status=500)  # re-reading the payout fails once
    first = env.fake.deliver(types=["payout.paid"])
    assert [status for _, status in first] == [503]
    assert advance(env, who, adv["id"])["status"] == "disbursing"
    again = env.fake.deliver(types=["payout.paid"])  # Stripe's retry
    assert [status for _, status in again] == [200]
    assert advance(env, who, adv["id"])["status"] == "active"


def test_a_request_waiting_on_stripe_lends_its_slot_to_the_next_one(env: Env) -> None:
    """With a single request slot, an acceptance whose Stripe transfer takes 2 s does not
    hold back a read that arrives meanwhile."""
    who = seller(env)
    set_up_payments(env, who)
    q = quote(env, who)
    settings = env.settings.model_copy(update={"api_concurrency": 1})
    one_slot = Server(settings, env.server.app.state.engine, env.clock).start()
    env.fake.inject("POST /v1/transfers", timeout=2.0, perform=True)
    try:
        with httpx.Client(base_url=one_slot.url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
            accepting = pool.submit(http.post, "/v1/advances", headers=who.headers, json={"quote": q["id"]})
            deadline = time.monotonic() + 10
            while env.fake.calls[("POST", "/v1/transfers")] == 0:
                assert time.monotonic() < deadline, "the acceptance never called Stripe"
                time.sleep(0.01)
            with httpx.Client(base_url=one_slot.url, timeout=30) as other:
                started = time.monotonic()
                read = other.get(f"/v1/invoices/{who.invoice_id}", headers=who.headers)
                waited = time.monotonic() - started
            assert read.status_code == 200, read.text
            assert not accepting.done(), "the read should not have waited for the acceptance"
            assert waited < 1.5
            assert accepting.result().status_code == 201
    finally:
        one_slot.stop()


def test_the_write_ahead_commit_lends_the_slot_while_it_waits_on_the_disk(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptance's commit before it calls Stripe is a durable write: like the
    request's final commit, it lets another request run in its slot meanwhile. The
    advance is committed when it lends (the slot comes back before Stripe is called)."""
    from contextlib import contextmanager

    from escompte.api.routes import financing as routes

    who = seller(env)
    set_up_payments(env, who)
    lent: list[int] = []

    @contextmanager
    def counting() -> Iterator[None]:
        yield
        with env.session() as s:  # after the commit: visible to another transaction
            lent.append(s.execute(select(func.count()).select_from(Advance)).scalar_one())

    monkeypatch.setattr(routes, "waiting_elsewhere", counting)
    finance(env, who)
    assert lent == [1]


def test_a_new_pricing_grid_prices_the_next_quote_without_a_restart(env: Env) -> None:
    """Each API process keeps the grid versions it parsed: a new version is still read."""
    who = seller(env, invoices=2)
    first = quote(env, who, days=30)
    doubled = {grade: str(2 * Decimal(rate)) for grade, rate in pricing.GridSettings().daily_rates.items()}
    r = env.http.post(
        "/v1/pricing/grid",
        headers=f.auth(who.admin_key),
        json={"settings": {"daily_rates": doubled}, "note": "rates doubled"},
    )
    assert r.status_code == 201, r.text
    with env.session() as s:
        second_invoice = s.execute(
            select(Invoice.id).where(Invoice.company_id == who.company_id, Invoice.id != who.invoice_id)
        ).scalar_one()
    second = quote(env, who, invoice_id=second_invoice, days=30)
    assert second["grid_version"] == first["grid_version"] + 1
    assert Decimal(second["daily_rate"]) == 2 * Decimal(first["daily_rate"])


@pytest.mark.parametrize("decided_before", [False, True], ids=["new decision", "reused decision"])
def test_a_quote_commits_durably(env: Env, decided_before: bool) -> None:
    """A decision alone commits without waiting for the disk; a quote must last. Its
    decision, new or reused, leaves synchronous_commit on, with no round trip to set it."""
    from sqlalchemy import text

    from escompte.access.principal import Principal
    from escompte.concurrency import ASYNC_COMMIT, WROTE
    from escompte.eligibility import service as eligibility
    from escompte.financing import service

    who = seller(env)
    admin = Principal(kind=PrincipalKind.ADMIN, key_id="key_t", mode=KeyMode.TEST)
    if decided_before:
        with env.session() as s:
            eligibility.decide(s, env.clock, admin, who.invoice_id)
            s.commit()
    with env.session() as s:
        made = s.execute(text("SELECT count(*) FROM eligibility_decisions")).scalar_one()
        service.create_quote(
            s, env.clock, admin, invoice_id=who.invoice_id, amount_cents=None, duration_days=30
        )
        decided = s.execute(text("SELECT count(*) FROM eligibility_decisions")).scalar_one() - made
        assert decided == (0 if decided_before else 1)
        assert s.execute(text("SHOW synchronous_commit")).scalar() == "on"
        assert not s.info.get(ASYNC_COMMIT)  # its commit waits for the disk
        assert s.info.get(WROTE)  # and lends the request's slot meanwhile
        s.rollback()
