"""E-invoice imports: Factur-X PDF, CII and UBL → invoices and counterparties."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import facturx
import pytest
from pypdf import PdfWriter
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum import luhn

from escompte.clock import FrozenClock
from escompte.connectors import einvoice
from escompte.connectors.base import ImportContext, ImportOutcome, ImportRefused
from escompte.connectors.invoices import InvoiceFacts, find_or_create_debtor, upsert_invoice
from escompte.connectors.samples.einvoice import (
    SAMPLE_IBAN,
    SampleInvoice,
    SampleParty,
    cii_xml,
    facturx_pdf,
    plain_pdf,
    ubl_xml,
)
from escompte.connectors.xml import XmlError, element_path, parse_xml
from escompte.ids import new_id
from escompte.models import (
    Company,
    DataImport,
    Debtor,
    DocumentType,
    ImportKind,
    ImportStatus,
    Invoice,
    InvoiceKind,
    InvoiceSource,
    InvoiceStatus,
    Payment,
    PaymentSource,
)
from tests import factories as f


def vat_of(siren: str) -> str:
    return f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"


def context(
    session: Session, clock: FrozenClock, company: Company, data: bytes, kind: ImportKind
) -> ImportContext:
    data_import = DataImport(
        id=new_id("imp"),
        company_id=company.id,
        kind=kind,
        status=ImportStatus.RUNNING,
        filename=f"invoice.{kind.value}",
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


def run(
    session: Session, ctx: ImportContext, handler: Callable[[ImportContext], ImportOutcome]
) -> ImportOutcome:
    """As the import service does: the handler in a savepoint, all or nothing."""
    with session.begin_nested():
        outcome = handler(ctx)
        ctx.issues.raise_if_any()
    return outcome


@dataclass(frozen=True)
class Format:
    name: str
    write: Callable[[SampleInvoice], bytes]
    handler: Callable[[ImportContext], ImportOutcome]
    kind: ImportKind
    source: InvoiceSource


CII = Format("cii", cii_xml, einvoice.import_cii, ImportKind.CII, InvoiceSource.CII)
UBL = Format("ubl", ubl_xml, einvoice.import_ubl, ImportKind.UBL, InvoiceSource.UBL)
FACTURX = Format("facturx", facturx_pdf, einvoice.import_facturx, ImportKind.FACTURX, InvoiceSource.FACTURX)
FORMATS = [pytest.param(x, id=x.name) for x in (CII, UBL, FACTURX)]
XML_FORMATS = [pytest.param(x, id=x.name) for x in (CII, UBL)]


@pytest.fixture
def company(session: Session, clock: FrozenClock) -> Company:
    return f.company(session, clock, name="Atelier Lumière SAS")


@pytest.fixture
def customer_siren() -> str:
    return f.siren()


@pytest.fixture
def sample(company: Company, customer_siren: str, clock: FrozenClock) -> SampleInvoice:
    """A receivable: the company sells to a customer."""
    return SampleInvoice(
        number="FA-2026-0042",
        seller=SampleParty(company.legal_name, company.siren, vat_of(company.siren)),
        buyer=SampleParty("Groupe Hôtelier Bellecour SA", customer_siren, vat_of(customer_siren)),
        issue_date=clock.today() - timedelta(days=3),
        due_date=clock.today() + timedelta(days=42),
        net_cents=1_000_000,
        vat_cents=200_000,
        payment_terms="45 jours date de facture",
    )


def count(session: Session, model: type[Invoice] | type[Debtor]) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def refused(
    session: Session, clock: FrozenClock, company: Company, fmt: Format, data: bytes
) -> ImportRefused:
    invoices, debtors = count(session, Invoice), count(session, Debtor)
    with pytest.raises(ImportRefused) as info:
        run(session, context(session, clock, company, data, fmt.kind), fmt.handler)
    assert count(session, Invoice) == invoices
    assert count(session, Debtor) == debtors
    return info.value


def messages(error: ImportRefused) -> str:
    return " | ".join(issue.message for issue in error.issues)


class TestSamples:
    def test_cii_is_valid_factur_x_en16931(self, sample: SampleInvoice) -> None:
        assert facturx.xml_check_xsd(cii_xml(sample), flavor="factur-x", level="en16931")
        credit = replace(sample, type_code="381")
        assert facturx.xml_check_xsd(cii_xml(credit), flavor="factur-x", level="en16931")

    def test_ubl_is_valid_ubl_21(self, sample: SampleInvoice) -> None:
        assert facturx.xml_check_xsd(ubl_xml(sample), flavor="ubl-2.1-invoice")
        credit = replace(sample, type_code="381")
        assert facturx.xml_check_xsd(ubl_xml(credit), flavor="ubl-2.1-creditnote")

    def test_facturx_pdf_embeds_the_cii(self, sample: SampleInvoice) -> None:
        filename, xml = facturx.get_facturx_xml_from_pdf(facturx_pdf(sample))
        assert filename == "factur-x.xml"
        assert xml == cii_xml(sample)


@pytest.mark.parametrize("fmt", FORMATS)
class TestImport:
    def test_receivable_invoice_is_created_with_its_fields(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        ctx = context(session, clock, company, fmt.write(sample), fmt.kind)
        outcome = run(session, ctx, fmt.handler)
        assert outcome.counts == {"invoices": 1, "debtors": 1}
        assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 0, 0)
        invoice = session.execute(select(Invoice).where(Invoice.company_id == company.id)).scalar_one()
        assert invoice.kind == InvoiceKind.RECEIVABLE
        assert invoice.number == "FA-2026-0042"
        assert invoice.document_type == DocumentType.INVOICE
        assert invoice.issue_date == sample.issue_date
        assert invoice.due_date == sample.due_date
        assert invoice.due_date_estimated is False
        assert (invoice.amount_cents, invoice.net_cents, invoice.vat_cents) == (1_200_000, 1_000_000, 200_000)
        assert invoice.currency == "EUR"
        assert invoice.payment_iban == SAMPLE_IBAN
        assert invoice.source == fmt.source
        assert invoice.status == InvoiceStatus.OPEN
        assert invoice.import_id == ctx.data_import.id
        debtor = session.get(Debtor, invoice.debtor_id)
        assert debtor is not None
        assert debtor.siren == sample.buyer.siren
        assert debtor.legal_name == "Groupe Hôtelier Bellecour SA"
        assert debtor.vat_number == sample.buyer.vat_number

    def test_payable_invoice_when_the_company_is_the_buyer(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        supplier = f.siren()
        bought = replace(
            sample,
            seller=SampleParty("Fournitures Rhône SARL", supplier, vat_of(supplier)),
            buyer=SampleParty(company.legal_name, company.siren),
        )
        run(session, context(session, clock, company, fmt.write(bought), fmt.kind), fmt.handler)
        invoice = session.execute(select(Invoice).where(Invoice.company_id == company.id)).scalar_one()
        assert invoice.kind == InvoiceKind.PAYABLE
        debtor = session.get(Debtor, invoice.debtor_id)
        assert debtor is not None
        assert (debtor.siren, debtor.legal_name) == (supplier, "Fournitures Rhône SARL")

    def test_credit_note(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        credit = replace(sample, number="AV-2026-0007", type_code="381", net_cents=10_000, vat_cents=2_000)
        run(session, context(session, clock, company, fmt.write(credit), fmt.kind), fmt.handler)
        invoice = session.execute(select(Invoice).where(Invoice.company_id == company.id)).scalar_one()
        assert invoice.document_type == DocumentType.CREDIT_NOTE
        assert invoice.kind == InvoiceKind.RECEIVABLE
        assert invoice.amount_cents == 12_000
        assert invoice.due_date == sample.due_date

    def test_prepaid_part_is_a_payment_and_only_the_rest_is_open(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        down_payment = replace(sample, due_payable_cents=840_000)  # 3,600.00 € paid on order
        data = fmt.write(down_payment)
        outcome = run(session, context(session, clock, company, data, fmt.kind), fmt.handler)
        assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 0, 0)
        invoice = session.execute(select(Invoice).where(Invoice.company_id == company.id)).scalar_one()
        assert (invoice.amount_cents, invoice.amount_paid_cents) == (1_200_000, 360_000)
        assert invoice.status == InvoiceStatus.PARTIALLY_PAID
        payment = session.execute(select(Payment).where(Payment.company_id == company.id)).scalar_one()
        assert (payment.source, payment.source_ref) == (PaymentSource.PREPAID, invoice.id)
        assert (payment.amount_cents, payment.paid_on) == (360_000, sample.issue_date)
        again = run(session, context(session, clock, company, data, fmt.kind), fmt.handler)
        assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
        assert session.execute(select(func.count()).select_from(Payment)).scalar_one() == 1
        other = replace(sample, due_payable_cents=900_000)
        error = refused(session, clock, company, fmt, fmt.write(other))
        assert "3,600.00 EUR paid in advance" in messages(error)
        assert "this file says 3,000.00 EUR (BT-113)" in messages(error)
        assert session.get(Invoice, invoice.id).amount_paid_cents == 360_000  # type: ignore[union-attr]

    def test_fully_prepaid_invoice_is_paid(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        run(
            session,
            context(session, clock, company, fmt.write(replace(sample, due_payable_cents=0)), fmt.kind),
            fmt.handler,
        )
        invoice = session.execute(select(Invoice).where(Invoice.company_id == company.id)).scalar_one()
        assert (invoice.amount_paid_cents, invoice.status) == (1_200_000, InvoiceStatus.PAID)

    def test_prepaid_known_invoice_learns_its_down_payment(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        run(session, context(session, clock, company, fmt.write(sample), fmt.kind), fmt.handler)
        outcome = run(
            session,
            context(
                session, clock, company, fmt.write(replace(sample, due_payable_cents=1_000_000)), fmt.kind
            ),
            fmt.handler,
        )
        assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 1, 0)
        invoice = session.execute(select(Invoice).where(Invoice.company_id == company.id)).scalar_one()
        assert (invoice.amount_paid_cents, invoice.status) == (200_000, InvoiceStatus.PARTIALLY_PAID)

    def test_credit_note_amount_due_is_no_prepayment(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        credit = replace(sample, number="AV-2026-0008", type_code="381", due_payable_cents=0)
        run(session, context(session, clock, company, fmt.write(credit), fmt.kind), fmt.handler)
        assert session.execute(select(func.count()).select_from(Payment)).scalar_one() == 0

    def test_same_invoice_again_changes_nothing(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        data = fmt.write(sample)
        run(session, context(session, clock, company, data, fmt.kind), fmt.handler)
        outcome = run(session, context(session, clock, company, data, fmt.kind), fmt.handler)
        assert outcome.counts == {"invoices": 0, "debtors": 0}
        assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 0, 1)
        assert count(session, Invoice) == 1

    def test_other_amount_for_a_known_invoice_is_refused(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        run(session, context(session, clock, company, fmt.write(sample), fmt.kind), fmt.handler)
        changed = replace(sample, net_cents=1_100_000, vat_cents=220_000)
        error = refused(session, clock, company, fmt, fmt.write(changed))
        assert "already exists with other facts" in messages(error)
        assert "12,000.00 EUR known, 13,200.00 EUR in this file" in messages(error)
        invoice = session.execute(select(Invoice)).scalar_one()
        assert invoice.amount_cents == 1_200_000

    def test_confirmed_due_date_replaces_an_estimated_one(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        ctx = context(session, clock, company, b"", ImportKind.FEC)
        debtor, _ = find_or_create_debtor(
            ctx, siren=sample.buyer.siren, legal_name="Bellecour", aux_account_num="411BEL"
        )
        from_books = InvoiceFacts(
            kind=InvoiceKind.RECEIVABLE,
            number=sample.number,
            issue_date=sample.issue_date,
            due_date=None,
            amount_cents=sample.total,
            currency="EUR",
            source=InvoiceSource.FEC,
        )
        estimated, _ = upsert_invoice(ctx, debtor, from_books)
        session.flush()
        assert estimated is not None and estimated.due_date_estimated

        outcome = run(session, context(session, clock, company, fmt.write(sample), fmt.kind), fmt.handler)
        assert (outcome.created, outcome.updated) == (0, 1)
        session.refresh(estimated)
        assert estimated.due_date == sample.due_date
        assert estimated.due_date_estimated is False
        assert (estimated.net_cents, estimated.payment_iban) == (1_000_000, SAMPLE_IBAN)
        assert estimated.source == InvoiceSource.FEC  # first seen in the books

    def test_debtor_known_only_from_the_books_learns_its_siren(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        """The FEC names customers by account only; the e-invoice finds that debtor through
        the invoice it already knows, instead of creating a second one."""
        ctx = context(session, clock, company, b"", ImportKind.FEC)
        debtor, _ = find_or_create_debtor(ctx, legal_name="BELLECOUR", aux_account_num="411BEL")
        from_books = InvoiceFacts(
            kind=InvoiceKind.RECEIVABLE,
            number=sample.number,
            issue_date=sample.issue_date,
            due_date=None,
            amount_cents=sample.total,
            currency="EUR",
            source=InvoiceSource.FEC,
        )
        estimated, _ = upsert_invoice(ctx, debtor, from_books)
        session.flush()
        assert estimated is not None

        outcome = run(session, context(session, clock, company, fmt.write(sample), fmt.kind), fmt.handler)
        assert outcome.counts == {"invoices": 0, "debtors": 0}
        assert outcome.updated == 1
        assert count(session, Debtor) == 1 and count(session, Invoice) == 1
        session.refresh(debtor)
        session.refresh(estimated)
        assert (debtor.siren, debtor.vat_number, debtor.aux_account_num) == (
            sample.buyer.siren,
            sample.buyer.vat_number,
            "411BEL",
        )
        assert (estimated.due_date, estimated.due_date_estimated) == (sample.due_date, False)

    def test_neither_party_is_the_company(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        other = f.siren()
        foreign = replace(sample, seller=SampleParty("Autre SAS", other))
        error = refused(session, clock, company, fmt, fmt.write(foreign))
        assert f"seller SIREN {other} and buyer SIREN {sample.buyer.siren}" in messages(error)
        assert company.siren in messages(error)

    def test_missing_siren_is_refused(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        anonymous = replace(sample, buyer=SampleParty("Client sans SIREN", None))
        error = refused(session, clock, company, fmt, fmt.write(anonymous))
        assert "The buyer has no SIREN" in messages(error)
        assert error.issues[0].field == "BT-47"
        assert error.issues[0].path is not None

    def test_invalid_siren_is_refused(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        wrong = replace(sample, buyer=SampleParty("Client SA", "123456789"))
        error = refused(session, clock, company, fmt, fmt.write(wrong))
        assert "The buyer's SIREN '123456789' is not valid" in messages(error)
        path = error.issues[0].path or ""
        assert path.endswith(("ram:SpecifiedLegalOrganization/ram:ID", "cac:PartyLegalEntity/cbc:CompanyID"))

    def test_siret_gives_the_siren(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        stem = f"{sample.buyer.siren}0001"
        siret = stem + luhn.calc_check_digit(stem)
        with_siret = replace(sample, buyer=replace(sample.buyer, siren=siret, scheme="0009"))
        run(session, context(session, clock, company, fmt.write(with_siret), fmt.kind), fmt.handler)
        debtor = session.execute(select(Debtor).where(Debtor.company_id == company.id)).scalar_one()
        assert debtor.siren == sample.buyer.siren

    def test_vat_number_of_another_company_is_refused(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        mixed = replace(sample, buyer=replace(sample.buyer, vat_number=vat_of(f.siren())))
        error = refused(session, clock, company, fmt, fmt.write(mixed))
        assert f"not to its SIREN {sample.buyer.siren}" in messages(error)

    def test_usd_is_refused(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        error = refused(session, clock, company, fmt, fmt.write(replace(sample, currency="USD")))
        assert "Escompte handles EUR only for now" in messages(error)
        assert error.issues[0].field == "BT-5"
        assert (error.issues[0].path or "").endswith(("ram:InvoiceCurrencyCode", "cbc:DocumentCurrencyCode"))

    def test_invalid_iban_is_refused(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        error = refused(
            session, clock, company, fmt, fmt.write(replace(sample, iban="FR7630006000011234567890188"))
        )
        assert "IBAN 'FR7630006000011234567890188' is not valid" in messages(error)
        assert (error.issues[0].path or "").endswith(("ram:IBANID", "cac:PayeeFinancialAccount/cbc:ID"))

    def test_totals_that_do_not_add_up_are_refused(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        error = refused(session, clock, company, fmt, fmt.write(replace(sample, total_cents=1_200_001)))
        assert "do not add up" in messages(error)

    def test_without_due_date_it_is_estimated(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice, fmt: Format
    ) -> None:
        run(
            session,
            context(session, clock, company, fmt.write(replace(sample, due_date=None)), fmt.kind),
            fmt.handler,
        )
        invoice = session.execute(select(Invoice)).scalar_one()
        assert invoice.due_date_estimated is True
        assert invoice.due_date == sample.issue_date + timedelta(days=30)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rsm:CrossIndustryInvoice
  xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100">&lol3;</rsm:CrossIndustryInvoice>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&xxe;</Invoice>
"""


