"""Shared kernel: money, rounding, ids, clock, settings, value objects."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.db import driver, set_local
from escompte.errors import InvariantViolation, invariant
from escompte.ids import is_id, new_id
from escompte.money import CurrencyMismatch, Money, round_cents
from escompte.settings import SettingsError, load_settings
from escompte.values import value
from tests import factories as f


class TestMoney:
    def test_arithmetic_and_currency_mixing(self) -> None:
        assert Money(150, "EUR") + Money(50, "EUR") == Money(200, "EUR")
        assert Money(150, "EUR") - Money(200, "EUR") == Money(-50, "EUR")
        with pytest.raises(CurrencyMismatch):
            Money(1, "EUR") + Money(1, "USD")
        with pytest.raises(TypeError):
            Money(1.5, "EUR")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Money(1, "eur")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("0.5", 1),
            ("1.5", 2),
            ("2.5", 3),
            ("-0.5", -1),
            ("2.4999", 2),
            ("1234.5000", 1235),
        ],
    )
    def test_round_half_up(self, value: str, expected: int) -> None:
        assert round_cents(Decimal(value)) == expected


class TestIds:
    def test_prefixed_sortable_unique(self) -> None:
        ids = [new_id("inv") for _ in range(2000)]
        assert len(set(ids)) == 2000
        assert all(is_id(i, "inv") for i in ids)
        assert not is_id(ids[0], "cmp")
        assert not is_id("inv_short")
        import time

        first = new_id("inv")
        time.sleep(0.002)
        assert new_id("inv") > first


class TestClock:
    def test_frozen_clock_moves_forward_only(self) -> None:
        clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
        clock.advance(timedelta(days=17))
        assert clock.today().isoformat() == "2026-01-18"
        with pytest.raises(ValueError):
            clock.advance(timedelta(days=-1))
        with pytest.raises(ValueError):
            FrozenClock(datetime(2026, 1, 1))


@value
class _Point:
    x: int
    label: str = "origin"


class TestValue:
    def test_frozen_for_the_type_checker(self) -> None:
        """mypy refuses assignments to a field only while the decorator declares
        frozen_default (the test command runs mypy over the code)."""
        declared = getattr(value, "__dataclass_transform__", {})
        # Python 3.11 keeps the newer frozen_default among the extra keyword arguments
        assert declared.get("frozen_default", declared.get("kwargs", {}).get("frozen_default")) is True
        assert dataclasses.field in declared.get("field_specifiers", ())

    def test_a_plain_slotted_dataclass_at_run_time(self) -> None:
        p = _Point(1)
        assert dataclasses.is_dataclass(p) and p == _Point(1, "origin")
        assert _Point.__slots__ == ("x", "label") and not hasattr(p, "__dict__")
        assert dataclasses.replace(p, x=2) == _Point(2)


def test_invariant_survives_optimisation() -> None:
    with pytest.raises(InvariantViolation, match="why"):
        invariant(False, "why")


class TestSettings:
    def test_wrong_setting_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ESCOMPTE_DATABASE_URL", "mysql://nope")
        monkeypatch.setenv("ESCOMPTE_DB_POOL_SIZE", "zero")
        with pytest.raises(SettingsError) as exc:
            load_settings()
        assert "ESCOMPTE_DATABASE_URL" in str(exc.value)
        assert "ESCOMPTE_DB_POOL_SIZE" in str(exc.value)

    def test_plain_postgresql_url_is_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ESCOMPTE_DATABASE_URL", "postgresql://u@h/db")
        assert load_settings().database_url == "postgresql+psycopg://u@h/db"


def test_a_flush_of_several_rows_of_one_table_is_one_insert(session: Session, clock: FrozenClock) -> None:
    """The engine sends one INSERT with several VALUES for a flush of rows without
    RETURNING (an acceptance's two payment operations), not an executemany, which costs
    psycopg a pipeline round trip per batch."""
    from sqlalchemy import event as sa_event

    from escompte.models import Event

    company = f.company(session, clock)
    session.flush()
    statements: list[tuple[str, int]] = []

    def seen(_conn: object, _cursor: object, sql: str, _params: object, _ctx: object, many: bool) -> None:
        statements.append((sql.split("(", maxsplit=1)[0].strip(), sql.count("), (")))

    engine = session.get_bind()
    sa_event.listen(engine, "before_cursor_execute", seen)
    try:
        for n in range(3):
            session.add(
                Event(
                    id=f"evt_{n:026d}",
                    type="test.flush",
                    company_id=company.id,
                    object_type="test",
                    object_id=str(n),
                    data={},
                    created_at=clock.now(),
                )
            )
        session.flush()
    finally:
        sa_event.remove(engine, "before_cursor_execute", seen)
    assert statements == [("INSERT INTO events", 2)]  # one statement, three rows of VALUES


class TestSetLocal:
    """``set_local``: a transaction not yet begun on the server begins with the setting,
    in one round trip, and psycopg sends no BEGIN of its own on top of it."""

    def test_opens_the_transaction_with_the_setting(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        notices: list[str] = []

        def note(diagnostic: psycopg.errors.Diagnostic) -> None:
            notices.append(str(diagnostic.message_primary))

        with Session(engine) as session:
            raw = driver(session)
            raw.add_notice_handler(note)
            try:
                assert raw.pgconn.transaction_status == pq.TransactionStatus.IDLE
                with monkeypatch.context() as m:  # one message: no statement through a cursor
                    m.setattr(type(raw), "cursor", lambda *_a, **_k: pytest.fail("a second round trip"))
                    set_local(session, "plan_cache_mode = force_generic_plan")
                assert raw.pgconn.transaction_status == pq.TransactionStatus.INTRANS
                assert session.execute(text("SHOW plan_cache_mode")).scalar() == "force_generic_plan"
                began = session.execute(text("SELECT pg_current_xact_id()::text, now()")).one()
                assert session.execute(text("SELECT pg_current_xact_id()::text, now()")).one() == began
                session.commit()
                # LOCAL: gone with its transaction
                assert session.execute(text("SHOW plan_cache_mode")).scalar() == "auto"
                session.rollback()
            finally:
                raw.remove_notice_handler(note)
        # a BEGIN of psycopg's inside the open transaction would have drawn a warning
        assert notices == []

    def test_the_transaction_keeps_the_connection_s_isolation_level(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A pooled connection can carry an explicit isolation level (SQLAlchemy sets the
        default one back after autocommit use): the one message begins with it."""
        with engine.connect().execution_options(isolation_level="SERIALIZABLE") as conn:
            session = Session(bind=conn)
            raw = driver(session)
            assert raw.isolation_level == psycopg.IsolationLevel.SERIALIZABLE
            with monkeypatch.context() as m:
                m.setattr(type(raw), "cursor", lambda *_a, **_k: pytest.fail("a second round trip"))
                set_local(session, "synchronous_commit = off")
            assert session.execute(text("SHOW transaction_isolation")).scalar() == "serializable"
            assert session.execute(text("SHOW synchronous_commit")).scalar() == "off"
            session.rollback()

    def test_inside_an_open_transaction_it_is_a_plain_set(self, engine: Engine) -> None:
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
            set_local(session, "synchronous_commit = off")
            assert session.execute(text("SHOW synchronous_commit")).scalar() == "off"
            session.rollback()
            assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"
            session.rollback()

    def test_a_setting_the_server_refuses_fails_and_the_session_recovers(self, engine: Engine) -> None:
        with Session(engine) as session:
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                set_local(session, "plan_cache_mode = sometimes")
            session.rollback()
            assert session.execute(text("SELECT 1")).scalar() == 1
            session.rollback()

    def test_a_lost_connection_is_an_operational_error(self, engine: Engine) -> None:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            conn.rollback()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                for _ in range(250):  # the backend ends shortly after
                    gone = other.execute(
                        text("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = :pid)"),
                        {"pid": pid},
                    ).scalar()
                    if gone:
                        break
                    time.sleep(0.02)
            session = Session(bind=conn)
            with pytest.raises(psycopg.OperationalError):  # as psycopg's own BEGIN would
                set_local(session, "plan_cache_mode = force_generic_plan")
            conn.invalidate()  # not back into the pool
