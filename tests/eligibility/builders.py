"""Keyword-only builders for what eligibility reads besides companies and invoices:
registry extracts, BODACC proceedings, bank accounts, books, lifecycle statuses,
payment behaviour and financed invoices. They write the models directly, as the
connectors (and, for financed invoices, the financing side) do."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from escompte.clock import Clock
from escompte.eligibility.facts import invoice_fingerprint
from escompte.ids import new_id
from escompte.models import (
    BankAccount,
    BankBalance,
    BankTransaction,
    BookLine,
    Company,
    DataImport,
    Debtor,
    DebtorBehaviour,
    FinancedFingerprint,
    ImportKind,
    ImportStatus,
    InsolvencyProceeding,
    Invoice,
    InvoiceLifecycleEvent,
    MatchStatus,
    RegistryCompany,
)
from tests import factories as f

_seq = itertools.count(1)


def registry(
    session: Session,
    clock: Clock,
    *,
    siren: str,
    active: bool = True,
    legal_form: str = "5710",
    ceased_on: date | None = None,
) -> RegistryCompany:
    row = session.merge(
        RegistryCompany(
            siren=siren,
            legal_name=f"Company {siren}",
            active=active,
            ceased_on=ceased_on,
            legal_form=legal_form,
            naf_code="6201Z",
            updated_at=clock.now(),
        )
    )
    session.flush()
    return row


def proceeding(session: Session, *, siren: str, kind: str, judgment_date: date) -> InsolvencyProceeding:
    row = InsolvencyProceeding(
        announcement_id=f"A{next(_seq):08d}",
        siren=siren,
        kind=kind,
        judgment_date=judgment_date,
        court="Tribunal de commerce de Paris",
    )
    session.add(row)
    session.flush()
    return row


def data_import(session: Session, clock: Clock, *, company_id: str | None, kind: ImportKind) -> DataImport:
    row = DataImport(
        id=new_id("imp"),
        company_id=company_id,
        kind=kind,
        status=ImportStatus.SUCCEEDED,
        filename=f"file-{next(_seq)}",
        content_sha256=f"{next(_seq):064d}",
        size_bytes=100,
        options={},
        created_count=0,
        updated_count=0,
        unchanged_count=0,
        counts={},
        error_count=0,
        errors=[],
        progress_done=0,
        progress_total=0,
        created_at=clock.now(),
        started_at=clock.now(),
        finished_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


def bank_line(
    session: Session,
    clock: Clock,
    account: BankAccount,
    *,
    booking_date: date,
    amount_cents: int,
    text: str = "VIR SEPA CLIENT",
    bank_code: str | None = None,
) -> BankTransaction:
    row = BankTransaction(
        id=new_id("btx"),
        company_id=account.company_id,
        bank_account_id=account.id,
        fingerprint=f"fp{next(_seq)}",
        source="agg",
        booking_date=booking_date,
        amount_cents=amount_cents,
        currency="EUR",
        remittance_info=text,
        bank_code=bank_code,
        match_status=MatchStatus.UNMATCHED,
        matched_cents=0,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


def bank(
    session: Session,
    clock: Clock,
    *,
    company_id: str,
    weeks: int = 16,
    weekly_inflow_cents: int = 2_000_000,
    weekly_outflow_cents: int = 1_500_000,
    balance_cents: int = 5_000_000,
    incidents: int = 0,
) -> BankAccount:
    """A connected account: a credit and a debit every week, a closing balance today,
    and ``incidents`` rejected direct debits."""
    account = BankAccount(
        id=new_id("bac"),
        company_id=company_id,
        iban=f"FR76{next(_seq):023d}",
        currency="EUR",
        created_at=clock.now(),
    )
    session.add(account)
    session.flush()
    today = clock.today()
    for week in range(weeks):
        day = today - timedelta(days=7 * week + 1)
        bank_line(session, clock, account, booking_date=day, amount_cents=weekly_inflow_cents)
        bank_line(
            session,
            clock,
            account,
            booking_date=day,
            amount_cents=-weekly_outflow_cents,
            text="PRLV FOURNISSEUR",
        )
    for n in range(incidents):
        bank_line(
            session,
            clock,
            account,
            booking_date=today - timedelta(days=3 + n),
            amount_cents=-2_000,
            text="FRAIS REJET PRLV IMPAYE",
        )
    session.add(
        BankBalance(
            bank_account_id=account.id,
            balance_date=today,
            kind="CLBD",
            amount_cents=balance_cents,
            currency="EUR",
        )
    )
    session.flush()
    return account


def books(
    session: Session,
    clock: Clock,
    *,
    company: Company,
    invoice: Invoice,
    amount_cents: int | None = None,
    aux_account_num: str | None = None,
    entry_date: date | None = None,
) -> DataImport:
    """An FEC import holding the invoice's entry: a sale (411 debit, 706 and 44571
    credits), or for a supplier's invoice a purchase (607 and 44566 debits, 401 credit)."""
    imp = data_import(session, clock, company_id=company.id, kind=ImportKind.FEC)
    amount = invoice.amount_cents if amount_cents is None else amount_cents
    day = entry_date or invoice.issue_date
    purchase = str(invoice.kind) == "payable"
    journal = "HA" if purchase else "VT"
    entry = f"{journal}{next(_seq):06d}"
    vat = amount // 6
    lines = (
        [
            ("607000", None, amount - vat, 0),
            ("445660", None, vat, 0),
            ("401000", aux_account_num, 0, amount),
        ]
        if purchase
        else [
            ("411000", aux_account_num, amount, 0),
            ("706000", None, 0, amount - vat),
            ("445710", None, 0, vat),
        ]
    )
    for n, (account, aux, debit, credit) in enumerate(lines, start=1):
        session.add(
            BookLine(
                company_id=company.id,
                import_id=imp.id,
                fiscal_year_end=date(day.year, 12, 31),
                journal_code=journal,
                journal_lib="Achats" if purchase else "Ventes",
                entry_num=entry,
                line_no=n,
                entry_date=day,
                account_num=account,
                account_lib=account,
                aux_account_num=aux,
                aux_account_lib=aux,
                piece_ref=invoice.number,
                piece_date=day,
                label=f"Facture {invoice.number}",
                debit_cents=debit,
                credit_cents=credit,
            )
        )
    session.flush()
    return imp


