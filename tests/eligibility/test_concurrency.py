"""Deciding under concurrency, with real commits: API processes serve many requests at
once, several of them on the same invoice, and admins may change the policy together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from escompte.api.app import create_app
from escompte.clock import FrozenClock
from escompte.db import make_session_factory
from escompte.models import EligibilityDecision, EligibilityPolicy, PrincipalKind
from escompte.settings import Settings
from tests import factories as f
from tests.eligibility import builders as b

pytestmark = pytest.mark.committed


def _app(settings: Settings, engine: Engine, clock: FrozenClock) -> FastAPI:
    return create_app(settings, engine=engine, clock=clock, configure_logs=False)


def _together(n: int, call: Callable[[TestClient], Any], app: FastAPI) -> list[Any]:
    results: list[Any] = []
    barrier = threading.Barrier(n)

    def run() -> None:
        with TestClient(app) as c:
            barrier.wait()
            results.append(call(c))

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_parallel_decisions_on_one_invoice_agree(
    committed_engine: Engine, settings: Settings, clock: FrozenClock
) -> None:
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        seller = b.healthy_seller(s, clock)
        inv = f.invoice(s, clock, company_id=seller.company.id, debtor_id=seller.debtor.id)
        secret = f.key(s, clock, kind=PrincipalKind.COMPANY, company_id=seller.company.id)
    app = _app(settings, committed_engine, clock)

    def call(c: TestClient) -> tuple[int, dict[str, Any]]:
        r = c.post(f"/v1/invoices/{inv.id}/eligibility", headers=f.auth(secret))
        return r.status_code, r.json()

    results = _together(8, call, app)
    assert [status for status, _ in results] == [200] * 8
    outcomes = {
        (d["eligible"], d["max_amount"]["amount"], d["risk_grade"], tuple(d["failed_checks"]))
        for _, d in results
    }
    assert outcomes == {(True, 1_200_000, "B", ())}
    with TestClient(app) as c:
        again = c.post(f"/v1/invoices/{inv.id}/eligibility", headers=f.auth(secret))
    assert again.headers["Eligibility-Cache"] == "hit"
    with factory() as s:
        made = s.execute(select(func.count()).select_from(EligibilityDecision)).scalar_one()
        assert 1 <= made <= 8  # racing first calls may each write one; all are the same decision


def test_parallel_policy_changes_get_distinct_versions(
    committed_engine: Engine, settings: Settings, clock: FrozenClock
) -> None:
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        secret = f.key(s, clock, kind=PrincipalKind.ADMIN)
    app = _app(settings, committed_engine, clock)

    def call(c: TestClient) -> int:
        body = {"settings": {"grace_days": 12}}
        return c.post("/v1/eligibility/policy", json=body, headers=f.auth(secret)).status_code

    statuses = _together(4, call, app)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    with factory() as s:
        versions = (
            s.execute(select(EligibilityPolicy.version).order_by(EligibilityPolicy.version)).scalars().all()
        )
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) == 1 + statuses.count(201)
