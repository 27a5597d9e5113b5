"""An explainable score: a points grid, not a black box.

The score starts at the policy's ``weights.base`` and each feature adds or removes
points, at most its weight (the ``base`` is listed as the first feature, so the
contributions add up to the score); the sum is clamped to 0-100 and mapped to a grade with the
policy's thresholds (A best, E worst). Every feature is kept with its value and its
contribution, so a decision shows exactly why it got its grade. Each contribution is
``weight * share``, the share in [-1, 1] computed in ``Decimal`` and rounded half-up to
a whole point. No floats.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from escompte.eligibility.facts import Facts
from escompte.eligibility.policy import GRADES, Grade, PolicySettings
from escompte.values import value

ONE = Decimal(1)

FEATURE_UNITS: dict[str, str] = {
    "base": "points",
    "debtor_avg_days_late": "days",
    "debtor_share_paid_late": "bps",
    "debtor_unpaid_overdue": "count",
    "debtor_paid_invoices": "count",
    "bank_connected": "bool",
    "bank_net_flow": "bps",
    "bank_inflow_regularity": "bps",
    "bank_incidents": "count",
    "bank_days_overdrawn": "days",
    "books_match": "bool",
    "buyer_approved": "bool",
    "due_date_estimated": "bool",
}


@value
class Feature:
    name: str
    value: int | bool | None  # its unit: FEATURE_UNITS
    points: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "points": self.points}

    def stored(self) -> list[Any]:
        """As kept in a decision's ``features`` (keyed by name): [value, points]."""
        return [self.value, self.points]


@value
class Score:
    points: int
    grade: Grade
    features: tuple[Feature, ...]


def _points(weight: int, share: Decimal) -> int:
    share = max(-ONE, min(ONE, share))
    return int((weight * share).quantize(ONE, rounding=ROUND_HALF_UP))


def _ratio(numerator: int, denominator: int) -> Decimal:
    return Decimal(numerator) / Decimal(denominator) if denominator else Decimal(0)


def debtor_features(f: Facts, p: PolicySettings) -> list[Feature]:
    """The debtor's payment behaviour (the same for all of its invoices)."""
    wt = p.weights
    if f.behaviour_paid_count is None:
        return [Feature("debtor_paid_invoices", None, -_points(wt.debtor_history, Decimal("0.5")))]
    avg = f.behaviour_avg_days_late or 0
    share = f.behaviour_share_paid_late_bps or 0
    unpaid = f.behaviour_unpaid_overdue_count or 0
    paid = f.behaviour_paid_count
    history = _ratio(paid, p.debtor_history_full_count) if paid else Decimal("-0.5")
    return [
        Feature(
            "debtor_avg_days_late",
            avg,
            -_points(wt.debtor_days_late, _ratio(max(0, avg), p.debtor_days_late_scale_days)),
        ),
        Feature("debtor_share_paid_late", share, -_points(wt.debtor_share_paid_late, _ratio(share, 10_000))),
        Feature("debtor_unpaid_overdue", unpaid, -_points(wt.debtor_unpaid_overdue, _ratio(unpaid, 3))),
        Feature("debtor_paid_invoices", paid, _points(wt.debtor_history, history)),
    ]


def bank_features(f: Facts, p: PolicySettings) -> list[Feature]:
    """The seller's bank health (the same for all of its invoices). Ratios in basis
    points are truncated toward zero."""
    wt = p.weights
    b = f.bank
    if not b.connected:
        return [Feature("bank_connected", False, -wt.bank_not_connected)]
    flows = max(b.inflow_cents, b.outflow_cents)
    net_bps = int(_ratio((b.inflow_cents - b.outflow_cents) * 10_000, flows)) if flows else 0
    regular_bps = int(_ratio(b.weeks_with_inflow * 10_000, b.weeks_in_window)) if b.weeks_in_window else 0
    out = [
        Feature("bank_net_flow", net_bps, _points(wt.bank_balance_trend, _ratio(net_bps, 2_500))),
        Feature(
            "bank_inflow_regularity",
            regular_bps,
            _points(wt.bank_inflow_regularity, _ratio(regular_bps, 5_000) - ONE),
        ),
        Feature("bank_incidents", b.incidents, -_points(wt.bank_incidents, _ratio(b.incidents, 5))),
    ]
    if b.days_overdrawn is not None:
        out.append(
            Feature(
                "bank_days_overdrawn",
                b.days_overdrawn,
                -_points(wt.bank_days_overdrawn, _ratio(b.days_overdrawn, 30)),
            )
        )
    return out


def invoice_features(f: Facts, p: PolicySettings) -> list[Feature]:
    wt = p.weights
    matched = f.books_connected and f.books_lines > 0 and f.books_debit_cents == f.amount_cents
    return [
        Feature("books_match", matched, wt.books_match if matched else 0),
        Feature("buyer_approved", f.buyer_approved, wt.buyer_approved if f.buyer_approved else 0),
        Feature(
            "due_date_estimated", f.due_date_estimated, -wt.due_date_estimated if f.due_date_estimated else 0
        ),
    ]


def features(f: Facts, p: PolicySettings, memo: dict[Any, Any] | None = None) -> list[Feature]:
    """Every feature but the base. ``memo``: within one batch (one policy, one snapshot
    of the data), debtor and bank features are computed once per debtor and company."""
    if memo is None:
        return [*debtor_features(f, p), *bank_features(f, p), *invoice_features(f, p)]
    debtor = memo.get(("debtor_features", f.debtor_id))
    if debtor is None:
        debtor = memo[("debtor_features", f.debtor_id)] = debtor_features(f, p)
    bank = memo.get(("bank_features", f.company_id))
    if bank is None:
        bank = memo[("bank_features", f.company_id)] = bank_features(f, p)
    return [*debtor, *bank, *invoice_features(f, p)]


def grade_of(points: int, p: PolicySettings) -> Grade:
    g = p.grades
    for grade, floor in (("A", g.A), ("B", g.B), ("C", g.C), ("D", g.D)):
        if points >= floor:
            return grade  # type: ignore[return-value]
    return "E"


def score(f: Facts, p: PolicySettings, memo: dict[Any, Any] | None = None) -> Score:
    feats = [Feature("base", p.weights.base, p.weights.base), *features(f, p, memo)]
    points = max(0, min(100, sum(x.points for x in feats)))
    return Score(points, grade_of(points, p), tuple(feats))


def grade_rank(grade: Grade) -> int:
    return GRADES.index(grade)
