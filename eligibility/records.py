"""A decision as it is stored, and read back.

Stored compactly — a batch writes 10,000 of them in one go — and keyed so that one part
reads by name in SQL (``checks -> 'duration_fits'``):

- ``checks``: {code: [effect, reason, figures?, hint?]}
- ``features``: {name: [value, points]}
- ``counterfactuals``: [[code, check], …] (in order: refusals, then caps, tightest first)

``expand_*`` give them back in the shape (and the canonical order) the API shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic_core import to_json

from escompte.eligibility.decision import CHECK_CODES, COMPANY_SCOPED, DEBTOR_SCOPED, Outcome
from escompte.eligibility.facts import Facts
from escompte.eligibility.repository import DECISION_COLUMNS
from escompte.eligibility.scoring import FEATURE_UNITS

SCOPED_CHECKS = frozenset(r.__name__ for r in COMPANY_SCOPED | DEBTOR_SCOPED)
# the features of scoring.debtor_features and scoring.bank_features
SCOPED_FEATURES = frozenset(
    {
        "debtor_avg_days_late",
        "debtor_share_paid_late",
        "debtor_unpaid_overdue",
        "debtor_paid_invoices",
        "bank_connected",
        "bank_net_flow",
        "bank_inflow_regularity",
        "bank_incidents",
        "bank_days_overdrawn",
    }
)
_JSON = frozenset({"checks", "features", "counterfactuals"})
_CHECK_ORDER = {code: n for n, code in enumerate(CHECK_CODES)}
_FEATURE_ORDER = {name: n for n, name in enumerate(FEATURE_UNITS)}


def values(
    decision_id: str, facts: Facts, outcome: Outcome, fingerprint: str, now: datetime
) -> dict[str, Any]:
    """The column values of one decision (JSON columns as Python objects)."""
    return {
        "id": decision_id,
        "invoice_id": facts.invoice_id,
        "company_id": facts.company_id,
        "policy_version": facts.policy_version,
        "eligible": outcome.eligible,
        "max_amount_cents": outcome.max_amount_cents,
        "currency": facts.currency,
        "min_duration_days": outcome.min_duration_days,
        "max_duration_days": outcome.max_duration_days,
        "risk_grade": outcome.risk_grade,
        "score": outcome.score,
        "checks": {c.code: c.stored() for c in outcome.checks},
        "failed_checks": outcome.failed,
        "features": {x.name: x.stored() for x in outcome.features},
        "counterfactuals": [h.stored() for h in outcome.counterfactuals],
        "as_of_date": facts.as_of_date,
        "data_as_of": facts.data_as_of,
        "inputs_fingerprint": fingerprint,
        "created_at": now,
    }


def _dumps(value: Any) -> str:
    return to_json(value).decode()


def as_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """``values()`` in ``DECISION_COLUMNS`` order, JSON columns encoded."""
    return tuple(_dumps(record[c]) if c in _JSON else record[c] for c in DECISION_COLUMNS)


class CopyEncoder:
    """Encodes a batch's decisions for COPY: one ``to_json`` per column. Seller- and
    debtor-scoped checks and features are the same objects across a batch
    (``decision.evaluate``'s memo keeps them alive, so their ids stay theirs): their
    stored form is built once."""

    def __init__(self) -> None:
        self._stored: dict[int, list[Any]] = {}

    def _stored_of(self, item: Any, scoped: bool) -> list[Any]:
        if not scoped:
            out: list[Any] = item.stored()
            return out
        cached = self._stored.get(id(item))
        if cached is None:
            cached = self._stored[id(item)] = item.stored()
        return cached

    def row(
        self, decision_id: str, facts: Facts, outcome: Outcome, fingerprint: str, now: datetime
    ) -> tuple[Any, ...]:
        record = {
            "id": decision_id,
            "invoice_id": facts.invoice_id,
            "company_id": facts.company_id,
            "policy_version": facts.policy_version,
            "eligible": outcome.eligible,
            "max_amount_cents": outcome.max_amount_cents,
            "currency": facts.currency,
            "min_duration_days": outcome.min_duration_days,
            "max_duration_days": outcome.max_duration_days,
            "risk_grade": outcome.risk_grade,
            "score": outcome.score,
            "checks": _dumps({c.code: self._stored_of(c, c.code in SCOPED_CHECKS) for c in outcome.checks}),
            "failed_checks": outcome.failed,
            "features": _dumps(
                {x.name: self._stored_of(x, x.name in SCOPED_FEATURES) for x in outcome.features}
            ),
            "counterfactuals": _dumps([h.stored() for h in outcome.counterfactuals]),
            "as_of_date": facts.as_of_date,
            "data_as_of": facts.data_as_of,
            "inputs_fingerprint": fingerprint,
            "created_at": now,
        }
        return tuple(record[c] for c in DECISION_COLUMNS)


def expand_checks(stored: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """[{code, effect, reason, figures, hint}] in the order the checks run."""
    out = []
    for code in sorted(stored, key=lambda c: _CHECK_ORDER.get(c, len(_CHECK_ORDER))):
        item = stored[code]
        out.append(
            {
                "code": code,
                "effect": item[0],
                "reason": item[1],
                "figures": item[2] if len(item) > 2 else {},
                "hint": item[3] if len(item) > 3 else None,
            }
        )
    return out


def expand_features(stored: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """[{name, value, unit, points}], the base first."""
    return [
        {
            "name": name,
            "value": stored[name][0],
            "unit": FEATURE_UNITS.get(name, ""),
            "points": stored[name][1],
        }
        for name in sorted(stored, key=lambda n: _FEATURE_ORDER.get(n, len(_FEATURE_ORDER)))
    ]


def expand_counterfactuals(stored: list[list[str]]) -> list[dict[str, str]]:
    return [{"code": code, "check": check} for code, check in stored]
