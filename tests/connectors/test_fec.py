"""FEC import: the file checked line by line (all or nothing), its lines in book_lines,
and the invoices, counterparties and payments they show."""

from __future__ import annotations

import hashlib
import io
import re
import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.connectors import service
from escompte.connectors.base import ImportContext, ImportOutcome, ImportRefused, IssueCollector
from escompte.connectors.fec import BLOCK_BYTES, _Parser, import_fec
from escompte.connectors.samples.fec import (
    FecEntry,
    FecLine,
    FecSummary,
    generate_year,
    synthetic_chunks,
    write_fec,
)
from escompte.ids import ID_PATTERN, new_id
from escompte.models import (
    BookLine,
    Company,
    DataImport,
    Debtor,
    DocumentType,
    ImportKind,
    ImportStatus,
    Invoice,
    InvoiceSource,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
    PaymentSource,
)
from tests import factories as f

D = date(2025, 3, 10)


@pytest.fixture
def company(session: Session, clock: FrozenClock) -> Company:
    return f.company(session, clock)


def context(
    session: Session,
    clock: FrozenClock,
    company: Company,
    data: bytes,
    progress: list[tuple[int, int]] | None = None,
    *,
    filename: str | None = None,
    options: dict[str, Any] | None = None,
) -> ImportContext:
    imp = DataImport(
        id=new_id("imp"),
        company_id=company.id,
        kind=ImportKind.FEC,
        status=ImportStatus.RUNNING,
        filename=filename or f"{company.siren}FEC20251231.txt",
        content_sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        options=options or {},
        created_at=clock.now(),
    )
    session.add(imp)
    session.flush()
    ctx = ImportContext(
        session=session,
        clock=clock,
        company=company,
        data_import=imp,
        open_stream=lambda: io.BytesIO(data),
        size_bytes=len(data),
        options=options or {},
    )
    if progress is not None:
        ctx.progress = lambda done, total: progress.append((done, total))
    return ctx


def run(session: Session, clock: FrozenClock, company: Company, data: bytes) -> ImportOutcome:
    return import_fec(context(session, clock, company, data))


def refused(session: Session, clock: FrozenClock, company: Company, data: bytes) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        run(session, clock, company, data)
    return caught.value


def count(session: Session, model: type) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def sale(
    num: str,
    number: str,
    cents: int,
    *,
    aux: str = "C001",
    name: str = "Boulangerie Martin",
    day: date = D,
    lettering: str = "",
) -> FecEntry:
    net = cents * 5 // 6
    return FecEntry(
        "VT",
        num,
        day,
        number,
        (
            FecLine(
                "411000",
                "Clients",
                debit_cents=cents,
                aux_account_num=aux,
                aux_account_lib=name,
                label=f"Facture {number}",
                lettering=lettering,
                lettering_date=day if lettering else None,
            ),
            FecLine("706000", "Prestations", credit_cents=net, label=f"Facture {number}"),
            FecLine("445710", "TVA collectée", credit_cents=cents - net, label=f"TVA {number}"),
        ),
    )


def receipt(num: str, cents: int, *, aux: str = "C001", lettering: str = "", day: date = D) -> FecEntry:
    return FecEntry(
        "BQ",
        num,
        day,
        f"VIR-{num}",
        (
            FecLine("512000", "Banque", debit_cents=cents, label="Virement"),
            FecLine(
                "411000",
                "Clients",
                credit_cents=cents,
                aux_account_num=aux,
                aux_account_lib="Boulangerie Martin",
                label="Règlement",
                lettering=lettering,
                lettering_date=day if lettering else None,
            ),
        ),
    )


HEADER = (
    "JournalCode\tJournalLib\tEcritureNum\tEcritureDate\tCompteNum\tCompteLib\tCompAuxNum\tCompAuxLib\t"
    "PieceRef\tPieceDate\tEcritureLib\tDebit\tCredit\tEcritureLet\tDateLet\tValidDate\tMontantdevise\tIdevise"
)


def raw(*lines: str) -> bytes:
    """A FEC from tab-separated lines written by hand (header added)."""
    return ("\n".join((HEADER, *lines)) + "\n").encode()


def good(num: str = "VT1", debit: str = "120,00", credit: str = "120,00", day: str = "20250310") -> list[str]:
    return [
        f"VT\tVentes\t{num}\t{day}\t411000\tClients\tC001\tMartin\tF1\t{day}\tFacture F1"
        f"\t{debit}\t0,00\t\t\t{day}\t\t",
        f"VT\tVentes\t{num}\t{day}\t706000\tVentes\t\t\tF1\t{day}\tFacture F1\t0,00\t{credit}\t\t\t{day}\t\t",
    ]


