"""Financing: quotes, advances, disbursement, repayment, extension, accrual.

Money moves in two steps so that a crash can never pay twice or lose track of a payment:
the advance is committed first (``accept``), then the rail is called with idempotency
keys derived from the advance's id, and what the rail answered is recorded (``disburse``).
If the process dies in between, ``recover_disbursements`` (a sweep) or the provider's
webhook finishes the job with the same keys. Services flush; the caller commits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import structlog
from sqlalchemy import (
    BindParameter,
    Insert,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.clock import Clock
from escompte.concurrency import WROTE
from escompte.connectors.xml import XmlError
from escompte.db import driver
from escompte.eligibility import service as eligibility
from escompte.eligibility.facts import invoice_fingerprint
from escompte.errors import FieldError, FileRejected, Forbidden, NotFound, ValidationFailed, invariant
from escompte.financing import ledger, pricing, sepa, states
from escompte.financing.exceptions import (
    AlreadyFinanced,
    EligibilityChanged,
    ExtensionRefused,
    NotEligible,
    NothingToPay,
    PaymentRefused,
    PaymentSetupRequired,
    PaymentsUnavailable,
    QuoteAlreadyAccepted,
    QuoteExpired,
    RepaymentInProgress,
)
from escompte.financing.ledger import credit, debit
from escompte.financing.rails import RailRefused, RailUnavailable, Result, StripeRail
from escompte.ids import new_id
from escompte.models import (
    Advance,
    AdvanceKind,
    AdvanceStatus,
    Company,
    Debtor,
    EligibilityDecision,
    Event,
    FinancedFingerprint,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    OperationKind,
    OperationStatus,
    PaymentFile,
    PaymentOperation,
    PaymentProfile,
    PricingGrid,
    Quote,
    Repayment,
    RepaymentSource,
    RepaymentStatus,
)
from escompte.settings import Settings

log = structlog.get_logger("escompte.financing")
S = AdvanceStatus
DISBURSED = (S.ACTIVE, S.OVERDUE, S.IN_COLLECTIONS, S.DEFAULTED)
SEPA_REFUND_RIGHT = timedelta(weeks=8)
DEBIT_RETRY_DAYS = 3


# --- pricing grid --------------------------------------------------------------------------


def current_grid(session: Session, clock: Clock) -> PricingGrid:
    """The grid in force; stores the defaults as version 1 if there is none at all."""
    query = select(PricingGrid).order_by(PricingGrid.version.desc()).limit(1)
    grid = session.execute(query).scalar_one_or_none()
    if grid is None:
        session.execute(
            pg_insert(PricingGrid)
            .values(
                version=1,
                settings=pricing.stored(pricing.GridSettings()),
                note="defaults",
                created_at=clock.now(),
            )
            .on_conflict_do_nothing()
        )
        grid = session.execute(query).scalar_one()
    return grid


def grid_settings(grid: PricingGrid) -> pricing.GridSettings:
    return pricing.GridSettings.model_validate(grid.settings)


# A grid version never changes once written: each process keeps the settings it parsed,
# by version and the digest of the stored settings (a version number reused after a
# rollback is not mistaken for the one it replaced).
_grids: dict[tuple[int, str], pricing.GridSettings] = {}
_grids_lock = threading.Lock()
_LATEST_GRID = "SELECT version, md5(settings::text) FROM pricing_grids ORDER BY version DESC LIMIT 1"


def current_grid_settings(session: Session, clock: Clock) -> tuple[int, pricing.GridSettings]:
    """The version in force and its settings, parsed once per process: a quote reads one
    row's version and digest."""
    with driver(session).cursor() as cur:
        cur.execute(_LATEST_GRID, prepare=True)
        latest = cur.fetchone()
    if latest is not None:
        cached = _grids.get((latest[0], latest[1]))
        if cached is not None:
            return latest[0], cached
    grid = current_grid(session, clock)
    settings = grid_settings(grid)
    if latest is not None and latest[0] == grid.version:
        with _grids_lock:
            if len(_grids) > 1_000:
                _grids.clear()
            _grids[(latest[0], latest[1])] = settings
    return grid.version, settings


def create_grid(
    session: Session, clock: Clock, principal: Principal, settings: dict[str, Any], note: str | None
) -> PricingGrid:
    if not principal.is_admin:
        raise Forbidden("Only an admin key changes the pricing grid.")
    from pydantic import ValidationError

    try:
        parsed = pricing.GridSettings.model_validate(settings)
    except ValidationError as exc:
        raise ValidationFailed(
            "The pricing grid is not valid.",
            [
                FieldError(".".join(["settings", *(str(p) for p in e["loc"])]), e["msg"], code=e["type"])
                for e in exc.errors()[:20]
            ],
        ) from None
    current = current_grid(session, clock)
    grid = PricingGrid(
        version=current.version + 1,
        settings=pricing.stored(parsed),
        note=note,
        created_at=clock.now(),
        created_by_key_id=principal.key_id,
    )
    session.add(grid)
    session.flush()
    return grid


# --- reading, with tenancy ------------------------------------------------------------------


def _visible(principal: Principal, model: Any) -> Any:
    return visible_company_ids(principal, model.company_id)


def get_quote(session: Session, principal: Principal, quote_id: str, *, lock: bool = False) -> Quote:
    query = select(Quote).where(Quote.id == quote_id, _visible(principal, Quote))
    if lock:
        query = query.with_for_update()
    quote = session.execute(query).scalar_one_or_none()
    if quote is None:
        raise NotFound(f"No such quote: {quote_id}")
    return quote


def get_advance(session: Session, principal: Principal, advance_id: str, *, lock: bool = False) -> Advance:
    query = select(Advance).where(Advance.id == advance_id, _visible(principal, Advance))
    if lock:
        query = query.with_for_update()
    advance = session.execute(query).scalar_one_or_none()
    if advance is None:
        raise NotFound(f"No such advance: {advance_id}")
    return advance


def list_advances(
    session: Session,
    principal: Principal,
    *,
    limit: int,
    starting_after: str | None,
    company_id: str | None = None,
    status: AdvanceStatus | None = None,
) -> tuple[list[Advance], bool]:
    query = select(Advance).where(_visible(principal, Advance)).order_by(Advance.id).limit(limit + 1)
    if starting_after:
        query = query.where(Advance.id > starting_after)
    if company_id:
        query = query.where(Advance.company_id == company_id)
    if status:
        query = query.where(Advance.status == status)
    rows = list(session.execute(query).scalars())
    return rows[:limit], len(rows) > limit


# --- quotes -----------------------------------------------------------------------------------


def _decision(session: Session, clock: Clock, principal: Principal, invoice_id: str) -> EligibilityDecision:
    # A decision alone commits without waiting for the disk (derived data, made again
    # after a crash). A quote or an advance must last: this transaction's commit reaches
    # the disk before the client (or Stripe) hears of it.
    decided = eligibility.decide(session, clock, principal, invoice_id, durable=True)
    return decided.decision or eligibility.get_decision(session, principal, decided.decision_id)


def _refusal_extra(decision: EligibilityDecision) -> dict[str, Any]:
    return {
        "decision": decision.id,
        "failed_checks": list(decision.failed_checks),
        "max_amount": decision.max_amount_cents,
        "max_duration_days": decision.max_duration_days,
    }


