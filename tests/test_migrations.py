"""Migrations produce exactly the models' schema, and go down and up again."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, make_url, text

from escompte.db.migrate import downgrade, upgrade
from escompte.models import Base


def test_no_drift_between_models_and_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


@pytest.fixture
def empty_db_url() -> Iterator[str]:
    server = os.environ["ESCOMPTE_TEST_SERVER_URL"]
    name = f"escompte_updown_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(server).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    eng = create_engine(empty_db_url)
    try:
        tables = set(inspect(eng).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        downgrade(empty_db_url, "base")
        eng.dispose()
        assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
        upgrade(empty_db_url)
        eng.dispose()
        assert {t.name for t in Base.metadata.sorted_tables} <= set(inspect(eng).get_table_names())
    finally:
        eng.dispose()
