"""Eligibility operations: decide one invoice or many, read decisions, manage the policy
and declared related parties. Services flush, never commit.

Caching: a decision stores the sha256 of its inputs (every fact it read, the change
markers of the company's data, the policy version and the date). Deciding again reads
the same facts — one indexed statement — and, when the fingerprint equals the latest
decision's, returns that decision instead of writing a new one. Any change to an input
changes the fingerprint, so a stored decision is never returned stale.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from escompte.access.principal import Principal
from escompte.clock import Clock
from escompte.companies.service import company_for_write
from escompte.eligibility import inputs, queries, records, repository
from escompte.eligibility.decision import evaluate
from escompte.eligibility.policy import PolicySettings, merged, parse_stored
from escompte.eligibility.queries import BookMatch
from escompte.eligibility.repository import DecisionSummary
from escompte.errors import FieldError, Forbidden, NotFound, ValidationFailed, invariant
from escompte.ids import new_id
from escompte.models import EligibilityDecision, EligibilityPolicy, RelatedParty
from escompte.values import value

MAX_BATCH = 10_000

# Policy versions are immutable once written: each process keeps the parsed settings.
_policies: dict[tuple[int, str], PolicySettings] = {}
_policies_lock = threading.Lock()


# --- policy ------------------------------------------------------------------------------


def policy_settings(session: Session, version: int, digest: str | None = None) -> PolicySettings:
    """The settings of ``version``. With the ``digest`` of its stored settings (read with
    the facts), they are parsed once per process: a version never changes once written,
    and the digest keeps a version number reused after a rollback from being mistaken."""
    if digest is not None:
        cached = _policies.get((version, digest))
        if cached is not None:
            return cached
    row = repository.policy(session, version)
    if row is None:
        raise NotFound(f"No such policy version: {version}")
    settings = parse_stored(row.settings)
    if digest is not None:
        with _policies_lock:
            if len(_policies) > 1_000:
                _policies.clear()
            _policies[(version, digest)] = settings
    return settings


def ensure_policy(session: Session, clock: Clock) -> int:
    """The current version; stores the defaults as version 1 if there is none at all."""
    row = repository.latest_policy(session)
    if row is not None:
        return row.version
    repository.insert_policy(
        session,
        version=1,
        settings=PolicySettings().model_dump(mode="json"),
        note="defaults",
        created_by_key_id=None,
        now=clock.now(),
        if_absent=True,
    )
    return 1


def current_policy(session: Session, clock: Clock) -> EligibilityPolicy:
    version = ensure_policy(session, clock)
    row = repository.policy(session, version)
    if row is None:  # pragma: no cover - just written or read
        raise NotFound("No eligibility policy.")
    return row


def create_policy(
    session: Session, clock: Clock, principal: Principal, changes: dict[str, Any], note: str | None
) -> EligibilityPolicy:
    """A new version: the current settings with ``changes`` applied. Admins only. Two
    admins racing get one version each or a 409 (the version is the primary key)."""
    if not principal.is_admin:
        raise Forbidden("Only admins change the eligibility policy.")
    current = current_policy(session, clock)
    try:
        settings = merged(parse_stored(current.settings), changes)
    except ValidationError as exc:
        raise ValidationFailed(
            "The policy settings are not valid.",
            [
                FieldError(".".join(["settings", *(str(p) for p in e["loc"])]), e["msg"], code=e["type"])
                for e in exc.errors()[:20]
            ],
        ) from None
    version = current.version + 1
    repository.insert_policy(
        session,
        version=version,
        settings=settings.model_dump(mode="json"),
        note=note,
        created_by_key_id=principal.key_id,
        now=clock.now(),
    )
    session.flush()
    row = repository.policy(session, version)
    invariant(row is not None, "the policy version just written is readable")
    assert row is not None  # for the type checker
    return row


# --- deciding ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decided:
    decision_id: str
    reused: bool
    # the new decision; None when the stored one is reused (``get_decision`` reads it)
    decision: EligibilityDecision | None


def decide(
    session: Session, clock: Clock, principal: Principal, invoice_id: str, *, durable: bool = False
) -> Decided:
    """The decision on one invoice: the latest one if nothing it read has changed since,
    else a new one, persisted. ``durable``: the caller's transaction writes what must
    last (a quote, an advance), so its commit must wait for the disk (see
    ``repository.insert_decision``)."""
    today = clock.today()
    repository.generic_plans(session)
    parts = queries.read_one(session, principal, invoice_id)
    if parts is not None and parts.invoices[0]["policy_version"] is None:
        ensure_policy(session, clock)  # no policy at all yet: store the defaults, read again
        parts = queries.read_one(session, principal, invoice_id)
    if parts is None:
        raise NotFound(f"No such invoice: {invoice_id}")
    invoice = parts.invoices[0]
    company, debtor = parts.companies[invoice["company_id"]], parts.debtors[invoice["debtor_id"]]
    version = invoice["policy_version"]
    settings = policy_settings(session, version, invoice["policy_digest"])
    snapshot = inputs.fresh_snapshot(session, clock, company, settings, today)
    book = inputs.book_of(invoice)
    keys = inputs.Keys()
    fingerprint = inputs.inputs_fingerprint(
        today=today,
        version=version,
        company_key=keys.company(company, snapshot),
        debtor_key=keys.debtor(debtor),
        invoice=invoice,
        book=book,
    )
    if invoice["last_fingerprint"] == fingerprint:
        return Decided(invoice["last_decision_id"], reused=True, decision=None)
    facts = inputs.build_facts(
        invoice,
        company,
        debtor,
        today=today,
        version=version,
        snapshot=snapshot,
        book=book,
    )
    values = records.values(new_id("eld"), facts, evaluate(facts, settings), fingerprint, clock.now())
    repository.insert_decision(session, records.as_row(values), durable=durable)
    return Decided(values["id"], reused=False, decision=EligibilityDecision(**values))


@value
class BatchItem:
    summary: DecisionSummary
    reused: bool


@dataclass(frozen=True, slots=True)
class BatchResult:
    items: list[BatchItem]
    has_more: bool


def decide_batch(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    company_id: str | None = None,
    invoice_ids: Sequence[str] | None = None,
    starting_after: str | None = None,
    limit: int = MAX_BATCH,
) -> BatchResult:
    """Decisions on a list of invoices, or on a company's open invoices (up to ``limit``
    per call, by invoice id; ``has_more`` says to call again with ``starting_after``).
    Unchanged decisions are reused; new ones are written with one COPY."""
    with _gc_paused():
        return _decide_batch(
            session,
            clock,
            principal,
            company_id=company_id,
            invoice_ids=invoice_ids,
            starting_after=starting_after,
            limit=limit,
        )


def _decide_batch(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    company_id: str | None,
    invoice_ids: Sequence[str] | None,
    starting_after: str | None,
    limit: int,
) -> BatchResult:
    today, now = clock.today(), clock.now()
    ensure_policy(session, clock)  # (one primary-key read when there is one)
    if invoice_ids is not None:
        wanted = list(dict.fromkeys(invoice_ids))
        invariant(len(wanted) <= MAX_BATCH, "batches are bounded")
        parts = queries.read_many(session, principal, invoice_ids=wanted, limit=max(1, len(wanted)))
        missing = sorted(set(wanted) - {r["invoice_id"] for r in parts.invoices})
        if missing:
            raise NotFound(
                f"{len(missing)} invoice(s) not found: {', '.join(missing[:5])}"
                f"{' …' if len(missing) > 5 else ''}",
                [FieldError("invoices", f"no such invoice: {i}", code="not_found") for i in missing[:20]],
            )
        has_more = False
    else:
        seller = company_for_write(session, principal, company_id)
        parts = queries.read_many(
            session, principal, company_id=seller.id, starting_after=starting_after, limit=limit + 1
        )
        has_more = len(parts.invoices) > limit
        del parts.invoices[limit:]
    if not parts.invoices:
        return BatchResult([], has_more)
    version = parts.invoices[0]["policy_version"]
    settings = policy_settings(session, version, parts.invoices[0]["policy_digest"])
    snapshots = {
        cid: inputs.fresh_snapshot(session, clock, company, settings, today)
        for cid, company in parts.companies.items()
    }
    books = queries.book_matches(
        session,
        (
            (
                r["invoice_id"],
                r["company_id"],
                parts.debtors[r["debtor_id"]]["debtor_aux"],
                r["number"],
                str(r["kind"]),
            )
            for r in parts.invoices
            if snapshots[r["company_id"]].get("books_as_of")
        ),
    )
    no_match = BookMatch(0, 0)
    keys = inputs.Keys()
    memo: dict[Any, Any] = {}
    encoder = records.CopyEncoder()
    items: list[BatchItem] = []
    with repository.decision_copy(session) as write:
        for invoice in parts.invoices:
            company, debtor = parts.companies[invoice["company_id"]], parts.debtors[invoice["debtor_id"]]
            snapshot = snapshots[invoice["company_id"]]
            book = books.get(invoice["invoice_id"], no_match)
            fingerprint = inputs.inputs_fingerprint(
                today=today,
                version=version,
                company_key=keys.company(company, snapshot),
                debtor_key=keys.debtor(debtor),
                invoice=invoice,
                book=book,
            )
            if invoice["last_fingerprint"] == fingerprint:
                items.append(BatchItem(_last_summary(invoice), reused=True))
                continue
            facts = inputs.build_facts(
                invoice,
                company,
                debtor,
                today=today,
                version=version,
                snapshot=snapshot,
                book=book,
            )
            outcome = evaluate(facts, settings, memo)
            decision_id = new_id("eld")
            write(encoder.row(decision_id, facts, outcome, fingerprint, now))
            summary = DecisionSummary(
                decision_id,
                facts.invoice_id,
                outcome.eligible,
                outcome.max_amount_cents,
                facts.currency,
                outcome.max_duration_days,
                outcome.risk_grade,
                outcome.score,
                outcome.failed,
                now,
            )
            items.append(BatchItem(summary, reused=False))
    return BatchResult(items, has_more)


def _last_summary(invoice: dict[str, Any]) -> DecisionSummary:
    return DecisionSummary(
        invoice["last_decision_id"],
        invoice["invoice_id"],
        invoice["last_eligible"],
        invoice["last_max_amount_cents"],
        invoice["currency"],
        invoice["last_max_duration_days"],
        invoice["last_risk_grade"],
        invoice["last_score"],
        list(invoice["last_failed_checks"]),
        invoice["last_created_at"],
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch allocates its many small objects (none
    of them in cycles): full collections triggered by the growing heap otherwise cost
    more than the work itself. Collection resumes right after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- reading -----------------------------------------------------------------------------


def get_decision(session: Session, principal: Principal, decision_id: str) -> EligibilityDecision:
    decision = repository.get_decision(session, principal, decision_id)
    if decision is None:
        raise NotFound(f"No such eligibility decision: {decision_id}")
    return decision


latest_decisions = repository.latest_decisions


# --- related parties -----------------------------------------------------------------------


def declare_related_party(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    company_id: str | None,
    siren: str,
    relation: str,
) -> RelatedParty:
    """Declare that a seller's invoices on ``siren`` are intra-group (not financed); a
    second declaration of the same SIREN updates the relation."""
    company = company_for_write(session, principal, company_id)
    if siren == company.siren:
        raise ValidationFailed(
            "A company is always related to itself; declare other companies.",
            [FieldError("siren", "the company's own SIREN")],
        )
    if repository.count_related_parties(session, company.id) >= repository.MAX_RELATED_PARTIES:
        raise ValidationFailed(
            f"A company can declare at most {repository.MAX_RELATED_PARTIES} related companies.",
            [FieldError("siren", "too many related companies", code="too_many")],
        )
    return repository.upsert_related_party(
        session,
        company_id=company.id,
        siren=siren,
        relation=relation,
        now=clock.now(),
        key_id=principal.key_id,
    )


def list_related_parties(
    session: Session, principal: Principal, company_id: str | None
) -> list[RelatedParty]:
    company = company_for_write(session, principal, company_id)
    return repository.related_parties(session, principal, company.id)