@pytest.mark.parametrize("fmt", XML_FORMATS)
class TestHostileOrBrokenXml:
    def test_malformed_xml(self, session: Session, clock: FrozenClock, company: Company, fmt: Format) -> None:
        error = refused(session, clock, company, fmt, b"<Invoice>\n<cbc:ID>F-1</Invoice>")
        assert "not well-formed XML" in messages(error)
        assert error.issues[0].line == 2

    def test_billion_laughs(
        self, session: Session, clock: FrozenClock, company: Company, fmt: Format
    ) -> None:
        error = refused(session, clock, company, fmt, BILLION_LAUGHS)
        assert "DOCTYPE" in messages(error)
        assert "XML bombs" in messages(error)

    def test_external_entity(
        self, session: Session, clock: FrozenClock, company: Company, fmt: Format
    ) -> None:
        error = refused(session, clock, company, fmt, EXTERNAL_ENTITY)
        assert "external entities" in messages(error)

    def test_utf16_doctype_is_refused_too(
        self, session: Session, clock: FrozenClock, company: Company, fmt: Format
    ) -> None:
        data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'.encode(
            "utf-16"
        )
        error = refused(session, clock, company, fmt, data)
        assert "DOCTYPE" in messages(error)

    def test_empty_file(self, session: Session, clock: FrozenClock, company: Company, fmt: Format) -> None:
        error = refused(session, clock, company, fmt, b"  \n")
        assert "empty" in messages(error)


