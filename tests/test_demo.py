"""The demo is seeded from real files through the import pipeline, and tells a story."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from escompte import demo
from escompte.clock import FrozenClock
from escompte.models import (
    BankTransaction,
    Company,
    DataImport,
    Debtor,
    EligibilityDecision,
    ImportKind,
    ImportStatus,
    InsolvencyProceeding,
    Invoice,
    InvoiceStatus,
    MatchStatus,
    Payment,
    PaymentAllocation,
    PaymentSource,
    RegistryCompany,
)


def test_demo_seeds_every_kind_of_file(session: Session, clock: FrozenClock) -> None:
    demo.seed(session, clock)
    imports = session.execute(select(DataImport.kind, DataImport.status)).all()
    assert {status for _, status in imports} == {ImportStatus.SUCCEEDED}
    kinds = {kind for kind, _ in imports}
    assert {
        ImportKind.FEC,
        ImportKind.CAMT053,
        ImportKind.FACTURX,
        ImportKind.LIFECYCLE,
        ImportKind.SIRENE,
        ImportKind.BODACC,
    } <= kinds
    assert session.execute(select(func.count()).select_from(Company)).scalar_one() == 3

    invoices = session.execute(select(Invoice)).scalars().all()
    sources = {i.source for i in invoices}
    assert {"fec", "facturx"} <= {str(s) for s in sources}
    statuses = {i.status for i in invoices}
    assert {InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.DISPUTED} <= statuses
    # Factur-X confirmed some due dates the books could only estimate
    fec_confirmed = [i for i in invoices if str(i.source) == "fec" and not i.due_date_estimated]
    assert fec_confirmed
    # customers learnt their SIREN from their e-invoices; only suppliers stay account-only
    no_siren = session.execute(select(Debtor).where(Debtor.siren.is_(None))).scalars().all()
    assert {d.aux_account_num for d in no_siren} == {"F00001"}

    # bank credits: recorded by the books, reconciled with open invoices, or queued
    credits = session.execute(select(BankTransaction).where(BankTransaction.amount_cents > 0)).scalars().all()
    by_status = {s: sum(1 for c in credits if c.match_status is s) for s in MatchStatus}
    assert by_status[MatchStatus.MATCHED] > 0.9 * len(credits)
    assert sum(1 for c in credits if c.book_line_id is not None) > 0
    # never paid twice: allocations stay within each invoice's amount
    over = session.execute(
        text(
            "SELECT count(*) FROM (SELECT i.id FROM invoices i "
            "JOIN payment_allocations a ON a.invoice_id = i.id "
            "GROUP BY i.id, i.amount_cents HAVING sum(a.amount_cents) > i.amount_cents) x"
        )
    ).scalar_one()
    assert over == 0
    # each SME's latest e-invoice was 30 % paid on order: that part is a payment already
    prepaid = (
        session.execute(
            select(Invoice)
            .join(PaymentAllocation, PaymentAllocation.invoice_id == Invoice.id)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .where(Payment.source == PaymentSource.PREPAID)
        )
        .scalars()
        .all()
    )
    assert len(prepaid) == 3
    assert all(i.amount_paid_cents == i.amount_cents * 30 // 100 for i in prepaid)
    # the OFX export repeats the statement's last 60 days: recognised, nothing stored twice
    ofx_imports = session.execute(select(DataImport).where(DataImport.kind == ImportKind.OFX)).scalars().all()
    assert len(ofx_imports) == 3
    assert all(i.counts.get("bank_transactions_known_from_other_sources", 0) >= 3 for i in ofx_imports)
    assert all(i.counts["bank_transactions"] == 0 for i in ofx_imports)
    assert session.execute(select(func.count()).where(BankTransaction.source != "camt")).scalar_one() == 0

    assert session.execute(select(func.count()).select_from(RegistryCompany)).scalar_one() >= 10
    proceeding = session.execute(select(InsolvencyProceeding)).scalar_one()
    assert proceeding.kind == "redressement"
    # every open receivable has an explained decision; some eligible, some not, each saying why
    decisions = session.execute(select(EligibilityDecision)).scalars().all()
    assert decisions
    assert {d.eligible for d in decisions} == {True, False}
    assert all(d.eligible or d.failed_checks for d in decisions)
    assert demo.already_seeded(session)
