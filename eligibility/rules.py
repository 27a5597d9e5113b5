"""The checks: plain functions of the facts and the policy, no database.

Each check has a stable ``code`` and an ``effect``:

- ``ok``: passed;
- ``cap``: passed, but the invoice can only be financed up to ``cap_cents``;
- ``fail``: refused — the decision is not eligible;
- ``na``: not applicable (another check already decides, or there is nothing to check).

A check also names its ``reason`` (which case of the check applied) and keeps the
``figures`` it used; ``messages.py`` turns (code, reason, figures) into the sentences a
treasurer reads, in French and English. A check that refuses or caps may name a
``hint``: what would change it, in figures (the decision's counterfactuals). Limits and
exposure are in ``limits.py``; the risk grade in ``decision.py``.
"""

from __future__ import annotations

from dataclasses import field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Literal

from stdnum.fr import siren as stdnum_siren

from escompte.eligibility.facts import Facts
from escompte.eligibility.policy import PolicySettings
from escompte.values import value

Effect = Literal["ok", "cap", "fail", "na"]

# AFNOR XP Z12-012 lifecycle statuses that matter to a financer
APPROVED = frozenset({205, 214})
PARTIALLY_APPROVED = 206
DISPUTED = 207
SUSPENDED = 208
REFUSED = frozenset({210, 213})
CASHED = 212
CANCELLED = 220
DIRECT_PAYMENT = 224
FACTORED = 225

# BODACC collective proceedings still running (a "cloture" ends them)
OPEN_PROCEEDINGS = frozenset({"sauvegarde", "redressement", "liquidation", "plan"})


@value
class Check:
    code: str
    effect: Effect
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)
    cap_cents: int | None = None
    hint: str | None = None  # a counterfactual's code, worded from the same figures

    @property
    def passed(self) -> bool:
        return self.effect != "fail"

    def stored(self) -> list[Any]:
        """As kept in a decision's ``checks`` (keyed by code): [effect, reason, figures?, hint?]."""
        figures = self.figures if self.cap_cents is None else {**self.figures, "cap_cents": self.cap_cents}
        if self.hint is not None:
            return [self.effect, self.reason, figures, self.hint]
        if figures:
            return [self.effect, self.reason, figures]
        return [self.effect, self.reason]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "effect": self.effect, "reason": self.reason}
        figures = self.figures if self.cap_cents is None else {**self.figures, "cap_cents": self.cap_cents}
        if figures:
            out["figures"] = figures
        if self.hint is not None:
            out["hint"] = self.hint
        return out


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


# --- the seller ------------------------------------------------------------------------


def seller_verified(f: Facts, p: PolicySettings) -> Check:
    g: dict[str, Any] = {"siren": f.seller_siren}
    if not f.seller_in_registry:
        return Check("seller_verified", "fail", "not_in_registry", g, hint="seller_in_registry")
    if not f.seller_active:
        return Check("seller_verified", "fail", "closed", {**g, "ceased_on": _iso(f.seller_ceased_on)})
    return Check("seller_verified", "ok", "active", g)


def _proceeding(code: str, kind: str | None, on: date | None, party: str) -> Check:
    if kind in OPEN_PROCEEDINGS:
        return Check(code, "fail", "open", {"party": party, "proceeding": kind, "judgment_date": _iso(on)})
    return Check(code, "ok", "none", {"party": party})


def seller_no_proceedings(f: Facts, p: PolicySettings) -> Check:
    return _proceeding("seller_no_proceedings", f.seller_proceeding, f.seller_proceeding_date, "seller")


# --- the debtor ------------------------------------------------------------------------


@lru_cache(maxsize=65_536)
def valid_siren(value: str) -> bool:
    return bool(stdnum_siren.is_valid(value))


def _debtor_siren_valid(f: Facts) -> bool:
    return f.debtor_siren is not None and valid_siren(f.debtor_siren)


def _no_siren(code: str) -> Check:
    return Check(code, "na", "no_siren")