def messages(error: ImportRefused) -> list[tuple[int | None, str]]:
    return [(i.line, i.message) for i in error.issues]


class TestHeader:
    def test_wrong_column_name_is_named(self, session: Session, clock: FrozenClock, company: Company) -> None:
        data = raw(*good()).replace(b"CompteLib", b"Libelle", 1)
        error = refused(session, clock, company, data)
        assert messages(error) == [(1, "header: column 6 is 'Libelle', expected 'CompteLib'")]

    def test_columns_out_of_order(self, session: Session, clock: FrozenClock, company: Company) -> None:
        data = raw(*good()).replace(b"Debit\tCredit", b"Credit\tDebit", 1)
        error = refused(session, clock, company, data)
        assert [m for _, m in messages(error)] == [
            "header: column 12 is 'Credit', expected 'Debit'",
            "header: column 13 is 'Debit', expected 'Credit'",
        ]

    def test_not_a_fec(self, session: Session, clock: FrozenClock, company: Company) -> None:
        error = refused(session, clock, company, b"date;amount\n2025-01-01;12\n")
        assert error.issues[0].line == 1 and "1 column(s) found" in error.issues[0].message

    def test_empty_file(self, session: Session, clock: FrozenClock, company: Company) -> None:
        error = refused(session, clock, company, b"")
        assert "empty" in error.issues[0].message

    def test_utf16_is_named(self, session: Session, clock: FrozenClock, company: Company) -> None:
        error = refused(session, clock, company, raw(*good()).decode().encode("utf-16"))
        assert messages(error) == [(1, "the file is in UTF-16: export the FEC in UTF-8 or ISO-8859-15")]

    def test_names_are_case_insensitive(self, session: Session, clock: FrozenClock, company: Company) -> None:
        data = raw(*good()).replace(b"Montantdevise", b"MontantDevise", 1)
        assert run(session, clock, company, data).counts["book_lines"] == 2


