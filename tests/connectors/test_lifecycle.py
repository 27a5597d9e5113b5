"""Lifecycle statuses (CDAR and JSON) → events, latest status, disputes, payments."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.connectors import lifecycle
from escompte.connectors.base import ImportContext, ImportOutcome, ImportRefused
from escompte.connectors.payments import Allocation, record_payment, refresh_invoices
from escompte.connectors.samples.einvoice import SampleStatus, cdar_xml, lifecycle_json
from escompte.ids import new_id
from escompte.models import (
    Company,
    DataImport,
    Debtor,
    ImportKind,
    ImportStatus,
    Invoice,
    InvoiceLifecycleEvent,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
    PaymentSource,
)
from tests import factories as f

T0 = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)


def context(session: Session, clock: FrozenClock, company: Company, data: bytes) -> ImportContext:
    data_import = DataImport(
        id=new_id("imp"),
        company_id=company.id,
        kind=ImportKind.LIFECYCLE,
        status=ImportStatus.RUNNING,
        filename="statuses",
        content_sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
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
        options={},
    )


def run(session: Session, clock: FrozenClock, company: Company, data: bytes) -> ImportOutcome:
    ctx = context(session, clock, company, data)
    with session.begin_nested():
        outcome = lifecycle.import_lifecycle(ctx)
        ctx.issues.raise_if_any()
    return outcome


def refused(session: Session, clock: FrozenClock, company: Company, data: bytes) -> ImportRefused:
    events = count(session, InvoiceLifecycleEvent)
    with pytest.raises(ImportRefused) as info:
        run(session, clock, company, data)
    assert count(session, InvoiceLifecycleEvent) == events
    return info.value


def count(session: Session, model: type[InvoiceLifecycleEvent] | type[Payment]) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


@dataclass(frozen=True)
class Writer:
    name: str
    write: Callable[[list[SampleStatus]], bytes]


JSON = Writer("json", lifecycle_json)
CDAR = Writer("cdar", cdar_xml)
WRITERS = [pytest.param(JSON, id="json"), pytest.param(CDAR, id="cdar")]


@dataclass
class World:
    company: Company
    debtor: Debtor
    invoice: Invoice

    def status(
        self, code: int, *, at: datetime = T0, message_id: str | None = None, **kw: object
    ) -> SampleStatus:
        return SampleStatus(
            message_id=message_id or f"MSG-{code}-{at:%Y%m%d%H%M%S}",
            invoice_number=self.invoice.number,
            seller_siren=self.company.siren,
            buyer_siren=self.debtor.siren,
            status_code=code,
            occurred_at=at,
            issue_date=self.invoice.issue_date,
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture
def world(session: Session, clock: FrozenClock) -> World:
    company = f.company(session, clock)
    debtor = f.debtor(session, clock, company_id=company.id, name="Groupe Hôtelier Bellecour SA")
    invoice = f.invoice(
        session,
        clock,
        company_id=company.id,
        debtor_id=debtor.id,
        number="FA-2026-0042",
        amount_cents=1_200_000,
    )
    return World(company, debtor, invoice)


@pytest.mark.parametrize("writer", WRITERS)
class TestStatuses:
    def test_approved_is_stored(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        status = world.status(205, reason="Bon pour paiement")
        outcome = run(session, clock, world.company, writer.write([status]))
        assert outcome.counts == {"lifecycle_events": 1, "payments": 0, "disputes": 0}
        assert outcome.created == 1
        event = session.execute(select(InvoiceLifecycleEvent)).scalar_one()
        assert (event.invoice_id, event.status_code, event.status) == (world.invoice.id, 205, "approved")
        assert event.message_id == status.message_id
        assert event.occurred_at == T0
        assert event.issuer_role == "buyer"
        assert event.reason == "Bon pour paiement"
        assert event.company_id == world.company.id
        session.refresh(world.invoice)
        assert (world.invoice.lifecycle_status_code, world.invoice.lifecycle_status) == (205, "approved")
        assert world.invoice.status == InvoiceStatus.OPEN
        assert lifecycle.buyer_approved(session, world.invoice.id)

    def test_disputed_makes_the_invoice_disputed(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        outcome = run(
            session, clock, world.company, writer.write([world.status(207, reason="Livraison incomplète")])
        )
        assert outcome.counts["disputes"] == 1
        session.refresh(world.invoice)
        assert world.invoice.status == InvoiceStatus.DISPUTED
        assert world.invoice.lifecycle_status == "disputed"

    @pytest.mark.parametrize("code", [210, 213])
    def test_refused_and_rejected_dispute_too(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer, code: int
    ) -> None:
        run(session, clock, world.company, writer.write([world.status(code)]))
        session.refresh(world.invoice)
        assert world.invoice.status == InvoiceStatus.DISPUTED

    def test_cashed_records_a_payment_and_the_invoice_is_paid(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        status = world.status(212, amount_cents=1_200_000, issuer_role="seller")
        outcome = run(session, clock, world.company, writer.write([status]))
        assert outcome.counts == {"lifecycle_events": 1, "payments": 1, "disputes": 0}
        payment = session.execute(select(Payment)).scalar_one()
        assert payment.source == PaymentSource.LIFECYCLE
        assert payment.source_ref.startswith(status.message_id)
        assert (payment.amount_cents, payment.currency, payment.paid_on) == (1_200_000, "EUR", T0.date())
        allocation = session.execute(select(PaymentAllocation)).scalar_one()
        assert (allocation.invoice_id, allocation.amount_cents) == (world.invoice.id, 1_200_000)
        session.refresh(world.invoice)
        assert world.invoice.status == InvoiceStatus.PAID
        assert world.invoice.amount_paid_cents == 1_200_000
        event = session.execute(select(InvoiceLifecycleEvent)).scalar_one()
        assert (event.amount_cents, event.issuer_role) == (1_200_000, "seller")

    def test_cashed_without_amount_takes_the_amount_due(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        run(session, clock, world.company, writer.write([world.status(212, issuer_role="seller")]))
        assert session.execute(select(Payment.amount_cents)).scalar_one() == 1_200_000
        session.refresh(world.invoice)
        assert world.invoice.status == InvoiceStatus.PAID

    @pytest.mark.parametrize(("paid_before", "recorded"), [(1_200_000, None), (200_000, 1_000_000)])
    def test_cashed_after_the_bank_paid_counts_the_money_once(
        self,
        session: Session,
        clock: FrozenClock,
        world: World,
        writer: Writer,
        paid_before: int,
        recorded: int | None,
    ) -> None:
        """The bank credit was reconciled first; the platform's "cashed" reports the same
        money: only what is still due becomes a payment, never a second one."""
        record_payment(
            session,
            clock.now(),
            company_id=world.company.id,
            source=PaymentSource.BANK,
            source_ref="btx_paid_before",
            amount_cents=paid_before,
            currency="EUR",
            paid_on=T0.date(),
            allocations=[Allocation(world.invoice.id, paid_before)],
        )
        refresh_invoices(session, [world.invoice.id], clock.now())
        status = world.status(212, amount_cents=1_200_000, at=T0 + timedelta(days=1))
        outcome = run(session, clock, world.company, writer.write([status]))
        assert outcome.counts["payments"] == int(recorded is not None)
        cashed = session.execute(
            select(Payment.amount_cents).where(Payment.source == PaymentSource.LIFECYCLE)
        ).scalar_one_or_none()
        assert cashed == recorded
        session.refresh(world.invoice)
        assert (world.invoice.amount_paid_cents, world.invoice.status) == (1_200_000, InvoiceStatus.PAID)
        assert world.invoice.lifecycle_status_code == 212
        paid_total = session.execute(select(func.sum(Payment.amount_cents))).scalar_one()
        assert paid_total == 1_200_000

    def test_partly_cashed(self, session: Session, clock: FrozenClock, world: World, writer: Writer) -> None:
        run(session, clock, world.company, writer.write([world.status(212, amount_cents=200_000)]))
        session.refresh(world.invoice)
        assert (world.invoice.status, world.invoice.amount_paid_cents) == (
            InvoiceStatus.PARTIALLY_PAID,
            200_000,
        )

    def test_out_of_order_events_keep_the_latest_status(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        run(session, clock, world.company, writer.write([world.status(212, at=T0 + timedelta(days=30))]))
        run(session, clock, world.company, writer.write([world.status(205, at=T0)]))
        session.refresh(world.invoice)
        assert (world.invoice.lifecycle_status_code, world.invoice.lifecycle_status) == (212, "cashed")
        assert count(session, InvoiceLifecycleEvent) == 2

    def test_a_late_dispute_older_than_the_approval_does_not_dispute(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        run(session, clock, world.company, writer.write([world.status(205, at=T0 + timedelta(days=2))]))
        outcome = run(session, clock, world.company, writer.write([world.status(207, at=T0)]))
        assert outcome.counts == {"lifecycle_events": 1, "payments": 0, "disputes": 0}
        session.refresh(world.invoice)
        assert world.invoice.status == InvoiceStatus.OPEN
        assert world.invoice.lifecycle_status_code == 205
        assert lifecycle.buyer_approved(session, world.invoice.id)

    def test_dispute_of_a_paid_invoice_is_only_recorded(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        run(session, clock, world.company, writer.write([world.status(212, at=T0)]))
        outcome = run(
            session, clock, world.company, writer.write([world.status(207, at=T0 + timedelta(days=1))])
        )
        assert outcome.counts == {"lifecycle_events": 1, "payments": 0, "disputes": 0}
        session.refresh(world.invoice)
        assert world.invoice.status == InvoiceStatus.PAID
        assert world.invoice.lifecycle_status_code == 207

    def test_unknown_invoice_is_refused(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        known = world.status(207, message_id="MSG-1")
        unknown = replace(world.status(205, message_id="MSG-1"), invoice_number="FA-9999")
        error = refused(session, clock, world.company, writer.write([known, unknown]))
        assert len(error.issues) == 1
        assert "Unknown invoice FA-9999" in error.issues[0].message
        assert error.issues[0].field == "invoice_number"
        if writer is JSON:
            assert error.issues[0].path == "statuses[1]"
        else:
            assert error.issues[0].path == (
                "/rsm:CrossDomainAcknowledgementAndResponse/rsm:AcknowledgementDocument[2]"
                "/ram:ReferenceReferencedDocument/ram:IssuerAssignedID"
            )
        session.refresh(world.invoice)
        assert world.invoice.status == InvoiceStatus.OPEN  # nothing of the file was kept

    def test_duplicate_events_change_nothing(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        data = writer.write([world.status(212, amount_cents=500_000)])
        run(session, clock, world.company, data)
        again = run(session, clock, world.company, data)
        assert again.counts == {"lifecycle_events": 0, "payments": 0, "disputes": 0}
        assert (again.created, again.unchanged) == (0, 1)
        assert count(session, InvoiceLifecycleEvent) == 1
        assert count(session, Payment) == 1
        session.refresh(world.invoice)
        assert world.invoice.amount_paid_cents == 500_000

    def test_status_of_a_payable_invoice(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        supplier = f.debtor(session, clock, company_id=world.company.id, name="Fournitures Rhône SARL")
        bill = f.invoice(
            session, clock, company_id=world.company.id, debtor_id=supplier.id, number="FA-2026-0042"
        )
        bill.kind = "payable"  # type: ignore[assignment]
        session.flush()
        status = replace(
            world.status(205, issuer_role="buyer"),
            seller_siren=supplier.siren or "",
            buyer_siren=world.company.siren,
            issue_date=bill.issue_date,
        )
        run(session, clock, world.company, writer.write([status]))
        event = session.execute(select(InvoiceLifecycleEvent)).scalar_one()
        assert event.invoice_id == bill.id

    def test_invoice_issue_date_must_match(
        self, session: Session, clock: FrozenClock, world: World, writer: Writer
    ) -> None:
        status = replace(world.status(205), issue_date=world.invoice.issue_date - timedelta(days=1))
        error = refused(session, clock, world.company, writer.write([status]))
        assert "the status says" in error.issues[0].message


class TestCdar:
    def test_one_message_cashing_two_invoices_records_two_payments(
        self, session: Session, clock: FrozenClock, world: World
    ) -> None:
        other = f.invoice(
            session,
            clock,
            company_id=world.company.id,
            debtor_id=world.debtor.id,
            number="FA-2026-0043",
            amount_cents=300_000,
        )
        first = world.status(212, message_id="MSG-CASH", issuer_role="seller", amount_cents=1_200_000)
        second = replace(
            first, invoice_number=other.number, issue_date=other.issue_date, amount_cents=300_000
        )
        outcome = run(session, clock, world.company, cdar_xml([first, second]))
        assert outcome.counts == {"lifecycle_events": 2, "payments": 2, "disputes": 0}
        session.refresh(other)
        assert other.status == InvoiceStatus.PAID

    def test_seller_only_statuses_match_by_number(
        self, session: Session, clock: FrozenClock, world: World
    ) -> None:
        status = replace(world.status(205, issuer_role="platform"), buyer_siren=None)
        run(session, clock, world.company, cdar_xml([status]))
        assert session.execute(select(InvoiceLifecycleEvent.issuer_role)).scalar_one() == "platform"

    def test_doctype_is_refused(self, session: Session, clock: FrozenClock, world: World) -> None:
        data = cdar_xml([world.status(205)]).replace(
            b"?>\n", b'?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n', 1
        )
        error = refused(session, clock, world.company, data)
        assert "DOCTYPE" in error.issues[0].message

    def test_unknown_status_code(self, session: Session, clock: FrozenClock, world: World) -> None:
        data = cdar_xml([world.status(205)]).replace(b">205<", b">299<")
        error = refused(session, clock, world.company, data)
        assert "Status code '299' is not an AFNOR XP Z12-012 lifecycle status" in error.issues[0].message
        assert (error.issues[0].path or "").endswith("ram:ProcessConditionCode")

    def test_cashed_in_usd_is_refused(self, session: Session, clock: FrozenClock, world: World) -> None:
        data = cdar_xml([world.status(212, amount_cents=100)]).replace(
            b'currencyID="EUR"', b'currencyID="USD"'
        )
        error = refused(session, clock, world.company, data)
        assert "Escompte handles EUR only for now" in error.issues[0].message


class TestJson:
    def payload(self, world: World, **changes: object) -> bytes:
        item = json.loads(lifecycle_json([world.status(205)]))["statuses"][0]
        item.update(changes)
        return json.dumps({"statuses": [item]}).encode()

    def test_invalid_fields_are_listed_with_their_place(
        self, session: Session, clock: FrozenClock, world: World
    ) -> None:
        data = self.payload(
            world, status_code=999, occurred_at="2026-03-03T09:30:00", seller_siren="123456789"
        )
        error = refused(session, clock, world.company, data)
        fields = {issue.field for issue in error.issues}
        assert fields == {"status_code", "occurred_at", "seller_siren"}
        assert {issue.path for issue in error.issues} == {"statuses[0]"}
        assert any("has no UTC offset" in issue.message for issue in error.issues)

    def test_amount_is_integer_cents_in_eur(self, session: Session, clock: FrozenClock, world: World) -> None:
        error = refused(
            session, clock, world.company, self.payload(world, amount={"amount": 12.5, "currency": "EUR"})
        )
        assert "positive integer number of cents" in error.issues[0].message
        error = refused(
            session, clock, world.company, self.payload(world, amount={"amount": 1250, "currency": "USD"})
        )
        assert "Escompte handles EUR only for now" in error.issues[0].message

    def test_long_message_id_still_gives_one_payment_reference(
        self, session: Session, clock: FrozenClock, world: World
    ) -> None:
        status = world.status(212, message_id="M" * 120)
        run(session, clock, world.company, lifecycle_json([status]))
        ref = session.execute(select(Payment.source_ref)).scalar_one()
        assert ref.startswith("sha256:") and ref.endswith(world.invoice.id) and len(ref) <= 120

    def test_status_about_another_company_is_refused(
        self, session: Session, clock: FrozenClock, world: World
    ) -> None:
        error = refused(session, clock, world.company, self.payload(world, seller_siren=f.siren()))
        assert "is not about this company" in error.issues[0].message

    def test_not_json_nor_xml(self, session: Session, clock: FrozenClock, world: World) -> None:
        error = refused(session, clock, world.company, b"status;205")
        assert "Expected a CDAR XML message or JSON" in error.issues[0].message

    def test_broken_json(self, session: Session, clock: FrozenClock, world: World) -> None:
        error = refused(session, clock, world.company, b'{"statuses": [')
        assert "not valid JSON" in error.issues[0].message


class TestBuyerApproved:
    def test_a_later_dispute_undoes_the_approval(
        self, session: Session, clock: FrozenClock, world: World
    ) -> None:
        assert not lifecycle.buyer_approved(session, world.invoice.id)
        run(session, clock, world.company, lifecycle_json([world.status(205, at=T0)]))
        assert lifecycle.buyer_approved(session, world.invoice.id)
        run(session, clock, world.company, lifecycle_json([world.status(208, at=T0 + timedelta(hours=1))]))
        assert not lifecycle.buyer_approved(session, world.invoice.id)
        run(session, clock, world.company, lifecycle_json([world.status(205, at=T0 + timedelta(days=3))]))
        assert lifecycle.buyer_approved(session, world.invoice.id)