def debtor_identified(f: Facts, p: PolicySettings) -> Check:
    g: dict[str, Any] = {"debtor_name": f.debtor_name, "siren": f.debtor_siren}
    if f.debtor_siren is None:
        return Check("debtor_identified", "fail", "no_siren", g, hint="add_debtor_siren")
    if not _debtor_siren_valid(f):
        return Check("debtor_identified", "fail", "invalid_siren", g)
    return Check("debtor_identified", "ok", "identified", g)


def debtor_active(f: Facts, p: PolicySettings) -> Check:
    if not _debtor_siren_valid(f):
        return _no_siren("debtor_active")
    g: dict[str, Any] = {"siren": f.debtor_siren}
    if not f.debtor_in_registry:
        return Check("debtor_active", "fail", "not_in_registry", g)
    if not f.debtor_active:
        return Check("debtor_active", "fail", "closed", g)
    return Check("debtor_active", "ok", "active", g)


def debtor_no_proceedings(f: Facts, p: PolicySettings) -> Check:
    if not _debtor_siren_valid(f):
        return _no_siren("debtor_no_proceedings")
    check = _proceeding("debtor_no_proceedings", f.debtor_proceeding, f.debtor_proceeding_date, "debtor")
    check.figures["debtor_name"] = f.debtor_name
    return check


def b2b(f: Facts, p: PolicySettings) -> Check:
    if f.kind == "payable":
        # a supplier's invoice: Escompte pays the supplier, the SME repays (docs/financing.md)
        return Check("b2b", "ok", "supplier", {"kind": f.kind})
    if f.debtor_legal_form and f.debtor_legal_form.startswith("7") and not p.allow_public_sector_debtors:
        return Check("b2b", "fail", "public_sector", {"legal_form": f.debtor_legal_form})
    return Check("b2b", "ok", "business")


def not_related_party(f: Facts, p: PolicySettings) -> Check:
    if f.debtor_siren is not None and f.debtor_siren == f.seller_siren:
        return Check("not_related_party", "fail", "same_siren", {"siren": f.seller_siren})
    if f.related_party is not None:
        return Check(
            "not_related_party",
            "fail",
            "declared",
            {"relation": f.related_party, "debtor_name": f.debtor_name},
        )
    return Check("not_related_party", "ok", "unrelated")


# --- the invoice -----------------------------------------------------------------------


def invoice_open(f: Facts, p: PolicySettings) -> Check:
    g: dict[str, Any] = {"amount_due_cents": f.amount_due_cents, "amount_paid_cents": f.amount_paid_cents}
    if f.document_type == "credit_note":
        return Check("invoice_open", "fail", "credit_note")
    if f.status == "cancelled" or f.lifecycle_code == CANCELLED:
        return Check("invoice_open", "fail", "cancelled", {"lifecycle_code": f.lifecycle_code})
    if f.status == "paid" or f.amount_due_cents == 0 or f.lifecycle_code == CASHED:
        return Check("invoice_open", "fail", "paid", g)
    return Check("invoice_open", "ok", "partially_paid" if f.amount_paid_cents else "open", g)


@value
class DisputeView:
    state: Literal["none", "partial", "full", "blocked"]
    undisputed_due_cents: int
    contested_cents: int = 0


def dispute_view(f: Facts) -> DisputeView:
    """What part of the amount due the buyer does not contest.

    207 En litige with an amount: that amount is contested, the rest is not. 206 Approuvée
    partiellement with an amount: that amount is approved, the rest is contested. Either
    without an amount, or an invoice marked disputed with no such detail: all of it is
    contested. Payments received count against the undisputed part first."""
    code, amount = f.lifecycle_code, f.lifecycle_amount_cents
    if code in REFUSED or code in (SUSPENDED, DIRECT_PAYMENT):
        return DisputeView("blocked", 0, f.amount_cents)
    contested: int | None = None
    if code == DISPUTED:
        contested = amount if amount is not None and 0 < amount < f.amount_cents else f.amount_cents
    elif code == PARTIALLY_APPROVED:
        approved = amount if amount is not None and 0 <= amount < f.amount_cents else 0
        contested = f.amount_cents - approved
    elif f.status == "disputed":
        contested = f.amount_cents
    if contested is None or contested == 0:
        return DisputeView("none", f.amount_due_cents)
    undisputed_due = max(0, f.amount_cents - contested - f.amount_paid_cents)
    if undisputed_due == 0:
        return DisputeView("full", 0, contested)
    return DisputeView("partial", undisputed_due, contested)