def create_quote(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    invoice_id: str,
    amount_cents: int | None,
    duration_days: int,
) -> Quote:
    decision = _decision(session, clock, principal, invoice_id)  # 404 for another tenant's invoice
    if not decision.eligible:
        raise NotEligible(
            f"Invoice {invoice_id} cannot be financed: {', '.join(decision.failed_checks)} "
            f"(decision {decision.id} explains why and what would change it).",
            extra=_refusal_extra(decision),
        )
    amount = decision.max_amount_cents if amount_cents is None else amount_cents
    errors = []
    if amount > decision.max_amount_cents:
        errors.append(
            FieldError(
                "amount", f"above the eligible maximum of {decision.max_amount_cents} cents", code="too_high"
            )
        )
    if not decision.min_duration_days <= duration_days <= decision.max_duration_days:
        errors.append(
            FieldError(
                "duration_days",
                f"must be between {decision.min_duration_days} and {decision.max_duration_days} days "
                "for this invoice (due date and policy)",
                code="out_of_range",
            )
        )
    if errors:
        raise ValidationFailed("The quote asks for more than the eligibility decision allows.", errors)
    grid_version, settings = current_grid_settings(session, clock)
    price = pricing.price(settings, decision.risk_grade, amount, duration_days, clock.today())
    now = clock.now()
    values = {
        "id": new_id("qte"),
        "company_id": decision.company_id,
        "invoice_id": invoice_id,
        "decision_id": decision.id,
        "grid_version": grid_version,
        "risk_grade": decision.risk_grade,
        "amount_cents": amount,
        "currency": decision.currency,
        "duration_days": duration_days,
        "daily_rate": price.daily_rate,
        "late_daily_rate": price.late_daily_rate,
        "min_days": price.min_days,
        "fee_cents": price.fee_cents,
        "start_date": price.start_date,
        "maturity_date": price.maturity_date,
        "expires_at": now + timedelta(minutes=settings.quote_ttl_minutes),
        "created_at": now,
        "created_by_key_id": principal.key_id,
    }
    # a statement built once rather than a unit of work's flush for one new row
    session.execute(_quote_statement(tuple(values)), values)
    session.info[WROTE] = True  # the commit waits for the disk (escompte.concurrency)
    return Quote(**values)


@cache
def _quote_statement(columns: tuple[str, ...]) -> Insert:
    quotes = _table(Quote)
    return insert(quotes).values(_values(quotes, "", columns))


# --- payment profile --------------------------------------------------------------------------


def _company(session: Session, principal: Principal, company_id: str) -> Company:
    company = session.execute(
        select(Company).where(Company.id == company_id, visible_company_ids(principal, Company.id))
    ).scalar_one_or_none()
    if company is None:
        raise NotFound(f"No such company: {company_id}")
    return company


def get_profile(session: Session, principal: Principal, company_id: str) -> PaymentProfile:
    _company(session, principal, company_id)
    profile = session.get(PaymentProfile, company_id)
    if profile is None:
        raise NotFound(f"Company {company_id} has no payment profile yet.")
    return profile


def set_up_payments(
    session: Session,
    clock: Clock,
    rail: StripeRail,
    principal: Principal,
    company_id: str,
    *,
    iban: str,
    holder: str | None,
    ip_address: str,
    user_agent: str,
) -> PaymentProfile:
    """Create the SME's receiving account (payouts to ``iban``) and its SEPA mandate."""
    company = _company(session, principal, company_id)
    now = clock.now()
    try:
        result = rail.create_profile(
            company_id=company.id,
            legal_name=company.legal_name,
            email=company.contact_email,
            iban=iban,
            holder=holder or company.legal_name,
            mandate_ip=ip_address,
            mandate_user_agent=user_agent,
            accepted_at=now,
        )
    except RailUnavailable as exc:
        raise PaymentsUnavailable(f"The payment provider did not answer ({exc.code}); try again.") from None
    except RailRefused as exc:
        raise PaymentRefused(
            f"The payment provider refused: {exc.message}", extra={"provider_code": exc.code}
        ) from None
    profile = session.get(PaymentProfile, company.id)
    if profile is None:
        profile = PaymentProfile(company_id=company.id, created_at=now)
        session.add(profile)
    profile.stripe_account_id = result.account_id
    profile.stripe_bank_account_id = result.bank_account_id
    profile.payout_iban_last4 = result.iban_last4
    profile.stripe_customer_id = result.customer_id
    profile.stripe_payment_method_id = result.payment_method_id
    profile.stripe_mandate_id = result.mandate_id
    profile.mandate_status = result.mandate_status
    profile.mandate_accepted_at = now
    profile.updated_at = now
    session.flush()
    return profile


# --- accepting ----------------------------------------------------------------------------


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def _values(table: Table, prefix: str, names: tuple[str, ...]) -> dict[str, BindParameter[Any]]:
    return {name: bindparam(prefix + name, type_=table.c[name].type) for name in names}


@cache
def _accept_statement(advance: tuple[str, ...], financed: tuple[str, ...], event: tuple[str, ...]) -> Update:
    """Built once: the accepted advance, its financed fingerprint and its event (these
    columns of each, parameters prefixed a_, f_ and e_), and the quote marked accepted."""
    quotes = _table(Quote)
    return (
        update(quotes)
        .where(quotes.c.id == bindparam("quote_id"))
        .values(accepted_at=bindparam("q_accepted_at", type_=quotes.c.accepted_at.type))
        .add_cte(insert(_table(Advance)).values(_values(_table(Advance), "a_", advance)).cte("new_advance"))
        .add_cte(
            insert(_table(FinancedFingerprint))
            .values(_values(_table(FinancedFingerprint), "f_", financed))
            .cte("new_fingerprint")
        )
        .add_cte(insert(_table(Event)).values(_values(_table(Event), "e_", event)).cte("accepted_event"))
    )


def _to_accept(principal: Principal, quote_id: str) -> Select[Any]:
    """The quote (locked), what the advance needs of its invoice and debtor, and the
    company's payment set-up: one round trip, plain rows."""
    q, i, d, p = _table(Quote), _table(Invoice), _table(Debtor), _table(PaymentProfile)
    return (
        select(
            *q.c,
            i.c.kind,
            i.c.number,
            i.c.amount_cents.label("invoice_amount_cents"),
            i.c.issue_date,
            i.c.payment_iban,
            d.c.siren,
            d.c.legal_name,
            p.c.mandate_status,
            p.c.stripe_payment_method_id,
        )
        .join(i, i.c.id == q.c.invoice_id)
        .join(d, d.c.id == i.c.debtor_id)
        .outerjoin(p, p.c.company_id == q.c.company_id)
        .where(q.c.id == quote_id, visible_company_ids(principal, q.c.company_id))
        .with_for_update(of=q)
    )


