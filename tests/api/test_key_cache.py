"""The per-process key cache: a key is read once, and a change to any key is seen at once
by the process that made it and, through PostgreSQL's notification, by every other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from escompte.access.key_cache import KeyCache
from escompte.access.principal import Principal
from escompte.api.app import create_app
from escompte.clock import SystemClock
from escompte.models import KeyMode, PrincipalKind
from escompte.settings import Settings
from tests import factories as f
from tests.api.conftest import World


@contextmanager
def key_reads(engine: Engine) -> Iterator[list[str]]:
    """The statements that read ``api_keys`` while the block runs."""
    seen: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM api_keys" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def live(app: FastAPI) -> KeyCache:
    cache: KeyCache = app.state.key_cache
    assert cache.wait_live(5), "the key cache's listener did not connect"
    return cache


def refused_within(client: TestClient, secret: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.get("/v1/companies", headers=f.auth(secret)).status_code == 401:
            return True
        time.sleep(0.02)
    return False


class TestInOneProcess:
    def test_a_key_is_read_once_then_served_from_memory(
        self, client: TestClient, app: FastAPI, engine: Engine, world: World
    ) -> None:
        live(app)
        with key_reads(engine) as reads:
            for _ in range(5):
                assert client.get("/v1/companies", headers=world.a.headers).status_code == 200
        assert len(reads) == 1

    def test_without_its_listener_nothing_is_cached(
        self, client: TestClient, app: FastAPI, engine: Engine, world: World
    ) -> None:
        live(app).stop()
        with key_reads(engine) as reads:
            for _ in range(3):
                assert client.get("/v1/companies", headers=world.a.headers).status_code == 200
        assert len(reads) == 3

    def test_a_revoked_key_is_refused_at_once_though_cached(
        self, client: TestClient, app: FastAPI, world: World
    ) -> None:
        live(app)
        created = client.post(
            "/v1/api-keys",
            json={"kind": "company", "company": world.a.company.id},
            headers=f.auth(world.admin_key),
        ).json()
        assert client.get("/v1/companies", headers=f.auth(created["secret"])).status_code == 200
        assert client.get("/v1/companies", headers=f.auth(created["secret"])).status_code == 200  # cached
        revoked = client.post(f"/v1/api-keys/{created['id']}/revoke", headers=f.auth(world.admin_key))
        assert revoked.status_code == 200
        assert client.get("/v1/companies", headers=f.auth(created["secret"])).status_code == 401

    def test_unknown_keys_are_read_every_time(
        self, client: TestClient, app: FastAPI, engine: Engine, world: World
    ) -> None:
        live(app)
        with key_reads(engine) as reads:
            for _ in range(3):
                assert client.get("/v1/companies", headers=f.auth("esk_test_unknown")).status_code == 401
        assert len(reads) == 3


class TestReadsRacingAChange:
    def test_what_was_read_before_a_clear_is_not_stored_after_it(self) -> None:
        cache = KeyCache(lambda: None, max_age_s=60)
        cache._live = True  # as its listener sets it
        principal = Principal(kind=PrincipalKind.ADMIN, key_id="key_x", mode=KeyMode.TEST)
        generation = cache.generation  # a request takes it, then reads the key...
        cache.clear()  # ...while a revocation's notification arrives
        cache.put("h", principal, generation)
        assert cache.get("h") is None
        cache.put("h", principal, cache.generation)
        assert cache.get("h") == principal

    def test_entries_expire(self) -> None:
        cache = KeyCache(lambda: None, max_age_s=0)
        cache._live = True
        cache.put("h", Principal(kind=PrincipalKind.ADMIN, key_id="key_x", mode=KeyMode.TEST), 0)
        time.sleep(0.001)
        assert cache.get("h") is None


class TestAcrossProcesses:
    """Two apps on one database, as two API processes: each with its own cache."""

    @pytest.fixture
    def two(self, db_url: str, committed_engine: Engine) -> Iterator[tuple[TestClient, TestClient, str, str]]:
        with Session(committed_engine) as s:
            company = f.company(s, SystemClock(), name="Delta SAS")
            secret = f.key(s, SystemClock(), kind=PrincipalKind.COMPANY, company_id=company.id)
            company_id = company.id
            s.commit()
        settings = Settings(database_url=db_url, rate_limit_per_second=10_000, rate_limit_burst=10_000)
        apps = [create_app(settings, engine=committed_engine, configure_logs=False) for _ in range(2)]
        with TestClient(apps[0]) as one, TestClient(apps[1]) as other:
            for app in apps:
                live(app)
            yield one, other, secret, company_id

    def test_a_key_revoked_by_sql_is_refused_by_every_process(
        self, two: tuple[TestClient, TestClient, str, str], committed_engine: Engine
    ) -> None:
        one, other, secret, _ = two
        for client in (one, other):
            assert client.get("/v1/companies", headers=f.auth(secret)).status_code == 200
        with committed_engine.begin() as conn:
            conn.execute(text("UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL"))
        assert refused_within(one, secret, 2)
        assert refused_within(other, secret, 2)

    def test_a_listener_that_loses_its_connection_stops_caching_then_listens_again(
        self, two: tuple[TestClient, TestClient, str, str], committed_engine: Engine
    ) -> None:
        one, _, secret, _ = two
        cache: KeyCache = one.app.state.key_cache  # type: ignore[attr-defined]
        assert one.get("/v1/companies", headers=f.auth(secret)).status_code == 200
        with committed_engine.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'escompte-key-cache' AND datname = current_database()"
                )
            ).all()
        assert killed
        deadline = time.monotonic() + 2
        while cache.live and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not cache.live  # it waits a second before connecting again
        assert cache.wait_live(5)
        with key_reads(committed_engine) as reads:
            assert one.get("/v1/companies", headers=f.auth(secret)).status_code == 200
        assert len(reads) == 1  # forgotten while dark, read again


def test_a_listener_started_again_after_a_stop_is_the_only_one_and_stays_live(
    app: FastAPI, client: TestClient
) -> None:
    cache = live(app)
    cache.stop()
    cache.start()  # as a second lifespan of the same app would
    assert cache.wait_live(5)
    time.sleep(0.6)  # the first listener has seen its stop by now (it polls every 0.25 s)
    assert cache.live  # the first one, gone, did not turn the cache off on its way out
