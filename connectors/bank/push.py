"""Bank data through the API: aggregator pushes, and the reads behind the bank routes.

A push is one account's batch of transactions and balances (at most 1,000
transactions), stored all or nothing through the same ``BankWriter`` as the files: a
transaction pushed again (same aggregator id, or the same fields when there is no id)
is counted as unchanged. New credits are then reconciled with open invoices.

Every read goes through the caller's tenancy: another tenant's company, account or
transaction is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.clock import Clock
from escompte.companies.service import company_for_write, get_company
from escompte.connectors import reconciliation
from escompte.connectors.bank.accounts import (
    REMITTANCE_MAX,
    AccountRef,
    BankDataError,
    BankLine,
    BankWriter,
    StoreResult,
    clean_text,
    latest_balances,
)
from escompte.connectors.bank.schemas import BankTransactionBatch
from escompte.errors import FieldError, NotFound, ValidationFailed
from escompte.models import BankAccount, BankBalance, BankTransaction, MatchStatus

log = structlog.get_logger("escompte.bank")


@dataclass(frozen=True)
class PushOutcome:
    bank_account_id: str
    result: StoreResult
    transaction_ids: list[str]  # in the batch's order


def push_transactions(
    session: Session, clock: Clock, principal: Principal, company_id: str, batch: BankTransactionBatch
) -> PushOutcome:
    company = company_for_write(session, principal, company_id)
    amounts = [t.amount.currency for t in batch.transactions] + [b.amount.currency for b in batch.balances]
    currency = batch.account.currency or (amounts[0] if amounts else "EUR")
    errors: list[FieldError] = []
    for number, tx in enumerate(batch.transactions):
        if tx.amount.currency != currency:
            errors.append(
                FieldError(
                    f"transactions.{number}.amount.currency",
                    f"the account is held in {currency}, not {tx.amount.currency}",
                )
            )
    for number, balance in enumerate(batch.balances):
        if balance.amount.currency != currency:
            errors.append(
                FieldError(
                    f"balances.{number}.amount.currency",
                    f"the account is held in {currency}, not {balance.amount.currency}",
                )
            )
    _raise(errors)
    with BankWriter(session, clock.now(), company_id=company.id, source="agg", keep_ids=True) as writer:
        account, fingerprints = _stage(writer, batch, currency)
        result = writer.finish()
    ids = [result.ids[(account.id, fp)] for fp in fingerprints]
    if result.created:
        _reconcile(session, clock, company.id, ids)
    return PushOutcome(account.id, result, ids)


def _stage(writer: BankWriter, batch: BankTransactionBatch, currency: str) -> tuple[AccountRef, list[str]]:
    """Check and stage the batch; returns the account and each transaction's fingerprint.
    ValidationFailed naming every failing field otherwise."""
    try:
        account = writer.account(
            batch.account.iban, currency=currency, name=batch.account.name, bic=batch.account.bic
        )
    except BankDataError as exc:
        raise ValidationFailed(
            f"The account cannot be used: {exc}.", [FieldError("account.currency", str(exc))]
        ) from None
    errors: list[FieldError] = []
    fingerprints: list[str] = []
    for number, tx in enumerate(batch.transactions):
        counterparty = tx.counterparty
        line = BankLine(
            booking_date=tx.booking_date,
            amount_cents=tx.amount.amount,
            currency=tx.amount.currency,
            value_date=tx.value_date,
            counterparty_name=counterparty.name if counterparty else None,
            counterparty_iban=counterparty.iban if counterparty else None,
            remittance_info=clean_text(tx.remittance_information, REMITTANCE_MAX),
            structured_reference=tx.structured_reference,
            end_to_end_id=tx.end_to_end_id,
            bank_code=tx.bank_transaction_code,
            external_id=tx.id,
        )
        try:
            fingerprints.append(writer.add(account, line))
        except BankDataError as exc:
            errors.append(FieldError(f"transactions.{number}.id", str(exc)))
    for number, balance in enumerate(batch.balances):
        try:
            writer.add_balance(
                account, balance.date, balance.kind, balance.amount.amount, balance.amount.currency
            )
        except BankDataError as exc:
            errors.append(FieldError(f"balances.{number}", str(exc)))
    _raise(errors)
    return account, fingerprints


def _reconcile(session: Session, clock: Clock, company_id: str, transaction_ids: list[str]) -> None:
    """New credits: match them with open invoices now, in their own savepoint (a failure
    there is logged and never undoes the push)."""
    try:
        with session.begin_nested():
            reconciliation.reconcile(session, clock, company_id, transaction_ids=transaction_ids)
    except Exception:
        log.exception("reconciliation_failed", company_id=company_id)


def _raise(errors: list[FieldError]) -> None:
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationFailed(f"{first.field}: {first.message}{more}", errors[:100])


# --- reads --------------------------------------------------------------------------------


def list_transactions(
    session: Session,
    principal: Principal,
    company_id: str,
    *,
    match_status: MatchStatus | None,
    bank_account_id: str | None,
    limit: int,
    starting_after: str | None,
) -> list[BankTransaction]:
    company = get_company(session, principal, company_id)
    query = select(BankTransaction).where(BankTransaction.company_id == company.id)
    if match_status is not None:
        query = query.where(BankTransaction.match_status == match_status)
    if bank_account_id is not None:
        query = query.where(BankTransaction.bank_account_id == bank_account_id)
    if starting_after is not None:
        query = query.where(BankTransaction.id < starting_after)
    return list(session.execute(query.order_by(BankTransaction.id.desc()).limit(limit)).scalars())


def get_transaction(session: Session, principal: Principal, transaction_id: str) -> BankTransaction:
    found = session.execute(
        select(BankTransaction).where(
            BankTransaction.id == transaction_id, visible_company_ids(principal, BankTransaction.company_id)
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"No such bank transaction: {transaction_id}")
    return found


def list_accounts(
    session: Session, principal: Principal, company_id: str, *, limit: int, starting_after: str | None
) -> list[tuple[BankAccount, BankBalance | None]]:
    company = get_company(session, principal, company_id)
    query = select(BankAccount).where(BankAccount.company_id == company.id)
    if starting_after is not None:
        query = query.where(BankAccount.id < starting_after)
    accounts = list(session.execute(query.order_by(BankAccount.id.desc()).limit(limit)).scalars())
    balances = latest_balances(session, [a.id for a in accounts])
    return [(a, balances.get(a.id)) for a in accounts]
