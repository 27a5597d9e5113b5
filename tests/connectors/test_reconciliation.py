"""Reconciliation of bank credits with open receivables, the back-office queue and manual
matching API, and the debtor payment behaviour computed from the matched history."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from stdnum.iso7064 import mod_97_10

from escompte.clock import FrozenClock
from escompte.connectors.behaviour import compute_debtor_behaviour
from escompte.connectors.payments import Allocation, record_payment, refresh_invoices
from escompte.connectors.reconciliation import (
    Credit,
    Matcher,
    NameIndex,
    OpenInvoice,
    find_sum,
    invoice_keys,
    reconcile,
)
from escompte.db import make_session_factory
from escompte.ids import new_id
from escompte.invoices import states
from escompte.models import (
    BankAccount,
    BankTransaction,
    Company,
    Debtor,
    DebtorBehaviour,
    Invoice,
    InvoiceStatus,
    MatchStatus,
    Payment,
    PaymentAllocation,
    PaymentSource,
)
from tests import factories as f
from tests.api.conftest import World

IBAN_DUPONT = "FR7630004000031234567890143"
IBAN_OTHER = "FR7610107001011234567890129"


# --- helpers -----------------------------------------------------------------------------


def _account(session: Session, clock: FrozenClock, company: Company) -> BankAccount:
    account = BankAccount(
        id=new_id("bac"),
        company_id=company.id,
        iban=f"FR76{abs(hash(company.id)) % 10**23:023d}",
        currency="EUR",
        created_at=clock.now(),
    )
    session.add(account)
    session.flush()
    return account


def _credit(
    session: Session,
    clock: FrozenClock,
    account: BankAccount,
    amount_cents: int,
    *,
    text: str | None = None,
    reference: str | None = None,
    name: str | None = None,
    iban: str | None = None,
    booked: date | None = None,
) -> BankTransaction:
    txn = BankTransaction(
        id=new_id("btx"),
        company_id=account.company_id,
        bank_account_id=account.id,
        fingerprint=hashlib.sha256(new_id("x").encode()).hexdigest(),
        source="camt",
        booking_date=booked or clock.today(),
        amount_cents=amount_cents,
        currency="EUR",
        counterparty_name=name,
        counterparty_iban=iban,
        remittance_info=text,
        structured_reference=reference,
        match_status=MatchStatus.UNMATCHED,
        matched_cents=0,
        created_at=clock.now(),
    )
    session.add(txn)
    session.flush()
    return txn


def _invoice(
    session: Session, clock: FrozenClock, debtor: Debtor, number: str, cents: int, *, due_in: int = 30
) -> Invoice:
    return f.invoice(
        session,
        clock,
        company_id=debtor.company_id,
        debtor_id=debtor.id,
        number=number,
        amount_cents=cents,
        days=due_in,
    )


def _allocations(session: Session, txn: BankTransaction) -> dict[str, int]:
    rows = session.execute(
        select(PaymentAllocation.invoice_id, PaymentAllocation.amount_cents)
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(Payment.source == PaymentSource.BANK, Payment.source_ref == txn.id)
    ).all()
    return {r[0]: r[1] for r in rows}


def _reload(session: Session, *objects: object) -> None:
    for o in objects:
        session.refresh(o)


@pytest.fixture
def company(session: Session, clock: FrozenClock) -> Company:
    return f.company(session, clock, name="Vendeur SAS")


@pytest.fixture
def dupont(session: Session, clock: FrozenClock, company: Company) -> Debtor:
    return f.debtor(session, clock, company_id=company.id, name="Boulangerie Dupont SARL")


@pytest.fixture
def martin(session: Session, clock: FrozenClock, company: Company) -> Debtor:
    return f.debtor(session, clock, company_id=company.id, name="Transports Martin et Fils")


@pytest.fixture
def account(session: Session, clock: FrozenClock, company: Company) -> BankAccount:
    return _account(session, clock, company)


# --- the rules without a database ---------------------------------------------------------


class TestRules:
    def test_invoice_keys_ignore_separators_case_and_prefix(self) -> None:
        assert invoice_keys("F-2026/00123") == ("F202600123", "202600123")
        assert invoice_keys("2026-0042") == ("20260042", "20260042")
        assert invoice_keys("F12") == (None, None)  # too short to be found in free text

    @pytest.mark.parametrize(
        "text",
        [
            "VIR SEPA FACTURE N° F-2026-00123 DUPONT",
            "fact f 2026 00123",
            "Facture n°F2026/00123",
            "PAIEMENT FACT2026-00123",
            "REGLEMENT 2026-00123 DU 02/03",
        ],
    )
    def test_number_found_in_remittance_text(self, text: str) -> None:
        invoice = OpenInvoice("inv_1", "dbt_1", "F-2026-00123", "EUR", date(2026, 3, 1), "open", 1000)
        other = OpenInvoice("inv_2", "dbt_1", "2026", "EUR", date(2026, 3, 1), "open", 1000)
        credit = Credit("btx_1", 1000, 0, "EUR", date(2026, 3, 2), texts=(text,))
        Matcher([invoice, other], {"dbt_1": "Dupont"}).run([credit])
        assert credit.allocations == {0: 1000}

    def test_names_tolerate_case_legal_forms_truncation_and_typos(self) -> None:
        names = NameIndex(
            {"d1": "Boulangerie Dupont SARL", "d2": "Transports Martin et Fils", "d3": "Dupond Conseil"}
        )
        assert names.find("BOULANGERIE DUPONT") == "d1"
        assert names.find("STE BOULANGERIE DUPONT PARIS 11") == "d1"  # the bank added words
        assert names.find("TRANSPORTS MARTIN ET FI") == "d2"  # truncated by the bank
        assert names.find("TRANSPORT MARTIN FILS") == "d2"
        assert names.find("M DURAND") is None

    def test_sums_of_two_or_three(self) -> None:
        assert find_sum([100, 250, 400, 50], 450) == (2, 3)
        assert find_sum([100, 250, 400], 650) == (1, 2)
        assert find_sum([100, 250, 400], 750) == (0, 1, 2)
        assert find_sum([100, 250, 400], 751) is None


# --- reconciliation against the database --------------------------------------------------


class TestByReference:
    def test_number_in_unstructured_text(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        invoice = _invoice(session, clock, dupont, "F-2026-00123", 120_000)
        txn = _credit(
            session, clock, account, 120_000, text="VIR SEPA RECU /FACTURE N° F 2026 00123", name="X"
        )
        stats = reconcile(session, clock, company.id)
        _reload(session, invoice, txn)
        assert invoice.status is InvoiceStatus.PAID and invoice.amount_paid_cents == 120_000
        assert txn.match_status is MatchStatus.MATCHED and txn.matched_cents == 120_000
        payment = session.execute(select(Payment).where(Payment.source_ref == txn.id)).scalar_one()
        assert (payment.source, payment.bank_transaction_id, payment.amount_cents) == (
            PaymentSource.BANK,
            txn.id,
            120_000,
        )
        assert _allocations(session, txn) == {invoice.id: 120_000}
        assert (stats.matched, stats.payments_created, stats.by_rule) == (1, 1, {"reference": 1})

    def test_structured_reference(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        invoice = _invoice(session, clock, dupont, "F-2026-00124", 80_000)
        rf = "RF" + mod_97_10.calc_check_digits("F202600124RF") + "F202600124"
        txn = _credit(session, clock, account, 80_000, text="VIREMENT", reference=rf)
        reconcile(session, clock, company.id)
        _reload(session, invoice, txn)
        assert invoice.status is InvoiceStatus.PAID
        assert txn.match_status is MatchStatus.MATCHED

    def test_partial_payment_leaves_invoice_partially_paid(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        invoice = _invoice(session, clock, dupont, "FA-7001", 120_000)
        txn = _credit(session, clock, account, 50_000, text="acompte facture FA-7001")
        reconcile(session, clock, company.id)
        _reload(session, invoice, txn)
        assert (invoice.status, invoice.amount_paid_cents) == (InvoiceStatus.PARTIALLY_PAID, 50_000)
        assert txn.match_status is MatchStatus.MATCHED

    def test_surplus_stays_unallocated(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        invoice = _invoice(session, clock, dupont, "FA-7002", 120_000)
        txn = _credit(session, clock, account, 130_000, text="FA-7002")
        stats = reconcile(session, clock, company.id)
        _reload(session, invoice, txn)
        assert invoice.status is InvoiceStatus.PAID and invoice.amount_paid_cents == 120_000
        assert (txn.match_status, txn.matched_cents) == (MatchStatus.PARTIALLY_MATCHED, 120_000)
        payment = session.execute(select(Payment).where(Payment.source_ref == txn.id)).scalar_one()
        assert payment.amount_cents == 130_000  # the whole credit; 100 € unexplained
        assert stats.partially_matched == 1

    def test_surplus_allocated_when_the_named_invoice_arrives_later(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        first = _invoice(session, clock, dupont, "FA-8001", 60_000)
        txn = _credit(session, clock, account, 100_000, text="FACTURES FA-8001 ET FA-8002")
        reconcile(session, clock, company.id)
        second = _invoice(session, clock, dupont, "FA-8002", 40_000)
        reconcile(session, clock, company.id)
        _reload(session, first, second, txn)
        assert first.status is InvoiceStatus.PAID and second.status is InvoiceStatus.PAID
        assert txn.match_status is MatchStatus.MATCHED
        assert session.execute(select(func.count()).select_from(Payment)).scalar_one() == 1

    def test_several_invoices_named_in_one_transfer_oldest_first(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        older = _invoice(session, clock, dupont, "2026-0101", 30_000, due_in=10)
        newer = _invoice(session, clock, dupont, "2026-0102", 50_000, due_in=40)
        txn = _credit(session, clock, account, 60_000, text="REGLT FACT 2026-0102 + 2026-0101")
        reconcile(session, clock, company.id)
        _reload(session, older, newer, txn)
        assert (older.status, newer.status) == (InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_PAID)
        assert _allocations(session, txn) == {older.id: 30_000, newer.id: 30_000}

    def test_same_number_at_two_debtors_settled_by_payer(
        self,
        session: Session,
        clock: FrozenClock,
        company: Company,
        dupont: Debtor,
        martin: Debtor,
        account: BankAccount,
    ) -> None:
        at_dupont = _invoice(session, clock, dupont, "F-5555", 10_000)
        at_martin = _invoice(session, clock, martin, "F-5555", 10_000)
        txn = _credit(session, clock, account, 10_000, text="F-5555", name="TRANSPORTS MARTIN ET FILS")
        reconcile(session, clock, company.id)
        assert _allocations(session, txn) == {at_martin.id: 10_000}
        _reload(session, at_dupont)
        assert at_dupont.status is InvoiceStatus.OPEN


class TestByAmountAndPayer:
    def test_exact_amount_and_payer_name(
        self,
        session: Session,
        clock: FrozenClock,
        company: Company,
        dupont: Debtor,
        martin: Debtor,
        account: BankAccount,
    ) -> None:
        _invoice(session, clock, martin, "M-1", 45_000)
        invoice = _invoice(session, clock, dupont, "D-1", 45_000)
        txn = _credit(session, clock, account, 45_000, text="VIREMENT MARS", name="BOULANGERIE DUPONT")
        stats = reconcile(session, clock, company.id)
        assert _allocations(session, txn) == {invoice.id: 45_000}
        assert stats.by_rule == {"amount_payer": 1}

    def test_payer_iban_learnt_from_an_earlier_match(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        first = _invoice(session, clock, dupont, "D-2001", 20_000)
        second = _invoice(session, clock, dupont, "D-2002", 35_000)
        _credit(session, clock, account, 20_000, text="D-2001", iban=IBAN_DUPONT)
        reconcile(session, clock, company.id)
        txn = _credit(session, clock, account, 35_000, text="PAIEMENT", iban=IBAN_DUPONT)
        reconcile(session, clock, company.id)
        _reload(session, first, second)
        assert _allocations(session, txn) == {second.id: 35_000}

    def test_iban_learnt_within_the_same_run(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        _invoice(session, clock, dupont, "D-3001", 20_000)
        second = _invoice(session, clock, dupont, "D-3002", 35_000)
        yesterday = clock.today() - timedelta(days=1)
        later = _credit(session, clock, account, 35_000, iban=IBAN_DUPONT, booked=yesterday)
        _credit(session, clock, account, 20_000, text="D-3001", iban=IBAN_DUPONT)
        reconcile(session, clock, company.id)
        assert _allocations(session, later) == {second.id: 35_000}

    def test_one_transfer_paying_several_invoices(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        a = _invoice(session, clock, dupont, "D-4001", 11_000, due_in=10)
        _invoice(session, clock, dupont, "D-4002", 22_000, due_in=20)
        c = _invoice(session, clock, dupont, "D-4003", 33_300, due_in=30)
        txn = _credit(session, clock, account, 44_300, name="Boulangerie Dupont")
        stats = reconcile(session, clock, company.id)
        assert _allocations(session, txn) == {a.id: 11_000, c.id: 33_300}
        assert stats.by_rule == {"several_invoices": 1}

    def test_name_shared_by_two_debtors_settled_by_the_amount(
        self, session: Session, clock: FrozenClock, company: Company, account: BankAccount
    ) -> None:
        sas = f.debtor(session, clock, company_id=company.id, name="Garage Moreau SAS")
        sarl = f.debtor(session, clock, company_id=company.id, name="Garage Moreau SARL")
        _invoice(session, clock, sas, "G-1001", 10_000)
        fits_one = _invoice(session, clock, sarl, "G-1002", 20_000)
        _invoice(session, clock, sas, "G-1003", 30_000)
        _invoice(session, clock, sarl, "G-1004", 30_000)
        settled = _credit(session, clock, account, 20_000, name="GARAGE MOREAU")
        ambiguous = _credit(session, clock, account, 30_000, name="GARAGE MOREAU")
        reconcile(session, clock, company.id)
        assert _allocations(session, settled) == {fits_one.id: 20_000}
        assert _allocations(session, ambiguous) == {}

    def test_amount_without_a_known_payer_stays_unmatched(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        invoice = _invoice(session, clock, dupont, "D-5001", 77_700)
        txn = _credit(
            session, clock, account, 77_700, text="VIREMENT", name="SOCIETE INCONNUE", iban=IBAN_OTHER
        )
        stats = reconcile(session, clock, company.id)
        _reload(session, invoice, txn)
        assert invoice.status is InvoiceStatus.OPEN
        assert txn.match_status is MatchStatus.UNMATCHED
        assert stats.unmatched == 1

    def test_disputed_invoice_is_paid_only_when_named(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        invoice = _invoice(session, clock, dupont, "D-6001", 10_000)
        states.transition_to(session, invoice, InvoiceStatus.DISPUTED, clock.now())
        by_amount = _credit(session, clock, account, 10_000, name="BOULANGERIE DUPONT")
        reconcile(session, clock, company.id)
        assert _allocations(session, by_amount) == {}
        named = _credit(session, clock, account, 10_000, text="D-6001")
        reconcile(session, clock, company.id)
        _reload(session, invoice)
        assert _allocations(session, named) == {invoice.id: 10_000}
        assert (invoice.status, invoice.amount_paid_cents) == (InvoiceStatus.DISPUTED, 10_000)


class TestSafety:
    def test_no_matching_across_companies(
        self, session: Session, clock: FrozenClock, company: Company, account: BankAccount
    ) -> None:
        other = f.company(session, clock, name="Autre SAS")
        elsewhere = f.debtor(session, clock, company_id=other.id, name="Boulangerie Dupont SARL")
        foreign = _invoice(session, clock, elsewhere, "X-9001", 10_000)
        txn = _credit(session, clock, account, 10_000, text="X-9001", name="BOULANGERIE DUPONT")
        reconcile(session, clock, company.id)
        reconcile(session, clock, other.id)
        _reload(session, foreign, txn)
        assert foreign.status is InvoiceStatus.OPEN
        assert txn.match_status is MatchStatus.UNMATCHED

    def test_never_more_than_the_amount_due(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        invoice = _invoice(session, clock, dupont, "D-7001", 120_000)
        first = _credit(
            session, clock, account, 100_000, text="D-7001", booked=clock.today() - timedelta(days=1)
        )
        second = _credit(session, clock, account, 100_000, text="D-7001")
        reconcile(session, clock, company.id)
        _reload(session, invoice, first, second)
        assert invoice.amount_paid_cents == 120_000
        assert (first.match_status, first.matched_cents) == (MatchStatus.MATCHED, 100_000)
        assert (second.match_status, second.matched_cents) == (MatchStatus.PARTIALLY_MATCHED, 20_000)

    def test_running_twice_changes_nothing(
        self,
        session: Session,
        clock: FrozenClock,
        company: Company,
        dupont: Debtor,
        martin: Debtor,
        account: BankAccount,
    ) -> None:
        _invoice(session, clock, dupont, "D-8001", 10_000)
        _invoice(session, clock, dupont, "D-8002", 20_000)
        _invoice(session, clock, martin, "M-8001", 30_000)
        _credit(session, clock, account, 10_000, text="D-8001", iban=IBAN_DUPONT)
        _credit(session, clock, account, 25_000, text="D-8002")
        _credit(session, clock, account, 30_000, name="TRANSPORTS MARTIN")
        _credit(session, clock, account, 99_999, text="INTERETS CREDITEURS")

        def snapshot() -> tuple[object, ...]:
            return (
                sorted(session.execute(select(Invoice.id, Invoice.status, Invoice.amount_paid_cents)).all()),
                sorted(
                    session.execute(
                        select(
                            BankTransaction.id, BankTransaction.match_status, BankTransaction.matched_cents
                        )
                    ).all()
                ),
                sorted(
                    session.execute(
                        select(PaymentAllocation.invoice_id, PaymentAllocation.amount_cents)
                    ).all()
                ),
                session.execute(select(func.count()).select_from(Payment)).scalar_one(),
            )

        first = reconcile(session, clock, company.id)
        before = snapshot()
        again = reconcile(session, clock, company.id)
        session.expire_all()
        assert snapshot() == before
        assert (first.payments_created, first.matched, first.partially_matched, first.unmatched) == (
            3,
            2,
            1,
            1,
        )
        assert (again.payments_created, again.allocations_created, again.invoices_updated) == (0, 0, 0)

    def test_debits_and_other_transactions_are_left_alone(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        _invoice(session, clock, dupont, "D-9001", 10_000)
        debit = _credit(session, clock, account, -10_000, text="D-9001")
        chosen = _credit(session, clock, account, 10_000, text="D-9001")
        other = _credit(session, clock, account, 10_000, text="D-9001")
        stats = reconcile(session, clock, company.id, transaction_ids=[chosen.id, debit.id])
        _reload(session, debit, chosen, other)
        assert stats.credits_examined == 1
        assert (debit.match_status, chosen.match_status, other.match_status) == (
            MatchStatus.UNMATCHED,
            MatchStatus.MATCHED,
            MatchStatus.UNMATCHED,
        )


class TestCashedByTheirPlatform:
    """An e-invoicing "cashed" status recorded the money before the bank statement came."""

    def _cashed(self, session: Session, clock: FrozenClock, invoice: Invoice, on: date) -> Payment:
        payment = record_payment(
            session,
            clock.now(),
            company_id=invoice.company_id,
            source=PaymentSource.LIFECYCLE,
            source_ref=f"MSG-CASH#{invoice.id}",
            amount_cents=invoice.amount_cents,
            currency="EUR",
            paid_on=on,
            allocations=[Allocation(invoice.id, invoice.amount_cents)],
        )
        assert payment is not None
        refresh_invoices(session, [invoice.id], clock.now())
        return payment

    def test_the_credit_naming_the_invoice_is_that_money(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        invoice = _invoice(session, clock, dupont, "D-9100", 48_000)
        cashed = self._cashed(session, clock, invoice, clock.today() - timedelta(days=2))
        txn = _credit(session, clock, account, 48_000, text="REGLEMENT FACTURE D 9100")
        stats = reconcile(session, clock, company.id)
        assert (stats.cashed, stats.payments_created) == (1, 0)
        _reload(session, invoice, txn, cashed)
        assert (txn.match_status, txn.matched_cents) == (MatchStatus.MATCHED, 48_000)
        assert cashed.bank_transaction_id == txn.id
        assert (invoice.status, invoice.amount_paid_cents) == (InvoiceStatus.PAID, 48_000)
        assert session.execute(select(func.count()).select_from(Payment)).scalar_one() == 1
        assert reconcile(session, clock, company.id).cashed == 0  # again: nothing changes

    @pytest.mark.parametrize(
        ("cents", "text", "days_apart"),
        [(48_000, None, 0), (47_000, "D-9100", 0), (48_000, "D-9100", 9), (48_000, "D-9101", 0)],
        ids=["amount-only", "other-amount", "too-far", "other-invoice"],
    )
    def test_anything_less_stays_in_the_queue(
        self,
        session: Session,
        clock: FrozenClock,
        company: Company,
        dupont: Debtor,
        account: BankAccount,
        cents: int,
        text: str | None,
        days_apart: int,
    ) -> None:
        invoice = _invoice(session, clock, dupont, "D-9100", 48_000)
        cashed = self._cashed(session, clock, invoice, clock.today() - timedelta(days=days_apart))
        txn = _credit(session, clock, account, cents, text=text)
        assert reconcile(session, clock, company.id).cashed == 0
        _reload(session, txn, cashed)
        assert txn.match_status is MatchStatus.UNMATCHED
        assert cashed.bank_transaction_id is None


class TestConcurrency:
    def test_runs_for_one_company_queue_up_runs_for_two_companies_proceed(
        self, committed_engine: Engine, clock: FrozenClock
    ) -> None:
        factory = make_session_factory(committed_engine)
        companies: list[str] = []
        with factory() as s, s.begin():
            for name in ("Alpha SAS", "Beta SAS"):
                seller = f.company(s, clock, name=name)
                debtor = f.debtor(s, clock, company_id=seller.id, name=f"Client de {name}")
                account = _account(s, clock, seller)
                for n in range(40):
                    invoice = _invoice(s, clock, debtor, f"C-{n:05d}", 1_000 + n)
                    _credit(s, clock, account, invoice.amount_cents, text=f"FACTURE {invoice.number}")
                companies.append(seller.id)
        barrier = threading.Barrier(4)
        created: list[tuple[str, int]] = []
        lock = threading.Lock()

        def run(company_id: str) -> None:
            with factory() as s:
                barrier.wait(10)
                stats = reconcile(s, clock, company_id)
                s.commit()
            with lock:
                created.append((company_id, stats.allocations_created))

        threads = [threading.Thread(target=run, args=(c,)) for c in companies * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for company_id in companies:
            assert sorted(n for c, n in created if c == company_id) == [0, 40]  # one run did it all
        with factory() as s:
            paid = s.execute(select(Invoice.status, func.count()).group_by(Invoice.status)).all()
            assert paid == [(InvoiceStatus.PAID, 80)]
            assert s.execute(select(func.count()).select_from(PaymentAllocation)).scalar_one() == 80
            assert s.execute(select(func.count()).select_from(Payment)).scalar_one() == 80


# --- behaviour ------------------------------------------------------------------------------


class TestBehaviour:
    def test_figures_of_a_small_known_history(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor
    ) -> None:
        today = clock.today()

        def paid(number: str, due: date, paid_on: date, cents: int = 10_000) -> None:
            invoice = f.invoice(
                session,
                clock,
                company_id=company.id,
                debtor_id=dupont.id,
                number=number,
                amount_cents=cents,
                issue_date=due - timedelta(days=30),
                days=30,
            )
            # paid in two parts: the latest payment dates the invoice
            for part, on in ((cents // 2, paid_on - timedelta(days=5)), (cents - cents // 2, paid_on)):
                record_payment(
                    session,
                    clock.now(),
                    company_id=company.id,
                    source=PaymentSource.API,
                    source_ref=f"{number}-{on}",
                    amount_cents=part,
                    currency="EUR",
                    paid_on=on,
                    allocations=[Allocation(invoice.id, part)],
                )
            refresh_invoices(session, [invoice.id], clock.now())

        base = today - timedelta(days=120)
        paid("H-1", base, base - timedelta(days=3))  # early: 0 days late
        paid("H-2", base, base + timedelta(days=10))
        paid("H-3", base, base + timedelta(days=30))
        f.invoice(
            session,
            clock,
            company_id=company.id,
            debtor_id=dupont.id,
            number="H-4",
            amount_cents=50_000,
            issue_date=today - timedelta(days=60),
            days=30,
        )
        f.invoice(
            session,
            clock,
            company_id=company.id,
            debtor_id=dupont.id,
            number="H-5",
            amount_cents=70_000,
            issue_date=today,
            days=30,
        )

        assert compute_debtor_behaviour(session, clock, company.id) == 1
        b = session.get(DebtorBehaviour, dupont.id)
        assert b is not None
        session.refresh(b)
        assert b.paid_invoice_count == 3
        assert b.avg_days_late == Decimal("13.33")
        assert b.p90_days_late == Decimal("30.00")
        assert b.share_paid_late == Decimal("0.6667")
        assert (b.unpaid_count, b.unpaid_overdue_cents) == (1, 50_000)
        assert b.computed_at == clock.now()

    def test_reconciliation_refreshes_the_debtors_it_touched(
        self, session: Session, clock: FrozenClock, company: Company, dupont: Debtor, account: BankAccount
    ) -> None:
        _invoice(session, clock, dupont, "D-10001", 10_000, due_in=0)
        clock.advance(timedelta(days=4))
        _credit(session, clock, account, 10_000, text="D-10001")
        reconcile(session, clock, company.id)
        b = session.get(DebtorBehaviour, dupont.id)
        assert b is not None
        assert (b.paid_invoice_count, b.avg_days_late, b.share_paid_late) == (
            1,
            Decimal("4.00"),
            Decimal("1.0000"),
        )


# --- API -------------------------------------------------------------------------------------


@pytest.fixture
def api(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _body(*allocations: tuple[str, int]) -> dict[str, object]:
    return {
        "allocations": [{"invoice": i, "amount": {"amount": a, "currency": "EUR"}} for i, a in allocations]
    }


class TestQueueApi:
    def test_lists_open_credits_of_visible_companies(
        self, api: TestClient, session: Session, clock: FrozenClock, world: World
    ) -> None:
        acc_a, acc_b, acc_c = (_account(session, clock, t.company) for t in (world.a, world.b, world.c))
        a1 = _credit(session, clock, acc_a, 1_000, text="???")
        a2 = _credit(session, clock, acc_a, 2_000)
        a2.match_status, a2.matched_cents = MatchStatus.PARTIALLY_MATCHED, 500
        done = _credit(session, clock, acc_a, 3_000)
        done.match_status, done.matched_cents = MatchStatus.MATCHED, 3_000
        _credit(session, clock, acc_a, -4_000)
        b1 = _credit(session, clock, acc_b, 5_000)
        c1 = _credit(session, clock, acc_c, 6_000)
        session.commit()

        def ids(headers: dict[str, str], **params: object) -> list[str]:
            r = api.get("/v1/reconciliation/unmatched", params=params, headers=headers)
            assert r.status_code == 200, r.text
            return [t["id"] for t in r.json()["data"]]

        newest_first = sorted([a1.id, a2.id], reverse=True)
        assert ids(world.a.headers) == newest_first
        assert ids(f.auth(world.partner1_key)) == sorted([a1.id, a2.id, b1.id], reverse=True)
        assert ids(f.auth(world.partner1_key), company=world.b.company.id) == [b1.id]
        assert ids(f.auth(world.partner2_key), company=world.a.company.id) == []
        assert set(ids(f.auth(world.admin_key))) >= {a1.id, a2.id, b1.id, c1.id}
        page = api.get("/v1/reconciliation/unmatched", params={"limit": 1}, headers=world.a.headers).json()
        assert page["has_more"] is True and [t["id"] for t in page["data"]] == newest_first[:1]
        assert ids(world.a.headers, limit=1, starting_after=newest_first[0]) == newest_first[1:]
        shown = {t["id"]: t for t in page["data"]}
        if a2.id in shown:
            assert shown[a2.id]["remaining"] == {"amount": 1_500, "currency": "EUR"}

    def test_run_for_a_company(
        self, api: TestClient, session: Session, clock: FrozenClock, world: World
    ) -> None:
        account = _account(session, clock, world.a.company)
        _credit(session, clock, account, world.a.invoice.amount_cents, text=f"FACT {world.a.invoice.number}")
        session.commit()
        r = api.post(f"/v1/companies/{world.a.company.id}/reconciliation", headers=world.a.headers)
        assert r.status_code == 200, r.text
        assert r.json()["matched"] == 1
        assert r.json()["allocated"] == [{"amount": world.a.invoice.amount_cents, "currency": "EUR"}]
        r = api.post(f"/v1/companies/{world.a.company.id}/reconciliation", headers=world.c.headers)
        assert r.status_code == 404


class TestManualMatchApi:
    @pytest.fixture
    def credit(self, session: Session, clock: FrozenClock, world: World) -> BankTransaction:
        txn = _credit(session, clock, _account(session, clock, world.a.company), 1_500_000, text="???")
        session.commit()
        return txn

    def test_partial_then_the_rest(
        self, api: TestClient, session: Session, clock: FrozenClock, world: World, credit: BankTransaction
    ) -> None:
        second = f.invoice(
            session, clock, company_id=world.a.company.id, debtor_id=world.a.debtor.id, amount_cents=300_000
        )
        session.commit()
        url = f"/v1/bank-transactions/{credit.id}/match"
        r = api.post(url, json=_body((world.a.invoice.id, 1_000_000)), headers=world.a.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["match_status"], body["remaining"]["amount"]) == ("partially_matched", 500_000)
        r = api.post(
            url, json=_body((world.a.invoice.id, 200_000), (second.id, 300_000)), headers=world.a.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["match_status"] == "matched"
        assert {a["invoice"]: a["amount"]["amount"] for a in r.json()["allocations"]} == {
            world.a.invoice.id: 1_200_000,
            second.id: 300_000,
        }
        invoice = api.get(f"/v1/invoices/{world.a.invoice.id}", headers=world.a.headers).json()
        assert invoice["status"] == "paid"
        r = api.post(url, json=_body((second.id, 1)), headers=world.a.headers)
        assert r.status_code == 409

    def test_validation(
        self, api: TestClient, session: Session, clock: FrozenClock, world: World, credit: BankTransaction
    ) -> None:
        url = f"/v1/bank-transactions/{credit.id}/match"
        small = f.invoice(
            session, clock, company_id=world.a.company.id, debtor_id=world.a.debtor.id, amount_cents=100
        )
        session.commit()
        r = api.post(url, json=_body((small.id, 101)), headers=world.a.headers)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "allocations.0.amount.amount"
        big = [
            f.invoice(
                session,
                clock,
                company_id=world.a.company.id,
                debtor_id=world.a.debtor.id,
                amount_cents=1_000_000,
            ).id
            for _ in range(2)
        ]
        session.commit()
        r = api.post(url, json=_body((big[0], 1_000_000), (big[1], 1_000_000)), headers=world.a.headers)
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "allocations"
        r = api.post(url, json=_body((small.id, 50), (small.id, 50)), headers=world.a.headers)
        assert r.status_code == 422
        r = api.post(url, json=_body((world.b.invoice.id, 100)), headers=f.auth(world.partner1_key))
        assert r.status_code == 422  # visible to the partner, but another company's invoice
        r = api.post(url, json={"allocations": []}, headers=world.a.headers)
        assert r.status_code == 422
        assert session.execute(select(func.count()).select_from(Payment)).scalar_one() == 0

    def test_tenancy(self, api: TestClient, world: World, credit: BankTransaction) -> None:
        url = f"/v1/bank-transactions/{credit.id}/match"
        r = api.post(url, json=_body((world.c.invoice.id, 100)), headers=world.c.headers)
        assert r.status_code == 404
        r = api.post(url, json=_body((world.c.invoice.id, 100)), headers=world.a.headers)
        assert r.status_code == 404
        assert r.json()["errors"][0]["field"] == "allocations.0.invoice"
        r = api.post(
            f"/v1/bank-transactions/{new_id('btx')}/match",
            json=_body((world.a.invoice.id, 1)),
            headers=world.a.headers,
        )
        assert r.status_code == 404

    def test_cancelled_invoice_refused(
        self, api: TestClient, session: Session, clock: FrozenClock, world: World, credit: BankTransaction
    ) -> None:
        states.transition_to(session, world.a.invoice, InvoiceStatus.CANCELLED, clock.now())
        session.commit()
        r = api.post(
            f"/v1/bank-transactions/{credit.id}/match",
            json=_body((world.a.invoice.id, 100)),
            headers=world.a.headers,
        )
        assert r.status_code == 409


class TestBehaviourApi:
    def test_figures_and_tenancy(
        self, api: TestClient, session: Session, clock: FrozenClock, world: World
    ) -> None:
        r = api.get(f"/v1/debtors/{world.a.debtor.id}/behaviour", headers=world.a.headers)
        assert r.status_code == 200, r.text
        assert r.json()["paid_invoice_count"] == 0 and r.json()["avg_days_late"] == "0.00"
        txn = _credit(session, clock, _account(session, clock, world.a.company), world.a.invoice.amount_cents)
        session.commit()
        r = api.post(
            f"/v1/bank-transactions/{txn.id}/match",
            json=_body((world.a.invoice.id, world.a.invoice.amount_cents)),
            headers=world.a.headers,
        )
        assert r.status_code == 200
        body = api.get(f"/v1/debtors/{world.a.debtor.id}/behaviour", headers=world.a.headers).json()
        assert (body["paid_invoice_count"], body["share_paid_late"]) == (1, "0.0000")
        r = api.get(f"/v1/debtors/{world.a.debtor.id}/behaviour", headers=world.c.headers)
        assert r.status_code == 404
