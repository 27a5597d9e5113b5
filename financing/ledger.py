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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from escompte.errors import InvariantViolation, invariant
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


# One statement posts a transaction: the accounts its lines name are looked up, those
# missing created (a company's accounts appear with its first posting), then the
# transaction and its postings inserted. Were an account being created by a concurrent
# transaction, this statement cannot see it yet: it then inserts nothing and is run again.
_POST = text(
    """
    WITH lines AS (
        SELECT * FROM unnest(
            CAST(:codes AS varchar[]), CAST(:companies AS varchar[]), CAST(:types AS varchar[]),
            CAST(:names AS varchar[]), CAST(:amounts AS bigint[])
        ) WITH ORDINALITY AS l(code, company_id, type, name, amount, n)
    ),
    found AS (
        SELECT l.n, a.id FROM lines l JOIN ledger_accounts a
          ON a.code = l.code AND a.company_id = l.company_id AND a.currency = :currency
        UNION ALL
        SELECT l.n, a.id FROM lines l JOIN ledger_accounts a
          ON a.code = l.code AND a.company_id IS NULL AND a.currency = :currency
        WHERE l.company_id IS NULL
    ),
    created AS (
        INSERT INTO ledger_accounts (code, company_id, currency, type, name, created_at)
        SELECT l.code, l.company_id, :currency, l.type, l.name, :now FROM lines l
        WHERE l.n NOT IN (SELECT n FROM found)
        ON CONFLICT DO NOTHING
        RETURNING id, code, company_id
    ),
    accounts AS (
        SELECT n, id FROM found
        UNION ALL
        SELECT l.n, c.id FROM created c
        JOIN lines l ON l.code = c.code AND l.company_id IS NOT DISTINCT FROM c.company_id
    ),
    txn AS (
        INSERT INTO ledger_transactions
            (id, kind, advance_id, company_id, external_ref, reverses_id, memo, effective_date, created_at)
        SELECT :id, :kind, :advance_id, :company_id, :external_ref, :reverses_id, :memo, :on, :now
        WHERE (SELECT count(*) FROM accounts) = cardinality(CAST(:codes AS varchar[]))
        RETURNING id
    )
    INSERT INTO ledger_postings (transaction_id, account_id, advance_id, amount_cents, currency)
    SELECT txn.id, a.id, :advance_id, l.amount, :currency
    FROM txn, accounts a JOIN lines l USING (n)
    """
)
_POST_ATTEMPTS = 5


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
    keys = [_key(line) for line in lines]
    described = [(COMPANY_ACCOUNTS if company else PLATFORM_ACCOUNTS)[code] for code, company in keys]
    txn_id = new_id("ltx")
    params = {
        "codes": [code for code, _ in keys],
        "companies": [company for _, company in keys],
        "types": [str(account_type) for account_type, _ in described],
        "names": [name for _, name in described],
        "amounts": [line.amount_cents for line in lines],
        "currency": currency,
        "now": now,
        "id": txn_id,
        "kind": kind,
        "advance_id": advance_id,
        "company_id": company_id,
        "external_ref": external_ref,
        "reverses_id": reverses_id,
        "memo": memo[:300],
        "on": on,
    }
    for _ in range(_POST_ATTEMPTS):
        posted = int(session.execute(_POST, params).rowcount or 0)  # type: ignore[attr-defined]
        if posted:
            invariant(posted == len(lines), f"every posting of a ledger transaction written ({kind})")
            return txn_id
    raise InvariantViolation(f"ledger accounts of a {kind} transaction could not be found or created")


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
