"""Stripe webhooks: verified, deduplicated by event id, and applied by re-reading the
object's current state from Stripe (events may come twice, late or out of order)."""

from __future__ import annotations

from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from escompte.clock import Clock
from escompte.errors import DomainError, FieldError
from escompte.financing import service
from escompte.financing.rails import StripeRail
from escompte.models import Advance, PaymentOperation, StripeEvent


class InvalidSignature(DomainError):
    status = 400
    code = "invalid_signature"
    title = "Invalid webhook signature"


def verify(payload: bytes, signature: str | None, secret: str | None) -> dict[str, Any]:
    if not secret:
        raise InvalidSignature("ESCOMPTE_STRIPE_WEBHOOK_SECRET is not set: webhooks cannot be verified.")
    if not signature:
        raise InvalidSignature(
            "The Stripe-Signature header is missing.",
            [FieldError("Stripe-Signature", "missing", code="missing")],
        )
    try:
        event = stripe.Webhook.construct_event(payload.decode("utf-8"), signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(
            f"The signature does not verify: {exc.user_message or exc}",
            [FieldError("Stripe-Signature", "does not verify", code="invalid")],
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidSignature(
            "The body is not a Stripe event.", [FieldError("body", "not JSON", code="invalid")]
        ) from None
    data: dict[str, Any] = event.to_dict()
    return data


def receive(session: Session, clock: Clock, rail: StripeRail, event: dict[str, Any]) -> tuple[bool, str]:
    """(first time seen, outcome). A replayed event changes nothing."""
    obj = (event.get("data") or {}).get("object") or {}
    inserted = session.execute(
        pg_insert(StripeEvent)
        .values(
            id=str(event["id"])[:80],
            type=str(event.get("type", ""))[:80],
            account=event.get("account"),
            object_id=(str(obj.get("id")) if obj.get("id") else None),
            outcome="received",
            received_at=clock.now(),
        )
        .on_conflict_do_nothing()
        .returning(StripeEvent.id)
    ).first()
    if inserted is None:
        outcome = session.execute(select(StripeEvent.outcome).where(StripeEvent.id == event["id"])).scalar()
        return False, f"duplicate: {outcome}"
    outcome = _apply(session, clock, rail, event, obj)
    row = session.get(StripeEvent, event["id"])
    if row is not None:
        row.outcome = outcome[:40]
    session.flush()
    return True, outcome


def _advance_of(session: Session, obj: dict[str, Any], external_id: str) -> str | None:
    found = session.execute(
        select(PaymentOperation.advance_id).where(
            PaymentOperation.rail == "stripe", PaymentOperation.external_id == external_id
        )
    ).scalar_one_or_none()
    if found:
        return found
    candidate = (obj.get("metadata") or {}).get("advance")
    if candidate and session.get(Advance, candidate) is not None:
        return str(candidate)
    return None


def _apply(
    session: Session, clock: Clock, rail: StripeRail, event: dict[str, Any], obj: dict[str, Any]
) -> str:
    kind = str(event.get("type", ""))
    object_id = str(obj.get("id", ""))
    if kind.startswith("payout."):
        account = event.get("account")
        if (obj.get("metadata") or {}).get("purpose") == "surplus" and account:
            return service.surplus_payout_update(session, clock, rail, object_id, str(account))
        advance_id = _advance_of(session, obj, object_id)
        if advance_id is None or not account:
            return "ignored: unknown payout"
        return service.payout_update(session, clock, rail, advance_id, object_id, str(account))
    if kind.startswith("payment_intent."):
        return service.payment_update(session, clock, rail, object_id, dict(obj.get("metadata") or {}))
    if kind.startswith("charge.dispute."):
        charge = obj.get("charge")
        if not charge:
            return "ignored: dispute without charge"
        return service.dispute(session, clock, rail, str(charge), object_id)
    return f"ignored: {kind}"[:40]