class TestFormatMismatch:
    def test_ubl_given_as_cii(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice
    ) -> None:
        error = refused(session, clock, company, CII, ubl_xml(sample))
        assert "This file is UBL, not CII: import it as ubl." in messages(error)

    def test_unknown_root(self, session: Session, clock: FrozenClock, company: Company) -> None:
        error = refused(session, clock, company, UBL, b"<Order xmlns='urn:example'/>")
        assert "expected a CII CrossIndustryInvoice or a UBL 2.1 Invoice" in messages(error)
        assert error.issues[0].path == "/Order"

    def test_unknown_document_type(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice
    ) -> None:
        error = refused(session, clock, company, CII, cii_xml(replace(sample, type_code="220")))
        assert "Document type code '220'" in messages(error)
        assert error.issues[0].path == "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:TypeCode"

    def test_missing_number_names_its_path(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice
    ) -> None:
        data = cii_xml(sample).replace(b"<ram:ID>FA-2026-0042</ram:ID>", b"")
        error = refused(session, clock, company, CII, data)
        assert error.issues[0].message == "The invoice number (BT-1) is missing."
        assert error.issues[0].path == "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID"

    def test_amount_with_fractions_of_cents(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice
    ) -> None:
        data = cii_xml(sample).replace(
            b"<ram:GrandTotalAmount>12000.00<", b"<ram:GrandTotalAmount>12000.001<"
        )
        error = refused(session, clock, company, CII, data)
        assert "'12000.001' is not an amount with at most 2 decimals" in messages(error)