def accept(
    session: Session, clock: Clock, principal: Principal, quote_id: str, *, supplier_iban: str | None = None
) -> str:
    """Re-check eligibility and limits and create the advance (status accepted); returns
    its id. The caller commits before money moves (``disburse``), and rolls back on a
    refusal. A supplier's invoice (payables) is paid to ``supplier_iban``, or to the IBAN
    its e-invoice gave."""
    quote = session.execute(_to_accept(principal, quote_id)).one_or_none()
    if quote is None:
        raise NotFound(f"No such quote: {quote_id}")
    now = clock.now()
    if quote.accepted_at is not None:
        existing = session.execute(select(Advance.id).where(Advance.quote_id == quote.id)).scalar()
        raise QuoteAlreadyAccepted(
            f"Quote {quote.id} was already accepted (advance {existing}).", extra={"advance": existing}
        )
    if quote.expires_at <= now:
        raise QuoteExpired(
            f"Quote {quote.id} expired at {quote.expires_at.isoformat()}; ask for a new one.",
            extra={"expired_at": quote.expires_at.isoformat()},
        )
    if quote.mandate_status != "active" or quote.stripe_payment_method_id is None:
        raise PaymentSetupRequired(
            f"Company {quote.company_id} has no payout account and active SEPA mandate yet: "
            f"POST /v1/companies/{quote.company_id}/payment-profile first."
        )
    decision = _decision(session, clock, principal, quote.invoice_id)
    reasons = _changed(quote, decision)
    if reasons:
        if "not_already_financed" in decision.failed_checks:
            raise AlreadyFinanced(
                f"Invoice {quote.invoice_id} is already financed.", extra=_refusal_extra(decision)
            )
        raise EligibilityChanged(
            f"Quote {quote.id} no longer holds: {'; '.join(reasons)}. Ask for a new quote.",
            extra={**_refusal_extra(decision), "reasons": reasons},
        )
    invariant(quote.siren is not None, "an eligible invoice has a debtor SIREN")
    payee_iban = None
    if quote.kind is InvoiceKind.PAYABLE:
        payee_iban = supplier_iban or quote.payment_iban
        if payee_iban is None:
            raise ValidationFailed(
                "Where should the supplier be paid? Its invoice carries no IBAN.",
                [
                    FieldError(
                        "supplier_iban", "required for a supplier's invoice without IBAN", code="missing"
                    )
                ],
            )
    fingerprint = invoice_fingerprint(
        str(quote.siren), quote.number, quote.invoice_amount_cents, quote.issue_date
    )
    advance_id = new_id("adv")
    advance = {
        "id": advance_id,
        "company_id": quote.company_id,
        "invoice_id": quote.invoice_id,
        "quote_id": quote.id,
        "kind": AdvanceKind.PAYABLE if quote.kind is InvoiceKind.PAYABLE else AdvanceKind.RECEIVABLE,
        "status": S.ACCEPTED,
        "principal_cents": quote.amount_cents,
        "currency": quote.currency,
        "risk_grade": quote.risk_grade,
        "grid_version": quote.grid_version,
        "daily_rate": quote.daily_rate,
        "late_daily_rate": quote.late_daily_rate,
        "min_days": quote.min_days,
        "duration_days": quote.duration_days,
        "start_date": clock.today(),
        "maturity_date": clock.today() + timedelta(days=quote.duration_days),
        "fingerprint": fingerprint,
        "payee_name": quote.legal_name[:140] if payee_iban else None,
        "payee_iban": payee_iban,
        "created_at": now,
        "updated_at": now,
        "created_by_key_id": principal.key_id,
    }
    financed = {
        "fingerprint": fingerprint,
        "company_id": quote.company_id,
        "invoice_id": quote.invoice_id,
        "advance_id": advance_id,
        "debtor_siren": quote.siren,
        "outstanding_cents": quote.amount_cents,
        "currency": quote.currency,
        "financed_at": now,
        "updated_at": now,
    }
    accepted = states.event_row(
        "advance.accepted",
        quote.company_id,
        advance_id,
        now,
        {"quote": quote.id, "decision": decision.id, "principal": quote.amount_cents},
    )
    # One statement writes the advance, its financed fingerprint and its event and marks
    # the quote accepted (a unit-of-work flush of the same rows cost three times as much).
    params = {"quote_id": quote.id, "q_accepted_at": now}
    for prefix, row in (("a_", advance), ("f_", financed), ("e_", accepted)):
        params.update({prefix + name: value for name, value in row.items()})
    invoice_id = quote.invoice_id  # for the refusal: a failed statement spoils the session
    try:
        # the two unique indexes (one live advance per invoice, one live fingerprint
        # platform-wide) refuse the loser of a race; its transaction is then spoiled and
        # rolled back with the refusal (no savepoint: two statements less per acceptance)
        session.execute(_accept_statement(tuple(advance), tuple(financed), tuple(accepted)), params)
    except IntegrityError:
        raise AlreadyFinanced(
            f"Invoice {invoice_id} is already financed (a concurrent acceptance won)."
        ) from None
    return advance_id


def _changed(quote: Row[Any], decision: EligibilityDecision) -> list[str]:
    reasons = []
    if not decision.eligible:
        reasons.append("the invoice is no longer eligible (" + ", ".join(decision.failed_checks) + ")")
    else:
        if decision.max_amount_cents < quote.amount_cents:
            reasons.append(
                f"the eligible amount is now {decision.max_amount_cents} cents, "
                f"below the quoted {quote.amount_cents}"
            )
        if decision.max_duration_days < quote.duration_days:
            reasons.append(
                f"the longest duration is now {decision.max_duration_days} days, "
                f"below the quoted {quote.duration_days}"
            )
        if decision.risk_grade != quote.risk_grade:
            reasons.append(
                f"the risk grade moved from {quote.risk_grade} to {decision.risk_grade}, so the price changed"
            )
    return reasons


# --- disbursing ---------------------------------------------------------------------------------


def _operation(
    session: Session,
    advance: Advance,
    kind: OperationKind,
    key: str,
    amount: int,
    now: datetime,
    account: str | None,
    rail: str = "stripe",
    known: dict[str, PaymentOperation] | None = None,
) -> PaymentOperation:
    """The operation with this idempotency key, created (pending) if new. ``known``: the
    advance's operations already read, by key (saves a query per operation)."""
    if known is not None:
        op = known.get(key)
    else:
        op = session.execute(
            select(PaymentOperation).where(PaymentOperation.idempotency_key == key)
        ).scalar_one_or_none()
    if op is None:
        op = PaymentOperation(
            id=new_id("pop"),
            advance_id=advance.id,
            company_id=advance.company_id,
            rail=rail,
            kind=kind,
            status=OperationStatus.PENDING,
            amount_cents=amount,
            currency=advance.currency,
            idempotency_key=key,
            external_account=account,
            created_at=now,
            updated_at=now,
        )
        session.add(op)
        if known is None:
            session.flush()  # rows that point at it (repayments) may follow in the next flush
        else:
            known[key] = op  # nothing points at it: written with the next flush
    return op


def _lock(session: Session, advance_id: str) -> Advance:
    advance = session.execute(select(Advance).where(Advance.id == advance_id).with_for_update()).scalar_one()
    return advance


def disburse(session: Session, clock: Clock, rail: StripeRail, advance_id: str) -> Advance:
    """Move the money of an accepted advance: transfer to the SME's account, then payout
    to its IBAN. Safe to call again at any point (same idempotency keys)."""
    # the SME's Stripe account and the advance's operations in the same round trip
    rows = session.execute(
        select(Advance, PaymentProfile.stripe_account_id, PaymentOperation)
        .outerjoin(PaymentProfile, PaymentProfile.company_id == Advance.company_id)
        .outerjoin(PaymentOperation, PaymentOperation.advance_id == Advance.id)
        .where(Advance.id == advance_id)
        .with_for_update(of=Advance)
    ).all()
    invariant(bool(rows), f"advance {advance_id} exists")
    advance, account = rows[0][0], rows[0][1]
    if advance.status not in (S.ACCEPTED, S.DISBURSING):
        return advance
    if advance.kind is AdvanceKind.PAYABLE:
        _order_credit_transfer(session, clock, advance)
        return advance
    invariant(account is not None, "an accepted advance has a payment profile")
    now, today = clock.now(), clock.today()
    metadata = {"advance": advance.id, "company": advance.company_id, "invoice": advance.invoice_id}
    known = {op.idempotency_key: op for _, _, op in rows if op is not None}
    transfer = _operation(
        session,
        advance,
        OperationKind.TRANSFER,
        f"escompte:transfer:{advance.id}",
        advance.principal_cents,
        now,
        account,
        known=known,
    )
    if transfer.status is OperationStatus.PENDING:
        try:
            result = rail.transfer(
                amount_cents=advance.principal_cents,
                destination=account,
                key=transfer.idempotency_key,
                metadata=metadata,
            )
        except RailUnavailable as exc:
            log.warning("disbursement_deferred", advance=advance.id, step="transfer", code=exc.code)
            return advance
        except RailRefused as exc:
            _op_failed(transfer, exc.code, exc.message, now)
            _disbursement_failed(session, clock, advance, exc.code, exc.message)
            return advance
        transfer.external_id = result.id
        transfer.status = OperationStatus.SUCCEEDED
        transfer.updated_at = now
        with session.no_autoflush:  # the operations are written together, at the end
            ledger.post(
                session,
                kind="disbursement",
                memo=f"Advance {advance.id}: transfer to the SME's account",
                lines=[
                    debit("principal_receivable", advance.principal_cents, advance.company_id),
                    credit("cash_stripe", advance.principal_cents),
                ],
                on=today,
                now=now,
                advance_id=advance.id,
                company_id=advance.company_id,
                external_ref=result.id,
            )
    payout = _operation(
        session,
        advance,
        OperationKind.PAYOUT,
        f"escompte:payout:{advance.id}",
        advance.principal_cents,
        now,
        account,
        known=known,
    )
    if payout.status is OperationStatus.PENDING:
        try:
            result = rail.payout(
                amount_cents=advance.principal_cents,
                account=account,
                key=payout.idempotency_key,
                metadata=metadata,
            )
        except RailUnavailable as exc:
            log.warning("disbursement_deferred", advance=advance.id, step="payout", code=exc.code)
            if advance.status is S.ACCEPTED:
                states.transition(session, advance, S.DISBURSING, now, reason="transfer made, payout pending")
            return advance
        except RailRefused as exc:
            _op_failed(payout, exc.code, exc.message, now)
            _undo_transfer(session, clock, rail, advance, exc.code, exc.message)
            return advance
        _record_payout(session, clock, advance, payout, result)
    session.flush()
    return advance


