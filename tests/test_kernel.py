"""Shared kernel: money, rounding, ids, clock, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from escompte.clock import FrozenClock
from escompte.errors import InvariantViolation, invariant
from escompte.ids import is_id, new_id
from escompte.money import CurrencyMismatch, Money, round_cents
from escompte.settings import SettingsError, load_settings


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
