from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.invoices import states
from escompte.models import InvoiceStatus
from tests import factories as f
from tests.api.conftest import World


class TestPagination:
    def test_walks_every_invoice_once_newest_first(
        self, client: TestClient, session: Session, clock: FrozenClock, world: World
    ) -> None:
        created = [
            f.invoice(session, clock, company_id=world.a.company.id, debtor_id=world.a.debtor.id).id
            for _ in range(25)
        ]
        session.commit()
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 10, **({"starting_after": cursor} if cursor else {})}
            page = client.get("/v1/invoices", params=params, headers=world.a.headers).json()
            seen += [i["id"] for i in page["data"]]
            pages += 1
            if not page["has_more"]:
                break
            cursor = page["data"][-1]["id"]
        expected = sorted([*created, world.a.invoice.id], reverse=True)
        assert seen == expected
        assert pages == 3

    def test_limit_bounds(self, client: TestClient, world: World) -> None:
        for bad in (0, 101, -1, "x"):
            r = client.get("/v1/invoices", params={"limit": bad}, headers=world.a.headers)
            assert r.status_code == 422
            assert r.json()["errors"][0]["field"] == "limit"
        r = client.get("/v1/invoices", params={"starting_after": "nope"}, headers=world.a.headers)
        assert r.json()["errors"][0]["field"] == "starting_after"

    def test_filters(self, client: TestClient, world: World) -> None:
        r = client.get(
            "/v1/invoices",
            params={"status": "open", "kind": "receivable", "counterparty": world.a.debtor.id},
            headers=world.a.headers,
        )
        assert [i["id"] for i in r.json()["data"]] == [world.a.invoice.id]
        r = client.get("/v1/invoices", params={"status": "paid"}, headers=world.a.headers)
        assert r.json()["data"] == []


class TestInvoiceStates:
    def test_cancel_open_invoice(self, client: TestClient, world: World) -> None:
        r = client.post(f"/v1/invoices/{world.a.invoice.id}/cancel", headers=world.a.headers)
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
        again = client.post(f"/v1/invoices/{world.a.invoice.id}/cancel", headers=world.a.headers)
        assert again.status_code == 409
        assert again.json()["type"] == "urn:escompte:problem:invalid_state_transition"
        assert again.json()["current_status"] == "cancelled"

    def test_paid_invoice_cannot_be_cancelled(
        self, client: TestClient, session: Session, clock: FrozenClock, world: World
    ) -> None:
        inv = world.a.invoice
        inv.amount_paid_cents = inv.amount_cents
        states.transition_to(session, inv, InvoiceStatus.PAID, clock.now())
        session.commit()
        r = client.post(f"/v1/invoices/{inv.id}/cancel", headers=world.a.headers)
        assert r.status_code == 409

    def test_transition_table(self) -> None:
        assert states.can_transition(InvoiceStatus.OPEN, InvoiceStatus.PAID)
        assert not states.can_transition(InvoiceStatus.PAID, InvoiceStatus.OPEN)
        assert not states.can_transition(InvoiceStatus.CANCELLED, InvoiceStatus.OPEN)
        for target in InvoiceStatus:
            assert not states.can_transition(InvoiceStatus.PAID, target)


class TestCompaniesAndPartners:
    def test_get_company(self, client: TestClient, world: World) -> None:
        r = client.get(f"/v1/companies/{world.a.company.id}", headers=world.a.headers)
        assert r.status_code == 200
        assert r.json()["object"] == "company" and r.json()["partner"] == world.partner1.id

    def test_admin_creates_partner_and_partner_key(self, client: TestClient, world: World) -> None:
        admin = f.auth(world.admin_key)
        p = client.post("/v1/partners", json={"name": "Neobank X"}, headers=admin)
        assert p.status_code == 201 and p.json()["id"].startswith("prt_")
        k = client.post("/v1/api-keys", json={"kind": "partner", "partner": p.json()["id"]}, headers=admin)
        assert k.status_code == 201
        listed = client.get("/v1/partners", headers=f.auth(k.json()["secret"])).json()["data"]
        assert [x["id"] for x in listed] == [p.json()["id"]]

    def test_key_kind_needs_its_owner(self, client: TestClient, world: World) -> None:
        admin = f.auth(world.admin_key)
        assert client.post("/v1/api-keys", json={"kind": "partner"}, headers=admin).status_code == 422
        assert client.post("/v1/api-keys", json={"kind": "company"}, headers=admin).status_code == 422
        r = client.post("/v1/api-keys", json={"kind": "admin", "company": world.a.company.id}, headers=admin)
        assert r.status_code == 422

    def test_live_key_prefix(self, client: TestClient, world: World) -> None:
        r = client.post(
            "/v1/api-keys", json={"kind": "admin", "mode": "live"}, headers=f.auth(world.admin_key)
        )
        assert r.json()["secret"].startswith("esk_live_")


class TestOperations:
    def test_health_ready_metrics(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        client.get("/v1/companies")
        metrics = client.get("/metrics").text
        assert "escompte_http_requests_total" in metrics
        assert "escompte_api_slot_wait_seconds_count" in metrics  # the /v1 request waited for a slot
        assert "escompte_api_requests_waiting" in metrics

    def test_request_id_is_echoed_or_made(self, client: TestClient) -> None:
        assert (
            client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
        )
        assert client.get("/healthz").headers["x-request-id"].startswith("req_")

    def test_rate_limit_is_429_problem(self, client: TestClient, app: object, world: World) -> None:
        from escompte.api.ratelimit import RateLimiter

        app.state.rate_limiter = RateLimiter(rate_per_second=0.001, burst=2)  # type: ignore[attr-defined]
        codes = [client.get("/v1/companies", headers=world.a.headers).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = client.get("/v1/companies", headers=world.a.headers)
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1
        assert client.get("/v1/companies", headers=world.b.headers).status_code == 200
