"""ledger: check each transaction once, in one query

The balance check ran three queries, for every posting and again for its transaction:
nine queries at commit for a two-line transaction, a fifth of PostgreSQL's time in an
advance's acceptance. A transaction's own trigger now does the check, in one query
grouped by currency; a posting's trigger only checks when its transaction was written by
an earlier database transaction (a posting added to an old transaction), since the
transaction's trigger fires at commit otherwise. The rules and messages are unchanged.

Revision ID: h1l3dgerch3k
Revises: g9a1k3ycach3
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "h1l3dgerch3k"
down_revision: str | None = "g9a1k3ycach3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = """
CREATE OR REPLACE FUNCTION ledger_check_transaction(txn text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n integer := 0;
    unbalanced record;
    foreign_currency boolean := false;
    per_currency record;
BEGIN
    FOR per_currency IN
        SELECT p.currency, count(*) AS postings, sum(p.amount_cents) AS total,
               bool_or(a.currency <> p.currency) AS mismatch
        FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
        WHERE p.transaction_id = txn
        GROUP BY p.currency
    LOOP
        n := n + per_currency.postings;
        IF per_currency.total <> 0 AND unbalanced IS NULL THEN
            unbalanced := per_currency;
        END IF;
        foreign_currency := foreign_currency OR per_currency.mismatch;
    END LOOP;
    IF n < 2 THEN
        RAISE EXCEPTION 'ledger transaction % has % posting(s): at least two are needed', txn, n
            USING ERRCODE = '23514';
    END IF;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: postings in % sum to % cents',
            txn, unbalanced.currency, unbalanced.total USING ERRCODE = '23514';
    END IF;
    IF foreign_currency THEN
        RAISE EXCEPTION 'ledger transaction % posts to an account in another currency', txn
            USING ERRCODE = '23514';
    END IF;
END $$
"""

POSTING = """
CREATE OR REPLACE FUNCTION ledger_posting_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a transaction written by this database transaction is checked by its own trigger
    IF NOT EXISTS (
        SELECT 1 FROM ledger_transactions t
        WHERE t.id = NEW.transaction_id AND t.xmin = pg_current_xact_id()::xid
    ) THEN
        PERFORM ledger_check_transaction(NEW.transaction_id);
    END IF;
    RETURN NULL;
END $$
"""

OLD_CHECK = """
CREATE OR REPLACE FUNCTION ledger_check_transaction(txn text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    bad record;
BEGIN
    SELECT count(*) INTO n FROM ledger_postings WHERE transaction_id = txn;
    IF n < 2 THEN
        RAISE EXCEPTION 'ledger transaction % has % posting(s): at least two are needed', txn, n
            USING ERRCODE = '23514';
    END IF;
    SELECT p.currency, sum(p.amount_cents) AS total INTO bad
    FROM ledger_postings p WHERE p.transaction_id = txn
    GROUP BY p.currency HAVING sum(p.amount_cents) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: postings in % sum to % cents',
            txn, bad.currency, bad.total USING ERRCODE = '23514';
    END IF;
    PERFORM 1 FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
    WHERE p.transaction_id = txn AND a.currency <> p.currency;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % posts to an account in another currency', txn
            USING ERRCODE = '23514';
    END IF;
END $$
"""

OLD_POSTING = """
CREATE OR REPLACE FUNCTION ledger_posting_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_transaction(NEW.transaction_id);
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute(CHECK)
    op.execute(POSTING)


def downgrade() -> None:
    op.execute(OLD_POSTING)
    op.execute(OLD_CHECK)
