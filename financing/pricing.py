"""Pricing: a versioned grid of daily rates per risk grade, and the fee arithmetic.

The fee is ``principal outstanding x daily rate`` for each day actually used, at least
``min_days`` days of the original principal; no fixed fee, no subscription. Fees are
computed exactly (Decimal) day by day and rounded once, half-up to the cent, on the
cumulative total — so the fee for 17 days is exactly ``round(P x r x 17)``, whatever the
number of accrual runs in between. Past maturity, late interest accrues on the principal
still outstanding at ``late_daily_rate`` per day, on top of the daily fee.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from escompte.money import round_cents

GRADES = ("A", "B", "C", "D", "E")
MIN_DURATION_DAYS = 3
MAX_DURATION_DAYS = 120
RATE_STEP = Decimal("0.0000000001")
PERCENT_STEP = Decimal("0.0001")


class GridSettings(BaseModel):
    """One version of the grid (stored as JSON in ``pricing_grids.settings``)."""

    model_config = ConfigDict(extra="forbid")

    daily_rates: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "A": Decimal("0.0005"),
            "B": Decimal("0.0006"),
            "C": Decimal("0.00075"),
            "D": Decimal("0.0009"),
            "E": Decimal("0.001"),
        },
        description="Daily rate per risk grade, as a fraction (0.0005 = 0.05 % per day).",
    )
    late_daily_rate: Decimal = Field(
        default=Decimal("0.0004"),
        ge=0,
        lt=Decimal("0.01"),
        description="Late interest per day past maturity on the principal still outstanding.",
    )
    min_days: int = Field(default=MIN_DURATION_DAYS, ge=1, le=MIN_DURATION_DAYS)
    quote_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)

    @field_validator("daily_rates")
    @classmethod
    def _rates(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        if set(value) != set(GRADES):
            raise ValueError(f"needs exactly the grades {', '.join(GRADES)}")
        for grade, rate in value.items():
            if not Decimal(0) < rate < Decimal("0.01"):
                raise ValueError(f"grade {grade}: a daily rate is between 0 and 0.01 (1 % per day)")
            if rate != rate.quantize(RATE_STEP):
                raise ValueError(f"grade {grade}: at most 10 decimals")
        return value


def stored(settings: GridSettings) -> dict[str, object]:
    return {
        "daily_rates": {g: str(r) for g, r in settings.daily_rates.items()},
        "late_daily_rate": str(settings.late_daily_rate),
        "min_days": settings.min_days,
        "quote_ttl_minutes": settings.quote_ttl_minutes,
    }


def fee_cents(principal_cents: int, daily_rate: Decimal, days: int) -> int:
    """The fee for ``days`` days on a constant principal, half-up to the cent."""
    return round_cents(Decimal(principal_cents) * daily_rate * days)


def annual_rate(daily_rate: Decimal) -> Decimal:
    """Nominal annual rate (365-day year), as a fraction."""
    return (daily_rate * 365).quantize(PERCENT_STEP * Decimal("0.01"))


@lru_cache(maxsize=4096)  # a handful of grid rates x 3-120 days; a fractional power is slow
def effective_annual_rate(daily_rate: Decimal, days: int) -> Decimal:
    """What the fee for ``days`` days amounts to per year, compounded: (1 + r·n)^(365/n) - 1."""
    growth = 1 + daily_rate * days
    value = growth ** (Decimal(365) / Decimal(days)) - 1
    return value.quantize(PERCENT_STEP * Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class Price:
    principal_cents: int
    duration_days: int
    daily_rate: Decimal
    late_daily_rate: Decimal
    min_days: int
    fee_cents: int  # held to maturity
    daily_fee_cents: Decimal  # one more day, exact
    minimum_fee_cents: int
    total_cents: int
    annual_rate: Decimal
    effective_annual_rate: Decimal
    start_date: date
    maturity_date: date


def price(
    grid: GridSettings, risk_grade: str, principal_cents: int, duration_days: int, start: date
) -> Price:
    return price_at(
        grid.daily_rates[risk_grade],
        grid.late_daily_rate,
        grid.min_days,
        principal_cents,
        duration_days,
        start,
    )


def price_at(
    rate: Decimal, late_rate: Decimal, min_days: int, principal_cents: int, duration_days: int, start: date
) -> Price:
    """The figures of a price at a given daily rate (a quote shows them again later)."""
    fee = fee_cents(principal_cents, rate, max(duration_days, min_days))
    return Price(
        principal_cents=principal_cents,
        duration_days=duration_days,
        daily_rate=rate,
        late_daily_rate=late_rate,
        min_days=min_days,
        fee_cents=fee,
        daily_fee_cents=Decimal(principal_cents) * rate,
        minimum_fee_cents=fee_cents(principal_cents, rate, min_days),
        total_cents=principal_cents + fee,
        annual_rate=annual_rate(rate),
        effective_annual_rate=effective_annual_rate(rate, max(duration_days, min_days)),
        start_date=start,
        maturity_date=start + timedelta(days=duration_days),
    )


# --- accrual, day by day -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Day:
    on: date
    principal_cents: int  # outstanding during that day
    fee: Decimal  # exact
    late_interest: Decimal  # exact
    fee_total_cents: int  # cumulative, rounded once
    late_total_cents: int


@dataclass(frozen=True, slots=True)
class Terms:
    principal_cents: int
    daily_rate: Decimal
    late_daily_rate: Decimal
    min_days: int
    start_date: date
    maturity_date: date


def schedule(terms: Terms, principal_repaid: dict[date, int], through: date) -> list[Day]:
    """Each day from the start (exclusive) to ``through`` (inclusive): the principal
    outstanding that day, its fee and late interest, and the rounded running totals.

    Day ``n`` is charged when it has been used: the fee of a day whose start principal is
    P is P x rate. Principal repaid on day D stops counting from day D + 1.
    """
    days: list[Day] = []
    outstanding = terms.principal_cents
    fee_exact = Decimal(0)
    late_exact = Decimal(0)
    on = terms.start_date
    while on < through:
        outstanding -= principal_repaid.get(on, 0)
        on += timedelta(days=1)
        if outstanding <= 0:
            break
        fee = Decimal(outstanding) * terms.daily_rate
        late = Decimal(outstanding) * terms.late_daily_rate if on > terms.maturity_date else Decimal(0)
        fee_exact += fee
        late_exact += late
        days.append(Day(on, outstanding, fee, late, round_cents(fee_exact), round_cents(late_exact)))
    return days


def fees_due(
    terms: Terms, principal_repaid: dict[date, int], through: date, *, final: bool
) -> tuple[int, int]:
    """(fees, late interest) earned up to ``through``; when ``final`` (the advance is being
    settled) the fee is at least ``min_days`` days of the original principal."""
    days = schedule(terms, principal_repaid, through)
    fee = days[-1].fee_total_cents if days else 0
    late = days[-1].late_total_cents if days else 0
    if final:
        fee = max(fee, fee_cents(terms.principal_cents, terms.daily_rate, terms.min_days))
    return fee, late
