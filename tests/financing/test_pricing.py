"""The fee arithmetic: exact per day, rounded once, at least the minimum days."""

from __future__ import annotations

import importlib.util
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from escompte.financing import pricing
from escompte.financing.pricing import GridSettings, Terms

START = date(2026, 3, 2)


def terms(principal: int = 1_000_000, rate: str = "0.0006", days: int = 30) -> Terms:
    return Terms(
        principal_cents=principal,
        daily_rate=Decimal(rate),
        late_daily_rate=Decimal("0.0004"),
        min_days=3,
        start_date=START,
        maturity_date=START + timedelta(days=days),
    )


def test_quote_figures_for_a_10k_invoice_over_30_days() -> None:
    p = pricing.price(GridSettings(), "B", 1_000_000, 30, START)
    assert p.daily_rate == Decimal("0.0006")
    assert p.fee_cents == 18_000  # 10,000 EUR x 0.06 % x 30 = 180 EUR
    assert p.daily_fee_cents == Decimal("600")
    assert p.minimum_fee_cents == 1_800
    assert p.total_cents == 1_018_000
    assert p.maturity_date == date(2026, 4, 1)
    assert p.annual_rate == Decimal("0.219")
    # (1 + 0.018)^(365/30) - 1
    assert p.effective_annual_rate == Decimal("0.242409")


def test_fee_rounds_half_up_once_on_the_total() -> None:
    # 333 cents x 0.0005 = 0.1665 cents a day: 17 days = 2.8305 -> 3 cents, not 17 x 0 = 0
    fee, late = pricing.fees_due(
        terms(principal=333, rate="0.0005"), {}, START + timedelta(days=17), final=True
    )
    assert (fee, late) == (3, 0)
    assert pricing.fee_cents(1, Decimal("0.5"), 1) == 1  # 0.5 rounds up


def test_minimum_three_days_applies_only_when_settling() -> None:
    t = terms()
    assert pricing.fees_due(t, {}, START + timedelta(days=1), final=False) == (600, 0)
    assert pricing.fees_due(t, {}, START + timedelta(days=1), final=True) == (1_800, 0)


def test_late_interest_runs_after_maturity_on_principal_outstanding() -> None:
    t = terms(days=10)
    fee, late = pricing.fees_due(t, {}, START + timedelta(days=13), final=False)
    assert fee == 13 * 600
    assert late == 3 * 400  # 1,000,000 x 0.0004 for days 11, 12, 13


def test_partial_principal_repaid_reduces_the_following_days() -> None:
    t = terms()
    # 400,000 of principal repaid on day 5: days 1-5 on 1,000,000, days 6-10 on 600,000
    fee, _ = pricing.fees_due(
        t, {START + timedelta(days=5): 400_000}, START + timedelta(days=10), final=False
    )
    assert fee == 5 * 600 + 5 * 360


@given(
    principal=st.integers(min_value=1, max_value=10**11),
    rate=st.decimals(min_value=Decimal("0.0000000001"), max_value=Decimal("0.0099"), places=10),
    days=st.integers(min_value=3, max_value=120),
)
def test_schedule_total_equals_the_closed_formula(principal: int, rate: Decimal, days: int) -> None:
    t = terms(principal=principal, rate=str(rate), days=days)
    fee, _ = pricing.fees_due(t, {}, START + timedelta(days=days), final=True)
    assert fee == pricing.fee_cents(principal, rate, days)


def test_grid_refuses_missing_grades_and_absurd_rates() -> None:
    with pytest.raises(ValidationError, match="exactly the grades"):
        GridSettings(daily_rates={"A": Decimal("0.0005")})
    with pytest.raises(ValidationError, match=r"between 0 and 0\.01"):
        GridSettings(daily_rates={g: Decimal("0.02") for g in "ABCDE"})


def test_migration_seeds_the_default_grid() -> None:
    path = next(Path(__file__).parents[2].glob("migrations/versions/*_c5f1nanc1ng1_*.py"))
    spec = importlib.util.spec_from_file_location("financing_migration", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert pricing.stored(GridSettings()) == module.GRID_V1
