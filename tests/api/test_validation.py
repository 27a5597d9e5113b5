"""Bad input of every kind: a 422 problem naming the field, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from escompte.models import Company, Debtor, Invoice
from tests import factories as f
from tests.api.conftest import World


def _invoice(world: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "counterparty": world.a.debtor.id,
        "kind": "receivable",
        "number": "F-2026-001",
        "issue_date": "2026-03-01",
        "due_date": "2026-04-15",
        "amount": {"amount": 1_250_000, "currency": "EUR"},
    }
    body.update(changes)
    return body


def _company(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "legal_name": "Atelier Lumière SAS",
        "siren": "732829320",
        "siret": "73282932000074",
        "iban": "FR1420041010050500013M02606",
        "bic": "BNPAFRPP",
        "contact_email": "treso@atelier.fr",
        "vat_number": "FR44732829320",
        "address": {"line1": "12 rue de la République", "postal_code": "69002", "city": "Lyon"},
    }
    body.update(changes)
    return body


def _counts(session: Session) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        session.execute(select(func.count()).select_from(m)).scalar_one() for m in (Company, Debtor, Invoice)
    )


INVOICE_CASES = [
    ("amount.amount", {"amount": {"amount": -5, "currency": "EUR"}}),
    ("amount.amount", {"amount": {"amount": 0, "currency": "EUR"}}),
    ("amount.amount", {"amount": {"amount": "12.50", "currency": "EUR"}}),
    ("amount.amount", {"amount": {"amount": 12.5, "currency": "EUR"}}),
    ("amount.currency", {"amount": {"amount": 100, "currency": "USD"}}),
    ("amount.currency", {"amount": {"amount": 100, "currency": "euro"}}),
    ("amount", {"amount": 100}),
    ("due_date", {"due_date": "2026-02-01"}),
    ("issue_date", {"issue_date": "01/03/2026"}),
    ("issue_date", {"issue_date": 20260301}),
    ("issue_date", {"issue_date": "2026-02-30"}),
    ("kind", {"kind": "loan"}),
    ("number", {"number": ""}),
    ("number", {"number": "A\x00B"}),
    ("number", {"number": "x" * 65}),
    ("counterparty", {"counterparty": "cmp_123"}),
    ("surprise", {"surprise": 1}),
]


class TestInvoiceValidation:
    @pytest.mark.parametrize(("field", "change"), INVOICE_CASES)
    def test_refused_with_field_and_nothing_stored(
        self, client: TestClient, session: Session, world: World, field: str, change: dict[str, Any]
    ) -> None:
        before = _counts(session)
        r = client.post("/v1/invoices", json=_invoice(world, **change), headers=world.a.headers)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert {"type", "title", "status", "detail"} <= problem.keys()
        assert field in [e["field"] for e in problem["errors"]], problem
        assert _counts(session) == before

    def test_unknown_currency_message_is_clear(self, client: TestClient, world: World) -> None:
        r = client.post(
            "/v1/invoices",
            json=_invoice(world, amount={"amount": 100, "currency": "USD"}),
            headers=world.a.headers,
        )
        assert "EUR only" in r.json()["detail"]

    def test_due_date_before_issue_date_names_due_date(self, client: TestClient, world: World) -> None:
        r = client.post("/v1/invoices", json=_invoice(world, due_date="2026-01-01"), headers=world.a.headers)
        assert r.json()["errors"][0]["field"] == "due_date"
        assert "issue date" in r.json()["detail"]

    def test_malformed_json(self, client: TestClient, session: Session, world: World) -> None:
        before = _counts(session)
        r = client.post(
            "/v1/invoices",
            content=b'{"number": "F-1",',
            headers={**world.a.headers, "content-type": "application/json"},
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "body"
        assert _counts(session) == before

    def test_body_not_an_object(self, client: TestClient, world: World) -> None:
        r = client.post("/v1/invoices", json=[1, 2], headers=world.a.headers)
        assert r.status_code == 422

    def test_valid_invoice_is_created(self, client: TestClient, world: World) -> None:
        r = client.post("/v1/invoices", json=_invoice(world), headers=world.a.headers)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["id"].startswith("inv_") and body["object"] == "invoice"
        assert body["amount"] == {"amount": 1_250_000, "currency": "EUR"}
        assert body["amount_due"] == {"amount": 1_250_000, "currency": "EUR"}
        assert body["status"] == "open" and body["company"] == world.a.company.id
        assert body["created_at"].startswith("2026-03-02T09:00:00")

    def test_duplicate_number_for_same_counterparty_is_409(self, client: TestClient, world: World) -> None:
        first = client.post("/v1/invoices", json=_invoice(world), headers=world.a.headers)
        again = client.post("/v1/invoices", json=_invoice(world), headers=world.a.headers)
        assert again.status_code == 409
        assert again.json()["existing_id"] == first.json()["id"]

    def test_same_number_for_another_counterparty_is_fine(
        self, client: TestClient, session: Session, clock: Any, world: World
    ) -> None:
        other = f.debtor(session, clock, company_id=world.a.company.id, name="Autre SA")
        session.commit()
        assert client.post("/v1/invoices", json=_invoice(world), headers=world.a.headers).status_code == 201
        r = client.post("/v1/invoices", json=_invoice(world, counterparty=other.id), headers=world.a.headers)
        assert r.status_code == 201

    def test_counterparty_of_a_sibling_company_is_refused(self, client: TestClient, world: World) -> None:
        body = _invoice(world, company=world.a.company.id, counterparty=world.b.debtor.id)
        r = client.post("/v1/invoices", json=body, headers=f.auth(world.partner1_key))
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "counterparty"

    def test_partner_must_name_the_company(self, client: TestClient, world: World) -> None:
        r = client.post("/v1/invoices", json=_invoice(world), headers=f.auth(world.partner1_key))
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "company"


COMPANY_CASES = [
    ("siren", {"siren": "732829321"}),
    ("siren", {"siren": "73282932"}),
    ("siren", {"siren": 732829320}),
    ("siret", {"siret": "73282932000075"}),
    ("siret", {"siret": "40483304800022"}),
    ("iban", {"iban": "FR1420041010050500013M02607"}),
    ("iban", {"iban": "FR76"}),
    ("bic", {"bic": "BNPA"}),
    ("vat_number", {"vat_number": "FR00732829320"}),
    ("vat_number", {"vat_number": "FR40303265045"}),
    ("contact_email", {"contact_email": "not-an-email"}),
    ("legal_name", {"legal_name": ""}),
    ("address.postal_code", {"address": {"line1": "x", "postal_code": "!", "city": "Lyon"}}),
]


class TestCompanyValidation:
    @pytest.mark.parametrize(("field", "change"), COMPANY_CASES)
    def test_refused_with_field(
        self, client: TestClient, session: Session, world: World, field: str, change: dict[str, Any]
    ) -> None:
        before = _counts(session)
        r = client.post("/v1/companies", json=_company(**change), headers=f.auth(world.admin_key))
        assert r.status_code == 422, r.text
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
        assert _counts(session) == before

    def test_valid_company(self, client: TestClient, world: World) -> None:
        r = client.post(
            "/v1/companies",
            json=_company(iban="FR14 2004 1010 0505 0001 3M02 606"),
            headers=f.auth(world.admin_key),
        )
        assert r.status_code == 201, r.text
        assert r.json()["iban"] == "FR1420041010050500013M02606"
        assert r.json()["address"]["country"] == "FR"
        dup = client.post("/v1/companies", json=_company(), headers=f.auth(world.admin_key))
        assert dup.status_code == 409


class TestDebtors:
    def test_create_and_duplicate(self, client: TestClient, world: World) -> None:
        body = {"siren": "732829320", "legal_name": "Client SA", "payment_terms_days": 45}
        r = client.post("/v1/debtors", json=body, headers=world.a.headers)
        assert r.status_code == 201, r.text
        assert r.json()["company"] == world.a.company.id and r.json()["payment_terms_days"] == 45
        assert client.post("/v1/debtors", json=body, headers=world.a.headers).status_code == 409
        # unique per seller: another company may have the same debtor
        assert client.post("/v1/debtors", json=body, headers=world.b.headers).status_code == 201

    @pytest.mark.parametrize(
        ("field", "change"),
        [
            ("siren", {"siren": "123456789"}),
            ("payment_terms_days", {"payment_terms_days": 400}),
            ("payment_terms_days", {"payment_terms_days": -1}),
            ("contact_email", {"contact_email": "x"}),
        ],
    )
    def test_invalid(self, client: TestClient, world: World, field: str, change: dict[str, Any]) -> None:
        body = {"siren": "732829320", "legal_name": "Client SA", **change}
        r = client.post("/v1/debtors", json=body, headers=world.a.headers)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == field

    def test_seller_cannot_be_its_own_debtor(self, client: TestClient, world: World) -> None:
        body = {"siren": world.a.company.siren, "legal_name": "Moi-même"}
        r = client.post("/v1/debtors", json=body, headers=world.a.headers)
        assert r.status_code == 422


class TestProblems:
    def test_unknown_route_is_problem(self, client: TestClient) -> None:
        r = client.get("/v1/nothing-here")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"

    def test_bad_id_format_is_422(self, client: TestClient, world: World) -> None:
        r = client.get("/v1/invoices/not-an-id", headers=world.a.headers)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "invoice_id"

    def test_unexpected_error_hides_internals(self, app: Any, client: TestClient, world: World) -> None:
        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("secret internals: password=hunter2")

        r = client.get("/boom")
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        assert "hunter2" not in r.text and "RuntimeError" not in r.text
        assert r.json()["request_id"] == r.headers["x-request-id"]

    def test_busy_connection_pool_is_a_retryable_503(self, app: Any, client: TestClient, db_url: str) -> None:
        """A burst larger than the pool: the request that waited too long for a connection
        gets 503 database_busy with Retry-After (nothing was done), not a 500."""
        tiny = create_engine(db_url, pool_size=1, max_overflow=0, pool_timeout=0.2)

        @app.get("/busy")
        def busy() -> None:
            with tiny.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            with tiny.connect():  # the pool's only connection, held by another request
                r = client.get("/busy")
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"] == "urn:escompte:problem:database_busy"
            assert r.headers["retry-after"] == "1"
            assert client.get("/busy").status_code == 200  # the connection is back
        finally:
            tiny.dispose()


class TestQueryAndMethods:
    def test_unknown_query_parameter_is_422(self, client: TestClient, world: World) -> None:
        r = client.get("/v1/invoices", params={"stauts": "paid"}, headers=world.a.headers)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "stauts"

    def test_405_lists_every_allowed_method(self, client: TestClient) -> None:
        r = client.delete("/v1/companies")
        assert r.status_code == 405
        assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}
        assert r.headers["content-type"] == "application/problem+json"
