from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from escompte.api.app import create_app
from escompte.clock import FrozenClock
from escompte.db import make_session_factory
from escompte.models import IdempotencyRecord, Invoice, PrincipalKind
from escompte.settings import Settings
from tests import factories as f
from tests.api.conftest import World


def _body(world: World, number: str = "F-IDEM-1", amount: int = 50_000) -> dict[str, Any]:
    return {
        "counterparty": world.a.debtor.id,
        "kind": "receivable",
        "number": number,
        "issue_date": "2026-03-01",
        "due_date": "2026-04-01",
        "amount": {"amount": amount, "currency": "EUR"},
    }


def _invoices(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Invoice)).scalar_one()


class TestIdempotencyKey:
    def test_replay_returns_identical_response_and_creates_nothing(
        self, client: TestClient, session: Session, world: World
    ) -> None:
        headers = {**world.a.headers, "Idempotency-Key": "order-42"}
        first = client.post("/v1/invoices", json=_body(world), headers=headers)
        assert first.status_code == 201
        count = _invoices(session)
        again = client.post("/v1/invoices", json=_body(world), headers=headers)
        assert again.status_code == 201
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert _invoices(session) == count

    def test_key_order_and_spacing_of_json_do_not_matter(self, client: TestClient, world: World) -> None:
        headers = {**world.a.headers, "Idempotency-Key": "order-43", "content-type": "application/json"}
        a = client.post(
            "/v1/invoices",
            content=b'{"number":"F-9","kind":"receivable","counterparty":"'
            + world.a.debtor.id.encode()
            + b'","issue_date":"2026-03-01","due_date":"2026-04-01",'
            b'"amount":{"amount":5,"currency":"EUR"}}',
            headers=headers,
        )
        b = client.post(
            "/v1/invoices", json=dict(reversed(list(_body(world, "F-9", 5).items()))), headers=headers
        )
        assert a.status_code == 201 and b.content == a.content

    def test_same_key_other_body_is_refused(self, client: TestClient, session: Session, world: World) -> None:
        headers = {**world.a.headers, "Idempotency-Key": "order-44"}
        assert client.post("/v1/invoices", json=_body(world), headers=headers).status_code == 201
        count = _invoices(session)
        r = client.post("/v1/invoices", json=_body(world, amount=60_000), headers=headers)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "Idempotency-Key"
        assert "already used" in r.json()["detail"]
        assert r.json()["type"] == "urn:escompte:problem:idempotency_key_reused"
        assert _invoices(session) == count

    def test_same_key_other_endpoint_is_refused(self, client: TestClient, world: World) -> None:
        headers = {**world.a.headers, "Idempotency-Key": "order-45"}
        assert client.post("/v1/invoices", json=_body(world), headers=headers).status_code == 201
        r = client.post("/v1/debtors", json={"siren": f.siren(), "legal_name": "X"}, headers=headers)
        assert r.status_code == 422

    def test_keys_are_scoped_per_principal(self, client: TestClient, world: World) -> None:
        a = client.post(
            "/v1/invoices", json=_body(world), headers={**world.a.headers, "Idempotency-Key": "k"}
        )
        body_b = {**_body(world), "counterparty": world.b.debtor.id}
        b = client.post("/v1/invoices", json=body_b, headers={**world.b.headers, "Idempotency-Key": "k"})
        assert a.status_code == b.status_code == 201
        assert a.json()["id"] != b.json()["id"]

    def test_failed_request_keeps_no_key(self, client: TestClient, session: Session, world: World) -> None:
        headers = {**world.a.headers, "Idempotency-Key": "retry-me"}
        bad = client.post("/v1/invoices", json=_body(world, amount=-1), headers=headers)
        assert bad.status_code == 422
        refused = client.post(
            "/v1/invoices", json={**_body(world), "counterparty": world.b.debtor.id}, headers=headers
        )
        assert refused.status_code == 404
        assert session.execute(select(func.count()).select_from(IdempotencyRecord)).scalar_one() == 0
        ok = client.post("/v1/invoices", json=_body(world), headers=headers)
        assert ok.status_code == 201

    def test_invalid_key_is_422(self, client: TestClient, world: World) -> None:
        r = client.post(
            "/v1/invoices", json=_body(world), headers={**world.a.headers, "Idempotency-Key": "x" * 256}
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "Idempotency-Key"

    def test_expired_key_runs_again(
        self, client: TestClient, session: Session, clock: FrozenClock, world: World
    ) -> None:
        headers = {**world.a.headers, "Idempotency-Key": "old"}
        first = client.post("/v1/invoices", json=_body(world, "F-OLD-1"), headers=headers)
        clock.advance(timedelta(hours=23))
        assert (
            client.post("/v1/invoices", json=_body(world, "F-OLD-1"), headers=headers).content
            == first.content
        )
        clock.advance(timedelta(hours=2))
        again = client.post("/v1/invoices", json=_body(world, "F-OLD-2"), headers=headers)
        assert again.status_code == 201 and again.json()["id"] != first.json()["id"]

    def test_get_requests_ignore_the_header(self, client: TestClient, world: World) -> None:
        r = client.get("/v1/invoices", headers={**world.a.headers, "Idempotency-Key": "g"})
        assert r.status_code == 200


class TestConcurrentIdempotency:
    def test_parallel_requests_with_one_key_create_one_invoice(
        self, committed_engine: Engine, settings: Settings, clock: FrozenClock
    ) -> None:
        factory = make_session_factory(committed_engine)
        with factory() as s, s.begin():
            company = f.company(s, clock)
            debtor = f.debtor(s, clock, company_id=company.id)
            secret = f.key(s, clock, kind=PrincipalKind.COMPANY, company_id=company.id)
        app = create_app(settings, engine=committed_engine, clock=clock, configure_logs=False)
        body = {
            "counterparty": debtor.id,
            "kind": "receivable",
            "number": "F-RACE",
            "issue_date": "2026-03-01",
            "due_date": "2026-04-01",
            "amount": {"amount": 700, "currency": "EUR"},
        }
        headers = {**f.auth(secret), "Idempotency-Key": "race-1"}
        results: list[tuple[int, bytes]] = []
        barrier = threading.Barrier(8)

        def call() -> None:
            with TestClient(app) as c:
                barrier.wait()
                r = c.post("/v1/invoices", json=body, headers=headers)
                results.append((r.status_code, r.content))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [s for s, _ in results] == [201] * 8
        assert len({c for _, c in results}) == 1
        with factory() as s:
            assert s.execute(select(func.count()).select_from(Invoice)).scalar_one() == 1
