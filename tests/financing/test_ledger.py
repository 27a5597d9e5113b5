"""The ledger's rules are the database's: an unbalanced or edited transaction is refused
even when written by hand, past the Python checks."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.db import make_session_factory
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


def test_one_posting_creates_the_accounts_it_names_once(session: Session, clock: FrozenClock) -> None:
    company = f.company(session, clock)
    first = _post(session, clock, company.id)
    second = ledger.post(  # the same account twice in one transaction, and a new one
        session,
        kind="test",
        memo="test",
        lines=[
            debit("fees_receivable", 300, company.id),
            credit("principal_receivable", 100, company.id),
            credit("principal_receivable", 200, company.id),
        ],
        on=clock.today(),
        now=clock.now(),
        company_id=company.id,
    )
    session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
    accounts = session.execute(
        text("SELECT code, count(*) FROM ledger_accounts WHERE company_id = :c GROUP BY code"),
        {"c": company.id},
    ).all()
    assert sorted(accounts) == [("fees_receivable", 1), ("principal_receivable", 1)]
    postings = session.execute(
        text(
            "SELECT t.id, a.code, p.amount_cents FROM ledger_postings p "
            "JOIN ledger_transactions t ON t.id = p.transaction_id "
            "JOIN ledger_accounts a ON a.id = p.account_id WHERE t.id IN (:a, :b) ORDER BY 1, 2, 3"
        ),
        {"a": first, "b": second},
    ).all()
    assert sorted(postings) == sorted(
        [
            (first, "cash_stripe", -10_000),
            (first, "principal_receivable", 10_000),
            (second, "fees_receivable", 300),
            (second, "principal_receivable", -200),
            (second, "principal_receivable", -100),
        ]
    )


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
    account = session.execute(text("SELECT id FROM ledger_accounts WHERE code = 'cash_stripe'")).scalar()
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


def test_database_refuses_a_posting_added_to_a_committed_transaction(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    """A transaction's own trigger checks it at the commit that writes it; a posting added
    later, by another database transaction, is checked by the posting's trigger."""
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        company_id = f.company(s, clock).id
        txn = _post(s, clock, company_id)
    with factory() as s:
        account = s.execute(text("SELECT id FROM ledger_accounts WHERE code = 'cash_stripe'")).scalar()
        s.execute(
            text(
                "INSERT INTO ledger_postings (transaction_id, account_id, amount_cents, currency) "
                "VALUES (:t, :a, 1, 'EUR')"
            ),
            {"t": txn, "a": account},
        )
        with pytest.raises(DBAPIError, match=f"ledger transaction {txn} does not balance"):
            s.commit()
    with factory() as s:
        assert ledger.trial_balance(s) == {"EUR": 0}


def test_database_refuses_postings_in_another_currency_than_their_account(
    session: Session, clock: FrozenClock
) -> None:
    company = f.company(session, clock)
    txn = _post(session, clock, company.id)
    session.execute(
        text(
            "INSERT INTO ledger_transactions (id, kind, memo, effective_date, created_at) "
            "VALUES ('ltx_0000000000000000000000000B', 'test', 'dollars', :d, :n)"
        ),
        {"d": clock.today(), "n": clock.now()},
    )
    session.execute(
        text(
            "INSERT INTO ledger_postings (transaction_id, account_id, amount_cents, currency) "
            "SELECT 'ltx_0000000000000000000000000B', account_id, -amount_cents, 'USD' "
            "FROM ledger_postings WHERE transaction_id = :t"
        ),
        {"t": txn},
    )
    with pytest.raises(DBAPIError, match="posts to an account in another currency"):
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


def test_an_account_created_by_a_concurrent_posting_is_found_after_it_commits(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    factory = make_session_factory(committed_engine)
    with factory() as s, s.begin():
        company_id = f.company(s, clock).id
    first = factory()
    _post(first, clock, company_id)  # creates the company's account, not committed yet
    with ThreadPoolExecutor(1) as pool:

        def second() -> str:
            with factory() as s, s.begin():
                return _post(s, clock, company_id, amount=500)

        waiting = pool.submit(second)
        try:
            deadline = time.monotonic() + 30
            # autocommit: within one transaction pg_stat_activity shows the same snapshot
            with committed_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
                while not watch.execute(  # until the second waits on the first
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                ).scalar():
                    assert time.monotonic() < deadline, "the second posting never waited"
                    time.sleep(0.01)
            first.commit()
        finally:
            first.close()  # rolls back if the wait was never seen, so the second can end
        txn = waiting.result(timeout=10)
    with factory() as s:
        assert ledger.trial_balance(s) == {"EUR": 0}
        accounts = s.execute(
            text("SELECT count(*) FROM ledger_accounts WHERE company_id = :c"), {"c": company_id}
        ).scalar()
        assert accounts == 1
        assert (
            s.execute(
                text(
                    "SELECT sum(amount_cents) FROM ledger_postings "
                    "WHERE transaction_id = :t AND amount_cents > 0"
                ),
                {"t": txn},
            ).scalar()
            == 500
        )
