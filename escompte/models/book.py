from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Identity, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base


class BookLine(Base):
    """One line of an SME's accounting books, from its FEC (Fichier des Écritures
    Comptables). Column names are the FEC's, in English: JournalCode → journal_code,
    EcritureNum → entry_num, CompteNum → account_num, CompAuxNum → aux_account_num,
    PieceRef → piece_ref, EcritureLet → lettering, DateLet → lettering_date …

    Kept for eligibility (is the invoice in the books, with the same amount?). Bulk
    loaded with COPY; one natural key per line makes a re-import change nothing. The key
    holds the fiscal year (its closing date): most accounting software numbers entries
    from 1 again each year, so EcritureNum alone names a line within one year only.

    No foreign keys on company_id and import_id: checked row by row they doubled the
    cost of loading a million lines (measured 11.9 s → 6.3 s); the FEC import writes
    both from rows it holds, and neither companies nor imports are ever deleted.
    """

    __tablename__ = "book_lines"
    __table_args__ = (
        Index(
            "ix_book_lines_line_key",
            "company_id",
            "fiscal_year_end",
            "journal_code",
            "entry_num",
            "line_no",
            unique=True,
        ),
        # lines without an auxiliary account (most of them) stay out of this index
        Index(
            None,
            "company_id",
            "aux_account_num",
            "piece_ref",
            postgresql_where=text("aux_account_num IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[str] = mapped_column(String(40))
    import_id: Mapped[str] = mapped_column(String(40))
    fiscal_year_end: Mapped[date] = mapped_column(Date)  # closing date of the FEC's fiscal year
    journal_code: Mapped[str] = mapped_column(String(20))
    journal_lib: Mapped[str] = mapped_column(String(200))
    entry_num: Mapped[str] = mapped_column(String(40))
    line_no: Mapped[int] = mapped_column(Integer)  # position of the line within its entry
    entry_date: Mapped[date] = mapped_column(Date)
    account_num: Mapped[str] = mapped_column(String(40))
    account_lib: Mapped[str] = mapped_column(String(200))
    aux_account_num: Mapped[str | None] = mapped_column(String(40))
    aux_account_lib: Mapped[str | None] = mapped_column(String(200))
    piece_ref: Mapped[str] = mapped_column(String(64))
    piece_date: Mapped[date] = mapped_column(Date)
    label: Mapped[str] = mapped_column(String(200))
    debit_cents: Mapped[int] = mapped_column(BigInteger)
    credit_cents: Mapped[int] = mapped_column(BigInteger)
    lettering: Mapped[str | None] = mapped_column(String(20))
    lettering_date: Mapped[date | None] = mapped_column(Date)
    validation_date: Mapped[date | None] = mapped_column(Date)
    currency_amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