class TestFacturX:
    def test_pdf_without_embedded_xml_is_refused(
        self, session: Session, clock: FrozenClock, company: Company
    ) -> None:
        error = refused(session, clock, company, FACTURX, plain_pdf(["Facture F-1", "Total 1 200,00 EUR"]))
        assert "This PDF carries no Factur-X or ZUGFeRD XML" in messages(error)

    def test_embedded_xml_goes_through_the_safe_parser(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice
    ) -> None:
        xml = cii_xml(sample).replace(b"?>\n", b'?>\n<!DOCTYPE x [<!ENTITY e "e">]>\n', 1)
        writer = PdfWriter(clone_from=io.BytesIO(plain_pdf(["Facture"])))
        writer.add_attachment("factur-x.xml", xml)
        pdf = io.BytesIO()
        writer.write(pdf)
        error = refused(session, clock, company, FACTURX, pdf.getvalue())
        assert messages(error).startswith("The XML embedded in the PDF: The XML contains a DOCTYPE")

    def test_earliest_of_several_due_dates(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice
    ) -> None:
        assert sample.due_date is not None
        later = (sample.due_date + timedelta(days=30)).strftime("%Y%m%d").encode()
        data = cii_xml(sample).replace(
            b"<ram:SpecifiedTradePaymentTerms>",
            b"<ram:SpecifiedTradePaymentTerms><ram:DueDateDateTime>"
            b'<udt:DateTimeString format="102">' + later + b"</udt:DateTimeString>"
            b"</ram:DueDateDateTime></ram:SpecifiedTradePaymentTerms><ram:SpecifiedTradePaymentTerms>",
        )
        # several payment terms (instalments) occur in the EXTENDED profile
        run(session, context(session, clock, company, data, ImportKind.CII), einvoice.import_cii)
        assert session.execute(select(Invoice.due_date)).scalar_one() == sample.due_date

    def test_damaged_pdf_is_refused(self, session: Session, clock: FrozenClock, company: Company) -> None:
        error = refused(session, clock, company, FACTURX, b"%PDF-1.7\nnot really a pdf")
        assert "not a readable PDF" in messages(error)

    def test_bare_cii_given_as_facturx_is_read_as_cii(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice
    ) -> None:
        run(
            session,
            context(session, clock, company, cii_xml(sample), ImportKind.FACTURX),
            einvoice.import_facturx,
        )
        assert session.execute(select(Invoice.source)).scalar_one() == InvoiceSource.CII

    def test_facturx_given_as_cii_is_read(
        self, session: Session, clock: FrozenClock, company: Company, sample: SampleInvoice
    ) -> None:
        run(
            session,
            context(session, clock, company, facturx_pdf(sample), ImportKind.CII),
            einvoice.import_cii,
        )
        assert session.execute(select(Invoice.source)).scalar_one() == InvoiceSource.FACTURX


class TestXmlHelper:
    def test_element_path_uses_prefixes_and_positions(self) -> None:
        root = parse_xml(b"<a:r xmlns:a='urn:a'><a:x/><a:x><b/></a:x></a:r>")
        leaf = root[1][0]
        assert element_path(leaf) == "/a:r/a:x[2]/b"

    def test_size_limit(self) -> None:
        with pytest.raises(XmlError, match="larger than 1 MiB"):
            parse_xml(b"<a>" + b"x" * (1024 * 1024) + b"</a>", max_bytes=1024 * 1024)

    def test_parse_cents(self) -> None:
        assert einvoice.parse_cents("1234.5") == 123450
        assert einvoice.parse_cents("-0.01") == -1
        assert einvoice.parse_cents("10.000") == 1000
        assert einvoice.parse_cents("1e3") is None
        assert einvoice.parse_cents("1.005") is None