class TestLines:
    def test_every_error_with_its_line(self, session: Session, clock: FrozenClock, company: Company) -> None:
        no_piece = good("VT6")
        no_piece[0] = no_piece[0].replace("\tF1\t", "\t\t")
        lines = [
            *good("VT1"),
            *good("VT2", day="20250230"),  # no 30 February
            *good("VT3", debit="12,3x"),
            "VT\tVentes\tVT4\t20250310\t411000\tClients",  # 6 columns
            *good("VT5")[:1],  # alone: unbalanced
            *no_piece,
        ]
        error = refused(session, clock, company, raw(*lines))
        assert messages(error) == [
            (4, "EcritureDate '20250230' is not a date YYYYMMDD"),
            (4, "PieceDate '20250230' is not a date YYYYMMDD"),
            (4, "ValidDate '20250230' is not a date YYYYMMDD"),
            (5, "EcritureDate '20250230' is not a date YYYYMMDD"),
            (5, "PieceDate '20250230' is not a date YYYYMMDD"),
            (5, "ValidDate '20250230' is not a date YYYYMMDD"),
            (6, "Debit '12,3x' is not an amount"),
            (8, "6 column(s), expected 18"),
            (10, "PieceRef is required"),
            (9, "entry VT5 of journal VT is not balanced: debit 120.00, credit 0.00 (difference 120.00)"),
        ]
        assert error.issues[0].field == "EcritureDate"

    def test_unbalanced_entry_is_named(self, session: Session, clock: FrozenClock, company: Company) -> None:
        lines = [*good("VT1"), *good("VT2", credit="119,99")]
        error = refused(session, clock, company, raw(*lines))
        assert messages(error) == [
            (4, "entry VT2 of journal VT is not balanced: debit 120.00, credit 119.99 (difference 0.01)")
        ]

    def test_identifier_too_long_label_cut(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        long_label = "é" * 250
        lines = good()
        lines[1] = lines[1].replace("Facture F1", long_label)
        run(session, clock, company, raw(*lines))
        label = session.execute(select(BookLine.label).where(BookLine.line_no == 2)).scalar_one()
        assert label == "é" * 200
        lines[0] = lines[0].replace("\tC001\t", "\t" + "C" * 41 + "\t")
        error = refused(session, clock, company, raw(*[x.replace("VT1", "VT9") for x in lines]))
        assert messages(error) == [(2, f"CompAuxNum '{'C' * 41}' is longer than 40 characters")]

    @pytest.mark.parametrize(
        ("amount", "cents"),
        [
            ("120,00", 12000),
            ("120.00", 12000),
            ("120", 12000),
            ("120,5", 12050),
            ("0,05", 5),
            (",50", 50),
            ("-120,00", -12000),
            ("120,000", 12000),
        ],
    )
    def test_amount_forms(
        self, session: Session, clock: FrozenClock, company: Company, amount: str, cents: int
    ) -> None:
        run(session, clock, company, raw(*good(debit=amount, credit=amount)))
        stored = session.execute(
            select(BookLine.debit_cents, BookLine.credit_cents).order_by(BookLine.line_no)
        ).all()
        assert [tuple(r) for r in stored] == [(cents, 0), (0, cents)]

    @pytest.mark.parametrize("amount", ["1 200,00", "12,345", "1.200,00", "12e3", "", "--1", "١٢"])
    def test_not_amounts(self, session: Session, clock: FrozenClock, company: Company, amount: str) -> None:
        error = refused(session, clock, company, raw(*good(debit=amount)))
        assert error.issues[0].message == f"Debit '{amount}' is not an amount"

    def test_blank_lines_and_trailing_separator(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = ("\n".join([HEADER + "\t", *(x + "\t" for x in good()), "", ""]) + "\n").encode()
        assert run(session, clock, company, data).counts["book_lines"] == 2

    def test_stored_line(self, session: Session, clock: FrozenClock, company: Company) -> None:
        lines = good()
        lines[0] = lines[0].replace("\t\t\t20250310\t\t", "\tAB\t20250402\t20250310\t130,50\tUSD")
        lines[0] = lines[0].replace("Facture F1", "Facture F1 \\ backslash")
        run(session, clock, company, raw(*lines))
        first, second = session.execute(select(BookLine).order_by(BookLine.line_no)).scalars()
        assert (first.journal_code, first.journal_lib, first.entry_num, first.line_no) == (
            "VT",
            "Ventes",
            "VT1",
            1,
        )
        assert (first.entry_date, first.piece_date, first.validation_date) == (D, D, D)
        assert (first.account_num, first.account_lib, first.aux_account_num, first.aux_account_lib) == (
            "411000",
            "Clients",
            "C001",
            "Martin",
        )
        assert (first.piece_ref, first.label) == ("F1", "Facture F1 \\ backslash")
        assert (first.debit_cents, first.credit_cents, first.lettering, first.lettering_date) == (
            12000,
            0,
            "AB",
            date(2025, 4, 2),
        )
        assert (first.currency_amount_cents, first.currency) == (13050, "USD")
        assert (second.line_no, second.aux_account_num, second.aux_account_lib, second.lettering) == (
            2,
            None,
            None,
            None,
        )
        assert (second.lettering_date, second.currency_amount_cents, second.currency) == (None, None, None)

    def test_odd_characters_in_labels(self, session: Session, clock: FrozenClock, company: Company) -> None:
        """A tab in a pipe-separated file, a lone carriage return, quotes, backslashes."""
        name = 'Tab\there, CR\rthere, "quotes", \\N and \\'
        run(session, clock, company, write_fec([sale("VT1", "F-1", 120_00, name=name)], separator="|"))
        assert session.execute(select(Debtor.legal_name)).scalar_one() == name

    def test_entry_lines_apart_still_one_entry(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        a, b = good("VT1")
        c, d = good("VT2")
        outcome = run(session, clock, company, raw(a, c, d, b))
        assert outcome.counts["book_lines"] == 4
        rows = session.execute(select(BookLine.entry_num, BookLine.line_no, BookLine.account_num)).all()
        assert sorted(tuple(r) for r in rows) == [
            ("VT1", 1, "411000"),
            ("VT1", 2, "706000"),
            ("VT2", 1, "411000"),
            ("VT2", 2, "706000"),
        ]
        assert count(session, Invoice) == 1  # F1 of C001, twice the same piece: 240.00
        assert session.execute(select(Invoice.amount_cents)).scalar_one() == 24_000


class TestAllOrNothing:
    def test_a_late_error_keeps_nothing(self, session: Session, clock: FrozenClock, company: Company) -> None:
        data, _ = generate_year("PME", company.siren, invoice_count=60)
        bad = data.rstrip(b"\n").rsplit(b"\n", 1)
        data = bad[0] + b"\n" + bad[1].replace(b"\t2025", b"\t2O25", 1) + b"\n"
        error = refused(session, clock, company, data)
        assert error.issues[0].line == data.count(b"\n")
        for model in (BookLine, Invoice, Debtor, Payment):
            assert count(session, model) == 0

    def test_error_total_beyond_the_kept_list(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        lines = [x for n in range(150) for x in good(f"VT{n}", day="2025031")]
        error = refused(session, clock, company, raw(*lines))
        assert len(error.issues) == 100 and error.total == 900


class TestFormats:
    @pytest.mark.parametrize(
        "options",
        [
            {},
            {"separator": "|"},
            {"bom": True},
            {"encoding": "iso8859-15"},
            {"encoding": "cp1252"},
            {"decimal": "."},
            {"montant_sens": True},
            {"newline": "\r\n"},
            {"separator": "|", "encoding": "cp1252", "newline": "\r\n", "montant_sens": True},
        ],
    )
    def test_variants_give_the_same_books(
        self, session: Session, clock: FrozenClock, company: Company, options: dict[str, object]
    ) -> None:
        entries = [
            sale("VT1", "F-001", 120_00, name="Hôtel des Écrins Œuvre", lettering="A"),
            receipt("BQ1", 120_00, lettering="A"),
        ]
        outcome = run(session, clock, company, write_fec(entries, **options))  # type: ignore[arg-type]
        assert outcome.counts == {"book_lines": 5, "debtors": 1, "invoices": 1, "payments": 1}
        stored = session.execute(
            select(
                BookLine.entry_num,
                BookLine.line_no,
                BookLine.aux_account_lib,
                BookLine.label,
                BookLine.debit_cents,
                BookLine.credit_cents,
                BookLine.lettering,
            ).order_by(BookLine.entry_num, BookLine.line_no)
        ).all()
        assert [tuple(r) for r in stored] == [
            ("BQ1", 1, None, "Virement", 120_00, 0, None),
            ("BQ1", 2, "Boulangerie Martin", "Règlement", 0, 120_00, "A"),
            ("VT1", 1, "Hôtel des Écrins Œuvre", "Facture F-001", 120_00, 0, "A"),
            ("VT1", 2, None, "Facture F-001", 0, 100_00, None),
            ("VT1", 3, None, "TVA F-001", 0, 20_00, None),
        ]
        assert session.execute(select(Debtor.legal_name)).scalar_one() == "Hôtel des Écrins Œuvre"
        assert session.execute(select(Invoice.status)).scalar_one() is InvoiceStatus.PAID

    def test_iso_8859_15_accents_and_euro(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        entry = sale("VT1", "F-€1", 120_00, name="Cœur d'Étoile 5 €")
        run(session, clock, company, write_fec([entry], encoding="iso8859-15"))
        assert session.execute(select(Debtor.legal_name)).scalar_one() == "Cœur d'Étoile 5 €"
        assert session.execute(select(Invoice.number)).scalar_one() == "F-€1"

    def test_windows_1252_quotes(self, session: Session, clock: FrozenClock, company: Company) -> None:
        name = "L\u2019Atelier \u201cB\u0153uf\u201d"  # typographic quotes: bytes 0x92, 0x93, 0x94
        run(session, clock, company, write_fec([sale("VT1", "F-1", 120_00, name=name)], encoding="cp1252"))
        assert session.execute(select(Debtor.legal_name)).scalar_one() == name

    def test_undefined_windows_1252_byte(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = write_fec([sale("VT1", "F-1", 120_00, name="Ré\x81")], encoding="latin-1")
        error = refused(session, clock, company, data)
        assert error.issues[0].line == 2 and "neither UTF-8 nor Windows-1252" in error.issues[0].message

    @staticmethod
    def ascii_then_latin(block_bytes: int) -> list[FecEntry]:
        """Entries whose first non-ASCII character comes after ``block_bytes`` of file."""
        entries = [
            FecEntry(
                "OD",
                f"OD{n:06d}",
                D,
                f"P{n:06d}",
                journal_lib="Operations diverses",
                lines=(
                    FecLine("601000", "Achats", debit_cents=100 + n, label="Achat " + "x" * 60),
                    FecLine("512000", "Banque", credit_cents=100 + n, label="Paiement " + "x" * 60),
                ),
            )
            for n in range(block_bytes // 300 + 2_000)
        ]
        entries.append(sale("VT1", "F-1", 120_00, name="Épicerie Noël"))
        return entries

    def test_encoding_found_late_in_a_large_file(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        """The first non-ASCII byte comes after the first block: what was copied is undone
        and the file is read again as ISO-8859-15."""
        entries = self.ascii_then_latin(BLOCK_BYTES)
        data = write_fec(entries, encoding="iso8859-15")
        assert data.index(b"\xc9") > BLOCK_BYTES
        progress: list[tuple[int, int]] = []
        outcome = import_fec(context(session, clock, company, data, progress))
        assert outcome.counts["book_lines"] == len(entries) * 2 + 1
        assert count(session, BookLine) == outcome.counts["book_lines"]
        assert session.execute(select(Debtor.legal_name)).scalar_one() == "Épicerie Noël"
        assert progress[-1] == (len(data), len(data)) and len(progress) > 100

    def test_errors_reported_once_when_read_again(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        entries = self.ascii_then_latin(BLOCK_BYTES)
        data = write_fec(entries, encoding="iso8859-15").replace(b"\t1,00\t0,00\t", b"\t1,O0\t0,00\t", 1)
        error = refused(session, clock, company, data)
        assert messages(error) == [(2, "Debit '1,O0' is not an amount")]
        assert count(session, BookLine) == 0


def invoices_by_number(session: Session) -> dict[str, Invoice]:
    return {i.number: i for i in session.execute(select(Invoice)).scalars()}


class TestDerived:
    @pytest.fixture
    def year(self, company: Company) -> tuple[bytes, FecSummary]:
        return generate_year("PME SAS", company.siren, debtors=8, suppliers=4, invoice_count=150, seed=3)

    def test_invoices_debtors_payments_statuses(
        self, session: Session, clock: FrozenClock, company: Company, year: tuple[bytes, FecSummary]
    ) -> None:
        data, summary = year
        outcome = run(session, clock, company, data)
        docs = summary.documents
        assert outcome.counts == {
            "book_lines": summary.lines,
            "debtors": len({d.aux_account_num for d in docs}),
            "invoices": len(docs),
            "payments": summary.payments,
        }
        assert outcome.created == sum(outcome.counts.values())
        assert (outcome.updated, outcome.unchanged) == (0, 0)
        found = invoices_by_number(session)
        assert set(found) == {d.number for d in docs}
        statuses = {s.value for s in InvoiceStatus}
        for doc in docs:
            invoice = found[doc.number]
            assert invoice.kind.value == doc.kind
            assert invoice.document_type.value == doc.document_type
            assert invoice.amount_cents == doc.amount_cents, doc
            assert invoice.amount_paid_cents == doc.paid_cents, doc
            assert invoice.status.value == doc.status and doc.status in statuses, doc
            assert invoice.issue_date == doc.issue_date
            assert invoice.due_date == doc.issue_date + timedelta(days=30)
            assert invoice.due_date_estimated and invoice.source is InvoiceSource.FEC
            assert invoice.currency == "EUR" and invoice.import_id is not None
            assert re.match(ID_PATTERN, invoice.id)
        kinds = {d.status for d in docs}
        assert {"paid", "partially_paid", "open"} <= kinds
        assert any(d.document_type == "credit_note" for d in docs)
        assert any(d.kind == "payable" and d.status == "paid" for d in docs)
        debtors = {d.aux_account_num: d for d in session.execute(select(Debtor)).scalars()}
        assert {a: d.legal_name for a, d in debtors.items()} == {
            a: n for a, n in summary.counterparties.items() if a in debtors
        }
        assert all(d.payment_terms_days == 30 and re.match(ID_PATTERN, d.id) for d in debtors.values())
        payments = session.execute(select(Payment)).scalars().all()
        assert len(payments) == summary.payments
        assert all(
            p.source is PaymentSource.BOOKS and re.match(r"^[CF]\d{5}:[A-Z]{2,}$", p.source_ref)
            for p in payments
        )
        allocated = session.execute(select(func.sum(PaymentAllocation.amount_cents))).scalar_one()
        assert allocated == sum(d.paid_cents for d in docs) == sum(p.amount_cents for p in payments)

    def test_one_transfer_for_two_invoices(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        entries = [
            sale("VT1", "F-1", 120_00, lettering="AA"),
            sale("VT2", "F-2", 60_00, lettering="AA", day=D + timedelta(days=1)),
            sale("VT3", "F-3", 30_00),
            receipt("BQ1", 150_00, lettering="AA", day=D + timedelta(days=20)),  # F-2 in part
        ]
        run(session, clock, company, write_fec(entries))
        found = invoices_by_number(session)
        assert [(n, found[n].amount_paid_cents, found[n].status) for n in ("F-1", "F-2", "F-3")] == [
            ("F-1", 120_00, InvoiceStatus.PAID),
            ("F-2", 30_00, InvoiceStatus.PARTIALLY_PAID),
            ("F-3", 0, InvoiceStatus.OPEN),
        ]
        payment = session.execute(select(Payment)).scalar_one()
        assert (payment.source_ref, payment.amount_cents, payment.paid_on) == (
            "C001:AA",
            150_00,
            D + timedelta(days=20),
        )
        assert payment.payer_name == "Boulangerie Martin"

    def test_due_date_from_the_debtor_terms(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        known = Debtor(
            id=new_id("dbt"),
            company_id=company.id,
            aux_account_num="C001",
            legal_name="Martin SA",
            payment_terms_days=60,
            created_at=clock.now(),
        )
        session.add(known)
        session.flush()
        outcome = run(session, clock, company, write_fec([sale("VT1", "F-1", 120_00)]))
        assert outcome.counts["debtors"] == 0
        invoice = session.execute(select(Invoice)).scalar_one()
        assert invoice.debtor_id == known.id
        assert (invoice.due_date, invoice.due_date_estimated) == (D + timedelta(days=60), True)

    def test_account_without_auxiliary_and_credit_note(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        entry = FecEntry(
            "VE",
            "1",
            D,
            "AV-1",
            (
                FecLine("411DUPONT", "Client Dupont", credit_cents=60_00),
                FecLine("706000", "Ventes", debit_cents=50_00),
                FecLine("445710", "TVA", debit_cents=10_00),
            ),
        )
        run(session, clock, company, write_fec([entry]))
        invoice = session.execute(select(Invoice)).scalar_one()
        assert (invoice.number, invoice.amount_cents, invoice.document_type) == (
            "AV-1",
            60_00,
            DocumentType.CREDIT_NOTE,
        )
        assert session.execute(select(Debtor.aux_account_num, Debtor.legal_name)).one() == (
            "411DUPONT",
            "Client Dupont",
        )

    def test_bank_side_and_other_entries_are_not_invoices(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        opening = FecEntry(
            "AN",
            "1",
            D,
            "AN-1",
            (
                FecLine(
                    "411000", "Clients", debit_cents=80_00, aux_account_num="C001", aux_account_lib="Martin"
                ),
                FecLine("890000", "Bilan d'ouverture", credit_cents=80_00),
            ),
        )
        run(session, clock, company, write_fec([opening, receipt("BQ1", 50_00, lettering="AA")]))
        assert count(session, Invoice) == 0 and count(session, Payment) == 0 and count(session, Debtor) == 0


class TestAgain:
    def test_same_file_again_changes_nothing(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data, summary = generate_year("PME", company.siren, invoice_count=80, seed=5)
        first = run(session, clock, company, data)
        before = {
            i.id: (i.amount_paid_cents, i.status, i.updated_at)
            for i in session.execute(select(Invoice)).scalars()
        }
        again = run(session, clock, company, data)
        assert again.counts == {"book_lines": 0, "debtors": 0, "invoices": 0, "payments": 0}
        assert (again.created, again.updated) == (0, 0)
        assert again.unchanged == summary.lines + len(summary.documents) + summary.payments
        assert first.created == again.unchanged + first.counts["debtors"]
        after = {
            i.id: (i.amount_paid_cents, i.status, i.updated_at)
            for i in session.execute(select(Invoice)).scalars()
        }
        assert after == before
        assert count(session, BookLine) == summary.lines

    def test_later_export_letters_a_payment(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        run(session, clock, company, write_fec([sale("VT1", "F-1", 120_00)]))
        later = [sale("VT1", "F-1", 120_00, lettering="AA"), receipt("BQ1", 120_00, lettering="AA")]
        outcome = run(session, clock, company, write_fec(later))
        assert outcome.counts == {"book_lines": 2, "debtors": 0, "invoices": 0, "payments": 1}
        assert (outcome.updated, outcome.unchanged) == (1, 2 + 1)  # the 411 line's lettering; 2 lines, F-1
        invoice = session.execute(select(Invoice)).scalar_one()
        assert (invoice.status, invoice.amount_paid_cents) == (InvoiceStatus.PAID, 120_00)
        assert (
            session.execute(
                select(BookLine.lettering).where(BookLine.entry_num == "VT1", BookLine.line_no == 1)
            ).scalar_one()
            == "AA"
        )

    def test_changed_book_line_is_refused(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        run(session, clock, company, write_fec([sale("VT1", "F-1", 120_00)]))
        error = refused(session, clock, company, write_fec([sale("VT1", "F-1", 130_00)]))
        assert len(error.issues) == 3
        assert error.issues[0].line == 2
        assert error.issues[0].message.startswith(
            "line 1 of entry VT1 (journal VT, fiscal year closing 2025-12-31) was imported before"
        )
        assert count(session, BookLine) == 3

    def test_conflicting_invoice_amount_is_refused(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        debtor = Debtor(
            id=new_id("dbt"),
            company_id=company.id,
            aux_account_num="C001",
            legal_name="Martin",
            payment_terms_days=30,
            created_at=clock.now(),
        )
        session.add(debtor)
        session.flush()
        known = f.invoice(
            session,
            clock,
            company_id=company.id,
            debtor_id=debtor.id,
            number="F-1",
            amount_cents=100_00,
            issue_date=D,
        )
        error = refused(
            session, clock, company, write_fec([sale("VT1", "F-1", 120_00), sale("VT2", "F-2", 10_00)])
        )
        assert messages(error) == [
            (
                2,
                f"invoice F-1 ({known.id}) already exists with other facts: amount 100.00 EUR known, "
                "120.00 EUR in this file. Escompte never overwrites silently: correct the file or update "
                "the invoice explicitly.",
            )
        ]
        assert count(session, Invoice) == 1 and count(session, BookLine) == 0

    def test_same_invoice_from_elsewhere_is_unchanged(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        debtor = Debtor(
            id=new_id("dbt"),
            company_id=company.id,
            aux_account_num="C001",
            legal_name="Martin",
            payment_terms_days=30,
            created_at=clock.now(),
        )
        session.add(debtor)
        session.flush()
        known = f.invoice(
            session,
            clock,
            company_id=company.id,
            debtor_id=debtor.id,
            number="F-1",
            amount_cents=120_00,
            issue_date=D,
        )
        outcome = run(session, clock, company, write_fec([sale("VT1", "F-1", 120_00)]))
        assert outcome.counts["invoices"] == 0 and outcome.unchanged == 1
        assert session.execute(select(Invoice)).scalar_one().source is not InvoiceSource.FEC
        assert known.due_date_estimated is False


class TestNextYear:
    def test_invoice_of_last_year_paid_this_year(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        """Carried forward in the opening entries (AN) and lettered with this year's transfer."""
        run(session, clock, company, write_fec([sale("VT1", "F-1", 120_00, day=date(2024, 12, 20))]))
        opening = FecEntry(
            "AN",
            "AN1",
            date(2025, 1, 1),
            "F-1",
            (
                FecLine(
                    "411000",
                    "Clients",
                    debit_cents=120_00,
                    aux_account_num="C001",
                    lettering="AB",
                    aux_account_lib="Boulangerie Martin",
                ),
                FecLine("890000", "Bilan d'ouverture", credit_cents=120_00),
            ),
        )
        later = write_fec([opening, receipt("BQ1", 100_00, lettering="AB", day=date(2025, 1, 15))])
        outcome = run(session, clock, company, later)
        assert outcome.counts == {"book_lines": 4, "debtors": 0, "invoices": 0, "payments": 1}
        invoice = session.execute(select(Invoice)).scalar_one()
        assert (invoice.amount_paid_cents, invoice.status) == (100_00, InvoiceStatus.PARTIALLY_PAID)
        assert invoice.updated_at == clock.now()


class TestFiscalYears:
    def test_entry_numbers_restart_each_fiscal_year(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        """Most software numbers entries from 1 again each year: next year's entry 1 is
        another line, not a conflict with last year's."""
        last_year = write_fec([sale("1", "F-2024-1", 120_00, day=date(2024, 3, 1))])
        this_year = write_fec([sale("1", "F-2025-1", 240_00, day=date(2025, 3, 1))])
        first = import_fec(
            context(session, clock, company, last_year, filename=f"{company.siren}FEC20241231.txt")
        )
        second = import_fec(
            context(session, clock, company, this_year, filename=f"{company.siren}FEC20251231.txt")
        )
        assert first.counts["book_lines"] == second.counts["book_lines"] == 3
        assert second.counts["invoices"] == 1
        years = session.execute(
            select(BookLine.fiscal_year_end, func.count()).group_by(BookLine.fiscal_year_end)
        ).all()
        assert sorted(years) == [(date(2024, 12, 31), 3), (date(2025, 12, 31), 3)]
        # a month later, the same year exported again with more lettering: matched line for line
        again = write_fec([sale("1", "F-2025-1", 240_00, day=date(2025, 3, 1), lettering="AA")])
        outcome = import_fec(
            context(session, clock, company, again, filename=f"{company.siren}FEC20251231.txt")
        )
        assert outcome.counts["book_lines"] == 0 and outcome.updated == 1
        assert count(session, BookLine) == 6

    def test_without_the_legal_name_the_first_line_tells_the_year(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = write_fec([sale("1", "F-1", 120_00, day=date(2024, 11, 5))])
        import_fec(context(session, clock, company, data, filename="export-compta.txt"))
        assert set(session.execute(select(BookLine.fiscal_year_end)).scalars()) == {date(2024, 12, 31)}

    def test_option_names_the_closing_date(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = write_fec([sale("1", "F-1", 120_00, day=date(2024, 11, 5))])
        options = {"fiscal_year_end": "2025-06-30"}
        import_fec(
            context(
                session, clock, company, data, filename=f"{company.siren}FEC20241231.txt", options=options
            )
        )
        assert set(session.execute(select(BookLine.fiscal_year_end)).scalars()) == {date(2025, 6, 30)}

    @pytest.mark.parametrize("told", ["30/06/2025", "2025-02-30", 20250630, "2025-06-30T00:00"])
    def test_bad_option_is_refused(
        self, session: Session, clock: FrozenClock, company: Company, told: object
    ) -> None:
        data = write_fec([sale("1", "F-1", 120_00)])
        with pytest.raises(ImportRefused) as caught:
            import_fec(context(session, clock, company, data, options={"fiscal_year_end": told}))
        issue = caught.value.issues[0]
        assert issue.field == "options.fiscal_year_end"
        assert "closing date as YYYY-MM-DD" in issue.message
        assert count(session, BookLine) == 0


@pytest.mark.committed
class TestConcurrentImports:
    def test_same_file_twice_at_once(self, committed_engine: Engine, clock: FrozenClock) -> None:
        """The second import waits for the first (one FEC at a time per company), then finds
        every line known: nothing twice, no unique violation."""
        data, summary = generate_year("PME", "732829320", invoice_count=40, seed=11)
        with Session(committed_engine, expire_on_commit=False) as setup:
            company = f.company(setup, clock)
            setup.commit()
        first = Session(committed_engine, expire_on_commit=False)
        second = Session(committed_engine, expire_on_commit=False)
        outcomes: list[ImportOutcome] = []
        try:
            outcome = import_fec(context(first, clock, company, data))
            ctx = context(second, clock, company, data)
            second.commit()  # its import row, visible to nobody's harm
            waiting = threading.Thread(target=lambda: outcomes.append(import_fec(ctx)))
            waiting.start()
            waiting.join(timeout=1.0)
            assert waiting.is_alive(), "the second import must wait for the first"
            first.commit()
            waiting.join(timeout=30)
            assert not waiting.is_alive()
            second.commit()
        finally:
            first.close()
            second.close()
        assert outcome.counts["book_lines"] == summary.lines
        assert outcomes[0].counts == {"book_lines": 0, "debtors": 0, "invoices": 0, "payments": 0}
        with Session(committed_engine) as check:
            assert count(check, BookLine) == summary.lines
            assert count(check, Invoice) == len(summary.documents)


class TestThroughTheService:
    def test_stored_file_streams_back_while_copying(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        """The stored file is read from the database, on the connection COPY uses."""
        data = b"".join(synthetic_chunks(70_000, customers=50, suppliers=10))
        assert len(data) > BLOCK_BYTES
        imp = service.receive(
            session, clock, None, company_id=company.id, filename="x.txt", stream=io.BytesIO(data)
        )
        service.process(session, clock, imp)
        assert imp.status is ImportStatus.SUCCEEDED, imp.errors
        assert imp.counts["book_lines"] == data.count(b"\n") - 1 == count(session, BookLine)
        assert imp.counts["invoices"] > 1000 and imp.counts["payments"] > 1000
        assert imp.progress_done == len(data)


def test_short_path_and_full_check_agree() -> None:
    """The parser's short path (values seen before) gives what full checking gives."""
    data, _ = generate_year("PME", "732829320", invoice_count=60, seed=4)
    lines = data.decode().split("\n")[1:-1]
    lines += [x.replace("\t\t\t20250310\t\t", "\tAB\t20250402\t20250310\t130,50\tUSD") for x in good("VT9")]
    lines += good("VT10", debit="0,50", credit="0,50")

    def same(fields: list[str]) -> list[str | int]:  # "050" and "50" cents are one amount
        return [int(v) if i in (11, 12, 16) and v else v for i, v in enumerate(fields)]

    short = _Parser(IssueCollector(), staging=True, constants=(), fiscal_year_end=None, fallback_year=2025)
    short.header(HEADER)
    fed = [same(row.split("\t")[:18]) for row in short.feed(lines, clean=True).split("\n")[:-1]]
    full = _Parser(IssueCollector(), staging=True, constants=(), fiscal_year_end=None, fallback_year=2025)
    full.header(HEADER)
    checked = [full._checked(line, n, True) for n, line in enumerate(lines, start=2)]
    assert fed == [same(c[0]) for c in checked if c is not None]
    assert len(fed) == len(lines)


def test_sample_year_file() -> None:
    data, summary = generate_year("PME", "732829320", seed=9)
    assert data.startswith(b"JournalCode\tJournalLib\t")
    assert summary.filename == "732829320FEC20251231.txt"
    assert data.count(b"\n") == summary.lines + 1