def lifecycle(
    session: Session,
    clock: Clock,
    *,
    invoice: Invoice,
    code: int,
    status: str,
    amount_cents: int | None = None,
) -> InvoiceLifecycleEvent:
    row = InvoiceLifecycleEvent(
        company_id=invoice.company_id,
        invoice_id=invoice.id,
        message_id=f"CDAR-{next(_seq)}",
        status_code=code,
        status=status,
        occurred_at=clock.now(),
        issuer_role="buyer",
        amount_cents=amount_cents,
        created_at=clock.now(),
    )
    session.add(row)
    invoice.lifecycle_status_code = code
    invoice.lifecycle_status = status
    session.flush()
    return row


def behaviour(
    session: Session,
    clock: Clock,
    *,
    debtor_id: str,
    paid: int = 12,
    avg_days_late: str = "4.00",
    share_paid_late: str = "0.2500",
    unpaid: int = 0,
    unpaid_cents: int = 0,
) -> DebtorBehaviour:
    row = session.merge(
        DebtorBehaviour(
            debtor_id=debtor_id,
            paid_invoice_count=paid,
            avg_days_late=Decimal(avg_days_late),
            p90_days_late=Decimal(avg_days_late) * 2,
            share_paid_late=Decimal(share_paid_late),
            unpaid_count=unpaid,
            unpaid_overdue_cents=unpaid_cents,
            computed_at=clock.now(),
        )
    )
    session.flush()
    return row


def financed(
    session: Session,
    clock: Clock,
    *,
    company_id: str,
    debtor_siren: str,
    number: str,
    amount_cents: int,
    issue_date: date,
    outstanding_cents: int | None = None,
    invoice_id: str | None = None,
) -> FinancedFingerprint:
    """What the financing side writes when an advance goes live."""
    row = FinancedFingerprint(
        fingerprint=invoice_fingerprint(debtor_siren, number, amount_cents, issue_date),
        company_id=company_id,
        invoice_id=invoice_id,
        advance_id=new_id("adv"),
        debtor_siren=debtor_siren,
        outstanding_cents=amount_cents if outstanding_cents is None else outstanding_cents,
        currency="EUR",
        financed_at=clock.now(),
        updated_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


@dataclass
class Seller:
    company: Company
    debtor: Debtor
    account: BankAccount


def healthy_seller(
    session: Session, clock: Clock, *, partner_id: str | None = None, name: str = "Atelier Durand SAS"
) -> Seller:
    """A seller active in SIRENE with a healthy bank account, and one active customer
    with a good payment history."""
    company = f.company(session, clock, partner_id=partner_id, name=name)
    debtor = f.debtor(session, clock, company_id=company.id, name="Grands Magasins SA")
    registry(session, clock, siren=company.siren)
    assert debtor.siren is not None
    registry(session, clock, siren=debtor.siren)
    behaviour(session, clock, debtor_id=debtor.id)
    account = bank(session, clock, company_id=company.id)
    return Seller(company, debtor, account)