def not_disputed(f: Facts, p: PolicySettings) -> Check:
    view = dispute_view(f)
    g: dict[str, Any] = {
        "lifecycle_code": f.lifecycle_code,
        "contested_cents": view.contested_cents,
        "undisputed_due_cents": view.undisputed_due_cents,
    }
    if view.state == "blocked":
        reason = {SUSPENDED: "suspended", DIRECT_PAYMENT: "direct_payment"}.get(
            f.lifecycle_code or 0, "refused"
        )
        return Check("not_disputed", "fail", reason, g, hint="buyer_approval")
    if view.state == "full":
        return Check("not_disputed", "fail", "disputed", g, hint="resolve_dispute")
    if view.state == "partial" and view.undisputed_due_cents < p.min_amount_cents:
        return Check(
            "not_disputed", "fail", "undisputed_below_minimum", {**g, "min_amount_cents": p.min_amount_cents}
        )
    if view.state == "partial":
        return Check(
            "not_disputed",
            "cap",
            "partly_disputed",
            g,
            cap_cents=view.undisputed_due_cents,
            hint="partial_dispute",
        )
    return Check("not_disputed", "ok", "none")


def currency_accepted(f: Facts, p: PolicySettings) -> Check:
    g: dict[str, Any] = {"currency": f.currency}
    if f.currency not in p.currencies:
        return Check("currency_accepted", "fail", "refused", {**g, "accepted": list(p.currencies)})
    return Check("currency_accepted", "ok", "accepted", g)


def amount_within_bounds(f: Facts, p: PolicySettings) -> Check:
    due = f.amount_due_cents
    g: dict[str, Any] = {
        "amount_due_cents": due,
        "min_amount_cents": p.min_amount_cents,
        "max_amount_cents": p.max_amount_cents,
    }
    if due < p.min_amount_cents:
        return Check("amount_within_bounds", "fail", "below_minimum", g)
    if due > p.max_amount_cents:
        return Check(
            "amount_within_bounds", "cap", "above_maximum", g, cap_cents=p.max_amount_cents, hint="amount_cap"
        )
    return Check("amount_within_bounds", "ok", "within", g)


def days_to_due(f: Facts) -> int:
    return (f.due_date - f.as_of_date).days


def not_overdue(f: Facts, p: PolicySettings) -> Check:
    days = days_to_due(f)
    g: dict[str, Any] = {"due_date": f.due_date.isoformat(), "days_to_due": days}
    if days < 0:
        return Check("not_overdue", "fail", "overdue", g)
    return Check("not_overdue", "ok", "not_due", g)


def max_duration_days(f: Facts, p: PolicySettings) -> int:
    return min(p.max_duration_days, days_to_due(f) + p.grace_days)


def duration_fits(f: Facts, p: PolicySettings) -> Check:
    days = days_to_due(f)
    g: dict[str, Any] = {
        "days_to_due": days,
        "grace_days": p.grace_days,
        "min_duration_days": p.min_duration_days,
        "max_duration_days": p.max_duration_days,
    }
    if days < 0:
        return Check("duration_fits", "na", "overdue")
    if days > p.max_duration_days:
        g["eligible_from"] = (f.due_date - timedelta(days=p.max_duration_days)).isoformat()
        return Check("duration_fits", "fail", "too_far", g, hint="due_date_within_max")
    longest = max_duration_days(f, p)
    if longest < p.min_duration_days:
        return Check("duration_fits", "fail", "too_close", g)
    return Check("duration_fits", "ok", "fits", {**g, "longest_days": longest})


