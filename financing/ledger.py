"""The double-entry ledger: posting balanced transactions, and balances derived from
postings. The database refuses an unbalanced or edited transaction (see the models); this
module checks the same in Python first, to fail with a clear message.

Chart of accounts (``code``; per company where marked):

- ``cash_stripe`` asset — the platform's balance at the payment provider
- ``cash_bank`` asset — the platform's bank (collection account, supplier transfers)
- ``principal_receivable``\\* asset — principal lent and not yet repaid
- ``fees_receivable``\\* asset — fees earned and not yet collected
- ``late_interest_receivable``\\* asset — late interest earned and not yet collected
- ``payable_to_company``\\* liability — surplus collected for the SME, owed back to it
- ``fee_income``, ``late_interest_income`` income
- ``suspense`` liability — money received that nothing explains yet
- ``write_offs`` expense, ``provision_expense`` expense, ``provisions`` asset (contra,
  credit balance) — losses
- ``funding`` equity — money put on the platform's balance to lend
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from escompte.errors import invariant
from escompte.ids import new_id
from escompte.models import AccountType, LedgerAccount, LedgerPosting, LedgerTransaction

PLATFORM_ACCOUNTS: dict[str, tuple[AccountType, str]] = {
    "cash_stripe": (AccountType.ASSET, "Cash at the payment provider"),
    "cash_bank": (AccountType.ASSET, "Cash at the bank"),
    "fee_income": (AccountType.INCOME, "Financing fees"),
    "late_interest_income": (AccountType.INCOME, "Late interest"),
    "suspense": (AccountType.LIABILITY, "Unexplained money received"),
    "write_offs": (AccountType.EXPENSE, "Advances written off"),
    "provision_expense": (AccountType.EXPENSE, "Provisions for doubtful advances"),
    "provisions": (AccountType.ASSET, "Provisions (contra-asset)"),
    "funding": (AccountType.EQUITY, "Funding of the lending balance"),
}
COMPANY_ACCOUNTS: dict[str, tuple[AccountType, str]] = {
    "principal_receivable": (AccountType.ASSET, "Advances receivable"),
    "fees_receivable": (AccountType.ASSET, "Fees receivable"),
    "late_interest_receivable": (AccountType.ASSET, "Late interest receivable"),
    "payable_to_company": (AccountType.LIABILITY, "Owed back to the SME"),
}


@dataclass(frozen=True, slots=True)
class Line:
    code: str
    amount_cents: int  # debit > 0, credit < 0
    company_id: str | None = None  # for the per-company accounts


def debit(code: str, cents: int, company_id: str | None = None) -> Line:
    return Line(code, cents, company_id)


def credit(code: str, cents: int, company_id: str | None = None) -> Line:
    return Line(code, -cents, company_id)


def _key(line: Line) -> tuple[str, str | None]:
    if line.code in COMPANY_ACCOUNTS:
        invariant(line.company_id is not None, f"account {line.code} is per company")
        return line.code, line.company_id
    invariant(line.code in PLATFORM_ACCOUNTS, f"unknown ledger account {line.code}")
    return line.code, None


def account_ids(
    session: Session, keys: Iterable[tuple[str, str | None]], currency: str, now: datetime
) -> dict[tuple[str, str | None], int]:
    wanted = set(keys)
    condition = or_(
        *(
            and_(
                LedgerAccount.code == code,
                LedgerAccount.company_id.is_(None)
                if company is None
                else LedgerAccount.company_id == company,
            )
            for code, company in wanted
        )
    )
    query = select(LedgerAccount.code, LedgerAccount.company_id, LedgerAccount.id).where(
        LedgerAccount.currency == currency, condition
    )
    found = {(c, k): i for c, k, i in session.execute(query)}
    missing = wanted - set(found)
    if missing:
        rows = []
        for code, company in missing:
            kind, name = (COMPANY_ACCOUNTS if company else PLATFORM_ACCOUNTS)[code]
            rows.append(
                {
                    "code": code,
                    "company_id": company,
                    "currency": currency,
                    "type": kind,
                    "name": name,
                    "created_at": now,
                }
            )
        session.execute(pg_insert(LedgerAccount).values(rows).on_conflict_do_nothing())
        found = {(c, k): i for c, k, i in session.execute(query)}
    return found


def post(
    session: Session,
    *,
    kind: str,
    memo: str,
    lines: Sequence[Line],
    on: date,
    now: datetime,
    currency: str = "EUR",
    advance_id: str | None = None,
    company_id: str | None = None,
    external_ref: str | None = None,
    reverses_id: str | None = None,
) -> str:
    """Post one balanced transaction; returns its id."""
    lines = [line for line in lines if line.amount_cents != 0]
    invariant(len(lines) >= 2, f"a ledger transaction needs two postings ({kind})")
    invariant(sum(line.amount_cents for line in lines) == 0, f"unbalanced ledger transaction ({kind})")
    ids = account_ids(session, (_key(line) for line in lines), currency, now)
    txn_id = new_id("ltx")
    session.execute(
        insert(LedgerTransaction).values(
            id=txn_id,
            kind=kind,
            advance_id=advance_id,
            company_id=company_id,
            external_ref=external_ref,
            reverses_id=reverses_id,
            memo=memo[:300],
            effective_date=on,
            created_at=now,
        )
    )
    session.execute(
        insert(LedgerPosting),
        [
            {
                "transaction_id": txn_id,
                "account_id": ids[_key(line)],
                "advance_id": advance_id,
                "amount_cents": line.amount_cents,
                "currency": currency,
            }
            for line in lines
        ],
    )
    return txn_id


def already_posted(session: Session, kind: str, external_ref: str) -> bool:
    found = session.execute(
        select(LedgerTransaction.id).where(
            LedgerTransaction.kind == kind, LedgerTransaction.external_ref == external_ref
        )
    ).first()
    return found is not None


def reverse(
    session: Session,
    txn_id: str,
    *,
    kind: str,
    memo: str,
    on: date,
    now: datetime,
    external_ref: str | None = None,
) -> str:
    """A new transaction with every posting of ``txn_id`` negated."""
    rows = session.execute(
        select(
            LedgerAccount.code, LedgerAccount.company_id, LedgerPosting.amount_cents, LedgerPosting.currency
        )
        .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
        .where(LedgerPosting.transaction_id == txn_id)
    ).all()
    txn = session.get(LedgerTransaction, txn_id)
    invariant(txn is not None and bool(rows), f"ledger transaction {txn_id} exists")
    assert txn is not None
    return post(
        session,
        kind=kind,
        memo=memo,
        lines=[Line(code, -amount, company) for code, company, amount, _ in rows],
        on=on,
        now=now,
        currency=rows[0][3],
        advance_id=txn.advance_id,
        company_id=txn.company_id,
        external_ref=external_ref or txn_id,
        reverses_id=txn_id,
    )


# --- balances ------------------------------------------------------------------------------


def advance_balances(session: Session, advance_id: str) -> dict[str, int]:
    """Balance per account code of one advance's postings (debit positive)."""
    rows = session.execute(
        select(LedgerAccount.code, func.sum(LedgerPosting.amount_cents))
        .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
        .where(LedgerPosting.advance_id == advance_id)
        .group_by(LedgerAccount.code)
    ).all()
    return {code: int(total) for code, total in rows}


