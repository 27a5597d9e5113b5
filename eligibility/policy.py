"""The eligibility policy: every threshold and limit the rules and the score apply.

A policy is stored as numbered versions (``eligibility_policies``); the latest applies
to the next decision, in every API process, without a restart. Amounts are cents, rates
basis points (1 % = 100 bps), durations days: integers only, no floats.

Version 1 is seeded by the migration with exactly these defaults (a test keeps them
equal); should the table ever be empty, the first decision stores them as version 1.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Grade = Literal["A", "B", "C", "D", "E"]
GRADES: tuple[Grade, ...] = ("A", "B", "C", "D", "E")

Cents = Annotated[int, Field(ge=0, le=100_000_000_000)]
Bps = Annotated[int, Field(ge=0, le=10_000)]
Points = Annotated[int, Field(ge=0, le=100)]


class ScoreWeights(BaseModel):
    """Points each feature can move the score (0-100, starting at ``base``).

    A weight is the largest move the feature can cause; see docs/eligibility.md for how
    each feature maps to a share of its weight."""

    model_config = ConfigDict(extra="forbid")

    base: Points = 60
    debtor_days_late: Points = 20  # minus, up to debtor_days_late_scale_days late on average
    debtor_share_paid_late: Points = 10  # minus, in proportion to the share paid late
    debtor_unpaid_overdue: Points = 15  # minus, when the debtor has unpaid invoices past due
    debtor_history: Points = 8  # plus, with a long paid history; minus 1/2 with none
    bank_balance_trend: Points = 8  # plus or minus with the balance trend
    bank_inflow_regularity: Points = 8  # plus, regular inflows; minus when sparse
    bank_incidents: Points = 15  # minus, per rejected debit or incident (capped)
    bank_days_overdrawn: Points = 12  # minus, in proportion to days overdrawn
    bank_not_connected: Points = 6  # minus, no bank data to look at
    books_match: Points = 6  # plus when the books show the invoice with the same amount
    buyer_approved: Points = 12  # plus when the buyer approved the e-invoice (205)
    due_date_estimated: Points = 4  # minus when the due date is estimated (FEC)


class GradeThresholds(BaseModel):
    """Lowest score of each grade; below ``D`` is E."""

    model_config = ConfigDict(extra="forbid")

    A: Points = 80
    B: Points = 65
    C: Points = 50
    D: Points = 35

    @model_validator(mode="after")
    def _ordered(self) -> GradeThresholds:
        if not (self.A > self.B > self.C > self.D):
            raise ValueError("grade thresholds must decrease strictly from A to D")
        return self


class PolicySettings(BaseModel):
    """Every threshold and limit of one policy version."""

    model_config = ConfigDict(extra="forbid")

    currencies: list[Annotated[str, Field(pattern=r"^[A-Z]{3}$")]] = Field(
        default_factory=lambda: ["EUR"], min_length=1, max_length=10
    )
    # amount of one advance, incl. VAT
    min_amount_cents: Cents = 50_000  # 500 €
    max_amount_cents: Cents = 50_000_000  # 500,000 €
    # duration of an advance: from today to the due date plus the grace days
    min_duration_days: Annotated[int, Field(ge=3, le=120)] = 3
    max_duration_days: Annotated[int, Field(ge=3, le=120)] = 120
    grace_days: Annotated[int, Field(ge=0, le=60)] = 10
    # exposure, from live financed invoices
    debtor_limit_cents: Cents = 20_000_000  # one buyer, all sellers together: 200,000 €
    seller_limit_cents: Cents = 50_000_000  # one seller: 500,000 €
    concentration_max_bps: Bps = 5_000  # one buyer in one seller's outstanding: 50 %
    concentration_floor_cents: Cents = 10_000_000  # not applied up to 100,000 € outstanding
    # a seller without bank data is financed up to this amount per invoice
    no_bank_cap_cents: Cents = 1_000_000  # 10,000 €
    # above this amount, the buyer must have approved the e-invoice (205)
    approval_required_above_cents: Cents = 15_000_000  # 150,000 €
    # bank health, over the last bank_window_days
    bank_window_days: Annotated[int, Field(ge=30, le=365)] = 90
    bank_max_incidents: Annotated[int, Field(ge=0, le=1_000)] = 3
    bank_max_days_overdrawn: Annotated[int, Field(ge=0, le=365)] = 30
    bank_snapshot_max_age_seconds: Annotated[int, Field(ge=0, le=86_400)] = 900
    # debtor payment behaviour (reconciliation history)
    debtor_max_avg_days_late: Annotated[int, Field(ge=0, le=365)] = 60
    debtor_max_unpaid_overdue_count: Annotated[int, Field(ge=0, le=10_000)] = 5
    debtor_days_late_scale_days: Annotated[int, Field(ge=1, le=365)] = 60
    debtor_history_full_count: Annotated[int, Field(ge=1, le=10_000)] = 20
    # books: when the seller's FEC is connected, the invoice must be in it
    require_books_match: bool = True
    # buyers that are public-law entities (catégorie juridique 7…)
    allow_public_sector_debtors: bool = False
    # score and grades
    weights: ScoreWeights = Field(default_factory=ScoreWeights)
    grades: GradeThresholds = Field(default_factory=GradeThresholds)
    worst_eligible_grade: Grade = "D"

    @model_validator(mode="after")
    def _consistent(self) -> PolicySettings:
        if self.min_amount_cents > self.max_amount_cents:
            raise ValueError("min_amount_cents must not exceed max_amount_cents")
        if self.min_duration_days > self.max_duration_days:
            raise ValueError("min_duration_days must not exceed max_duration_days")
        for name in ("no_bank_cap_cents", "approval_required_above_cents"):
            if getattr(self, name) < self.min_amount_cents:
                raise ValueError(f"{name} must not be below min_amount_cents")
        return self


def parse_stored(settings: dict[str, Any]) -> PolicySettings:
    """Read a stored version; fields added since it was written take their defaults."""
    return PolicySettings.model_validate(settings)


def merged(current: PolicySettings, changes: dict[str, Any]) -> PolicySettings:
    """The current settings with ``changes`` applied (nested objects merged key by key),
    validated as a whole."""
    data = current.model_dump()
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return PolicySettings.model_validate(data)
