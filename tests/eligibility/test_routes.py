"""Eligibility over HTTP, as a treasurer and a partner use it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.models import Invoice, InvoiceStatus
from tests import factories as f
from tests.api.conftest import Tenant, World
from tests.eligibility import builders as b


@pytest.fixture
def seller(session: Session, clock: FrozenClock, world: World) -> Tenant:
    """Tenant A, made ready to finance: verified in SIRENE, a healthy bank account, and a
    customer active in SIRENE that pays on time."""
    a = world.a
    b.registry(session, clock, siren=a.company.siren)
    assert a.debtor.siren is not None
    b.registry(session, clock, siren=a.debtor.siren)
    b.behaviour(session, clock, debtor_id=a.debtor.id)
    b.bank(session, clock, company_id=a.company.id, balance_cents=100_000_000)
    session.commit()
    return a


def invoice(session: Session, clock: FrozenClock, t: Tenant, **kwargs: Any) -> Invoice:
    inv = f.invoice(session, clock, company_id=t.company.id, debtor_id=t.debtor.id, **kwargs)
    session.commit()
    return inv


def decide(client: TestClient, t: Tenant, inv: Invoice, **headers: str) -> dict[str, Any]:
    r = client.post(f"/v1/invoices/{inv.id}/eligibility", headers={**t.headers, **headers})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def check(decision: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in decision["checks"] if c["code"] == code)
    return found


class TestAcceptance:
    """Six invoices, six refusals or caps, each saying which check and why."""

    def test_eligible_invoice(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        d = decide(client, seller, invoice(session, clock, seller))
        assert d["object"] == "eligibility_decision"
        assert d["id"].startswith("eld_")
        assert d["eligible"] is True
        assert d["max_amount"] == {"amount": 1_200_000, "currency": "EUR"}
        assert d["max_duration_days"] == 55
        assert d["min_duration_days"] == 3
        assert d["risk_grade"] in "ABCD"
        assert d["failed_checks"] == []
        assert len(d["checks"]) == 22
        assert all(c["passed"] for c in d["checks"])
        assert sum(x["points"] for x in d["features"]) == d["score"]
        assert d["policy_version"] == 1
        assert d["as_of_date"] == "2026-03-02"

    def test_due_in_200_days(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        d = decide(client, seller, invoice(session, clock, seller, days=200))
        assert (d["eligible"], d["failed_checks"]) == (False, ["duration_fits"])
        assert d["max_amount"]["amount"] == 0
        assert check(d, "duration_fits")["message"] == (
            "The invoice is due in 200 days: financing lasts at most 120 days."
        )
        assert d["counterfactuals"][0]["message"] == (
            "Eligible if the due date were within 120 days, that is from 21 May 2026."
        )

    def test_due_yesterday(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        inv = invoice(session, clock, seller, issue_date=clock.today() - timedelta(days=31), days=30)
        d = decide(client, seller, inv)
        assert d["failed_checks"] == ["not_overdue"]
        assert check(d, "not_overdue")["message"] == (
            "The invoice fell due on 1 March 2026 (1 day ago): only invoices not yet due can be financed."
        )

    def test_already_financed_through_another_sellers_account(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant, world: World
    ) -> None:
        inv = invoice(session, clock, seller, number="FA-2026-0042")
        # the same invoice, presented by another account (another partner's company) and
        # financed there: the financing side recorded its fingerprint
        other = f.company(session, clock, partner_id=world.partner2.id, name="Même Vendeur SAS (bis)")
        assert seller.debtor.siren is not None
        b.financed(
            session,
            clock,
            company_id=other.id,
            debtor_siren=seller.debtor.siren,
            number="FA 2026 0042",
            amount_cents=inv.amount_cents,
            issue_date=inv.issue_date,
        )
        session.commit()
        d = decide(client, seller, inv)
        assert d["failed_checks"] == ["not_already_financed"]
        c = check(d, "not_already_financed")
        assert c["message"] == (
            "An identical invoice (same customer, number, amount and date) is already financed on the "
            "platform through another account: it cannot be financed twice."
        )
        assert other.id not in str(d) and "bis" not in str(d)

    def test_debtor_in_liquidation(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        assert seller.debtor.siren is not None
        b.proceeding(
            session,
            siren=seller.debtor.siren,
            kind="liquidation",
            judgment_date=clock.today() - timedelta(days=9),
        )
        session.commit()
        d = decide(client, seller, invoice(session, clock, seller), **{"Accept-Language": "fr-FR,fr;q=0.9"})
        assert d["failed_checks"] == ["debtor_no_proceedings"]
        assert check(d, "debtor_no_proceedings")["message"] == (
            "Votre client « Client SA » est en procédure collective : une liquidation judiciaire "
            "(jugement du 21/02/2026, BODACC)."
        )

    def test_partially_disputed(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        inv = invoice(session, clock, seller)
        b.lifecycle(session, clock, invoice=inv, code=207, status="disputed", amount_cents=300_000)
        session.commit()
        d = decide(client, seller, inv)
        assert d["eligible"] is True
        assert d["max_amount"]["amount"] == 900_000
        c = check(d, "not_disputed")
        assert (c["effect"], c["passed"]) == ("cap", True)
        assert c["message"] == (
            "Your customer disputes €3,000.00 of the invoice: only the undisputed part, €9,000.00, "
            "can be financed."
        )
        assert d["counterfactuals"][0]["code"] == "partial_dispute"

    def test_debtor_at_maximum_exposure(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant, world: World
    ) -> None:
        assert seller.debtor.siren is not None
        for n in range(4):  # 4 x 50,000 € financed on this customer, through other sellers
            b.financed(
                session,
                clock,
                company_id=world.c.company.id,
                debtor_siren=seller.debtor.siren,
                number=f"X-{n}",
                amount_cents=5_000_000,
                issue_date=clock.today(),
            )
        session.commit()
        d = decide(client, seller, invoice(session, clock, seller))
        assert d["failed_checks"] == ["debtor_limit"]
        assert check(d, "debtor_limit")["message"] == (
            "This customer has reached the maximum financed on the platform (€200,000.00): no new invoice "
            "on it can be financed for now."
        )
        assert check(d, "debtor_limit")["figures"] == {"limit_cents": 20_000_000, "headroom_cents": 0}


class TestPolicy:
    def test_changing_a_limit_changes_the_next_decision_without_restart(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant, world: World
    ) -> None:
        inv = invoice(session, clock, seller, days=90)
        first = decide(client, seller, inv)
        assert first["eligible"] is True
        admin = f.auth(world.admin_key)
        r = client.post(
            "/v1/eligibility/policy",
            json={"settings": {"max_duration_days": 60, "debtor_limit_cents": 1_000_000}, "note": "tighter"},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        policy = r.json()
        assert policy["object"] == "eligibility_policy"
        assert policy["version"] == 2
        assert policy["settings"]["max_duration_days"] == 60
        assert policy["settings"]["grace_days"] == 10  # untouched settings carry over
        assert client.get("/v1/eligibility/policy", headers=seller.headers).json()["version"] == 2
        second = decide(client, seller, inv)
        assert second["id"] != first["id"]
        assert second["policy_version"] == 2
        assert second["failed_checks"] == ["duration_fits"]
        assert check(second, "debtor_limit")["effect"] == "cap"
        assert check(second, "debtor_limit")["figures"]["limit_cents"] == 1_000_000
        # the first decision still reads as it was made
        again = client.get(f"/v1/eligibility-decisions/{first['id']}", headers=seller.headers).json()
        assert again == first

    def test_only_admins_change_the_policy(self, client: TestClient, world: World) -> None:
        for key in (world.a.key, world.partner1_key):
            r = client.post(
                "/v1/eligibility/policy", json={"settings": {"grace_days": 5}}, headers=f.auth(key)
            )
            assert r.status_code == 403
            assert r.headers["content-type"] == "application/problem+json"

    def test_invalid_settings_are_refused_with_the_field(self, client: TestClient, world: World) -> None:
        admin = f.auth(world.admin_key)
        r = client.post(
            "/v1/eligibility/policy", json={"settings": {"max_duration_days": 200}}, headers=admin
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "settings.max_duration_days"
        r = client.post("/v1/eligibility/policy", json={"settings": {"no_such": 1}}, headers=admin)
        assert r.status_code == 422
        r = client.post(
            "/v1/eligibility/policy", json={"settings": {"min_amount_cents": 90_000_000}}, headers=admin
        )
        assert r.status_code == 422

    def test_idempotent_policy_change(self, client: TestClient, world: World) -> None:
        headers = {**f.auth(world.admin_key), "Idempotency-Key": "policy-2026-03"}
        body = {"settings": {"grace_days": 5}}
        first = client.post("/v1/eligibility/policy", json=body, headers=headers)
        replay = client.post("/v1/eligibility/policy", json=body, headers=headers)
        assert replay.json() == first.json()
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert (
            client.get("/v1/eligibility/policy", headers=headers).json()["version"] == first.json()["version"]
        )


class TestCache:
    def test_same_decision_while_nothing_changes(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        inv = invoice(session, clock, seller)
        r1 = client.post(f"/v1/invoices/{inv.id}/eligibility", headers=seller.headers)
        r2 = client.post(f"/v1/invoices/{inv.id}/eligibility", headers=seller.headers)
        assert r1.headers["Eligibility-Cache"] == "miss"
        assert r2.headers["Eligibility-Cache"] == "hit"
        assert r1.json() == r2.json()

    def test_the_next_day_is_a_new_decision(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        inv = invoice(session, clock, seller)
        first = decide(client, seller, inv)
        clock.advance(timedelta(days=1))
        second = decide(client, seller, inv)
        assert second["id"] != first["id"]
        assert second["as_of_date"] == "2026-03-03"
        assert second["max_duration_days"] == first["max_duration_days"] - 1


class TestReading:
    def test_french_and_english(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        inv = invoice(session, clock, seller)
        en = decide(client, seller, inv)
        fr = decide(client, seller, inv, **{"Accept-Language": "fr"})
        assert en["id"] == fr["id"]
        assert check(en, "invoice_open")["message"] == "Open invoice: €12,000.00 due."
        assert check(fr, "invoice_open")["message"] == "Facture ouverte : 12 000,00 € dus."
        assert check(fr, "invoice_open")["message_en"] == "Open invoice: €12,000.00 due."

    def test_get_decision(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        d = decide(client, seller, invoice(session, clock, seller))
        r = client.get(f"/v1/eligibility-decisions/{d['id']}", headers=seller.headers)
        assert r.status_code == 200
        assert r.json() == d


class TestTenancy:
    def test_another_tenants_invoice_and_decision_are_not_found(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant, world: World
    ) -> None:
        inv = invoice(session, clock, seller)
        d = decide(client, seller, inv)
        for key in (world.b.key, world.partner2_key):
            r = client.post(f"/v1/invoices/{inv.id}/eligibility", headers=f.auth(key))
            assert r.status_code == 404
            assert r.headers["content-type"] == "application/problem+json"
            r = client.get(f"/v1/eligibility-decisions/{d['id']}", headers=f.auth(key))
            assert r.status_code == 404
            r = client.post("/v1/eligibility/batch", json={"invoices": [inv.id]}, headers=f.auth(key))
            assert r.status_code == 404
        for key in (world.partner1_key, world.admin_key):
            assert client.post(f"/v1/invoices/{inv.id}/eligibility", headers=f.auth(key)).status_code == 200
            assert client.get(f"/v1/eligibility-decisions/{d['id']}", headers=f.auth(key)).status_code == 200

    def test_ids_are_checked(self, client: TestClient, world: World) -> None:
        r = client.post(f"/v1/invoices/{world.a.debtor.id}/eligibility", headers=world.a.headers)
        assert r.status_code == 422
        r = client.get("/v1/eligibility-decisions/inv_01M8D4NANBJ11SDR3NXNP6A38K", headers=world.a.headers)
        assert r.status_code == 422
        assert client.post(f"/v1/invoices/{world.a.invoice.id}/eligibility").status_code == 401


class TestBatch:
    def test_company_batch_then_reused(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        invoices = [invoice(session, clock, seller, days=d) for d in (10, 30, 200)]
        paid = invoice(session, clock, seller)
        paid.status = "paid"  # type: ignore[assignment]
        paid.amount_paid_cents = paid.amount_cents
        session.commit()
        r = client.post("/v1/eligibility/batch", json={}, headers=seller.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "list"
        assert body["has_more"] is False
        decided = {item["invoice"]: item for item in body["data"]}
        # the tenant's open invoices (the world's own one too), not the paid one
        assert set(decided) == {seller.invoice.id, *(i.id for i in invoices)}
        assert (body["decided"], body["reused"], body["eligible"]) == (4, 0, 3)
        assert decided[invoices[2].id]["failed_checks"] == ["duration_fits"]
        assert decided[invoices[0].id]["max_amount"] == {"amount": 1_200_000, "currency": "EUR"}
        again = client.post(
            "/v1/eligibility/batch", json={"company": seller.company.id}, headers=seller.headers
        )
        assert (again.json()["decided"], again.json()["reused"]) == (0, 4)
        assert [i["id"] for i in again.json()["data"]] == [i["id"] for i in body["data"]]
        # a summary's decision reads in full, and one invoice alone gets the same decision
        full = client.get(
            f"/v1/eligibility-decisions/{decided[invoices[2].id]['id']}", headers=seller.headers
        )
        assert full.json()["failed_checks"] == ["duration_fits"]
        assert decide(client, seller, invoices[2])["id"] == decided[invoices[2].id]["id"]

    def test_list_batch(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        invoices = [invoice(session, clock, seller) for _ in range(3)]
        ids = [i.id for i in invoices]
        r = client.post("/v1/eligibility/batch", json={"invoices": [*ids, ids[0]]}, headers=seller.headers)
        assert r.status_code == 200
        assert [i["invoice"] for i in r.json()["data"]] == sorted(ids)

    def test_batch_input_is_validated(self, client: TestClient, world: World) -> None:
        h = world.a.headers
        both = {"company": world.a.company.id, "invoices": [world.a.invoice.id]}
        assert client.post("/v1/eligibility/batch", json=both, headers=h).status_code == 422
        assert client.post("/v1/eligibility/batch", json={"invoices": []}, headers=h).status_code == 422
        too_many = {"invoices": [world.a.invoice.id] * 10_001}
        assert client.post("/v1/eligibility/batch", json=too_many, headers=h).status_code == 422
        # a partner key must say which company
        r = client.post("/v1/eligibility/batch", json={}, headers=f.auth(world.partner1_key))
        assert r.status_code == 422
        r = client.post("/v1/eligibility/batch", json={"company": world.c.company.id}, headers=h)
        assert r.status_code == 404


class TestRelatedParties:
    def test_declared_group_company_is_refused(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant, world: World
    ) -> None:
        inv = invoice(session, clock, seller)
        assert decide(client, seller, inv)["eligible"] is True
        r = client.post(
            "/v1/eligibility/related-parties",
            json={"company": seller.company.id, "siren": seller.debtor.siren, "relation": "same_group"},
            headers=f.auth(world.partner1_key),
        )
        assert r.status_code == 201, r.text
        d = decide(client, seller, inv)
        assert d["failed_checks"] == ["not_related_party"]
        listed = client.get("/v1/eligibility/related-parties", headers=seller.headers).json()
        assert [p["siren"] for p in listed["data"]] == [seller.debtor.siren]
        r = client.post(
            "/v1/eligibility/related-parties",
            json={"company": seller.company.id, "siren": "732829320", "relation": "parent"},
            headers=f.auth(world.partner2_key),
        )
        assert r.status_code == 404


class TestInvoiceListFilter:
    def test_filter_invoices_by_their_latest_decision(
        self, client: TestClient, session: Session, clock: FrozenClock, seller: Tenant
    ) -> None:
        ok = invoice(session, clock, seller)
        too_long = invoice(session, clock, seller, days=200)
        undecided = invoice(session, clock, seller)
        assert decide(client, seller, ok)["eligible"] is True
        assert decide(client, seller, too_long)["eligible"] is False

        def listed(value: str) -> set[str]:
            r = client.get("/v1/invoices", params={"eligible": value}, headers=seller.headers)
            assert r.status_code == 200, r.text
            return {i["id"] for i in r.json()["data"]}

        assert ok.id in listed("true") and too_long.id not in listed("true")
        assert too_long.id in listed("false") and ok.id not in listed("false")
        assert undecided.id not in listed("true") | listed("false")

    @pytest.mark.parametrize("closed", [InvoiceStatus.PAID, InvoiceStatus.CANCELLED])
    def test_an_invoice_closed_since_its_decision_is_no_longer_listed_eligible(
        self,
        client: TestClient,
        session: Session,
        clock: FrozenClock,
        seller: Tenant,
        closed: InvoiceStatus,
    ) -> None:
        ok, other = invoice(session, clock, seller), invoice(session, clock, seller)
        assert decide(client, seller, ok)["eligible"] is True
        assert decide(client, seller, other)["eligible"] is True
        ok.status = closed  # as a payment or a credit note records it: no new decision
        session.commit()

        def listed(value: str) -> set[str]:
            r = client.get("/v1/invoices", params={"eligible": value}, headers=seller.headers)
            assert r.status_code == 200, r.text
            return {i["id"] for i in r.json()["data"]}

        assert listed("true") == {other.id}
        assert listed("false") == {ok.id}
