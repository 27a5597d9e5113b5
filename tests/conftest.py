"""Test harness on real PostgreSQL.

- The server: ESCOMPTE_DATABASE_URL's (CI runs the suite against PostgreSQL 15 too), or
  an embedded pgserver in .pytest-pg/ started once by the controlling process.
- A template database migrated to head once per migration set (name carries a hash of
  the migration files), then one database per xdist worker cloned from it.
- Each test runs inside an outer transaction rolled back at the end; the app's own
  commits become savepoint releases. Tests that need real commits (concurrency, worker,
  CLI) use ``committed_engine`` and the tables are emptied afterwards.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from escompte.api.app import create_app
from escompte.clock import FrozenClock
from escompte.db import make_engine
from escompte.db.migrate import MIGRATIONS_DIR, upgrade
from escompte.models import Base
from escompte.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVER_ENV = "ESCOMPTE_TEST_SERVER_URL"
TEMPLATE_ENV = "ESCOMPTE_TEST_TEMPLATE"


def _migrations_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS_DIR.rglob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _with_db(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _admin_engine(server_url: str) -> Engine:
    return create_engine(_with_db(server_url, "postgres"), isolation_level="AUTOCOMMIT")


def _ensure_template(server_url: str, base: str) -> str:
    template = f"{base}_tpl_{_migrations_hash()}"
    engine = _admin_engine(server_url)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(724001)"))
        try:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": template}
            ).scalar()
            if not exists:
                building = f"{template}_building"
                conn.execute(text(f'DROP DATABASE IF EXISTS "{building}"'))
                conn.execute(text(f'CREATE DATABASE "{building}"'))
                upgrade(_with_db(server_url, building))
                conn.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{template}"'))
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(724001)"))
    engine.dispose()
    return template


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # xdist worker: the controller prepared the server and the template
    configured = os.environ.get("ESCOMPTE_DATABASE_URL")
    if configured:
        server_url = Settings(database_url=configured).database_url or configured
        base = make_url(server_url).database or "escompte"
    else:
        from escompte.db import embedded

        server_url = embedded.start(ROOT / ".pytest-pg", database="postgres")
        base = "escompte"
    os.environ[SERVER_ENV] = server_url
    os.environ[TEMPLATE_ENV] = _ensure_template(server_url, base)
    _drop_leftovers(server_url, base)


def _drop_leftovers(server_url: str, base: str) -> None:
    """Drop test databases of runs that were killed (their pid is gone)."""
    engine = _admin_engine(server_url)
    with engine.connect() as conn:
        names = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": f"{base}_test_%"}
        ).scalars()
        for name in list(names):
            pid = name.rsplit("_", 1)[-1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    server_url = os.environ[SERVER_ENV]
    template = os.environ[TEMPLATE_ENV]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    # the pid keeps concurrent test runs on one server apart
    name = f"{template.split('_tpl_')[0]}_test_{worker}_{os.getpid()}"
    engine = _admin_engine(server_url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _with_db(server_url, name)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, pool_size=5)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    trans = conn.begin()
    try:
        yield conn
    finally:
        trans.rollback()
        conn.close()


def _savepoint_session(conn: Connection) -> Session:
    return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    s = _savepoint_session(connection)
    yield s
    s.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, rate_limit_per_second=10_000, rate_limit_burst=10_000)


@pytest.fixture
def app(settings: Settings, engine: Engine, connection: Connection, clock: FrozenClock) -> FastAPI:
    return create_app(
        settings,
        engine=engine,
        session_factory=lambda: _savepoint_session(connection),  # type: ignore[arg-type]
        clock=clock,
        configure_logs=False,
    )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def committed_engine(engine: Engine) -> Iterator[Engine]:
    """For tests that need real commits; every table is emptied afterwards."""
    yield engine
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
