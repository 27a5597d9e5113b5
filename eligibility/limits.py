"""Exposure limits: how much more the platform may finance on one buyer, for one seller,
and how concentrated a seller's outstanding advances may be on one buyer.

Outstanding amounts are the live rows of ``financed_fingerprints`` (written by the
financing side when an advance goes live, released when it ends). Each limit gives a
headroom in cents, rounded down to the cent; a headroom below the invoice's financeable
amount caps the decision, one below the policy's minimum refuses it. The buyer limit
covers every seller on the platform: its figures give the limit and the headroom left,
never what other sellers financed.
"""

from __future__ import annotations

from typing import Any

from escompte.eligibility.facts import Facts
from escompte.eligibility.policy import PolicySettings
from escompte.eligibility.rules import Check


def debtor_headroom_cents(f: Facts, p: PolicySettings) -> int:
    return max(0, p.debtor_limit_cents - f.debtor_outstanding_cents)


def seller_headroom_cents(f: Facts, p: PolicySettings) -> int:
    return max(0, p.seller_limit_cents - f.seller_outstanding_cents)


def concentration_headroom_cents(f: Facts, p: PolicySettings) -> int | None:
    """The largest x such that, once x more is financed on this buyer, the buyer is at
    most ``concentration_max_bps`` of the seller's outstanding — or the outstanding stays
    under ``concentration_floor_cents``. None: no concentration limit (100 %)."""
    c = p.concentration_max_bps
    if c >= 10_000:
        return None
    s, d = f.seller_outstanding_cents, f.seller_debtor_outstanding_cents
    under_floor = p.concentration_floor_cents - s
    # (d + x) * 10000 <= c * (s + x)  <=>  x <= (c*s - 10000*d) / (10000 - c), floored
    within_share = (c * s - 10_000 * d) // (10_000 - c)
    return max(0, under_floor, within_share)


def debtor_limit(f: Facts, p: PolicySettings, wanted_cents: int) -> Check:
    headroom = debtor_headroom_cents(f, p)
    g: dict[str, Any] = {"limit_cents": p.debtor_limit_cents, "headroom_cents": headroom}
    if headroom < p.min_amount_cents:
        return Check("debtor_limit", "fail", "reached", g, hint="debtor_limit_frees_up")
    if headroom < wanted_cents:
        return Check("debtor_limit", "cap", "headroom", g, cap_cents=headroom, hint="debtor_limit")
    return Check("debtor_limit", "ok", "within", g)


def seller_limit(f: Facts, p: PolicySettings, wanted_cents: int) -> Check:
    headroom = seller_headroom_cents(f, p)
    g: dict[str, Any] = {
        "limit_cents": p.seller_limit_cents,
        "outstanding_cents": f.seller_outstanding_cents,
        "headroom_cents": headroom,
    }
    if headroom < p.min_amount_cents:
        g["repay_cents"] = p.min_amount_cents - headroom
        return Check("seller_limit", "fail", "reached", g, hint="seller_limit_frees_up")
    if headroom < wanted_cents:
        return Check("seller_limit", "cap", "headroom", g, cap_cents=headroom, hint="seller_limit")
    return Check("seller_limit", "ok", "within", g)


def concentration(f: Facts, p: PolicySettings, wanted_cents: int) -> Check:
    headroom = concentration_headroom_cents(f, p)
    g: dict[str, Any] = {
        "max_share_bps": p.concentration_max_bps,
        "floor_cents": p.concentration_floor_cents,
        "seller_outstanding_cents": f.seller_outstanding_cents,
        "on_this_debtor_cents": f.seller_debtor_outstanding_cents,
        "headroom_cents": headroom,
    }
    if headroom is None or headroom >= wanted_cents:
        return Check("concentration", "ok", "within", g)
    if headroom < p.min_amount_cents:
        return Check("concentration", "fail", "too_concentrated", g, hint="diversify")
    return Check("concentration", "cap", "headroom", g, cap_cents=headroom, hint="concentration")
