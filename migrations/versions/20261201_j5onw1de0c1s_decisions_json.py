"""eligibility decisions: checks, features and counterfactuals as json, kept as written

A decision is written far more often than it is read, and nothing queries inside these
columns but by key (``checks -> 'duration_fits'`` works on json too). jsonb converted
each decision's 2-3 KB into its binary form on the way in and back to text on the way
out; json only checks the text. In a loop of single-row inserts with their commits, a
decision took 30-40 µs less (docs/eligibility.md, Storage).

Revision ID: j5onw1de0c1s
Revises: h1l3dgerch3k
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "j5onw1de0c1s"
down_revision: str | None = "h1l3dgerch3k"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("checks", "features", "counterfactuals")


def _retype(to: str) -> None:
    changes = ", ".join(f"ALTER COLUMN {c} TYPE {to} USING {c}::{to}" for c in COLUMNS)
    op.execute(f"ALTER TABLE eligibility_decisions {changes}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