def account_balances(
    session: Session, company_id: str | None = None
) -> list[tuple[str, str | None, str, int]]:
    """(code, company, currency, balance) of every account (one company's if given)."""
    query = (
        select(
            LedgerAccount.code,
            LedgerAccount.company_id,
            LedgerAccount.currency,
            func.coalesce(func.sum(LedgerPosting.amount_cents), 0),
        )
        .outerjoin(LedgerPosting, LedgerPosting.account_id == LedgerAccount.id)
        .group_by(LedgerAccount.id)
        .order_by(LedgerAccount.code, LedgerAccount.company_id)
    )
    if company_id is not None:
        query = query.where(LedgerAccount.company_id == company_id)
    return [(c, k, cur, int(b)) for c, k, cur, b in session.execute(query)]


def trial_balance(session: Session) -> dict[str, int]:
    """Sum of all postings per currency: zero when the ledger balances."""
    rows = session.execute(
        select(LedgerPosting.currency, func.sum(LedgerPosting.amount_cents)).group_by(LedgerPosting.currency)
    ).all()
    return {cur: int(total) for cur, total in rows}


def unbalanced_transactions(session: Session) -> list[str]:
    sub = (
        select(LedgerPosting.transaction_id)
        .group_by(LedgerPosting.transaction_id, LedgerPosting.currency)
        .having(func.sum(LedgerPosting.amount_cents) != 0)
    )
    return list(session.execute(sub).scalars())


def find(session: Session, kind: str, external_ref: str) -> str | None:
    found = session.execute(
        select(LedgerTransaction.id).where(
            LedgerTransaction.kind == kind, LedgerTransaction.external_ref == external_ref
        )
    ).scalar_one_or_none()
    return found
