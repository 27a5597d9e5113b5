"""Decisions against real data: caching and what invalidates it, the company snapshot,
batches, the platform fingerprint in SQL, the policy."""

from __future__ import annotations

import importlib.util
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, delete, select, text
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.concurrency import ASYNC_COMMIT
from escompte.connectors.payments import Allocation, record_payment, refresh_invoices
from escompte.db.migrate import MIGRATIONS_DIR
from escompte.eligibility import queries, service
from escompte.eligibility.facts import invoice_fingerprint
from escompte.eligibility.policy import PolicySettings
from escompte.models import (
    BankBalance,
    EligibilityDecision,
    EligibilityPolicy,
    ImportKind,
    Invoice,
    PaymentSource,
)
from tests import factories as f
from tests.eligibility import builders as b

ADMIN = f.ADMIN


@pytest.fixture
def seller(session: Session, clock: FrozenClock) -> b.Seller:
    return b.healthy_seller(session, clock)


def new_invoice(session: Session, clock: FrozenClock, s: b.Seller, **kwargs: object) -> Invoice:
    return f.invoice(session, clock, company_id=s.company.id, debtor_id=s.debtor.id, **kwargs)  # type: ignore[arg-type]


def decide(session: Session, clock: FrozenClock, inv: Invoice) -> service.Decided:
    return service.decide(session, clock, ADMIN, inv.id)


