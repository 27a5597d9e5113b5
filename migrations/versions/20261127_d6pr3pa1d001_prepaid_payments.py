"""payments: a "prepaid" source, for the part of an e-invoice paid before it (BT-113)

Revision ID: d6pr3pa1d001
Revises: c5f1nanc1ng1
Create Date: 2026-11-27 04:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d6pr3pa1d001"
down_revision: str | None = "c5f1nanc1ng1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SOURCES = ("bank", "books", "lifecycle", "api")


def _check(sources: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_payments_payment_source"), "payments", type_="check")
    values = ", ".join(f"'{s}'" for s in sources)
    op.create_check_constraint(op.f("ck_payments_payment_source"), "payments", f"source IN ({values})")


def upgrade() -> None:
    _check((*SOURCES, "prepaid"))


def downgrade() -> None:
    op.execute(
        "DELETE FROM payment_allocations a USING payments p WHERE p.id = a.payment_id AND p.source = 'prepaid'"
    )
    op.execute("DELETE FROM payments WHERE source = 'prepaid'")
    _check(SOURCES)
