"""The advance state machine. Every change of status goes through ``transition``, which
refuses an illegal one with a 409 and records an event timestamped by the clock.

    accepted → disbursing → active (disbursed) → repaid
    active → overdue → in_collections → defaulted → written_off
    disbursing / accepted → disbursement_failed
    overdue, in_collections, defaulted → repaid  (late payment, recovery)
    repaid → active / overdue  (a SEPA debit disputed within 8 weeks reopens what is owed)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from escompte.errors import InvalidTransition
from escompte.ids import new_id
from escompte.models import Advance, AdvanceStatus, Event

S = AdvanceStatus

ALLOWED: dict[AdvanceStatus, frozenset[AdvanceStatus]] = {
    S.ACCEPTED: frozenset({S.DISBURSING, S.DISBURSEMENT_FAILED}),
    S.DISBURSING: frozenset({S.ACTIVE, S.DISBURSEMENT_FAILED}),
    S.ACTIVE: frozenset({S.REPAID, S.OVERDUE}),
    S.OVERDUE: frozenset({S.REPAID, S.IN_COLLECTIONS}),
    S.IN_COLLECTIONS: frozenset({S.REPAID, S.DEFAULTED}),
    S.DEFAULTED: frozenset({S.REPAID, S.WRITTEN_OFF}),
    S.REPAID: frozenset({S.ACTIVE, S.OVERDUE}),
    S.WRITTEN_OFF: frozenset(),
    S.DISBURSEMENT_FAILED: frozenset(),
}

EVENT_TYPES: dict[AdvanceStatus, str] = {
    S.DISBURSING: "advance.disbursing",
    S.ACTIVE: "advance.disbursed",
    S.OVERDUE: "advance.overdue",
    S.IN_COLLECTIONS: "advance.in_collections",
    S.DEFAULTED: "advance.defaulted",
    S.REPAID: "advance.repaid",
    S.WRITTEN_OFF: "advance.written_off",
    S.DISBURSEMENT_FAILED: "advance.disbursement_failed",
}


def can(current: AdvanceStatus, target: AdvanceStatus) -> bool:
    return target in ALLOWED[current]


def transition(
    session: Session,
    advance: Advance,
    target: AdvanceStatus,
    now: datetime,
    *,
    reason: str,
    data: dict[str, Any] | None = None,
) -> None:
    current = advance.status
    if not can(current, target):
        raise InvalidTransition(
            f"Advance {advance.id} is {current.value}; it cannot become {target.value}.",
            extra={"status": current.value, "requested": target.value},
        )
    advance.status = target
    advance.updated_at = now
    event_type = "advance.reopened" if current is S.REPAID else EVENT_TYPES[target]
    record(
        session,
        event_type,
        advance,
        now,
        {"from": current.value, "to": target.value, "reason": reason, **(data or {})},
    )


def event_row(
    event_type: str, company_id: str, advance_id: str, now: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """The columns of an event about an advance."""
    return {
        "id": new_id("evt"),
        "type": event_type,
        "company_id": company_id,
        "object_type": "advance",
        "object_id": advance_id,
        "data": data,
        "created_at": now,
    }


def record(session: Session, event_type: str, advance: Advance, now: datetime, data: dict[str, Any]) -> None:
    """An event about ``advance``; written with the session's next flush (one batched
    INSERT with the other pending rows, no round trip of its own)."""
    session.add(Event(**event_row(event_type, advance.company_id, advance.id, now, data)))
