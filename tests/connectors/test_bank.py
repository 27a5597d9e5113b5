"""Bank statements: camt.053, OFX and CSV read right, stored once, refused whole."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.connectors.bank import accounts
from escompte.connectors.bank.accounts import BankDataError, BankLine, BankWriter, parse_amount, reported_iban
from escompte.connectors.bank.camt053 import import_camt053
from escompte.connectors.bank.csv import import_bank_csv
from escompte.connectors.bank.ofx import import_ofx
from escompte.connectors.base import ImportContext, ImportOutcome, ImportRefused
from escompte.connectors.samples.bank import (
    CAMT053_VERSIONS,
    SampleBalance,
    SampleEntry,
    SampleStatement,
    SampleTx,
    bank_csv,
    bank_csv_options,
    camt053_chunks,
    camt053_xml,
    ofx,
    sample_iban,
    synthetic_entries,
)
from escompte.ids import is_id, new_id
from escompte.models import (
    BankAccount,
    BankBalance,
    BankLineAlias,
    BankTransaction,
    Company,
    DataImport,
    ImportKind,
    ImportStatus,
    MatchStatus,
)
from tests import factories as f

IBAN = "FR7630006000011234567890189"
CLIENT_IBAN = "FR7630004000031234567890143"
SUPPLIER_IBAN = "FR7610107001011234567890129"
DAY = date(2026, 3, 2)

Handler = Callable[[ImportContext], ImportOutcome]


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture
def company(session: Session, clock: FrozenClock) -> Company:
    return f.company(session, clock, name="Trésorerie SAS")


def _ctx(
    session: Session,
    clock: FrozenClock,
    company: Company,
    data: bytes,
    kind: ImportKind,
    options: dict[str, Any] | None = None,
) -> ImportContext:
    data_import = DataImport(
        id=new_id("imp"),
        company_id=company.id,
        kind=kind,
        status=ImportStatus.RUNNING,
        filename=f"statement.{kind.value}",
        content_sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        options=options or {},
        created_count=0,
        updated_count=0,
        unchanged_count=0,
        counts={},
        error_count=0,
        errors=[],
        progress_done=0,
        progress_total=len(data),
        created_at=clock.now(),
    )
    session.add(data_import)
    session.flush()
    return ImportContext(
        session=session,
        clock=clock,
        company=company,
        data_import=data_import,
        open_stream=lambda: io.BytesIO(data),
        size_bytes=len(data),
        options=options or {},
    )


def _run(
    session: Session,
    clock: FrozenClock,
    company: Company,
    handler: Handler,
    data: bytes,
    kind: ImportKind,
    options: dict[str, Any] | None = None,
) -> ImportOutcome:
    """Run a handler as the import service does: in a savepoint, all or nothing."""
    ctx = _ctx(session, clock, company, data, kind, options)
    with session.begin_nested():
        return handler(ctx)


def _refused(
    session: Session,
    clock: FrozenClock,
    company: Company,
    handler: Handler,
    data: bytes,
    kind: ImportKind,
    options: dict[str, Any] | None = None,
) -> ImportRefused:
    with pytest.raises(ImportRefused) as refused:
        _run(session, clock, company, handler, data, kind, options)
    assert _stored(session, company) == (0, 0, 0), "a refused file stores nothing"
    return refused.value


def _stored(session: Session, company: Company) -> tuple[int, int, int]:
    accounts_n = session.scalar(select(func.count()).where(BankAccount.company_id == company.id))
    txs = session.scalar(select(func.count()).where(BankTransaction.company_id == company.id))
    balances = session.scalar(
        select(func.count())
        .select_from(BankBalance)
        .join(BankAccount, BankAccount.id == BankBalance.bank_account_id)
        .where(BankAccount.company_id == company.id)
    )
    return int(accounts_n or 0), int(txs or 0), int(balances or 0)


def _transactions(session: Session, company: Company) -> list[BankTransaction]:
    return list(
        session.execute(
            select(BankTransaction)
            .where(BankTransaction.company_id == company.id)
            .order_by(BankTransaction.id)
        ).scalars()
    )


def _camt(entries: list[SampleEntry], version: str = "001.02", **kwargs: Any) -> bytes:
    return camt053_xml(IBAN, entries, kwargs.pop("balances", ()), version, **kwargs)


CREDIT = SampleEntry(
    booking_date=DAY,
    value_date=date(2026, 3, 3),
    amount_cents=1_234_56,
    account_servicer_ref="BQ2026030200001",
    entry_ref="N1",
    counterparty_name="CLIENT DUPONT SA",
    counterparty_iban=CLIENT_IBAN,
    remittance="FACTURE F-2026-0042",
    structured_reference="RF18539007547034",
    end_to_end_id="E2E-42",
)
DEBIT = SampleEntry(
    booking_date=DAY,
    amount_cents=-89_90,
    account_servicer_ref="BQ2026030200002",
    bank_code="PMNT/IDDT/ESDD",
    counterparty_name="EDF",
    counterparty_iban=SUPPLIER_IBAN,
    remittance="PRLV SEPA EDF",
)


# --- shared rules ------------------------------------------------------------------------


class TestAmountsAndIds:
    def test_amounts_are_read_as_written(self) -> None:
        assert parse_amount("1234.56", "EUR") == 123456
        assert parse_amount("0.5", "EUR") == 50
        assert parse_amount("12.340", "EUR") == 1234
        assert parse_amount("-3.10", "EUR") == -310
        assert parse_amount("7", "JPY") == 7
        assert parse_amount("1.5", "KWD") == 1500
        for bad in ("12.345", "1e3", "12,5", "", "١٢", "12."):
            with pytest.raises(BankDataError):
                parse_amount(bad, "EUR")

    def test_bulk_ids_look_like_every_other_id_and_keep_the_file_order(self) -> None:
        block = accounts._IdBlock("btx")
        ids = [block.take() for _ in range(3000)]
        assert all(is_id(i, "btx") for i in ids)
        assert ids == sorted(ids) and len(set(ids)) == 3000
        assert ids[0][:14] <= new_id("btx")[:14]


# --- camt.053 ------------------------------------------------------------------------------


class TestCamt053:
    def test_credit_and_debit_read_right(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = _camt([CREDIT, DEBIT], account_name="Compte courant", bic="BNPAFRPP")
        outcome = _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert outcome.counts == {"bank_transactions": 2, "bank_balances": 0, "bank_accounts": 1}
        credit, debit = _transactions(session, company)
        assert is_id(credit.id, "btx")
        assert (credit.amount_cents, credit.currency, credit.booking_date, credit.value_date) == (
            123456,
            "EUR",
            DAY,
            date(2026, 3, 3),
        )
        assert (credit.counterparty_name, credit.counterparty_iban) == ("CLIENT DUPONT SA", CLIENT_IBAN)
        assert credit.remittance_info == "FACTURE F-2026-0042"
        assert credit.structured_reference == "RF18539007547034"
        assert credit.end_to_end_id == "E2E-42"
        assert credit.bank_code == "PMNT/RCDT/ESCT"
        assert (credit.external_id, credit.fingerprint) == ("BQ2026030200001", "camt:BQ2026030200001")
        assert credit.match_status is MatchStatus.UNMATCHED and credit.matched_cents == 0
        assert credit.import_id is not None and credit.created_at == clock.now()
        # a debit: negative, the creditor is the counterparty, not matched against invoices
        assert (debit.amount_cents, debit.counterparty_name, debit.counterparty_iban) == (
            -8990,
            "EDF",
            SUPPLIER_IBAN,
        )
        assert debit.match_status is MatchStatus.IGNORED
        assert debit.bank_code == "PMNT/IDDT/ESDD" and debit.end_to_end_id is None  # NOTPROVIDED
        account = session.get(BankAccount, credit.bank_account_id)
        assert account is not None and is_id(account.id, "bac")
        assert (account.iban, account.name, account.bic, account.currency) == (
            IBAN,
            "Compte courant",
            "BNPAFRPP",
            "EUR",
        )

    @pytest.mark.parametrize("version", CAMT053_VERSIONS)
    def test_every_version_reads_the_same(
        self, session: Session, clock: FrozenClock, company: Company, version: str
    ) -> None:
        batch = SampleEntry(
            booking_date=DAY,
            amount_cents=300_00,
            account_servicer_ref="BATCH-1",
            batch=(
                SampleTx(100_00, "CLIENT A", CLIENT_IBAN, "F-1", end_to_end_id="E-1"),
                SampleTx(200_00, "CLIENT B", None, "F-2", structured_reference="RF18000000000002"),
            ),
        )
        data = _camt([CREDIT, DEBIT, batch], version, bic="BNPAFRPP")
        _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        rows = [
            (
                t.amount_cents,
                t.counterparty_name,
                t.counterparty_iban,
                t.remittance_info,
                t.structured_reference,
                t.end_to_end_id,
                t.external_id,
            )
            for t in _transactions(session, company)
        ]
        assert rows == [
            (
                123456,
                "CLIENT DUPONT SA",
                CLIENT_IBAN,
                "FACTURE F-2026-0042",
                "RF18539007547034",
                "E2E-42",
                "BQ2026030200001",
            ),
            (-8990, "EDF", SUPPLIER_IBAN, "PRLV SEPA EDF", None, None, "BQ2026030200002"),
            (10000, "CLIENT A", CLIENT_IBAN, "F-1", None, "E-1", "BATCH-1/1"),
            (20000, "CLIENT B", None, "F-2", "RF18000000000002", None, "BATCH-1/2"),
        ]
        account = session.execute(
            select(BankAccount).where(BankAccount.company_id == company.id)
        ).scalar_one()
        assert account.bic == "BNPAFRPP"

    def test_batch_parts_with_their_own_reference(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        batch = SampleEntry(
            booking_date=DAY,
            amount_cents=-150_00,
            account_servicer_ref="SDD-BATCH",
            batch=(
                SampleTx(-50_00, "FOURNISSEUR A", SUPPLIER_IBAN, account_servicer_ref="SDD-1"),
                SampleTx(-100_00, "FOURNISSEUR B", account_servicer_ref="SDD-2"),
            ),
        )
        _run(session, clock, company, import_camt053, _camt([batch], "001.08"), ImportKind.CAMT053)
        rows = [(t.external_id, t.amount_cents, t.counterparty_name) for t in _transactions(session, company)]
        assert rows == [("SDD-1", -5000, "FOURNISSEUR A"), ("SDD-2", -10000, "FOURNISSEUR B")]

    def test_batch_parts_must_add_up(self, session: Session, clock: FrozenClock, company: Company) -> None:
        batch = SampleEntry(
            booking_date=DAY,
            amount_cents=300_00,
            account_servicer_ref="B",
            batch=(SampleTx(100_00), SampleTx(150_00)),
        )
        refused = _refused(
            session, clock, company, import_camt053, _camt([CREDIT, batch], "001.05"), ImportKind.CAMT053
        )
        assert refused.issues[0].path == "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/Amt"
        assert "add up to 250.00" in refused.issues[0].message

    def test_balances_with_sign_and_date(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        balances = [
            SampleBalance("OPBD", date(2026, 3, 1), -500_00),
            SampleBalance("CLBD", DAY, 1_234_56 - 89_90 - 500_00),
        ]
        data = _camt([CREDIT, DEBIT], "001.07", balances=balances)
        outcome = _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert outcome.counts["bank_balances"] == 2
        stored = session.execute(select(BankBalance).order_by(BankBalance.balance_date)).scalars().all()
        assert [(b.kind, b.balance_date, b.amount_cents, b.currency) for b in stored] == [
            ("OPBD", date(2026, 3, 1), -50000, "EUR"),
            ("CLBD", DAY, 64466, "EUR"),
        ]
        # the bank corrects a balance: the newer file wins, the rest is unchanged
        corrected = [balances[0], SampleBalance("CLBD", DAY, 64000)]
        again = _run(
            session,
            clock,
            company,
            import_camt053,
            _camt([CREDIT, DEBIT], balances=corrected),
            ImportKind.CAMT053,
        )
        assert (again.created, again.updated, again.unchanged) == (0, 1, 3)
        assert session.scalar(select(BankBalance.amount_cents).where(BankBalance.kind == "CLBD")) == 64000

    def test_reimport_and_overlap_change_nothing(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        first = _run(session, clock, company, import_camt053, _camt([CREDIT, DEBIT]), ImportKind.CAMT053)
        assert (first.created, first.unchanged) == (3, 0)  # two transactions and the account
        ids = [t.id for t in _transactions(session, company)]
        later = SampleEntry(booking_date=date(2026, 3, 5), amount_cents=10_00, account_servicer_ref="BQ3")
        again = _run(
            session,
            clock,
            company,
            import_camt053,
            _camt([CREDIT, DEBIT, later], "001.08"),
            ImportKind.CAMT053,
        )
        assert (again.created, again.unchanged, again.counts["bank_transactions"]) == (1, 2, 1)
        assert [t.id for t in _transactions(session, company)][:2] == ids

    def test_lines_without_bank_reference_are_fingerprinted(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        # two identical card payments the same day, no AcctSvcrRef: both are real
        card = SampleEntry(
            booking_date=DAY, amount_cents=-4_50, bank_code="PMNT/CCRD/POSD", remittance="CB CAFE"
        )
        data = _camt([card, card, CREDIT])
        outcome = _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert outcome.counts["bank_transactions"] == 3
        fingerprints = [t.fingerprint for t in _transactions(session, company) if t.external_id is None]
        assert len(fingerprints) == 2 and len(set(fingerprints)) == 2
        assert all(len(fp) == 64 for fp in fingerprints)
        again = _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert (again.created, again.unchanged) == (0, 3)

    def test_same_reference_twice_in_a_file(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        # the very same entry twice is harmless; two different entries with one id are not
        twice = _run(session, clock, company, import_camt053, _camt([CREDIT, CREDIT]), ImportKind.CAMT053)
        assert (twice.counts["bank_transactions"], twice.unchanged) == (1, 1)
        other = SampleEntry(
            booking_date=DAY, amount_cents=5_00, account_servicer_ref=CREDIT.account_servicer_ref
        )
        other_company = f.company(session, clock)
        refused = _refused(
            session, clock, other_company, import_camt053, _camt([CREDIT, other]), ImportKind.CAMT053
        )
        assert refused.issues[0].path == "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]"
        assert "used by two different transactions" in refused.issues[0].message

    def test_only_booked_entries(self, session: Session, clock: FrozenClock, company: Company) -> None:
        pending = SampleEntry(booking_date=DAY, amount_cents=99_00, status="PDNG", account_servicer_ref="P1")
        info = SampleEntry(booking_date=DAY, amount_cents=1_00, status="INFO", account_servicer_ref="I1")
        for version in ("001.02", "001.08"):
            outcome = _run(
                session,
                clock,
                company,
                import_camt053,
                _camt([pending, CREDIT, info], version),
                ImportKind.CAMT053,
            )
            assert outcome.counts["bank_entries_not_booked"] == 2
        assert [t.external_id for t in _transactions(session, company)] == [CREDIT.account_servicer_ref]

    def test_several_statements_and_accounts(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        second = sample_iban(42)
        statements = [
            SampleStatement(IBAN, [CREDIT], [SampleBalance("CLBD", DAY, 1_00)]),
            SampleStatement(second, [DEBIT], [SampleBalance("CLBD", DAY, 2_00)], statement_id="S2"),
        ]
        data = b"".join(camt053_chunks(statements, "001.04"))
        outcome = _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert outcome.counts == {"bank_transactions": 2, "bank_balances": 2, "bank_accounts": 2}
        ibans = {
            t.amount_cents: session.get(BankAccount, t.bank_account_id)
            for t in _transactions(session, company)
        }
        assert {k: a.iban for k, a in ibans.items() if a} == {123456: IBAN, -8990: second}

    def test_date_times_keep_their_calendar_day(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = _camt([CREDIT]).replace(
            b"<BookgDt><Dt>2026-03-02</Dt></BookgDt>",
            b"<BookgDt><DtTm>2026-03-02T00:30:00+01:00</DtTm></BookgDt>",
        )
        _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert _transactions(session, company)[0].booking_date == DAY

    def test_prefixed_namespace_and_remittance_fallbacks(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        bare = SampleEntry(
            booking_date=DAY,
            amount_cents=10_00,
            account_servicer_ref="R1",
            additional_info="VIR RECU DE CLIENT X",
        )
        data = re.sub(rb"<(/?)(?![?])", rb"<\1c:", _camt([bare])).replace(b"xmlns=", b"xmlns:c=")
        assert b"<c:Ntry>" in data
        _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert _transactions(session, company)[0].remittance_info == "VIR RECU DE CLIENT X"

    def test_errors_carry_path_and_line_and_nothing_is_stored(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = (
            _camt([CREDIT, DEBIT])
            .replace(b">89.90<", b">89,90<")
            .replace(b"<BookgDt><Dt>", b"<BookgDt><Dt>le ", 1)
        )
        refused = _refused(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        found = {(i.path, i.line is not None) for i in refused.issues}
        assert ("/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/Amt", True) in found
        assert any(p.startswith("/Document/BkToCstmrStmt/Stmt[1]/Ntry[1]/BookgDt") for p, _ in found), found
        assert refused.total == 3, [i.message for i in refused.issues]  # the date, so no booking date

    def test_a_counterparty_account_that_is_no_iban_does_not_refuse_the_statement(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        # the bank moved the money: its statement is kept, the account as it reported it
        bad_checksum = CLIENT_IBAN[:-1] + "0"
        data = _camt([CREDIT, DEBIT]).replace(CLIENT_IBAN.encode(), bad_checksum.encode())
        _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        credit = next(t for t in _transactions(session, company) if t.amount_cents > 0)
        assert credit.counterparty_iban == bad_checksum
        assert reported_iban("FR76 3000 4000 0312 3456 7890 143") == CLIENT_IBAN
        assert reported_iban("not an account") is None

    def test_missing_indicator_and_booking_date(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = (
            _camt([CREDIT, DEBIT])
            .replace(b"<CdtDbtInd>CRDT</CdtDbtInd><Sts>", b"<Sts>", 1)
            .replace(
                b"<BookgDt><Dt>2026-03-02</Dt></BookgDt><AcctSvcrRef>BQ2026030200002",
                b"<AcctSvcrRef>BQ2026030200002",
            )
        )
        refused = _refused(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert [i.path for i in refused.issues] == [
            "/Document/BkToCstmrStmt/Stmt[1]/Ntry[1]/CdtDbtInd",
            "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/BookgDt",
        ]

    def test_truncated_file(self, session: Session, clock: FrozenClock, company: Company) -> None:
        data = _camt([CREDIT, DEBIT])
        refused = _refused(
            session, clock, company, import_camt053, data[: len(data) - 200], ImportKind.CAMT053
        )
        assert "not well-formed" in refused.issues[0].message and refused.issues[0].line

    def test_doctype_refused_before_anything_is_expanded(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        bomb = (
            b'<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
            b"<Stmt><Acct><Id><IBAN>&b;</IBAN></Id></Acct></Stmt></BkToCstmrStmt></Document>"
        )
        refused = _refused(session, clock, company, import_camt053, bomb, ImportKind.CAMT053)
        assert "DOCTYPE" in refused.issues[0].message
        external = _camt([CREDIT]).replace(
            b"<Document", b'<!DOCTYPE Document SYSTEM "file:///etc/passwd">\n<Document', 1
        )
        assert (
            "DOCTYPE"
            in _refused(session, clock, company, import_camt053, external, ImportKind.CAMT053)
            .issues[0]
            .message
        )

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (
                b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"/>',
                "camt.054 document (version 001.08), not a camt.053",
            ),
            (
                b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.01"/>',
                "version 001.01 is not supported",
            ),
            (b"<Invoice><ID>1</ID></Invoice>", "root element is Invoice without a namespace"),
            (b"", "empty"),
            (b"not xml at all", "not well-formed"),
        ],
    )
    def test_other_documents_are_refused_clearly(
        self, session: Session, clock: FrozenClock, company: Company, data: bytes, expected: str
    ) -> None:
        refused = _refused(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert expected in refused.issues[0].message

    def test_statement_without_account(self, session: Session, clock: FrozenClock, company: Company) -> None:
        data = _camt([CREDIT]).replace(
            b"<Id><IBAN>" + IBAN.encode() + b"</IBAN></Id>", b"<Id><Othr><Id>123</Id></Othr></Id>"
        )
        refused = _refused(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert refused.issues[0].path == "/Document/BkToCstmrStmt/Stmt[1]/Acct/Id/IBAN"

    def test_large_file_streams(self, session: Session, clock: FrozenClock, company: Company) -> None:
        statement = SampleStatement(IBAN, list(synthetic_entries(3000)), [SampleBalance("CLBD", DAY, 1)])
        data = b"".join(camt053_chunks([statement], "001.08"))
        progress: list[int] = []
        ctx = _ctx(session, clock, company, data, ImportKind.CAMT053)
        ctx.progress = lambda done, total: progress.append(done)
        with session.begin_nested():
            outcome = import_camt053(ctx)
        batch_parts = 3000 // 50 * 2  # every 50th entry is a batch of 3
        assert outcome.counts["bank_transactions"] == 3000 + batch_parts
        assert progress and progress[-1] == len(data)
        credits = session.scalar(
            select(func.count()).where(
                BankTransaction.company_id == company.id,
                BankTransaction.match_status == MatchStatus.UNMATCHED,
            )
        )
        assert credits and credits > 1000

    def test_batches_stored_while_reading_and_undone_when_refused(
        self, session: Session, clock: FrozenClock, company: Company, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(accounts, "STAGE_FLUSH_ROWS", 100)  # many batches through the helper thread
        entries = list(synthetic_entries(1000))
        data = _camt(entries, "001.08")
        outcome = _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert outcome.counts["bank_transactions"] == 1040
        ids = [t.id for t in _transactions(session, company)]
        assert len(ids) == 1040 and ids == sorted(ids)
        again = _run(session, clock, company, import_camt053, data, ImportKind.CAMT053)
        assert (again.created, again.unchanged) == (0, 1040)
        # an error near the end of a file whose first batches are already inserted
        other = f.company(session, clock)
        broken = _camt([*entries[:900], SampleEntry(booking_date=date(2030, 1, 1), amount_cents=1)], "001.08")
        broken = broken.replace(b"<BookgDt><Dt>2030-01-01</Dt></BookgDt>", b"")
        refused = _refused(session, clock, other, import_camt053, broken, ImportKind.CAMT053)
        assert refused.issues[0].path == "/Document/BkToCstmrStmt/Stmt[1]/Ntry[901]/BookgDt"


# --- OFX ---------------------------------------------------------------------------------


OFX_IBAN = "FR7630004000011234567890173"  # BANKID 30004, BRANCHID 00001, ACCTID 12345678901


class TestOfx:
    @pytest.mark.parametrize("version", [102, 220])
    def test_statement_read_right(
        self, session: Session, clock: FrozenClock, company: Company, version: int
    ) -> None:
        data = ofx([CREDIT, DEBIT], ledger_balance=SampleBalance("CLBD", DAY, 1_000_00), version=version)
        outcome = _run(session, clock, company, import_ofx, data, ImportKind.OFX)
        assert outcome.counts == {"bank_transactions": 2, "bank_balances": 1, "bank_accounts": 1}
        credit, debit = _transactions(session, company)
        assert (
            credit.amount_cents,
            credit.booking_date,
            credit.counterparty_name,
            credit.remittance_info,
        ) == (
            123456,
            DAY,
            "CLIENT DUPONT SA",
            "FACTURE F-2026-0042",
        )
        assert (credit.external_id, credit.fingerprint, credit.bank_code) == (
            "BQ2026030200001",
            "ofx:BQ2026030200001",
            "CREDIT",
        )
        assert (debit.amount_cents, debit.match_status) == (-8990, MatchStatus.IGNORED)
        account = session.get(BankAccount, credit.bank_account_id)
        assert account is not None and account.iban == OFX_IBAN
        balance = session.execute(select(BankBalance)).scalar_one()
        assert (balance.kind, balance.balance_date, balance.amount_cents) == ("CLBD", DAY, 100000)
        again = _run(session, clock, company, import_ofx, data, ImportKind.OFX)
        assert (again.created, again.unchanged) == (0, 3)

    def test_account_with_rib_key_or_iban_or_option(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        with_key = ofx([CREDIT], account_id="1234567890173")
        _run(session, clock, company, import_ofx, with_key, ImportKind.OFX)
        as_iban = ofx([DEBIT], bank_id="X", branch_id="Y", account_id=OFX_IBAN)
        _run(session, clock, company, import_ofx, as_iban, ImportKind.OFX)
        foreign = ofx(
            [SampleEntry(booking_date=DAY, amount_cents=1, account_servicer_ref="Z")], bank_id="121000248"
        )
        _run(session, clock, company, import_ofx, foreign, ImportKind.OFX, {"iban": sample_iban(7)})
        ibans = sorted(
            {
                a
                for (a,) in session.execute(
                    select(BankAccount.iban).where(BankAccount.company_id == company.id)
                )
            }
        )
        assert ibans == sorted({OFX_IBAN, sample_iban(7)})

    def test_account_must_be_known(self, session: Session, clock: FrozenClock, company: Company) -> None:
        foreign = ofx([CREDIT], bank_id="121000248", account_id="987654")
        refused = _refused(session, clock, company, import_ofx, foreign, ImportKind.OFX)
        assert refused.issues[0].field == "options.iban" and "`iban` option" in refused.issues[0].message
        mismatch = _refused(
            session, clock, company, import_ofx, ofx([CREDIT]), ImportKind.OFX, {"iban": IBAN}
        )
        assert "not the IBAN given" in mismatch.issues[0].message

    def test_bad_amount_names_the_transaction(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = ofx([CREDIT, DEBIT]).replace(b"<TRNAMT>-89.90", b"<TRNAMT>-8x9.90")
        refused = _refused(session, clock, company, import_ofx, data, ImportKind.OFX)
        issue = refused.issues[0]
        assert issue.path == "/OFX/BANKMSGSRSV1/STMTTRNRS[1]/STMTRS/BANKTRANLIST/STMTTRN[2]"
        assert issue.field == "TRNAMT"

    def test_not_ofx(self, session: Session, clock: FrozenClock, company: Company) -> None:
        refused = _refused(
            session, clock, company, import_ofx, b"Date;Montant\n01/03/2026;12,00\n", ImportKind.OFX
        )
        assert "not a readable OFX" in refused.issues[0].message


# --- CSV ---------------------------------------------------------------------------------


def _csv_entries() -> list[SampleEntry]:
    return [
        SampleEntry(
            booking_date=DAY,
            value_date=date(2026, 3, 3),
            amount_cents=1_234_56,
            counterparty_name="CLIENT DUPONT SA",
            counterparty_iban=CLIENT_IBAN,
            remittance="VIR SEPA FACTURE F-2026-0042",
            account_servicer_ref="OP-1",
        ),
        SampleEntry(
            booking_date=DAY, amount_cents=-89_90, remittance="PRLV EDF", account_servicer_ref="OP-2"
        ),
    ]


class TestBankCsv:
    @pytest.mark.parametrize("split", [False, True])
    def test_export_read_right(
        self, session: Session, clock: FrozenClock, company: Company, split: bool
    ) -> None:
        data = bank_csv(_csv_entries(), split_debit_credit=split)
        options = bank_csv_options(IBAN, split_debit_credit=split)
        outcome = _run(session, clock, company, import_bank_csv, data, ImportKind.BANK_CSV, options)
        assert outcome.counts["bank_transactions"] == 2
        credit, debit = _transactions(session, company)
        assert (credit.amount_cents, credit.booking_date, credit.value_date) == (
            123456,
            DAY,
            date(2026, 3, 3),
        )
        assert (credit.counterparty_name, credit.counterparty_iban, credit.remittance_info) == (
            "CLIENT DUPONT SA",
            CLIENT_IBAN,
            "VIR SEPA FACTURE F-2026-0042",
        )
        assert (credit.fingerprint, debit.amount_cents, debit.match_status) == (
            "csv:OP-1",
            -8990,
            MatchStatus.IGNORED,
        )
        again = _run(session, clock, company, import_bank_csv, data, ImportKind.BANK_CSV, options)
        assert (again.created, again.unchanged) == (0, 2)

    def test_french_number_formats_and_encodings(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        text = (
            "Relevé du compte courant\n"
            "Date;Libellé;Montant\n"
            "02/03/2026;VIR REÇU CLIENT;1 234,56 €\n"
            "02/03/2026;PRLV;-1.234,50\n"
            "02/03/2026;FRAIS;-0,90\n"
            ";;\n"
        )
        options = {
            "mapping": {"booking_date": "Date", "label": "Libellé", "amount": "Montant"},
            "iban": IBAN,
            "encoding": "cp1252",
            "skip_lines": 1,
        }
        _run(session, clock, company, import_bank_csv, text.encode("cp1252"), ImportKind.BANK_CSV, options)
        rows = [(t.amount_cents, t.remittance_info) for t in _transactions(session, company)]
        assert rows == [(123456, "VIR REÇU CLIENT"), (-123450, "PRLV"), (-90, "FRAIS")]
        assert all(len(t.fingerprint) == 64 for t in _transactions(session, company))  # no reference column
        # UTF-8 with a byte-order mark, comma-separated, ISO dates, decimal point
        utf8 = '\ufeffdate,amount\n2026-03-02,"1,234.56"\n'.encode()
        other = {
            "mapping": {"booking_date": "date", "amount": "amount"},
            "iban": sample_iban(3),
            "delimiter": ",",
            "decimal": ".",
            "date_format": "%Y-%m-%d",
        }
        outcome = _run(session, clock, company, import_bank_csv, utf8, ImportKind.BANK_CSV, other)
        assert outcome.counts["bank_transactions"] == 1

    def test_mapping_checked_against_the_header(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        options = bank_csv_options(IBAN)
        options["mapping"] = {**options["mapping"], "amount": "Montant EUR", "label": "libellé"}
        refused = _refused(
            session, clock, company, import_bank_csv, bank_csv(_csv_entries()), ImportKind.BANK_CSV, options
        )
        by_field = {i.field: i for i in refused.issues}
        assert by_field["options.mapping.amount"].line == 1
        assert (
            "'Montant EUR' (mapping.amount) is not in the header"
            in by_field["options.mapping.amount"].message
        )
        assert "Did you mean 'Libellé'?" in by_field["options.mapping.label"].message

    def test_errors_name_line_and_column(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = bank_csv(_csv_entries()) + b"31/02/2026;;X;;FR00 1234;OP-3;12,5,0\r\n"
        refused = _refused(
            session, clock, company, import_bank_csv, data, ImportKind.BANK_CSV, bank_csv_options(IBAN)
        )
        issues = [(i.line, i.field) for i in refused.issues]
        assert issues == [(4, "Date"), (4, "Montant"), (4, "IBAN contrepartie")]
        assert refused.issues[0].message.startswith("Line 4, column 'Date': '31/02/2026' is not a date")

    def test_debit_and_credit_both_or_neither(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        data = "Date;Débit;Crédit\n02/03/2026;1,00;2,00\n02/03/2026;;\n".encode()
        options = {"mapping": {"booking_date": "Date", "debit": "Débit", "credit": "Crédit"}, "iban": IBAN}
        refused = _refused(session, clock, company, import_bank_csv, data, ImportKind.BANK_CSV, options)
        assert [(i.line, i.field) for i in refused.issues] == [(2, "Crédit"), (3, "Débit")]

    @pytest.mark.parametrize(
        ("options", "field", "expected"),
        [
            ({"mapping": {"booking_date": "Date", "amount": "Montant"}}, "options.iban", "Field required"),
            (
                {"mapping": {"booking_date": "Date", "montant": "Montant"}, "iban": IBAN},
                "options.mapping",
                "unknown",
            ),
            ({"mapping": {"booking_date": "Date"}, "iban": IBAN}, "options", "amount"),
            ({"mapping": {"amount": "Montant"}, "iban": IBAN}, "options", "booking_date is required"),
            ({"mapping": {"booking_date": "D", "amount": "M"}, "iban": "FR76 0000"}, "options.iban", "IBAN"),
            (
                {"mapping": {"booking_date": "D", "amount": "M"}, "iban": IBAN, "date_format": "%d"},
                "options.date_format",
                "day, month and year",
            ),
            (
                {"mapping": {"booking_date": "D", "amount": "M"}, "iban": IBAN, "encoding": "klingon"},
                "options.encoding",
                "unknown encoding",
            ),
        ],
    )
    def test_options_are_checked(
        self,
        session: Session,
        clock: FrozenClock,
        company: Company,
        options: dict[str, Any],
        field: str,
        expected: str,
    ) -> None:
        refused = _refused(
            session, clock, company, import_bank_csv, b"Date;Montant\n", ImportKind.BANK_CSV, options
        )
        assert refused.issues[0].field == field
        assert expected in refused.issues[0].message

    def test_wrong_encoding(self, session: Session, clock: FrozenClock, company: Company) -> None:
        data = "Date;Libellé;Montant\n02/03/2026;Reçu;1,00\n".encode("cp1252")
        options = {"mapping": {"booking_date": "Date", "amount": "Montant"}, "iban": IBAN}
        refused = _refused(session, clock, company, import_bank_csv, data, ImportKind.BANK_CSV, options)
        assert refused.issues[0].field == "options.encoding"


# --- the writer ------------------------------------------------------------------------------


class TestWriter:
    def test_zero_amounts_and_other_currency_refused(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        writer = BankWriter(session, clock.now(), company_id=company.id, source="test")
        account = writer.account(IBAN, currency="EUR")
        with pytest.raises(BankDataError, match="zero"):
            writer.add(account, BankLine(booking_date=DAY, amount_cents=0, currency="EUR"))
        with pytest.raises(BankDataError, match="held in EUR"):
            writer.account(IBAN, currency="USD")
        with pytest.raises(BankDataError, match="in USD, the account is held in EUR"):
            writer.add(account, BankLine(booking_date=DAY, amount_cents=1, currency="USD"))
        with pytest.raises(BankDataError, match="in USD, the account is held in EUR"):
            writer.add_balance(account, DAY, "CLBD", 1, "USD")
        with pytest.raises(BankDataError, match="not a valid IBAN"):
            writer.account("FR7630006000011234567890180", currency="EUR")


class TestSeveralSources:
    """The same account read from camt.053 and from OFX: each movement stored once."""

    def _entry(self, ref: str, cents: int, day: date = DAY, name: str = "CLIENT DUPONT SA") -> SampleEntry:
        return SampleEntry(
            booking_date=day, amount_cents=cents, account_servicer_ref=ref, counterparty_name=name
        )

    def _aliases(self, session: Session) -> list[tuple[str, str, str]]:
        rows = session.execute(
            select(
                BankLineAlias.source, BankLineAlias.fingerprint, BankLineAlias.bank_transaction_id
            ).order_by(BankLineAlias.fingerprint)
        )
        return [tuple(r) for r in rows]

    def test_ofx_after_camt_adds_only_what_the_statement_lacks(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        camt = camt053_xml(OFX_IBAN, [CREDIT, DEBIT], (), "001.08")
        first = _run(session, clock, company, import_camt053, camt, ImportKind.CAMT053)
        assert first.counts["bank_transactions"] == 2
        later = self._entry("OFX-3", 500_00, date(2026, 3, 3))
        # the OFX export names the same two movements with its own ids (FITID)
        data = ofx(
            [replace(CREDIT, account_servicer_ref="F1"), replace(DEBIT, account_servicer_ref="F2"), later]
        )
        outcome = _run(session, clock, company, import_ofx, data, ImportKind.OFX)
        assert outcome.counts == {
            "bank_transactions": 1,
            "bank_balances": 1,  # the export's ledger balance
            "bank_accounts": 0,
            "bank_transactions_known_from_other_sources": 2,
        }
        assert (outcome.created, outcome.unchanged) == (2, 2)
        credit, debit, new = _transactions(session, company)
        assert [t.source for t in (credit, debit, new)] == ["camt", "camt", "ofx"]
        assert (new.amount_cents, new.fingerprint) == (500_00, "ofx:OFX-3")
        assert self._aliases(session) == [("ofx", "ofx:F1", credit.id), ("ofx", "ofx:F2", debit.id)]
        # read again: nothing changes, and the aliases are not counted as new
        again = _run(session, clock, company, import_ofx, data, ImportKind.OFX)
        assert (again.created, again.counts["bank_transactions"]) == (0, 0)
        assert "bank_transactions_known_from_other_sources" not in again.counts
        assert len(_transactions(session, company)) == 3 and len(self._aliases(session)) == 2
        # and the camt.053 statement of the next day names the OFX's third line: known too
        next_day = camt053_xml(OFX_IBAN, [replace(later, account_servicer_ref="BQ3")], (), "001.08")
        last = _run(session, clock, company, import_camt053, next_day, ImportKind.CAMT053)
        assert last.counts.get("bank_transactions_known_from_other_sources") == 1
        assert len(_transactions(session, company)) == 3

    def test_identical_movements_pair_one_to_one(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        """Two 100 € credits on a day in the statement, three in the export: one is new."""
        camt = camt053_xml(OFX_IBAN, [self._entry("A1", 100_00), self._entry("A2", 100_00)], (), "001.02")
        _run(session, clock, company, import_camt053, camt, ImportKind.CAMT053)
        data = ofx([self._entry(f"O{n}", 100_00) for n in range(3)])
        outcome = _run(session, clock, company, import_ofx, data, ImportKind.OFX)
        assert (
            outcome.counts["bank_transactions"],
            outcome.counts["bank_transactions_known_from_other_sources"],
        ) == (1, 2)
        rows = _transactions(session, company)
        assert len(rows) == 3
        aliased = {a[2] for a in self._aliases(session)}
        assert aliased == {t.id for t in rows if t.source == "camt"}, (
            "each camt line reported once by the OFX"
        )

    def test_other_day_or_amount_is_another_movement(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        camt = camt053_xml(OFX_IBAN, [self._entry("A1", 100_00)], (), "001.02")
        _run(session, clock, company, import_camt053, camt, ImportKind.CAMT053)
        data = ofx(
            [
                self._entry("O1", 100_01),
                self._entry("O2", 100_00, date(2026, 3, 3)),
                self._entry("O3", -100_00),
            ]
        )
        outcome = _run(session, clock, company, import_ofx, data, ImportKind.OFX)
        assert outcome.counts["bank_transactions"] == 3
        assert "bank_transactions_known_from_other_sources" not in outcome.counts
        assert self._aliases(session) == []

    def test_same_source_is_never_paired_with_itself(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        """A second camt.053 line with the same day and amount is a second movement."""
        _run(session, clock, company, import_camt053, _camt([self._entry("A1", 100_00)]), ImportKind.CAMT053)
        _run(session, clock, company, import_camt053, _camt([self._entry("A2", 100_00)]), ImportKind.CAMT053)
        assert len(_transactions(session, company)) == 2 and self._aliases(session) == []

    def test_large_overlap_pairs_across_batches(
        self, session: Session, clock: FrozenClock, company: Company, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Batches stored while the file is read pair as one file would."""
        monkeypatch.setattr(accounts, "STAGE_FLUSH_ROWS", 7)
        entries = [self._entry(f"A{n}", 100_00 + n % 5, DAY + timedelta(days=n % 3)) for n in range(60)]
        _run(
            session,
            clock,
            company,
            import_camt053,
            camt053_xml(OFX_IBAN, entries, (), "001.02"),
            ImportKind.CAMT053,
        )
        export = [replace(e, account_servicer_ref=f"O{n}") for n, e in enumerate(entries)]
        export.append(self._entry("O-new", 42_00))
        outcome = _run(session, clock, company, import_ofx, ofx(export), ImportKind.OFX)
        assert outcome.counts["bank_transactions"] == 1
        assert outcome.counts["bank_transactions_known_from_other_sources"] == 60
        assert len(_transactions(session, company)) == 61
        assert len({a[2] for a in self._aliases(session)}) == 60

    def test_refused_file_leaves_no_alias(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        _run(
            session,
            clock,
            company,
            import_camt053,
            camt053_xml(OFX_IBAN, [CREDIT], (), "001.02"),
            ImportKind.CAMT053,
        )
        bad = ofx([replace(CREDIT, account_servicer_ref="F1"), DEBIT]).replace(
            b"<TRNAMT>-89.90", b"<TRNAMT>-8x9.90"
        )
        with pytest.raises(ImportRefused):
            _run(session, clock, company, import_ofx, bad, ImportKind.OFX)
        assert self._aliases(session) == [] and len(_transactions(session, company)) == 1

    def test_statement_completes_what_an_aggregator_left_out(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        """An unmatched pushed credit takes the statement's reference, IBAN and text; a
        key with two lines on a side, or a matched credit, is left as it is."""
        with BankWriter(session, clock.now(), company_id=company.id, source="agg") as writer:
            account = writer.account(OFX_IBAN, currency="EUR")
            for ref, cents in (
                ("agg-1", CREDIT.amount_cents),
                ("agg-2", 500_00),
                ("agg-3", 500_00),
                ("agg-4", 700_00),
            ):
                writer.add(
                    account,
                    BankLine(
                        booking_date=DAY,
                        amount_cents=cents,
                        currency="EUR",
                        external_id=ref,
                        remittance_info="VIR CLIENT",
                    ),
                )
            writer.finish()
        matched = next(t for t in _transactions(session, company) if t.external_id == "agg-4")
        matched.match_status, matched.matched_cents = MatchStatus.MATCHED, 700_00
        session.flush()
        statement = [
            CREDIT,
            replace(CREDIT, account_servicer_ref="B2", amount_cents=500_00, structured_reference="RF1"),
            replace(CREDIT, account_servicer_ref="B3", amount_cents=500_00, structured_reference="RF2"),
            replace(CREDIT, account_servicer_ref="B4", amount_cents=700_00, structured_reference="RF3"),
        ]
        outcome = _run(
            session,
            clock,
            company,
            import_camt053,
            camt053_xml(OFX_IBAN, statement, (), "001.08"),
            ImportKind.CAMT053,
        )
        assert outcome.counts["bank_transactions_known_from_other_sources"] == 4
        session.expire_all()
        rows = {t.external_id: t for t in _transactions(session, company)}
        assert len(rows) == 4
        first = rows["agg-1"]
        assert (
            first.structured_reference,
            first.counterparty_iban,
            first.end_to_end_id,
            first.counterparty_name,
        ) == (
            "RF18539007547034",
            CLIENT_IBAN,
            "E2E-42",
            "CLIENT DUPONT SA",
        )
        assert first.remittance_info == "VIR CLIENT | FACTURE F-2026-0042"
        assert [rows[r].structured_reference for r in ("agg-2", "agg-3", "agg-4")] == [None, None, None]
        assert rows["agg-4"].remittance_info == "VIR CLIENT"