class TestCacheInvalidation:
    """A repeat call returns the stored decision; any input that changes gives a new one."""

    def test_nothing_changed(self, session: Session, clock: FrozenClock, seller: b.Seller) -> None:
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        assert not first.reused
        again = decide(session, clock, inv)
        assert again.reused and again.decision_id == first.decision_id
        clock.advance(timedelta(hours=3))  # same day, nothing new
        assert decide(session, clock, inv).decision_id == first.decision_id

    def test_a_payment(self, session: Session, clock: FrozenClock, seller: b.Seller) -> None:
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        record_payment(
            session,
            clock.now(),
            company_id=seller.company.id,
            source=PaymentSource.BANK,
            source_ref="btx-1",
            amount_cents=200_000,
            currency="EUR",
            paid_on=clock.today(),
            allocations=[Allocation(inv.id, 200_000)],
        )
        refresh_invoices(session, [inv.id], clock.now())
        second = decide(session, clock, inv)
        assert not second.reused
        assert second.decision is not None
        assert second.decision.max_amount_cents == 1_000_000
        assert first.decision is not None and first.decision.max_amount_cents == 1_200_000

    def test_a_new_import(self, session: Session, clock: FrozenClock, seller: b.Seller) -> None:
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        b.data_import(session, clock, company_id=seller.company.id, kind=ImportKind.CAMT053)
        assert decide(session, clock, inv).decision_id != first.decision_id

    def test_a_lifecycle_status(self, session: Session, clock: FrozenClock, seller: b.Seller) -> None:
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        b.lifecycle(session, clock, invoice=inv, code=205, status="approved")
        second = decide(session, clock, inv)
        assert second.decision_id != first.decision_id
        assert second.decision is not None
        assert second.decision.score > (first.decision.score if first.decision else 0)
        b.lifecycle(session, clock, invoice=inv, code=210, status="refused")
        third = decide(session, clock, inv)
        assert third.decision is not None and third.decision.failed_checks == ["not_disputed"]

    def test_an_advance_elsewhere_on_the_same_customer(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        other = f.company(session, clock)
        assert seller.debtor.siren is not None
        b.financed(
            session,
            clock,
            company_id=other.id,
            debtor_siren=seller.debtor.siren,
            number="OTHER-1",
            amount_cents=19_500_000,
            issue_date=clock.today(),
        )
        second = decide(session, clock, inv)
        assert second.decision_id != first.decision_id
        assert second.decision is not None
        assert second.decision.max_amount_cents == 500_000  # the customer's headroom

    def test_registry_and_behaviour_changes(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        b.behaviour(session, clock, debtor_id=seller.debtor.id, avg_days_late="80.00")
        second = decide(session, clock, inv)
        assert second.decision is not None and second.decision.failed_checks == ["debtor_payment_behaviour"]
        assert seller.debtor.siren is not None
        b.proceeding(session, siren=seller.debtor.siren, kind="sauvegarde", judgment_date=clock.today())
        third = decide(session, clock, inv)
        assert third.decision_id not in (first.decision_id, second.decision_id)
        assert third.decision is not None and "debtor_no_proceedings" in third.decision.failed_checks

    def test_a_debtor_siren_learnt(self, session: Session, clock: FrozenClock, seller: b.Seller) -> None:
        inv = new_invoice(session, clock, seller)
        siren = seller.debtor.siren
        seller.debtor.siren = None
        session.flush()
        first = decide(session, clock, inv)
        assert first.decision is not None and first.decision.failed_checks == ["debtor_identified"]
        seller.debtor.siren = siren
        session.flush()
        assert decide(session, clock, inv).decision is not None

    def test_a_policy_change(self, session: Session, clock: FrozenClock, seller: b.Seller) -> None:
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        policy = service.create_policy(session, clock, ADMIN, {"grace_days": 20}, "longer grace")
        second = decide(session, clock, inv)
        assert second.decision is not None and second.decision.policy_version == policy.version
        assert first.decision is not None
        assert second.decision.max_duration_days == first.decision.max_duration_days + 10

    def test_the_latest_decision_is_what_the_invoice_list_filter_reads(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        one, two = new_invoice(session, clock, seller), new_invoice(session, clock, seller, days=300)
        decide(session, clock, one)
        clock.advance(timedelta(days=1))
        latest = decide(session, clock, one)
        decide(session, clock, two)
        found = service.latest_decisions(session, [one.id, two.id, seller.debtor.id])
        assert set(found) == {one.id, two.id}
        assert found[one.id].id == latest.decision_id
        assert found[one.id].eligible and not found[two.id].eligible


class TestSnapshot:
    def test_bank_health_from_bank_lines_and_balances(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        b.bank(session, clock, company_id=seller.company.id, incidents=4, balance_cents=100_000_000)
        figures = queries.snapshot_figures(session, seller.company.id, clock.today(), 90)
        bank = figures["bank"]
        assert bank["connected"] is True
        assert bank["accounts"] == 2
        assert bank["incidents"] == 4
        assert bank["weeks_in_window"] == 13
        assert bank["weeks_with_inflow"] == 13
        assert bank["last_booking_date"] == (clock.today() - timedelta(days=1)).isoformat()
        inv = new_invoice(session, clock, seller)
        d = decide(session, clock, inv).decision
        assert d is not None and d.failed_checks == ["bank_health"]

    def test_days_overdrawn_are_rebuilt_from_the_anchor_balance(self) -> None:
        start, today = date(2026, 1, 1), date(2026, 1, 10)
        # closing balance of 100 on the 5th; -300 on the 3rd, +50 on the 8th
        daily = queries.daily_balances(
            {"acc": (date(2026, 1, 5), 100)},
            [("acc", date(2026, 1, 3), -300), ("acc", date(2026, 1, 8), 50)],
            start,
            today,
        )
        assert daily == [400, 400, 100, 100, 100, 100, 100, 150, 150, 150]
        daily = queries.daily_balances(
            {"acc": (date(2026, 1, 9), -20)}, [("acc", date(2026, 1, 10), 30)], start, today
        )
        assert daily[-2:] == [-20, 10]
        assert sum(1 for x in daily if x < 0) == 9

    def test_no_bank_data_caps(self, session: Session, clock: FrozenClock) -> None:
        company = f.company(session, clock)
        debtor = f.debtor(session, clock, company_id=company.id)
        b.registry(session, clock, siren=company.siren)
        assert debtor.siren is not None
        b.registry(session, clock, siren=debtor.siren)
        inv = f.invoice(session, clock, company_id=company.id, debtor_id=debtor.id)
        d = service.decide(session, clock, ADMIN, inv.id).decision
        assert d is not None
        assert d.eligible and d.max_amount_cents == 1_000_000
        assert [code for code, _ in d.counterfactuals] == ["connect_bank"]

    def test_the_snapshot_follows_new_bank_data(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        for n in range(4):
            b.bank_line(
                session,
                clock,
                seller.account,
                booking_date=clock.today(),
                amount_cents=-1_500,
                text="COMMISSION D'INTERVENTION",
                bank_code=f"PMNT-RDDT-UPDD-{n}",
            )
        second = decide(session, clock, inv)
        assert second.decision_id != first.decision_id
        assert second.decision is not None and second.decision.failed_checks == ["bank_health"]

    def test_a_corrected_balance_moves_the_snapshot(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        """Balances come with bank statements: the statement's import is the marker. A
        change made any other way is seen once the snapshot ages out (15 minutes)."""
        inv = new_invoice(session, clock, seller)
        first = decide(session, clock, inv)
        balance = session.execute(
            select(BankBalance).where(BankBalance.bank_account_id == seller.account.id)
        ).scalar_one()
        balance.amount_cents = -90_000_000  # overdrawn every day of the window
        session.flush()
        assert decide(session, clock, inv).decision_id == first.decision_id
        clock.advance(timedelta(minutes=16))
        aged = decide(session, clock, inv)
        assert aged.decision is not None and aged.decision.failed_checks == ["bank_health"]
        balance.amount_cents = 100_000_000
        b.data_import(session, clock, company_id=seller.company.id, kind=ImportKind.CAMT053)
        fresh = decide(session, clock, inv)
        assert fresh.decision is not None and fresh.decision.eligible


class TestBooks:
    def test_books_connected_and_matching(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        inv = new_invoice(session, clock, seller)
        b.books(session, clock, company=seller.company, invoice=inv)
        d = decide(session, clock, inv).decision
        assert d is not None and d.eligible
        assert d.checks["in_books"][:2] == ["ok", "matched"]

    def test_books_with_another_amount_by_auxiliary_account(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        seller.debtor.aux_account_num = "411DUR"
        inv = new_invoice(session, clock, seller)
        b.books(
            session,
            clock,
            company=seller.company,
            invoice=inv,
            amount_cents=1_000_000,
            aux_account_num="411DUR",
        )
        d = decide(session, clock, inv).decision
        assert d is not None and d.failed_checks == ["in_books"]
        # the batch reads the books differently, and decides the same
        result = service.decide_batch(session, clock, ADMIN, invoice_ids=[inv.id])
        assert result.items[0].reused and result.items[0].summary.id == d.id

    def test_supplier_invoice_is_matched_on_its_401_credit(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        from escompte.invoices import service as invoices
        from escompte.invoices.schemas import InvoiceCreate
        from escompte.schemas import MoneyIn

        def payable(number: str) -> Invoice:
            return invoices.create_invoice(
                session,
                clock,
                ADMIN,
                InvoiceCreate(
                    company=seller.company.id,
                    counterparty=seller.debtor.id,
                    kind="payable",  # type: ignore[arg-type]
                    number=number,
                    issue_date=clock.today(),
                    due_date=clock.today() + timedelta(days=45),
                    amount=MoneyIn(amount=600_000, currency="EUR"),
                ),
            )

        booked, other = payable("FRN-1"), payable("FRN-2")
        b.books(session, clock, company=seller.company, invoice=booked)
        b.books(session, clock, company=seller.company, invoice=other, amount_cents=500_000)
        d = decide(session, clock, booked).decision
        assert d is not None and d.eligible and d.checks["in_books"][:2] == ["ok", "matched"]
        assert d.checks["b2b"][:2] == ["ok", "supplier"]
        wrong = decide(session, clock, other).decision
        assert wrong is not None and wrong.failed_checks == ["in_books"]
        # the batch reads the books its own way (one query per kind), and decides the same
        result = service.decide_batch(session, clock, ADMIN, invoice_ids=[booked.id, other.id])
        assert all(item.reused for item in result.items)

    def test_missing_from_books(self, session: Session, clock: FrozenClock, seller: b.Seller) -> None:
        booked = new_invoice(session, clock, seller)
        b.books(session, clock, company=seller.company, invoice=booked)
        missing = new_invoice(session, clock, seller)
        d = decide(session, clock, missing).decision
        assert d is not None and d.failed_checks == ["in_books"]


class TestBatch:
    def test_pages_of_open_invoices(self, session: Session, clock: FrozenClock, seller: b.Seller) -> None:
        invoices = sorted((new_invoice(session, clock, seller) for _ in range(5)), key=lambda i: i.id)
        first = service.decide_batch(session, clock, ADMIN, company_id=seller.company.id, limit=3)
        assert first.has_more and len(first.items) == 3
        rest = service.decide_batch(
            session,
            clock,
            ADMIN,
            company_id=seller.company.id,
            limit=3,
            starting_after=first.items[-1].summary.invoice_id,
        )
        assert not rest.has_more
        assert [i.summary.invoice_id for i in [*first.items, *rest.items]] == [i.id for i in invoices]
        stored = session.execute(
            select(EligibilityDecision).where(EligibilityDecision.company_id == seller.company.id)
        )
        assert len(stored.scalars().all()) == 5

    def test_batch_and_single_decisions_agree(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        invoices = [new_invoice(session, clock, seller, days=d) for d in (5, 60, 150)]
        b.lifecycle(session, clock, invoice=invoices[1], code=207, status="disputed", amount_cents=200_000)
        result = service.decide_batch(session, clock, ADMIN, invoice_ids=[i.id for i in invoices])
        for item in result.items:
            d = session.get(EligibilityDecision, item.summary.id)
            assert d is not None
            single = service.decide(session, clock, ADMIN, item.summary.invoice_id)
            assert single.reused and single.decision_id == d.id
        assert [i.summary.max_amount_cents for i in result.items] == [1_200_000, 1_000_000, 0]


class TestPlatformFingerprint:
    @pytest.mark.parametrize("number", ["F-2026-001", "f 2026/001", "FAC°12 é-b", "ß-77", "  x  "])
    def test_sql_and_python_agree(self, session: Session, number: str) -> None:
        issue = date(2026, 2, 28)
        sql = session.execute(
            select(queries.sql_invoice_fingerprint("732829320", number, 123_456, issue))
        ).scalar_one()
        assert sql == invoice_fingerprint("732829320", number, 123_456, issue)


class TestPolicyVersions:
    def test_the_migration_seeds_the_documented_defaults(self, session: Session, clock: FrozenClock) -> None:
        path = next(MIGRATIONS_DIR.glob("versions/*_b4e1ig1b1e01_*.py"))
        spec = importlib.util.spec_from_file_location("eligibility_migration", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert PolicySettings().model_dump(mode="json") == module.POLICY_V1
        # (tests that commit empty every table, the seed included: then the first use stores it)
        first = service.current_policy(session, clock)
        assert first.version == 1
        assert first.settings == PolicySettings().model_dump(mode="json")

    def test_an_empty_table_gets_the_defaults_at_first_use(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        session.execute(delete(EligibilityPolicy))
        inv = new_invoice(session, clock, seller)
        d = decide(session, clock, inv).decision
        assert d is not None and d.policy_version == 1 and d.eligible
        assert service.current_policy(session, clock).settings == PolicySettings().model_dump(mode="json")
        assert decide(session, clock, inv).decision_id == d.id


class TestDurability:
    """A new decision's transaction does not wait for the disk at commit (derived data);
    one that only reads a stored decision leaves the setting alone."""

    def test_only_a_transaction_that_writes_a_decision_commits_asynchronously(
        self, committed_engine: Engine, clock: FrozenClock
    ) -> None:
        def setting(s: Session) -> str:
            return str(s.execute(text("SHOW synchronous_commit")).scalar_one())

        with Session(committed_engine, expire_on_commit=False) as s:
            seller = b.healthy_seller(s, clock)
            inv = new_invoice(s, clock, seller)
            s.commit()
        with Session(committed_engine) as s:
            assert not decide(s, clock, inv).reused
            assert setting(s) == "off"
            s.commit()
        with Session(committed_engine) as s:
            assert decide(s, clock, inv).reused
            assert setting(s) == "on"

    def test_a_durable_decision_leaves_the_commit_waiting_for_the_disk(
        self, session: Session, clock: FrozenClock, seller: b.Seller
    ) -> None:
        """For a transaction that also writes what must last (a quote, an advance)."""
        inv = new_invoice(session, clock, seller)
        decided = service.decide(session, clock, ADMIN, inv.id, durable=True)
        assert not decided.reused and decided.decision is not None
        assert session.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
        assert not session.info.get(ASYNC_COMMIT)
