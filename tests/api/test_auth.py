"""Authentication and object-level authorization on every route."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests import factories as f
from tests.api.conftest import World


def _object_routes(w: World) -> list[tuple[str, str, dict[str, object] | None]]:
    """Every route that takes another tenant's object (path or body), for tenant B."""
    b = w.b
    return [
        ("GET", f"/v1/companies/{b.company.id}", None),
        ("GET", f"/v1/debtors/{b.debtor.id}", None),
        ("GET", f"/v1/invoices/{b.invoice.id}", None),
        ("POST", f"/v1/invoices/{b.invoice.id}/cancel", None),
        ("POST", "/v1/debtors", {"company": b.company.id, "siren": f.siren(), "legal_name": "X"}),
        (
            "POST",
            "/v1/invoices",
            {
                "company": b.company.id,
                "counterparty": b.debtor.id,
                "kind": "receivable",
                "number": "N-1",
                "issue_date": "2026-03-01",
                "due_date": "2026-04-01",
                "amount": {"amount": 1000, "currency": "EUR"},
            },
        ),
        ("POST", "/v1/api-keys", {"kind": "company", "company": b.company.id}),
    ]


class TestAuthentication:
    def test_no_key_is_401_problem(self, client: TestClient, world: World) -> None:
        r = client.get("/v1/companies")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "urn:escompte:problem:unauthorized"

    @pytest.mark.parametrize(
        "header",
        [
            "Bearer esk_test_nope",
            "Basic abc",
            "Bearer ",
            "esk_test_x",
            "Bearer " + "a" * 300,
        ],
    )
    def test_bad_keys_are_401(self, client: TestClient, world: World, header: str) -> None:
        r = client.get("/v1/companies", headers={"Authorization": header})
        assert r.status_code == 401

    def test_revoked_key_is_401(self, client: TestClient, world: World) -> None:
        created = client.post(
            "/v1/api-keys",
            json={"kind": "company", "company": world.a.company.id},
            headers=f.auth(world.admin_key),
        )
        assert created.status_code == 201, created.text
        secret, key_id = created.json()["secret"], created.json()["id"]
        assert secret.startswith("esk_test_")
        assert client.get("/v1/companies", headers=f.auth(secret)).status_code == 200
        revoked = client.post(f"/v1/api-keys/{key_id}/revoke", headers=f.auth(world.admin_key))
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert client.get("/v1/companies", headers=f.auth(secret)).status_code == 401

    def test_secret_is_shown_once_and_stored_hashed(self, client: TestClient, world: World) -> None:
        created = client.post("/v1/api-keys", json={"kind": "admin"}, headers=f.auth(world.admin_key))
        secret, key_id = created.json()["secret"], created.json()["id"]
        shown = client.get(f"/v1/api-keys/{key_id}", headers=f.auth(world.admin_key)).json()
        assert "secret" not in shown
        assert secret not in str(shown)
        assert shown["display_prefix"] == secret[:16]


class TestTenancy:
    def test_company_key_sees_only_itself(self, client: TestClient, world: World) -> None:
        for path in ("/v1/companies", "/v1/debtors", "/v1/invoices"):
            data = client.get(path, headers=world.a.headers).json()["data"]
            companies = {d.get("company", d["id"]) for d in data}
            assert companies == {world.a.company.id}, path

    def test_partner_key_sees_only_its_companies(self, client: TestClient, world: World) -> None:
        data = client.get("/v1/companies", headers=f.auth(world.partner1_key)).json()["data"]
        assert {d["id"] for d in data} == {world.a.company.id, world.b.company.id}
        data = client.get("/v1/invoices", headers=f.auth(world.partner2_key)).json()["data"]
        assert {d["company"] for d in data} == {world.c.company.id}

    def test_admin_sees_everything(self, client: TestClient, world: World) -> None:
        data = client.get("/v1/companies", headers=f.auth(world.admin_key)).json()["data"]
        assert {world.a.company.id, world.b.company.id, world.c.company.id} <= {d["id"] for d in data}

    def test_every_route_hides_another_company(self, client: TestClient, world: World) -> None:
        for method, path, body in _object_routes(world):
            r = client.request(method, path, json=body, headers=world.a.headers)
            assert r.status_code in (403, 404), (method, path, r.status_code, r.text)
            assert world.b.company.legal_name not in r.text
            if method == "GET" or path.startswith("/v1/invoices/"):
                assert r.status_code == 404, (method, path)

    def test_every_route_hides_another_partners_company(self, client: TestClient, world: World) -> None:
        for method, path, body in _object_routes(world):
            r = client.request(method, path, json=body, headers=f.auth(world.partner2_key))
            assert r.status_code == 404, (method, path, r.status_code, r.text)

    def test_partner_reaches_its_own_companies(self, client: TestClient, world: World) -> None:
        for method, path, body in _object_routes(world):
            if method != "GET":
                continue
            r = client.request(method, path, json=body, headers=f.auth(world.partner1_key))
            assert r.status_code == 200, (method, path, r.text)

    def test_filter_by_another_company_returns_nothing(self, client: TestClient, world: World) -> None:
        r = client.get(f"/v1/invoices?company={world.b.company.id}", headers=world.a.headers)
        assert r.status_code == 200
        assert r.json()["data"] == []

    def test_company_key_cannot_create_companies_or_partners(self, client: TestClient, world: World) -> None:
        r = client.post(
            "/v1/companies",
            json={"legal_name": "X", "siren": f.siren(), "contact_email": "a@b.fr"},
            headers=world.a.headers,
        )
        assert r.status_code == 403
        r = client.post("/v1/partners", json={"name": "X"}, headers=world.a.headers)
        assert r.status_code == 403

    def test_partner_onboards_companies_under_itself(self, client: TestClient, world: World) -> None:
        r = client.post(
            "/v1/companies",
            json={"legal_name": "Delta SAS", "siren": f.siren(), "contact_email": "a@delta.fr"},
            headers=f.auth(world.partner2_key),
        )
        assert r.status_code == 201, r.text
        assert r.json()["partner"] == world.partner2.id
        listed = client.get("/v1/companies", headers=f.auth(world.partner1_key)).json()["data"]
        assert r.json()["id"] not in {c["id"] for c in listed}

    def test_partner_creates_company_keys_only_for_its_companies(
        self, client: TestClient, world: World
    ) -> None:
        ok = client.post(
            "/v1/api-keys",
            json={"kind": "company", "company": world.a.company.id},
            headers=f.auth(world.partner1_key),
        )
        assert ok.status_code == 201
        admin = client.post("/v1/api-keys", json={"kind": "admin"}, headers=f.auth(world.partner1_key))
        assert admin.status_code == 403
        other = client.post(
            "/v1/api-keys",
            json={"kind": "company", "company": world.c.company.id},
            headers=f.auth(world.partner1_key),
        )
        assert other.status_code == 404

    def test_keys_of_other_tenants_are_invisible(self, client: TestClient, world: World) -> None:
        listed = client.get("/v1/api-keys", headers=world.a.headers).json()["data"]
        assert {k["company"] for k in listed} == {world.a.company.id}
        other = client.get("/v1/api-keys", headers=world.b.headers).json()["data"][0]["id"]
        assert client.get(f"/v1/api-keys/{other}", headers=world.a.headers).status_code == 404
        assert client.post(f"/v1/api-keys/{other}/revoke", headers=world.a.headers).status_code == 404
        assert (
            client.get(f"/v1/partners/{world.partner2.id}", headers=f.auth(world.partner1_key)).status_code
            == 404
        )
