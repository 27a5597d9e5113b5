"""What eligibility writes and reads back: decisions, policies, company snapshots,
related parties. The reads behind a decision (its facts) are in ``queries.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    String,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.concurrency import ASYNC_COMMIT
from escompte.db import driver, set_local
from escompte.errors import invariant
from escompte.models import (
    CompanySnapshot,
    EligibilityDecision,
    EligibilityPolicy,
    Invoice,
    RelatedParty,
)
from escompte.values import value


def save_snapshot(
    session: Session, company_id: str, markers: str, today: date, figures: dict[str, Any], now: datetime
) -> None:
    stmt = insert(CompanySnapshot).values(
        company_id=company_id, markers=markers, as_of_date=today, figures=figures, computed_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[CompanySnapshot.company_id],
            set_={
                "markers": stmt.excluded.markers,
                "as_of_date": stmt.excluded.as_of_date,
                "figures": stmt.excluded.figures,
                "computed_at": stmt.excluded.computed_at,
            },
        )
    )


# --- decisions ---------------------------------------------------------------------------


def generic_plans(session: Session) -> None:
    """For the rest of this transaction, run prepared statements on their generic plan.
    The facts statement's plan does not depend on which invoice is asked, and planning
    it costs more than running it; left to choose, PostgreSQL kept planning it for each
    call under load (measured over HTTP, 2 processes, 32 clients: 451 unchanged decisions
    a second instead of 1,151). A decision's transaction starts here, with the setting in
    the same round trip."""
    set_local(session, "plan_cache_mode = force_generic_plan")


def insert_decision(session: Session, row: Sequence[Any], *, durable: bool = False) -> None:
    """One decision (in ``DECISION_COLUMNS`` order, JSON as text), straight through the
    driver as a prepared statement: the hot path's only write.

    The same statement turns ``synchronous_commit`` off for the rest of its transaction:
    a decision is derived data, made again identically from the same inputs, so its
    commit need not wait for the disk. A crash may lose the decisions of the last
    fraction of a second (``wal_writer_delay``); the next call makes them again.
    ``durable``: the transaction also writes what must last (a quote, an advance), so
    the setting is left alone and the commit waits for the disk."""
    with driver(session).cursor() as cur:
        cur.execute(_INSERT_DURABLE_SQL if durable else _INSERT_SQL, row, prepare=True)
    if not durable:
        session.info[ASYNC_COMMIT] = True


def get_decision(session: Session, principal: Principal, decision_id: str) -> EligibilityDecision | None:
    return session.execute(
        select(EligibilityDecision).where(
            EligibilityDecision.id == decision_id,
            visible_company_ids(principal, EligibilityDecision.company_id),
        )
    ).scalar_one_or_none()


DECISION_COLUMNS = (
    "id",
    "invoice_id",
    "company_id",
    "policy_version",
    "eligible",
    "max_amount_cents",
    "currency",
    "min_duration_days",
    "max_duration_days",
    "risk_grade",
    "score",
    "checks",
    "failed_checks",
    "features",
    "counterfactuals",
    "as_of_date",
    "data_as_of",
    "inputs_fingerprint",
    "created_at",
)
_JSON_COLUMNS = frozenset({"checks", "features", "counterfactuals"})
_INSERT_DURABLE_SQL = (  # built from the constant column names above, values bound
    f"INSERT INTO eligibility_decisions ({', '.join(DECISION_COLUMNS)}) SELECT "
    + ", ".join("%s::json" if c in _JSON_COLUMNS else "%s" for c in DECISION_COLUMNS)
)
_INSERT_SQL = _INSERT_DURABLE_SQL + " FROM set_config('synchronous_commit', 'off', true)"
# JSON columns travel as JSON text (the server checks it and keeps it as written)
_COPY_TYPES = (
    "text", "text", "text", "int4", "bool", "int8", "text", "int4", "int4", "text", "int4",
    "text", "text[]", "text", "text", "date", "timestamptz", "text", "timestamptz",
)  # fmt: skip


@contextmanager
def decision_copy(session: Session) -> Iterator[Callable[[Sequence[Any]], None]]:
    """A COPY into eligibility_decisions, open while the caller writes rows (in
    ``DECISION_COLUMNS`` order, JSON as text): PostgreSQL parses them while Python makes
    the next ones. No other statement may run on the session meanwhile."""
    with driver(session).cursor() as cur:
        sql = f"COPY eligibility_decisions ({', '.join(DECISION_COLUMNS)}) FROM STDIN"
        with cur.copy(sql) as copy:
            copy.set_types(list(_COPY_TYPES))
            yield copy.write_row


@value
class DecisionSummary:
    id: str
    invoice_id: str
    eligible: bool
    max_amount_cents: int
    currency: str
    max_duration_days: int
    risk_grade: str
    score: int
    failed_checks: list[str]
    created_at: datetime


def latest_decisions(session: Session, invoice_ids: Sequence[str]) -> dict[str, EligibilityDecision]:
    """The latest decision of each of these invoices (those that have one), by invoice id:
    for the invoice list's ``eligible`` filter. The ids must come from a tenant-filtered
    query (this does not filter again).

    The latest decision is what was last decided; once an input changes it is no longer
    current (``service.decide`` makes the current one)."""
    if not invoice_ids:
        return {}
    ids = bindparam("lids", list(invoice_ids), type_=ARRAY(String))
    last = (
        select(EligibilityDecision.id)
        .where(EligibilityDecision.invoice_id == Invoice.id)
        .order_by(EligibilityDecision.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = select(EligibilityDecision).where(
        EligibilityDecision.id.in_(select(last).where(Invoice.id == any_(ids)))
    )
    return {d.invoice_id: d for d in session.execute(query).scalars()}


# --- policies ------------------------------------------------------------------------------


def policy(session: Session, version: int) -> EligibilityPolicy | None:
    return session.get(EligibilityPolicy, version)


def latest_policy(session: Session) -> EligibilityPolicy | None:
    return session.execute(
        select(EligibilityPolicy).order_by(EligibilityPolicy.version.desc()).limit(1)
    ).scalar_one_or_none()


def insert_policy(
    session: Session,
    *,
    version: int,
    settings: dict[str, Any],
    note: str | None,
    created_by_key_id: str | None,
    now: datetime,
    if_absent: bool = False,
) -> None:
    stmt = insert(EligibilityPolicy).values(
        version=version, settings=settings, note=note, created_at=now, created_by_key_id=created_by_key_id
    )
    if if_absent:
        stmt = stmt.on_conflict_do_nothing(index_elements=[EligibilityPolicy.version])
    session.execute(stmt)


# --- related parties ---------------------------------------------------------------------


MAX_RELATED_PARTIES = 1_000  # per seller


def count_related_parties(session: Session, company_id: str) -> int:
    return int(
        session.execute(select(func.count()).where(RelatedParty.company_id == company_id)).scalar_one()
    )


def upsert_related_party(
    session: Session, *, company_id: str, siren: str, relation: str, now: datetime, key_id: str
) -> RelatedParty:
    stmt = insert(RelatedParty).values(
        company_id=company_id, siren=siren, relation=relation, created_at=now, created_by_key_id=key_id
    )
    party_id = session.execute(
        stmt.on_conflict_do_update(
            index_elements=[RelatedParty.company_id, RelatedParty.siren], set_={"relation": relation}
        ).returning(RelatedParty.id)
    ).scalar_one()
    party = session.get(RelatedParty, party_id, populate_existing=True)
    invariant(party is not None, "the related party just written is readable")
    assert party is not None  # for the type checker
    return party


def related_parties(session: Session, principal: Principal, company_id: str) -> list[RelatedParty]:
    return list(
        session.execute(
            select(RelatedParty)
            .where(
                RelatedParty.company_id == company_id, visible_company_ids(principal, RelatedParty.company_id)
            )
            .order_by(RelatedParty.siren)
            .limit(MAX_RELATED_PARTIES)
        ).scalars()
    )
