"""bank_transactions: the source of each line, and aliases for a movement read twice

An account known from its camt.053 statement and from an OFX export (or an
aggregator's push) had each movement stored twice: the fingerprints differ by source.
Lines now say where they came from; a line from a second source that is a movement
already stored (same account, booking date and signed amount, not yet seen from that
source) is kept as an alias instead of a second transaction (connectors/bank/accounts.py).
Known lines get their source from their fingerprint's prefix, else from their import's
kind.

Revision ID: f8a1ia5e5b4k
Revises: e7f1sca1ye4r
Create Date: 2026-11-28 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8a1ia5e5b4k"
down_revision: str | None = "e7f1sca1ye4r"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bank_transactions", sa.Column("source", sa.String(length=8), nullable=True))
    op.execute(
        """
        UPDATE bank_transactions t SET source = coalesce(
            substring(t.fingerprint from '^([a-z]{1,8})[:#]'),
            (SELECT CASE i.kind WHEN 'camt053' THEN 'camt' WHEN 'ofx' THEN 'ofx' WHEN 'bank_csv' THEN 'csv' END
             FROM imports i WHERE i.id = t.import_id),
            'agg')
        """
    )
    op.alter_column("bank_transactions", "source", nullable=False)
    op.create_table(
        "bank_line_aliases",
        sa.Column("bank_account_id", sa.String(length=40), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("bank_transaction_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("external_id", sa.String(length=120), nullable=True),
        sa.Column("import_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_bank_line_aliases_bank_account_id_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_transaction_id"],
            ["bank_transactions.id"],
            name=op.f("fk_bank_line_aliases_bank_transaction_id_bank_transactions"),
        ),
        sa.PrimaryKeyConstraint("bank_account_id", "fingerprint", name=op.f("pk_bank_line_aliases")),
    )
    op.create_index(
        op.f("ix_bank_line_aliases_bank_transaction_id_source"),
        "bank_line_aliases",
        ["bank_transaction_id", "source"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bank_line_aliases_bank_transaction_id_source"), table_name="bank_line_aliases")
    op.drop_table("bank_line_aliases")
    op.drop_column("bank_transactions", "source")