def in_books(f: Facts, p: PolicySettings) -> Check:
    if not f.books_connected or not p.require_books_match:
        return Check("in_books", "na", "not_connected")
    g: dict[str, Any] = {
        "number": f.number,
        "books_as_of": _iso(f.books_as_of),
        "book_lines": f.books_lines,
        "books_amount_cents": f.books_debit_cents,
        "invoice_amount_cents": f.amount_cents,
    }
    if f.books_lines == 0:
        if f.books_as_of is not None and f.issue_date > f.books_as_of:
            return Check("in_books", "na", "after_books", g)
        return Check("in_books", "fail", "missing", g, hint="import_books")
    if f.books_debit_cents != f.amount_cents:
        return Check("in_books", "fail", "amount_differs", g, hint="import_books")
    return Check("in_books", "ok", "matched", g)


def not_already_financed(f: Facts, p: PolicySettings) -> Check:
    if f.lifecycle_code == FACTORED:
        return Check("not_already_financed", "fail", "factored")
    if f.invoice_fingerprint is None:
        return _no_siren("not_already_financed")
    if f.financed_elsewhere > 0:
        return Check("not_already_financed", "fail", "financed_elsewhere")
    if f.financed_here > 0:
        return Check("not_already_financed", "fail", "financed_here")
    return Check("not_already_financed", "ok", "not_financed")


def debtor_payment_behaviour(f: Facts, p: PolicySettings) -> Check:
    if f.behaviour_paid_count is None:
        return Check("debtor_payment_behaviour", "ok", "no_history")
    avg = f.behaviour_avg_days_late or 0
    unpaid = f.behaviour_unpaid_overdue_count or 0
    g: dict[str, Any] = {
        "paid_invoices": f.behaviour_paid_count,
        "avg_days_late": avg,
        "share_paid_late_bps": f.behaviour_share_paid_late_bps or 0,
        "unpaid_overdue_count": unpaid,
        "unpaid_overdue_cents": f.behaviour_unpaid_overdue_cents,
        "max_avg_days_late": p.debtor_max_avg_days_late,
        "max_unpaid_overdue_count": p.debtor_max_unpaid_overdue_count,
    }
    if avg > p.debtor_max_avg_days_late:
        return Check("debtor_payment_behaviour", "fail", "too_late", g, hint="debtor_pays_faster")
    if unpaid > p.debtor_max_unpaid_overdue_count:
        return Check("debtor_payment_behaviour", "fail", "too_many_unpaid", g, hint="debtor_settles_overdue")
    return Check("debtor_payment_behaviour", "ok", "good", g)


def bank_health(f: Facts, p: PolicySettings) -> Check:
    b = f.bank
    if not b.connected:
        return Check(
            "bank_health", "cap", "not_connected", {}, cap_cents=p.no_bank_cap_cents, hint="connect_bank"
        )
    g: dict[str, Any] = {
        "window_days": b.window_days,
        "incidents": b.incidents,
        "days_overdrawn": b.days_overdrawn,
        "max_incidents": p.bank_max_incidents,
        "max_days_overdrawn": p.bank_max_days_overdrawn,
        "weeks_with_inflow": b.weeks_with_inflow,
        "weeks_in_window": b.weeks_in_window,
        "inflow_cents": b.inflow_cents,
        "outflow_cents": b.outflow_cents,
    }
    if b.incidents > p.bank_max_incidents:
        return Check("bank_health", "fail", "incidents", g, hint="fewer_bank_incidents")
    if b.days_overdrawn is not None and b.days_overdrawn > p.bank_max_days_overdrawn:
        return Check("bank_health", "fail", "overdrawn", g, hint="fewer_days_overdrawn")
    return Check("bank_health", "ok", "healthy", g)


def buyer_approval(f: Facts, p: PolicySettings) -> Check:
    g: dict[str, Any] = {"threshold_cents": p.approval_required_above_cents}
    if f.buyer_approved:
        return Check("buyer_approval", "ok", "approved")
    if f.amount_due_cents > p.approval_required_above_cents:
        return Check(
            "buyer_approval",
            "cap",
            "required",
            g,
            cap_cents=p.approval_required_above_cents,
            hint="buyer_approval_lifts_cap",
        )
    return Check("buyer_approval", "ok", "not_required", g)
