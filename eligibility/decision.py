"""From facts and a policy to a decision: run every check, score, combine the caps, and
say what would change the outcome (counterfactuals). Pure: no database, no clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from escompte.eligibility import limits, rules
from escompte.eligibility.facts import Facts
from escompte.eligibility.policy import Grade, PolicySettings
from escompte.eligibility.rules import Check
from escompte.eligibility.scoring import Feature, Score, grade_rank, score
from escompte.errors import invariant
from escompte.values import value

Rule = Callable[[Facts, PolicySettings], Check]

# In the order a treasurer reads them: the seller, the customer, the invoice, its
# financing, behaviour and bank, then limits and the risk grade.
GATES: tuple[Rule, ...] = (
    rules.seller_verified,
    rules.seller_no_proceedings,
    rules.debtor_identified,
    rules.debtor_active,
    rules.debtor_no_proceedings,
    rules.b2b,
    rules.not_related_party,
    rules.invoice_open,
    rules.not_disputed,
    rules.currency_accepted,
    rules.amount_within_bounds,
    rules.not_overdue,
    rules.duration_fits,
    rules.in_books,
    rules.not_already_financed,
    rules.debtor_payment_behaviour,
    rules.bank_health,
    rules.buyer_approval,
)

CHECK_CODES: tuple[str, ...] = (
    "seller_verified",
    "seller_no_proceedings",
    "debtor_identified",
    "debtor_active",
    "debtor_no_proceedings",
    "b2b",
    "not_related_party",
    "invoice_open",
    "not_disputed",
    "currency_accepted",
    "amount_within_bounds",
    "not_overdue",
    "duration_fits",
    "in_books",
    "not_already_financed",
    "debtor_payment_behaviour",
    "bank_health",
    "buyer_approval",
    "debtor_limit",
    "seller_limit",
    "concentration",
    "risk_grade",
)


@value
class Counterfactual:
    """What would change the decision: ``code`` says what, ``check`` whose figures say how much."""

    code: str
    check: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "check": self.check}

    def stored(self) -> list[str]:
        return [self.code, self.check]


@value
class Outcome:
    eligible: bool
    max_amount_cents: int
    min_duration_days: int
    max_duration_days: int
    risk_grade: Grade
    score: int
    checks: tuple[Check, ...]
    features: tuple[Feature, ...]
    counterfactuals: tuple[Counterfactual, ...]
    failed: list[str]  # the codes of the checks that refused, in order


def risk_grade(f: Facts, p: PolicySettings, s: Score, memo: dict[Any, Any] | None = None) -> Check:
    g: dict[str, Any] = {"score": s.points, "grade": s.grade, "worst_eligible_grade": p.worst_eligible_grade}
    if grade_rank(s.grade) <= grade_rank(p.worst_eligible_grade):
        return Check("risk_grade", "ok", "acceptable", g)
    hint: str | None = None
    blocked = f.lifecycle_code in rules.REFUSED or f.lifecycle_code == rules.DISPUTED
    if not f.buyer_approved and not blocked:
        approved = score(dataclasses.replace(f, buyer_approved=True), p, memo)
        if grade_rank(approved.grade) <= grade_rank(p.worst_eligible_grade):
            g["grade_if_approved"] = approved.grade
            hint = "approval_lifts_grade"
    return Check("risk_grade", "fail", "too_risky", g, hint=hint)


# Checks that read only the seller's facts, or only the debtor's (and its seller's):
# within one batch they are the same for every invoice of that seller or debtor.
COMPANY_SCOPED = frozenset({rules.seller_verified, rules.seller_no_proceedings, rules.bank_health})
DEBTOR_SCOPED = frozenset(
    {
        rules.debtor_identified,
        rules.debtor_active,
        rules.debtor_no_proceedings,
        rules.not_related_party,
        rules.debtor_payment_behaviour,
    }
)


def _gates(f: Facts, p: PolicySettings, memo: dict[Any, Any] | None) -> list[Check]:
    """The checks of GATES, in order. With a batch's ``memo``, the seller- and
    debtor-scoped ones are run once per seller and debtor (and a seller-scoped check is
    the same object for all its debtors): the invoice's own checks run every time."""
    if memo is None:
        return [rule(f, p) for rule in GATES]
    key = ("gates", f.company_id, f.debtor_id)
    shared: tuple[Check | None, ...] | None = memo.get(key)
    if shared is None:
        shared = memo[key] = tuple(_scoped(rule, f, p, memo) for rule in GATES)
    return [rule(f, p) if check is None else check for rule, check in zip(GATES, shared, strict=True)]


def _scoped(rule: Rule, f: Facts, p: PolicySettings, memo: dict[Any, Any]) -> Check | None:
    """The check of a seller- or debtor-scoped rule (once per seller or debtor), or None
    for a rule of the invoice's own."""
    if rule in COMPANY_SCOPED:
        key: tuple[Any, str] = (rule, f.company_id)
    elif rule in DEBTOR_SCOPED:
        key = (rule, f.debtor_id)
    else:
        return None
    check: Check | None = memo.get(key)
    if check is None:
        check = memo[key] = rule(f, p)
    return check


def evaluate(f: Facts, p: PolicySettings, memo: dict[Any, Any] | None = None) -> Outcome:
    """The decision on ``f`` under ``p``. ``memo`` (a dict kept for one batch, whose facts
    all come from one read under one policy) shares seller- and debtor-scoped work."""
    checks = _gates(f, p, memo)
    # each limit is measured against the whole amount due, so that every limit below it
    # shows (the tightest binds; the others say what comes next once it is lifted)
    due = f.amount_due_cents
    checks += [
        limits.debtor_limit(f, p, due),
        limits.seller_limit(f, p, due),
        limits.concentration(f, p, due),
    ]
    s = score(f, p, memo)
    checks.append(risk_grade(f, p, s, memo))
    failed: list[str] = []
    max_amount = f.amount_due_cents
    for c in checks:  # one pass: what refused, and the tightest cap
        if c.effect == "fail":
            failed.append(c.code)
        elif c.effect == "cap" and c.cap_cents is not None and c.cap_cents < max_amount:
            max_amount = c.cap_cents
    eligible = not failed
    # every capping check refuses a cap below the minimum, and the policy keeps its own
    # caps above it: an eligible decision always offers at least the minimum
    invariant(not eligible or max_amount >= p.min_amount_cents, "eligible below the minimum amount")
    return Outcome(
        eligible=eligible,
        max_amount_cents=max_amount if eligible else 0,
        min_duration_days=p.min_duration_days,
        max_duration_days=rules.max_duration_days(f, p) if eligible else 0,
        risk_grade=s.grade,
        score=s.points,
        checks=tuple(checks),
        features=s.features,
        counterfactuals=counterfactuals(checks),
        failed=failed,
    )


def counterfactuals(checks: list[Check]) -> tuple[Counterfactual, ...]:
    """The hints of the checks that refused or capped, refusals first, then caps from the
    tightest; one per hint code. Each is worded from its check's figures."""
    failing = [c for c in checks if c.effect == "fail" and c.hint is not None]
    capping = sorted(
        (c for c in checks if c.effect == "cap" and c.hint is not None),
        key=lambda c: c.cap_cents if c.cap_cents is not None else 0,
    )
    seen: set[str] = set()
    out: list[Counterfactual] = []
    for check in [*failing, *capping]:
        assert check.hint is not None
        if check.hint not in seen:
            seen.add(check.hint)
            out.append(Counterfactual(check.hint, check.code))
    return tuple(out)