# --- supplier advances: SEPA credit transfers from the platform's bank account ------------


def _order_credit_transfer(session: Session, clock: Clock, advance: Advance) -> None:
    """Queue the transfer to the supplier; it leaves with the next payment file."""
    now = clock.now()
    op = _operation(
        session,
        advance,
        OperationKind.CREDIT_TRANSFER,
        f"escompte:sct:{advance.id}",
        advance.principal_cents,
        now,
        advance.payee_iban,
        rail="sepa_file",
    )
    if advance.status is S.ACCEPTED:
        states.transition(
            session, advance, S.DISBURSING, now, reason="credit transfer ordered", data={"operation": op.id}
        )
    session.flush()


def create_payment_file(
    session: Session, clock: Clock, settings: Settings, principal: Principal
) -> PaymentFile:
    """Gather every ordered supplier transfer into one pain.001 file for the bank."""
    if not principal.is_admin:
        raise Forbidden("Only the back-office issues payment files.")
    if not settings.platform_iban:
        raise PaymentsUnavailable("ESCOMPTE_PLATFORM_IBAN is not set: no account to pay suppliers from.")
    rows = session.execute(
        select(PaymentOperation, Advance, Invoice.number)
        .join(Advance, Advance.id == PaymentOperation.advance_id)
        .join(Invoice, Invoice.id == Advance.invoice_id)
        .where(
            PaymentOperation.kind == OperationKind.CREDIT_TRANSFER,
            PaymentOperation.status == OperationStatus.PENDING,
            PaymentOperation.file_id.is_(None),
        )
        .order_by(PaymentOperation.id)
        .limit(5000)
        .with_for_update(of=PaymentOperation, skip_locked=True)
    ).all()
    if not rows:
        raise NothingToPay("No supplier transfer is waiting for a payment file.")
    today = clock.today()
    execution = today if today.weekday() < 5 else _add_business_days(today, 1)
    orders = [
        sepa.Order(
            op.id, adv.payee_name or "Supplier", adv.payee_iban or "", op.amount_cents, f"Facture {number}"
        )
        for op, adv, number in rows
    ]
    content = sepa.credit_transfer_file(
        orders,
        name=settings.platform_name,
        iban=settings.platform_iban,
        bic=settings.platform_bic,
        execution_date=execution,
    )
    now = clock.now()
    file = PaymentFile(
        id=new_id("pmf"),
        format=sepa.FORMAT,
        content=content,
        transactions=len(rows),
        total_cents=sum(op.amount_cents for op, _, _ in rows),
        execution_date=execution,
        created_at=now,
        created_by_key_id=principal.key_id,
    )
    session.add(file)
    session.flush()
    for op, _, _ in rows:
        op.file_id = file.id
        op.status = OperationStatus.PROCESSING
        op.expected_on = execution
        op.updated_at = now
    session.flush()
    return file


@dataclass
class StatementResult:
    confirmed: list[str]
    returned: list[str]
    unknown: list[str]
    mismatched: list[str]


def apply_bank_statement(
    session: Session, clock: Clock, principal: Principal, content: bytes
) -> StatementResult:
    """The platform account's camt.053: a booked debit with one of our end-to-end ids
    confirms a supplier transfer (the advance starts); a credit with it is a return."""
    if not principal.is_admin:
        raise Forbidden("Only the back-office imports the platform's bank statements.")
    try:
        lines = sepa.statement_lines(content)
    except XmlError as exc:
        raise FileRejected(
            f"The statement was refused: {exc.message}",
            [FieldError("file", exc.message, code="invalid", line=exc.line)],
        ) from None
    result = StatementResult([], [], [], [])
    now = clock.now()
    for line in lines:
        op_id = sepa.operation_id(line.end_to_end_id)
        op = session.get(PaymentOperation, op_id, with_for_update=True) if op_id else None
        if op is None or op.kind is not OperationKind.CREDIT_TRANSFER or not line.booked:
            result.unknown.append(line.end_to_end_id)
            continue
        advance = _lock(session, op.advance_id)
        if line.amount_cents != op.amount_cents:
            result.mismatched.append(op.id)
            continue
        if line.debit and op.status in (OperationStatus.PENDING, OperationStatus.PROCESSING):
            op.status, op.updated_at = OperationStatus.SUCCEEDED, now
            ledger.post(
                session,
                kind="disbursement",
                memo=f"Advance {advance.id}: credit transfer to the supplier {advance.payee_name}",
                lines=[
                    debit("principal_receivable", advance.principal_cents, advance.company_id),
                    credit("cash_bank", advance.principal_cents),
                ],
                on=line.booking_date or clock.today(),
                now=now,
                advance_id=advance.id,
                company_id=advance.company_id,
                external_ref=op.id,
            )
            _money_delivered(session, clock, advance, op)
            result.confirmed.append(op.id)
        elif not line.debit and advance.status is S.DISBURSING:
            # returned by the supplier's bank (closed account, wrong IBAN) before we saw it leave
            _op_failed(op, "returned", "the supplier's bank returned the transfer", now)
            _disbursement_failed(
                session, clock, advance, "returned", "the supplier's bank returned the transfer"
            )
            result.returned.append(op.id)
        elif not line.debit and op.status is OperationStatus.SUCCEEDED:
            log.error("credit_transfer_returned_after_start", advance=advance.id, operation=op.id)
            result.mismatched.append(op.id)
    session.flush()
    return result


def _op_failed(op: PaymentOperation, code: str, message: str, now: datetime) -> None:
    op.status = OperationStatus.FAILED
    op.failure_code = code[:60]
    op.failure_message = message[:500]
    op.updated_at = now


def _record_payout(
    session: Session, clock: Clock, advance: Advance, op: PaymentOperation, result: Result
) -> None:
    now = clock.now()
    op.external_id = result.id
    op.expected_on = result.arrival_date
    op.updated_at = now
    if op.status is OperationStatus.PENDING:
        op.status = OperationStatus.PROCESSING
    if advance.status is S.ACCEPTED:
        states.transition(
            session, advance, S.DISBURSING, now, reason="payout sent", data={"payout": result.id}
        )
    if result.status == "paid":
        _money_delivered(session, clock, advance, op)
    elif result.status in ("failed", "canceled"):
        raise_later = (result.failure_code or result.status, result.failure_message or "payout failed")
        _op_failed(op, *raise_later, now)


def _money_delivered(session: Session, clock: Clock, advance: Advance, op: PaymentOperation) -> None:
    """The payout reached the SME's IBAN (or the credit transfer left for the supplier):
    the advance starts, and so do its fees."""
    now, today = clock.now(), clock.today()
    op.status = OperationStatus.SUCCEEDED
    op.updated_at = now
    if advance.status is not S.DISBURSING:
        return
    advance.start_date = today
    advance.maturity_date = today + timedelta(days=advance.duration_days)
    advance.disbursed_at = now
    advance.accrued_through = today
    states.transition(
        session,
        advance,
        S.ACTIVE,
        now,
        reason="payout paid",
        data={"payout": op.external_id, "maturity_date": advance.maturity_date.isoformat()},
    )


