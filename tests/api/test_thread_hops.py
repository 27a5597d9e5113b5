"""A sync route runs in one thread hop, from authentication to commit (ADR-016): each
hop hands the request to a thread and back, a sizeable share of a light request's time.
A dependency written as a plain function would add one (FastAPI runs it in a thread)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from tests import factories as f
from tests.api.conftest import World


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The functions run in a worker thread while the test runs."""
    seen: list[str] = []
    original = anyio.to_thread.run_sync

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(func, "func", func)  # functools.partial
        seen.append(getattr(target, "__qualname__", repr(target)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    yield seen


def test_a_read_takes_one_hop(client: TestClient, world: World, hops: list[str]) -> None:
    assert client.get(f"/v1/invoices/{world.a.invoice.id}", headers=world.a.headers).status_code == 200
    assert hops == ["EscompteRoute._serve"]


def test_an_idempotent_post_takes_one_hop(client: TestClient, world: World, hops: list[str]) -> None:
    body = {"siren": f.siren(), "legal_name": "Epsilon SAS", "company": world.a.company.id}
    headers = {**world.a.headers, "Idempotency-Key": "hop-test-1"}
    assert client.post("/v1/debtors", json=body, headers=headers).status_code == 201
    assert hops == ["EscompteRoute._serve"]
    hops.clear()
    replay = client.post("/v1/debtors", json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert hops == ["EscompteRoute._serve"]


def test_a_decision_takes_one_hop(client: TestClient, world: World, hops: list[str]) -> None:
    r = client.post(f"/v1/invoices/{world.a.invoice.id}/eligibility", headers=world.a.headers)
    assert r.status_code == 200, r.text
    assert hops == ["EscompteRoute._serve"]


@pytest.fixture
def commits_lending(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests whose commit lent the request's slot (a commit that waits on the disk)."""
    from contextlib import contextmanager

    from escompte.api import routing

    lent: list[str] = []

    @contextmanager
    def counting() -> Iterator[None]:
        lent.append("commit")
        yield

    monkeypatch.setattr(routing, "waiting_elsewhere", counting)
    return lent


def test_the_commit_of_a_durable_write_lends_the_slot(
    client: TestClient, world: World, commits_lending: list[str]
) -> None:
    assert client.get(f"/v1/invoices/{world.a.invoice.id}", headers=world.a.headers).status_code == 200
    assert commits_lending == []  # a read's commit writes nothing
    decided = client.post(f"/v1/invoices/{world.a.invoice.id}/eligibility", headers=world.a.headers)
    assert decided.status_code == 200
    assert commits_lending == []  # a decision commits without waiting for the disk
    again = client.post(f"/v1/invoices/{world.a.invoice.id}/eligibility", headers=world.a.headers)
    assert again.headers["Eligibility-Cache"] == "hit"
    assert commits_lending == []  # a POST that wrote nothing does not lend either
    body = {"siren": f.siren(), "legal_name": "Zeta SAS", "company": world.a.company.id}
    assert client.post("/v1/debtors", json=body, headers=world.a.headers).status_code == 201
    assert commits_lending == ["commit"]
