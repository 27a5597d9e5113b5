"""The ledger's rules are the database's: an unbalanced or edited transaction is refused
even when written by hand, past the Python checks."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.errors import InvariantViolation
from escompte.financing import ledger
from escompte.financing.ledger import credit, debit
from tests import factories as f


def _post(session: Session, clock: FrozenClock, company_id: str, amount: int = 10_000) -> str:
    return ledger.post(
        session,
        kind="test",
        memo="test",
        lines=[debit("principal_receivable", amount, company_id), credit("cash_stripe", amount)],
        on=clock.today(),
        now=clock.now(),
        company_id=company_id,
    )


def test_balanced_transaction_commits_and_balances(session: Session, clock: FrozenClock) -> None:
    company = f.company(session, clock)
    _post(session, clock, company.id)
    session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # run the deferred checks now
    assert ledger.trial_balance(session) == {"EUR": 0}
    balances = {(c, k): b for c, k, _, b in ledger.account_balances(session)}
    assert balances[("principal_receivable", company.id)] == 10_000
    assert balances[("cash_stripe", None)] == -10_000


def test_python_refuses_an_unbalanced_transaction(session: Session, clock: FrozenClock) -> None:
    company = f.company(session, clock)
    with pytest.raises(InvariantViolation, match="unbalanced"):
        ledger.post(
            session,
            kind="test",
            memo="test",
            lines=[debit("principal_receivable", 10_000, company.id), credit("cash_stripe", 9_999)],
            on=clock.today(),
            now=clock.now(),
        )


def test_database_refuses_an_unbalanced_transaction(session: Session, clock: FrozenClock) -> None:
    company = f.company(session, clock)
    txn = _post(session, clock, company.id)
    account = session.execute(text("SELECT id FROM ledger_accounts WHERE code = 'fee_income'")).scalar()
    if account is None:
        ledger.account_ids(session, [("fee_income", None)], "EUR", clock.now())
        account = session.execute(text("SELECT id FROM ledger_accounts WHERE code = 'fee_income'")).scalar()
    session.execute(
        text(
            "INSERT INTO ledger_postings (transaction_id, account_id, amount_cents, currency) "
            "VALUES (:t, :a, 1, 'EUR')"
        ),
        {"t": txn, "a": account},
    )
    with pytest.raises(DBAPIError, match="does not balance"):
        session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))


def test_database_refuses_a_transaction_without_postings(session: Session, clock: FrozenClock) -> None:
    session.execute(
        text(
            "INSERT INTO ledger_transactions (id, kind, memo, effective_date, created_at) "
            "VALUES ('ltx_0000000000000000000000000A', 'test', 'empty', :d, :n)"
        ),
        {"d": clock.today(), "n": clock.now()},
    )
    with pytest.raises(DBAPIError, match="at least two"):
        session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postings SET amount_cents = amount_cents * 2",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_transactions SET memo = 'edited'",
        "DELETE FROM ledger_transactions",
    ],
)
def test_ledger_is_append_only(session: Session, clock: FrozenClock, statement: str) -> None:
    company = f.company(session, clock)
    _post(session, clock, company.id)
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(statement))


def test_reversal_negates_every_posting(session: Session, clock: FrozenClock) -> None:
    company = f.company(session, clock)
    txn = _post(session, clock, company.id, 25_000)
    ledger.reverse(session, txn, kind="test_reversal", memo="undo", on=clock.today(), now=clock.now())
    session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
    balances = {(c, k): b for c, k, _, b in ledger.account_balances(session)}
    assert balances[("principal_receivable", company.id)] == 0
    assert balances[("cash_stripe", None)] == 0