def _undo_transfer(
    session: Session, clock: Clock, rail: StripeRail, advance: Advance, code: str, message: str
) -> None:
    """The payout failed: take the money back from the SME's account, reverse the
    disbursement's postings and fail the advance."""
    now = clock.now()
    transfer = session.execute(
        select(PaymentOperation).where(
            PaymentOperation.advance_id == advance.id, PaymentOperation.kind == OperationKind.TRANSFER
        )
    ).scalar_one()
    reversal = _operation(
        session,
        advance,
        OperationKind.TRANSFER_REVERSAL,
        f"escompte:reversal:{advance.id}",
        advance.principal_cents,
        now,
        transfer.external_account,
    )
    if reversal.status is OperationStatus.PENDING and transfer.external_id:
        try:
            result = rail.reverse_transfer(
                transfer_id=transfer.external_id,
                amount_cents=advance.principal_cents,
                key=reversal.idempotency_key,
            )
        except RailUnavailable:
            log.warning("transfer_reversal_deferred", advance=advance.id)
            return  # the webhook's retry or the recovery sweep will try again
        except RailRefused as exc:
            # the money stays on the SME's account: the advance stays disbursing, for the
            # back-office (its postings still say the SME holds the principal)
            _op_failed(reversal, exc.code, exc.message, now)
            advance.failure_code = f"reversal_{exc.code}"[:60]
            advance.failure_message = f"payout failed ({code}); transfer reversal refused: {exc.message}"[
                :500
            ]
            log.error("transfer_reversal_refused", advance=advance.id, code=exc.code)
            return
        else:
            reversal.external_id = result.id
            reversal.status = OperationStatus.SUCCEEDED
            reversal.updated_at = now
    disbursement = (
        ledger.find(session, "disbursement", transfer.external_id) if transfer.external_id else None
    )
    if (
        disbursement is not None
        and reversal.external_id
        and not ledger.find(session, "disbursement_reversal", reversal.external_id)
    ):
        ledger.reverse(
            session,
            disbursement,
            kind="disbursement_reversal",
            memo=f"Advance {advance.id}: payout failed ({code}), transfer reversed",
            on=clock.today(),
            now=now,
            external_ref=reversal.external_id,
        )
    _disbursement_failed(session, clock, advance, code, message)


def _disbursement_failed(session: Session, clock: Clock, advance: Advance, code: str, message: str) -> None:
    now = clock.now()
    advance.failure_code = code[:60]
    advance.failure_message = message[:500]
    if advance.status in (S.ACCEPTED, S.DISBURSING):
        states.transition(
            session, advance, S.DISBURSEMENT_FAILED, now, reason="disbursement failed", data={"code": code}
        )
    _release(session, advance, now)


def _fingerprint(session: Session, advance: Advance, now: datetime, **values: Any) -> None:
    """Update the advance's live financed fingerprint (what exposure limits count)."""
    session.execute(
        update(FinancedFingerprint)
        .where(FinancedFingerprint.advance_id == advance.id, FinancedFingerprint.released_at.is_(None))
        .values(updated_at=now, **values)
    )


def _release(session: Session, advance: Advance, now: datetime) -> None:
    _fingerprint(session, advance, now, released_at=now, outstanding_cents=0)


def payout_update(
    session: Session, clock: Clock, rail: StripeRail, advance_id: str, payout_id: str, account: str
) -> str:
    """A payout changed (webhook): re-read it and apply its current state."""
    advance = _lock(session, advance_id)
    result = rail.retrieve_payout(payout_id, account)
    now = clock.now()
    op = _operation(
        session,
        advance,
        OperationKind.PAYOUT,
        f"escompte:payout:{advance.id}",
        advance.principal_cents,
        now,
        account,
    )
    if op.external_id is None:
        # the process died after Stripe created the payout and before we recorded it
        transfer = session.execute(
            select(PaymentOperation).where(
                PaymentOperation.advance_id == advance.id, PaymentOperation.kind == OperationKind.TRANSFER
            )
        ).scalar_one_or_none()
        if transfer is not None and transfer.status is OperationStatus.PENDING:
            disburse(session, clock, rail, advance.id)  # records the transfer (same key: no new money)
            session.refresh(advance)
            session.refresh(op)
        if op.external_id is None:
            _record_payout(session, clock, advance, op, Result(result.id, "pending", result.arrival_date))
    if result.status == "paid":
        _money_delivered(session, clock, advance, op)
        return "handled: payout paid"
    if result.status in ("failed", "canceled"):
        if advance.status not in (S.ACCEPTED, S.DISBURSING):
            log.error("payout_failed_after_disbursed", advance=advance.id, payout=payout_id)
            return "ignored: payout failed after the advance was disbursed (back-office)"
        _op_failed(op, result.failure_code or result.status, result.failure_message or "payout failed", now)
        _undo_transfer(
            session, clock, rail, advance, op.failure_code or "payout_failed", op.failure_message or ""
        )
        return "handled: payout failed"
    return f"handled: payout {result.status}"


