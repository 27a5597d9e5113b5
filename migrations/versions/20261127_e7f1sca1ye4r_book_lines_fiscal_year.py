"""book_lines: the fiscal year in each line's key

Most accounting software numbers entries from 1 again each fiscal year, so a FEC's
(journal, entry number, position) names a line within its year only: the second year's
FEC collided with the first's. Lines now carry their fiscal year's closing date, part of
the key. Known lines get the rule the import applies (connectors/fec.py): the closing
date in the legal file name (SIRENFECYYYYMMDD), else the 31 December of the year of the
file's first line.

Revision ID: e7f1sca1ye4r
Revises: d6pr3pa1d001
Create Date: 2026-11-27 04:40:00
"""

import re
from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "e7f1sca1ye4r"
down_revision: str | None = "d6pr3pa1d001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEGAL_NAME = re.compile(r"\d{9}FEC(\d{4})(\d{2})(\d{2})", re.IGNORECASE)


def _closing(filename: str | None, first_line: date) -> date:
    found = _LEGAL_NAME.search(filename or "")
    if found:
        try:
            return date(*(int(g) for g in found.groups()))
        except ValueError:
            pass
    return date(first_line.year, 12, 31)


def upgrade() -> None:
    op.add_column("book_lines", sa.Column("fiscal_year_end", sa.Date(), nullable=True))
    conn = op.get_bind()
    imports = conn.execute(
        sa.text(
            "SELECT DISTINCT ON (b.import_id) b.import_id, b.entry_date, i.filename "
            "FROM book_lines b LEFT JOIN imports i ON i.id = b.import_id ORDER BY b.import_id, b.id"
        )
    ).all()
    for import_id, first_line, filename in imports:
        conn.execute(
            sa.text("UPDATE book_lines SET fiscal_year_end = :fy WHERE import_id = :i"),
            {"fy": _closing(filename, first_line), "i": import_id},
        )
    op.alter_column("book_lines", "fiscal_year_end", nullable=False)
    op.drop_index(op.f("ix_book_lines_company_id_journal_code_entry_num_line_no"), table_name="book_lines")
    op.create_index(
        "ix_book_lines_line_key",
        "book_lines",
        ["company_id", "fiscal_year_end", "journal_code", "entry_num", "line_no"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_book_lines_line_key", table_name="book_lines")
    op.create_index(
        op.f("ix_book_lines_company_id_journal_code_entry_num_line_no"),
        "book_lines",
        ["company_id", "journal_code", "entry_num", "line_no"],
        unique=True,
    )
    op.drop_column("book_lines", "fiscal_year_end")