def recover_disbursements(session: Session, clock: Clock, rail: StripeRail, older_than: timedelta) -> int:
    """Finish disbursements a crash or an unavailable provider left half done: accepted
    advances, and card-rail advances whose payout was never recorded (a payout sent and
    in flight is the webhook's business, not this sweep's)."""
    before = clock.now() - older_than
    payout_recorded = exists().where(
        PaymentOperation.advance_id == Advance.id,
        PaymentOperation.kind == OperationKind.PAYOUT,
        PaymentOperation.external_id.is_not(None),
    )
    ids = (
        session.execute(
            select(Advance.id)
            .where(
                Advance.updated_at < before,
                or_(
                    Advance.status == S.ACCEPTED,
                    and_(
                        Advance.status == S.DISBURSING,
                        Advance.kind == AdvanceKind.RECEIVABLE,
                        ~payout_recorded,
                    ),
                ),
            )
            .order_by(Advance.id)
            .limit(500)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    for advance_id in ids:
        disburse(session, clock, rail, advance_id)
    return len(ids)


# --- what is owed -------------------------------------------------------------------------------


def _terms(advance: Advance) -> pricing.Terms:
    return pricing.Terms(
        principal_cents=advance.principal_cents,
        daily_rate=advance.daily_rate,
        late_daily_rate=advance.late_daily_rate,
        min_days=advance.min_days,
        start_date=advance.start_date,
        maturity_date=advance.maturity_date,
    )


def principal_repaid(session: Session, advance_id: str) -> dict[date, int]:
    rows = session.execute(
        select(Repayment.value_date, func.sum(Repayment.principal_cents))
        .where(Repayment.advance_id == advance_id, Repayment.status == RepaymentStatus.SUCCEEDED)
        .group_by(Repayment.value_date)
    ).all()
    return {d: int(total) for d, total in rows}


def accrue(session: Session, clock: Clock, advance: Advance, *, final: bool = False) -> None:
    """Post fees and late interest earned up to today (or up to the day fees stopped),
    as the difference between what is due and what is already posted."""
    if advance.status not in DISBURSED and not (final and advance.status is S.REPAID):
        return
    through = clock.today()
    if advance.fees_stop_on is not None:
        # settling: fees run to the agreed day (a debit's target date may be ahead)
        through = advance.fees_stop_on if final else min(through, advance.fees_stop_on)
    fee, late = pricing.fees_due(_terms(advance), principal_repaid(session, advance.id), through, final=final)
    balances = ledger.advance_balances(session, advance.id)
    fee_delta = fee + balances.get("fee_income", 0)  # income is a credit: negative balance
    late_delta = late + balances.get("late_interest_income", 0)
    lines = []
    if fee_delta:
        lines += [debit("fees_receivable", fee_delta, advance.company_id), credit("fee_income", fee_delta)]
    if late_delta:
        lines += [
            debit("late_interest_receivable", late_delta, advance.company_id),
            credit("late_interest_income", late_delta),
        ]
    if lines:
        ledger.post(
            session,
            kind="accrual",
            memo=f"Advance {advance.id}: fees and late interest through {through.isoformat()}",
            lines=lines,
            on=through,
            now=clock.now(),
            advance_id=advance.id,
            company_id=advance.company_id,
        )
    advance.accrued_through = through


@dataclass(frozen=True, slots=True)
class Owed:
    principal_cents: int
    fees_cents: int
    late_interest_cents: int
    pending_cents: int  # being collected (debits in flight)

    @property
    def total_cents(self) -> int:
        return self.principal_cents + self.fees_cents + self.late_interest_cents

    @property
    def to_collect_cents(self) -> int:
        return max(0, self.total_cents - self.pending_cents)


def owed(session: Session, advance: Advance) -> Owed:
    balances = ledger.advance_balances(session, advance.id)
    pending = session.execute(
        select(func.coalesce(func.sum(Repayment.amount_cents), 0)).where(
            Repayment.advance_id == advance.id, Repayment.status == RepaymentStatus.PENDING
        )
    ).scalar_one()
    return Owed(
        principal_cents=balances.get("principal_receivable", 0),
        fees_cents=balances.get("fees_receivable", 0),
        late_interest_cents=balances.get("late_interest_receivable", 0),
        pending_cents=int(pending),
    )


# --- repaying -----------------------------------------------------------------------------------


def _add_business_days(day: date, n: int) -> date:
    step = 1 if n >= 0 else -1
    left = abs(n)
    while left:
        day += timedelta(days=step)
        if day.weekday() < 5:
            left -= 1
    return day


def debit_day(maturity: date) -> date:
    """The SME is debited two business days before maturity."""
    return _add_business_days(maturity, -2)


def initiate_debit(
    session: Session,
    clock: Clock,
    rail: StripeRail,
    advance: Advance,
    *,
    reason: str,
    amount_cents: int | None = None,
    source: RepaymentSource = RepaymentSource.SEPA_DEBIT,
    target_date: date | None = None,
    cap_cents: int,
) -> list[Repayment]:
    """Debit the SME's mandate for what it owes (or ``amount_cents`` of it), in debits of
    at most ``cap_cents`` each (Stripe's SEPA cap). Fees stop counting on the target date
    when everything owed is collected."""
    profile = session.get(PaymentProfile, advance.company_id)
    if profile is None or profile.stripe_mandate_id is None or profile.stripe_payment_method_id is None:
        raise PaymentSetupRequired(f"Company {advance.company_id} has no SEPA mandate.")
    now = clock.now()
    stop_on = target_date or clock.today()
    full = amount_cents is None
    if full:
        advance.fees_stop_on = stop_on
    accrue(session, clock, advance, final=full)
    o = owed(session, advance)
    wanted = o.to_collect_cents if full else min(amount_cents or 0, o.to_collect_cents)
    if wanted <= 0:
        raise RepaymentInProgress(
            f"Nothing left to collect on advance {advance.id}: "
            f"{o.pending_cents} cents are already being collected.",
            extra={"pending": o.pending_cents},
        )
    advance.debit_initiated_at = now
    advance.debit_retry_on = None
    seq = session.execute(select(func.count()).where(Repayment.advance_id == advance.id)).scalar_one()
    out = []
    left = wanted
    while left > 0:
        part = min(left, cap_cents)
        left -= part
        seq += 1
        op = _operation(
            session,
            advance,
            OperationKind.DEBIT,
            f"escompte:debit:{advance.id}:{seq}",
            part,
            now,
            profile.stripe_customer_id,
        )
        repayment = Repayment(
            id=new_id("rpy"),
            advance_id=advance.id,
            company_id=advance.company_id,
            source=source,
            status=RepaymentStatus.PENDING,
            amount_cents=part,
            currency=advance.currency,
            late_interest_cents=0,
            fee_cents=0,
            principal_cents=0,
            surplus_cents=0,
            operation_id=op.id,
            value_date=stop_on,
            created_at=now,
            updated_at=now,
        )
        session.add(repayment)
        session.flush()
        try:
            result = rail.debit(
                amount_cents=part,
                customer=profile.stripe_customer_id,
                payment_method=profile.stripe_payment_method_id,
                mandate=profile.stripe_mandate_id,
                key=op.idempotency_key,
                metadata={"advance": advance.id, "repayment": repayment.id, "operation": op.id},
                target_date=target_date,
            )
        except RailUnavailable as exc:
            log.warning("debit_deferred", advance=advance.id, code=exc.code)
            out.append(repayment)  # stays pending; retried by the sweep with the same key
            continue
        except RailRefused as exc:
            _op_failed(op, exc.code, exc.message, now)
            _repayment_failed(session, clock, advance, repayment, exc.code)
            out.append(repayment)
            continue
        op.external_id = result.id
        op.status = OperationStatus.PROCESSING
        op.updated_at = now
        out.append(repayment)
        if result.status == "succeeded":
            _repayment_succeeded(session, clock, advance, repayment, provider_ref=result.charge_id)
    states.record(
        session,
        "advance.repayment_initiated",
        advance,
        now,
        {
            "reason": reason,
            "amount": wanted,
            "debits": [r.id for r in out],
            "fees_stop_on": stop_on.isoformat(),
        },
    )
    session.flush()
    return out


def _repayment_succeeded(
    session: Session,
    clock: Clock,
    advance: Advance,
    repayment: Repayment,
    *,
    provider_ref: str | None = None,
    cash_account: str = "cash_stripe",
) -> None:
    """Allocate money received: late interest, then fees, then principal; the rest is
    owed back to the SME. Posts it, and closes the advance when nothing is left."""
    now, today = clock.now(), clock.today()
    accrue(session, clock, advance, final=advance.fees_stop_on is not None)
    o = owed(session, advance)
    left = repayment.amount_cents
    late = min(left, max(0, o.late_interest_cents))
    left -= late
    fee = min(left, max(0, o.fees_cents))
    left -= fee
    principal = min(left, max(0, o.principal_cents))
    left -= principal
    repayment.late_interest_cents, repayment.fee_cents = late, fee
    repayment.principal_cents, repayment.surplus_cents = principal, left
    repayment.status = RepaymentStatus.SUCCEEDED
    repayment.updated_at = now
    if repayment.source is RepaymentSource.SEPA_DEBIT or repayment.source is RepaymentSource.VOLUNTARY:
        repayment.reversible_until = today + SEPA_REFUND_RIGHT
    # the provider's object whose balance transaction moved the cash (the charge of a debit)
    ref = provider_ref or repayment.operation_id or repayment.id
    ledger.post(
        session,
        kind="repayment",
        memo=f"Advance {advance.id}: repayment {repayment.id}",
        lines=[
            debit(cash_account, repayment.amount_cents),
            credit("late_interest_receivable", late, advance.company_id),
            credit("fees_receivable", fee, advance.company_id),
            credit("principal_receivable", principal, advance.company_id),
            credit("payable_to_company", left, advance.company_id),
        ],
        on=today,
        now=now,
        advance_id=advance.id,
        company_id=advance.company_id,
        external_ref=ref,
    )
    session.flush()
    remaining = owed(session, advance)
    if principal:
        _fingerprint(session, advance, now, outstanding_cents=max(0, remaining.principal_cents))
    if remaining.total_cents <= 0 and remaining.pending_cents == 0 and advance.status in DISBURSED:
        advance.repaid_at = now
        if advance.status is S.DEFAULTED:
            _release_provision(session, clock, advance)
        states.transition(session, advance, S.REPAID, now, reason="repaid", data={"repayment": repayment.id})
        _release(session, advance, now)


def _repayment_failed(
    session: Session, clock: Clock, advance: Advance, repayment: Repayment, code: str
) -> None:
    now = clock.now()
    repayment.status = RepaymentStatus.FAILED
    repayment.failure_code = code[:60]
    repayment.updated_at = now
    # fees run again until the advance is actually repaid; the debit is presented again
    # after DEBIT_RETRY_DAYS (the collection case takes over the rest)
    advance.fees_stop_on = None
    advance.debit_initiated_at = None
    advance.debit_retry_on = clock.today() + timedelta(days=DEBIT_RETRY_DAYS)
    states.record(
        session, "advance.repayment_failed", advance, now, {"repayment": repayment.id, "code": code}
    )


def payment_update(
    session: Session, clock: Clock, rail: StripeRail, intent_id: str, metadata: dict[str, str]
) -> str:
    """A debit changed (webhook): re-read the PaymentIntent and apply its state."""
    op = session.execute(
        select(PaymentOperation).where(
            PaymentOperation.rail == "stripe", PaymentOperation.external_id == intent_id
        )
    ).scalar_one_or_none()
    if op is None and metadata.get("operation"):
        op = session.get(PaymentOperation, metadata["operation"])
    if op is None or op.kind is not OperationKind.DEBIT:
        return "ignored: unknown payment"
    advance = _lock(session, op.advance_id)
    repayment = session.execute(
        select(Repayment).where(Repayment.operation_id == op.id).with_for_update()
    ).scalar_one()
    result = rail.retrieve_payment_intent(intent_id)
    now = clock.now()
    op.external_id = result.id
    if result.status == "succeeded" and repayment.status is RepaymentStatus.PENDING:
        op.status = OperationStatus.SUCCEEDED
        op.updated_at = now
        _repayment_succeeded(session, clock, advance, repayment, provider_ref=result.charge_id)
        return "handled: debit succeeded"
    if (
        result.status in ("requires_payment_method", "canceled")
        and repayment.status is RepaymentStatus.PENDING
    ):
        _op_failed(op, result.failure_code or "debit_failed", result.failure_message or "debit failed", now)
        _repayment_failed(session, clock, advance, repayment, op.failure_code or "debit_failed")
        return "handled: debit failed"
    return f"handled: debit {result.status}"


def dispute(session: Session, clock: Clock, rail: StripeRail, charge_id: str, dispute_id: str) -> str:
    """A SEPA debit charged back (within the 8-week right): reopen what it repaid."""
    charge = rail.retrieve_charge(charge_id)
    intent = charge.get("payment_intent")
    op = session.execute(
        select(PaymentOperation).where(
            PaymentOperation.rail == "stripe", PaymentOperation.external_id == intent
        )
    ).scalar_one_or_none()
    if op is None or not charge["disputed"]:
        return "ignored: unknown or undisputed charge"
    advance = _lock(session, op.advance_id)
    repayment = session.execute(
        select(Repayment).where(Repayment.operation_id == op.id).with_for_update()
    ).scalar_one()
    if repayment.status is not RepaymentStatus.SUCCEEDED:
        return f"ignored: repayment is {repayment.status.value}"
    now = clock.now()
    posted = ledger.find(session, "repayment", charge_id)
    invariant(posted is not None, "a succeeded repayment was posted")
    assert posted is not None
    ledger.reverse(
        session,
        posted,
        kind="repayment_reversal",
        memo=f"Advance {advance.id}: debit {intent} disputed",
        on=clock.today(),
        now=now,
        external_ref=dispute_id,
    )
    repayment.status = RepaymentStatus.REVERSED
    repayment.updated_at = now
    op.status = OperationStatus.DISPUTED
    op.updated_at = now
    advance.fees_stop_on = None
    advance.debit_initiated_at = None
    if advance.status is S.REPAID:
        target = S.OVERDUE if clock.today() > advance.maturity_date else S.ACTIVE
        advance.repaid_at = None
        states.transition(session, advance, target, now, reason="debit disputed", data={"charge": charge_id})
        o = owed(session, advance)
        session.add(
            FinancedFingerprint(
                fingerprint=advance.fingerprint,
                company_id=advance.company_id,
                invoice_id=advance.invoice_id,
                advance_id=advance.id,
                debtor_siren=session.execute(
                    select(Debtor.siren)
                    .join(Invoice, Invoice.debtor_id == Debtor.id)
                    .where(Invoice.id == advance.invoice_id)
                ).scalar_one(),
                outstanding_cents=max(0, o.principal_cents),
                currency=advance.currency,
                financed_at=now,
                updated_at=now,
            )
        )
    else:
        states.record(session, "advance.repayment_reversed", advance, now, {"repayment": repayment.id})
    accrue(session, clock, advance)
    session.flush()
    return "handled: debit disputed, advance reopened"


def repay(
    session: Session,
    clock: Clock,
    rail: StripeRail | None,
    principal: Principal,
    advance_id: str,
    *,
    method: str,
    amount_cents: int | None,
    cap_cents: int,
) -> list[Repayment]:
    """Early repayment: by SEPA debit on the SME's mandate now, or (admin, notified mode)
    money the debtor paid into the platform's collection account."""
    advance = get_advance(session, principal, advance_id, lock=True)
    if advance.status not in DISBURSED:
        raise states_conflict(advance, "repaid")
    if method == "collection_account":
        if not principal.is_admin:
            raise Forbidden("Only the back-office records money received on the collection account.")
        invariant(amount_cents is not None, "the schema requires an amount for collection_account")
        assert amount_cents is not None
        now = clock.now()
        advance.fees_stop_on = clock.today()
        repayment = Repayment(
            id=new_id("rpy"),
            advance_id=advance.id,
            company_id=advance.company_id,
            source=RepaymentSource.COLLECTION_ACCOUNT,
            status=RepaymentStatus.PENDING,
            amount_cents=amount_cents,
            currency=advance.currency,
            late_interest_cents=0,
            fee_cents=0,
            principal_cents=0,
            surplus_cents=0,
            value_date=clock.today(),
            created_at=now,
            updated_at=now,
        )
        session.add(repayment)
        session.flush()
        _repayment_succeeded(session, clock, advance, repayment, cash_account="cash_bank")
        if advance.status is not S.REPAID:
            advance.fees_stop_on = None
        if repayment.surplus_cents and rail is not None:
            return_surplus(session, clock, rail, advance, repayment)
        session.flush()
        return [repayment]
    if rail is None:
        raise PaymentsUnavailable("Payments are not configured on this server.")
    pending = owed(session, advance).pending_cents
    if pending:
        raise RepaymentInProgress(
            f"A debit of {pending} cents is already being collected on advance {advance.id}.",
            extra={"pending": pending},
        )
    return initiate_debit(
        session,
        clock,
        rail,
        advance,
        reason="voluntary",
        amount_cents=amount_cents,
        source=RepaymentSource.VOLUNTARY,
        cap_cents=cap_cents,
    )


def return_surplus(
    session: Session, clock: Clock, rail: StripeRail, advance: Advance, repayment: Repayment
) -> None:
    """Pay back to the SME what its debtor paid above what the advance was owed: a
    transfer to its account and a payout to its IBAN (keys from the repayment's id). If
    the provider does not answer, the amount stays owed (``payable_to_company``) for the
    back-office to pay."""
    profile = session.get(PaymentProfile, advance.company_id)
    if profile is None:
        return
    now = clock.now()
    amount = repayment.surplus_cents
    metadata = {"advance": advance.id, "repayment": repayment.id, "purpose": "surplus"}
    transfer = _operation(
        session,
        advance,
        OperationKind.TRANSFER,
        f"escompte:surplus:{repayment.id}",
        amount,
        now,
        profile.stripe_account_id,
    )
    try:
        result = rail.transfer(
            amount_cents=amount,
            destination=profile.stripe_account_id,
            key=transfer.idempotency_key,
            metadata=metadata,
        )
        transfer.external_id, transfer.status, transfer.updated_at = result.id, OperationStatus.SUCCEEDED, now
        ledger.post(
            session,
            kind="surplus_return",
            memo=f"Advance {advance.id}: surplus of repayment {repayment.id} returned to the SME",
            lines=[debit("payable_to_company", amount, advance.company_id), credit("cash_stripe", amount)],
            on=clock.today(),
            now=now,
            advance_id=advance.id,
            company_id=advance.company_id,
            external_ref=result.id,
        )
        payout = _operation(
            session,
            advance,
            OperationKind.PAYOUT,
            f"escompte:surplus-payout:{repayment.id}",
            amount,
            now,
            profile.stripe_account_id,
        )
        paid = rail.payout(
            amount_cents=amount,
            account=profile.stripe_account_id,
            key=payout.idempotency_key,
            metadata=metadata,
        )
        payout.external_id, payout.status, payout.updated_at = paid.id, OperationStatus.PROCESSING, now
    except (RailUnavailable, RailRefused) as exc:
        log.warning("surplus_not_returned", advance=advance.id, repayment=repayment.id, code=exc.code)
        return
    states.record(
        session, "advance.surplus_returned", advance, now, {"repayment": repayment.id, "amount": amount}
    )


def surplus_payout_update(
    session: Session, clock: Clock, rail: StripeRail, payout_id: str, account: str
) -> str:
    op = session.execute(
        select(PaymentOperation).where(
            PaymentOperation.rail == "stripe", PaymentOperation.external_id == payout_id
        )
    ).scalar_one_or_none()
    if op is None:
        return "ignored: unknown surplus payout"
    result = rail.retrieve_payout(payout_id, account)
    if result.status == "paid":
        op.status = OperationStatus.SUCCEEDED
    elif result.status in ("failed", "canceled"):
        _op_failed(
            op, result.failure_code or result.status, result.failure_message or "payout failed", clock.now()
        )
        log.error("surplus_payout_failed", operation=op.id, code=op.failure_code)
    op.updated_at = clock.now()
    return f"handled: surplus payout {result.status}"


def states_conflict(advance: Advance, what: str) -> Exception:
    from escompte.errors import InvalidTransition

    return InvalidTransition(
        f"Advance {advance.id} is {advance.status.value}: it cannot be {what}.",
        extra={"status": advance.status.value},
    )


def extend(
    session: Session, clock: Clock, principal: Principal, advance_id: str, additional_days: int
) -> Advance:
    advance = get_advance(session, principal, advance_id, lock=True)
    if advance.status not in (S.ACTIVE, S.OVERDUE):
        raise states_conflict(advance, "extended")
    if advance.debit_initiated_at is not None:
        raise RepaymentInProgress(f"Advance {advance.id} is being repaid; it can no longer be extended.")
    total = advance.duration_days + additional_days
    if total > pricing.MAX_DURATION_DAYS:
        raise ExtensionRefused(
            f"Advance {advance.id} would last {total} days; "
            f"at most {pricing.MAX_DURATION_DAYS} days in total "
            f"(up to {pricing.MAX_DURATION_DAYS - advance.duration_days} more).",
            extra={"max_additional_days": pricing.MAX_DURATION_DAYS - advance.duration_days},
        )
    now = clock.now()
    new_maturity = advance.start_date + timedelta(days=total)
    if new_maturity < clock.today():
        raise ExtensionRefused(
            f"Even extended, advance {advance.id} would have matured on "
            f"{new_maturity.isoformat()}, before today."
        )
    previous = advance.maturity_date
    advance.duration_days = total
    advance.maturity_date = new_maturity
    advance.notice_sent_at = None
    advance.updated_at = now
    if advance.status is S.OVERDUE:
        advance.status = S.ACTIVE  # an agreed extension cures the delay
    states.record(
        session,
        "advance.extended",
        advance,
        now,
        {
            "additional_days": additional_days,
            "from_maturity": previous.isoformat(),
            "to_maturity": new_maturity.isoformat(),
            "fee_at_maturity": pricing.fee_cents(advance.principal_cents, advance.daily_rate, total),
        },
    )
    session.flush()
    return advance


# --- collections: escalation by the back-office ------------------------------------------------

ESCALATIONS = (S.IN_COLLECTIONS, S.DEFAULTED, S.WRITTEN_OFF)


def escalate(
    session: Session, clock: Clock, principal: Principal, advance_id: str, target: AdvanceStatus, reason: str
) -> Advance:
    """The back-office moves an unpaid advance on: overdue → in_collections (the case
    goes to collection), → defaulted (a provision for everything owed is booked), →
    written_off (what is still owed leaves the receivables as a loss; the provision is
    released). Fees and late interest are brought up to date first. An advance being
    debited cannot be written off; any other order of steps is a 409."""
    if not principal.is_admin:
        raise Forbidden("Only the back-office escalates an advance.")
    invariant(target in ESCALATIONS, "an escalation targets a collection status")
    advance = get_advance(session, principal, advance_id, lock=True)
    if not states.can(advance.status, target):
        raise states_conflict(advance, f"made {target.value}")
    now, today = clock.now(), clock.today()
    accrue(session, clock, advance)
    due = owed(session, advance)
    data: dict[str, Any] = {"owed": due.total_cents}
    if target is S.DEFAULTED:
        data["provision"] = due.total_cents
        if due.total_cents > 0:
            ledger.post(
                session,
                kind="provision",
                memo=f"Advance {advance.id}: provision for doubtful advance ({reason})"[:300],
                lines=[debit("provision_expense", due.total_cents), credit("provisions", due.total_cents)],
                on=today,
                now=now,
                advance_id=advance.id,
                company_id=advance.company_id,
            )
    elif target is S.WRITTEN_OFF:
        if due.pending_cents:
            raise RepaymentInProgress(
                f"Advance {advance.id} has {due.pending_cents} cents being debited; "
                "write it off once the debit has succeeded or failed."
            )
        lines = [
            debit("write_offs", due.total_cents),
            credit("principal_receivable", due.principal_cents, advance.company_id),
            credit("fees_receivable", due.fees_cents, advance.company_id),
            credit("late_interest_receivable", due.late_interest_cents, advance.company_id),
        ]
        provision = -ledger.advance_balances(session, advance.id).get("provisions", 0)
        if provision:  # the loss is booked now: the provision made for it goes
            lines += [debit("provisions", provision), credit("provision_expense", provision)]
        if any(line.amount_cents for line in lines):
            ledger.post(
                session,
                kind="write_off",
                memo=f"Advance {advance.id}: written off ({reason})"[:300],
                lines=lines,
                on=today,
                now=now,
                advance_id=advance.id,
                company_id=advance.company_id,
            )
        data.update(written_off=due.total_cents, provision_released=provision)
        # nothing is outstanding any more, but the invoice stays financed: never again
        _fingerprint(session, advance, now, outstanding_cents=0)
    states.transition(session, advance, target, now, reason=reason, data=data)
    session.flush()
    return advance


def _release_provision(session: Session, clock: Clock, advance: Advance) -> None:
    """A defaulted advance repaid after all: its provision is no longer needed."""
    provision = -ledger.advance_balances(session, advance.id).get("provisions", 0)
    if provision > 0:
        ledger.post(
            session,
            kind="provision_release",
            memo=f"Advance {advance.id}: recovered, provision released",
            lines=[debit("provisions", provision), credit("provision_expense", provision)],
            on=clock.today(),
            now=clock.now(),
            advance_id=advance.id,
            company_id=advance.company_id,
        )


# --- the daily work -------------------------------------------------------------------------------


def run_due(
    session: Session, clock: Clock, rail: StripeRail | None, cap_cents: int, limit: int = 1000
) -> dict[str, int]:
    """What the clock makes due: accrue fees, mark overdue, debit at maturity or once the
    debtor paid the invoice. Claims advances with SKIP LOCKED (any number of workers)."""
    today = clock.today()
    counts = {"accrued": 0, "overdue": 0, "debits": 0}
    # two business days before maturity is at most four calendar days before it
    horizon = today + timedelta(days=4)
    debit_due = and_(
        Advance.debit_initiated_at.is_(None),
        or_(Advance.debit_retry_on.is_(None), Advance.debit_retry_on <= today),
        or_(Advance.maturity_date <= horizon, Invoice.status == InvoiceStatus.PAID),
    )
    rows = session.execute(
        select(Advance, Invoice.status)
        .join(Invoice, Invoice.id == Advance.invoice_id)
        .where(Advance.status.in_(DISBURSED))
        .where(
            or_(
                Advance.accrued_through.is_(None),
                Advance.accrued_through < today,
                and_(Advance.status == S.ACTIVE, Advance.maturity_date < today),
                debit_due,
            )
        )
        .order_by(Advance.id)
        .limit(limit)
        .with_for_update(of=Advance, skip_locked=True)
    ).all()
    invoice_status = {advance.id: status for advance, status in rows}
    advances = [advance for advance, _ in rows]
    for advance in advances:
        if advance.accrued_through is None or advance.accrued_through < today:
            accrue(session, clock, advance)
            counts["accrued"] += 1
        if advance.status is S.ACTIVE and today > advance.maturity_date:
            states.transition(session, advance, S.OVERDUE, clock.now(), reason="matured unpaid")
            counts["overdue"] += 1
        if rail is None or advance.debit_initiated_at is not None:
            continue
        if advance.debit_retry_on is not None and advance.debit_retry_on > today:
            continue
        if invoice_status[advance.id] is InvoiceStatus.PAID:
            initiate_debit(session, clock, rail, advance, reason="debtor_paid", cap_cents=cap_cents)
            counts["debits"] += 1
        elif today >= debit_day(advance.maturity_date):
            target = advance.maturity_date if advance.maturity_date > today else None
            initiate_debit(
                session, clock, rail, advance, reason="maturity", target_date=target, cap_cents=cap_cents
            )
            counts["debits"] += 1
    return counts


def due_for_notice(session: Session, clock: Clock, limit: int = 500) -> list[Advance]:
    """Active advances maturing within 7 days whose SME was not told yet."""
    horizon = clock.today() + timedelta(days=7)
    return list(
        session.execute(
            select(Advance)
            .where(
                Advance.status == S.ACTIVE, Advance.notice_sent_at.is_(None), Advance.maturity_date <= horizon
            )
            .order_by(Advance.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
