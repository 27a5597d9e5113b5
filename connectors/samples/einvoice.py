"""E-invoice and lifecycle writers for tests and the demo.

From small dataclasses: a CII invoice (Factur-X EN 16931 profile, valid against the
Factur-X XSD), the same invoice in UBL 2.1, a Factur-X PDF (a one-page PDF with the CII
embedded), and lifecycle statuses as a CDAR message or the JSON Escompte accepts from
aggregators. Amounts are integer cents; a credit note's amounts are positive, as in the
standards.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import facturx  # type: ignore[import-untyped]
from lxml import etree  # type: ignore[import-untyped]
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

CII_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
UBL_INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
UBL_NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
CDAR_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossDomainAcknowledgementAndResponse:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
EN16931 = "urn:cen.eu:en16931:2017"
CREDIT_NOTE_TYPE_CODES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)
SAMPLE_IBAN = "FR7630006000011234567890189"
ROLE_CODES = {"buyer": "BY", "seller": "SE", "platform": "WK"}


@dataclass(frozen=True)
class SampleParty:
    name: str
    siren: str | None  # written as given, so tests can write an invalid one
    vat_number: str | None = None
    scheme: str = "0002"  # "0009" when ``siren`` holds a SIRET
    country: str = "FR"


@dataclass(frozen=True)
class SampleInvoice:
    number: str
    seller: SampleParty
    buyer: SampleParty
    issue_date: date
    due_date: date | None
    net_cents: int
    vat_cents: int
    total_cents: int | None = None  # None: net + VAT
    due_payable_cents: int | None = None  # None: the total
    currency: str = "EUR"
    iban: str | None = SAMPLE_IBAN
    type_code: str = "380"  # 381: credit note
    payment_terms: str | None = None
    vat_rate: str = "20.00"
    item_name: str = "Prestations de services"

    @property
    def total(self) -> int:
        return self.total_cents if self.total_cents is not None else self.net_cents + self.vat_cents

    @property
    def due_payable(self) -> int:
        return self.due_payable_cents if self.due_payable_cents is not None else self.total

    @property
    def is_credit_note(self) -> bool:
        return self.type_code in CREDIT_NOTE_TYPE_CODES


@dataclass(frozen=True)
class SampleStatus:
    """One lifecycle status of an invoice (AFNOR XP Z12-012 code)."""

    message_id: str
    invoice_number: str
    seller_siren: str
    buyer_siren: str | None
    status_code: int
    occurred_at: datetime
    issue_date: date | None = None
    reason: str | None = None
    amount_cents: int | None = None
    currency: str = "EUR"
    issuer_role: str = "buyer"  # buyer, seller, platform
    invoice_type_code: str = "380"


def _decimal(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _sub(parent: Any, tag: str, text: str | None = None, **attrib: str) -> Any:
    prefix, _, name = tag.partition(":")
    namespaces = {**CII_NS, **UBL_NS}
    element = etree.SubElement(parent, f"{{{namespaces[prefix]}}}{name}", attrib)
    if text is not None:
        element.text = text
    return element


def _serialize(root: Any) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


# ---------------------------------------------------------------------------- CII


def _cii_party(parent: Any, tag: str, party: SampleParty) -> None:
    node = _sub(parent, tag)
    _sub(node, "ram:Name", party.name)
    if party.siren is not None:
        legal = _sub(node, "ram:SpecifiedLegalOrganization")
        _sub(legal, "ram:ID", party.siren, schemeID=party.scheme)
    address = _sub(node, "ram:PostalTradeAddress")
    _sub(address, "ram:CountryID", party.country)
    if party.vat_number is not None:
        tax = _sub(node, "ram:SpecifiedTaxRegistration")
        _sub(tax, "ram:ID", party.vat_number, schemeID="VA")


def _cii_date(parent: Any, tag: str, value: date) -> None:
    _sub(_sub(parent, tag), "udt:DateTimeString", value.strftime("%Y%m%d"), format="102")


def _cii_line(transaction: Any, invoice: SampleInvoice) -> None:
    line = _sub(transaction, "ram:IncludedSupplyChainTradeLineItem")
    _sub(_sub(line, "ram:AssociatedDocumentLineDocument"), "ram:LineID", "1")
    _sub(_sub(line, "ram:SpecifiedTradeProduct"), "ram:Name", invoice.item_name)
    price = _sub(_sub(line, "ram:SpecifiedLineTradeAgreement"), "ram:NetPriceProductTradePrice")
    _sub(price, "ram:ChargeAmount", _decimal(invoice.net_cents))
    _sub(_sub(line, "ram:SpecifiedLineTradeDelivery"), "ram:BilledQuantity", "1", unitCode="C62")
    line_settlement = _sub(line, "ram:SpecifiedLineTradeSettlement")
    line_tax = _sub(line_settlement, "ram:ApplicableTradeTax")
    _sub(line_tax, "ram:TypeCode", "VAT")
    _sub(line_tax, "ram:CategoryCode", "S")
    _sub(line_tax, "ram:RateApplicablePercent", invoice.vat_rate)
    line_sum = _sub(line_settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
    _sub(line_sum, "ram:LineTotalAmount", _decimal(invoice.net_cents))


def cii_xml(invoice: SampleInvoice) -> bytes:
    """A UN/CEFACT CII invoice, Factur-X EN 16931 profile, with one line."""
    root = etree.Element(f"{{{CII_NS['rsm']}}}CrossIndustryInvoice", nsmap=CII_NS)
    context = _sub(root, "rsm:ExchangedDocumentContext")
    _sub(_sub(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)
    document = _sub(root, "rsm:ExchangedDocument")
    _sub(document, "ram:ID", invoice.number)
    _sub(document, "ram:TypeCode", invoice.type_code)
    _cii_date(document, "ram:IssueDateTime", invoice.issue_date)
    transaction = _sub(root, "rsm:SupplyChainTradeTransaction")

    _cii_line(transaction, invoice)

    agreement = _sub(transaction, "ram:ApplicableHeaderTradeAgreement")
    _cii_party(agreement, "ram:SellerTradeParty", invoice.seller)
    _cii_party(agreement, "ram:BuyerTradeParty", invoice.buyer)
    _sub(transaction, "ram:ApplicableHeaderTradeDelivery")

    settlement = _sub(transaction, "ram:ApplicableHeaderTradeSettlement")
    _sub(settlement, "ram:InvoiceCurrencyCode", invoice.currency)
    if invoice.iban is not None:
        means = _sub(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        _sub(means, "ram:TypeCode", "58")  # SEPA credit transfer
        _sub(_sub(means, "ram:PayeePartyCreditorFinancialAccount"), "ram:IBANID", invoice.iban)
    tax = _sub(settlement, "ram:ApplicableTradeTax")
    _sub(tax, "ram:CalculatedAmount", _decimal(invoice.vat_cents))
    _sub(tax, "ram:TypeCode", "VAT")
    _sub(tax, "ram:BasisAmount", _decimal(invoice.net_cents))
    _sub(tax, "ram:CategoryCode", "S")
    _sub(tax, "ram:RateApplicablePercent", invoice.vat_rate)
    if invoice.payment_terms is not None or invoice.due_date is not None:
        terms = _sub(settlement, "ram:SpecifiedTradePaymentTerms")
        if invoice.payment_terms is not None:
            _sub(terms, "ram:Description", invoice.payment_terms)
        if invoice.due_date is not None:
            _cii_date(terms, "ram:DueDateDateTime", invoice.due_date)
    summation = _sub(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _sub(summation, "ram:LineTotalAmount", _decimal(invoice.net_cents))
    _sub(summation, "ram:TaxBasisTotalAmount", _decimal(invoice.net_cents))
    _sub(summation, "ram:TaxTotalAmount", _decimal(invoice.vat_cents), currencyID=invoice.currency)
    _sub(summation, "ram:GrandTotalAmount", _decimal(invoice.total))
    if invoice.due_payable != invoice.total:
        _sub(summation, "ram:TotalPrepaidAmount", _decimal(invoice.total - invoice.due_payable))
    _sub(summation, "ram:DuePayableAmount", _decimal(invoice.due_payable))
    return _serialize(root)


# ---------------------------------------------------------------------------- UBL


def _ubl_party(parent: Any, tag: str, party: SampleParty) -> None:
    node = _sub(_sub(parent, tag), "cac:Party")
    _sub(_sub(node, "cac:PartyName"), "cbc:Name", party.name)
    _sub(_sub(_sub(node, "cac:PostalAddress"), "cac:Country"), "cbc:IdentificationCode", party.country)
    if party.vat_number is not None:
        tax = _sub(node, "cac:PartyTaxScheme")
        _sub(tax, "cbc:CompanyID", party.vat_number)
        _sub(_sub(tax, "cac:TaxScheme"), "cbc:ID", "VAT")
    legal = _sub(node, "cac:PartyLegalEntity")
    _sub(legal, "cbc:RegistrationName", party.name)
    if party.siren is not None:
        _sub(legal, "cbc:CompanyID", party.siren, schemeID=party.scheme)


def _ubl_line(root: Any, invoice: SampleInvoice) -> None:
    credit, cur = invoice.is_credit_note, invoice.currency
    line = _sub(root, "cac:CreditNoteLine" if credit else "cac:InvoiceLine")
    _sub(line, "cbc:ID", "1")
    _sub(line, "cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity", "1", unitCode="C62")
    _sub(line, "cbc:LineExtensionAmount", _decimal(invoice.net_cents), currencyID=cur)
    item = _sub(line, "cac:Item")
    _sub(item, "cbc:Name", invoice.item_name)
    item_tax = _sub(item, "cac:ClassifiedTaxCategory")
    _sub(item_tax, "cbc:ID", "S")
    _sub(item_tax, "cbc:Percent", invoice.vat_rate)
    _sub(_sub(item_tax, "cac:TaxScheme"), "cbc:ID", "VAT")
    _sub(_sub(line, "cac:Price"), "cbc:PriceAmount", _decimal(invoice.net_cents), currencyID=cur)


def ubl_xml(invoice: SampleInvoice) -> bytes:
    """The same invoice as a UBL 2.1 Invoice (or CreditNote for a credit note type code)."""
    credit = invoice.is_credit_note
    namespace = UBL_CREDIT_NOTE_NS if credit else UBL_INVOICE_NS
    nsmap: dict[str | None, str] = {None: namespace}
    nsmap.update(UBL_NS)
    root = etree.Element(f"{{{namespace}}}{'CreditNote' if credit else 'Invoice'}", nsmap=nsmap)
    cur = invoice.currency
    _sub(root, "cbc:CustomizationID", EN16931)
    _sub(root, "cbc:ID", invoice.number)
    _sub(root, "cbc:IssueDate", invoice.issue_date.isoformat())
    if not credit and invoice.due_date is not None:
        _sub(root, "cbc:DueDate", invoice.due_date.isoformat())
    _sub(root, "cbc:CreditNoteTypeCode" if credit else "cbc:InvoiceTypeCode", invoice.type_code)
    _sub(root, "cbc:DocumentCurrencyCode", cur)
    _ubl_party(root, "cac:AccountingSupplierParty", invoice.seller)
    _ubl_party(root, "cac:AccountingCustomerParty", invoice.buyer)
    if invoice.iban is not None or (credit and invoice.due_date is not None):
        means = _sub(root, "cac:PaymentMeans")
        _sub(means, "cbc:PaymentMeansCode", "58")
        if credit and invoice.due_date is not None:
            _sub(means, "cbc:PaymentDueDate", invoice.due_date.isoformat())
        if invoice.iban is not None:
            _sub(_sub(means, "cac:PayeeFinancialAccount"), "cbc:ID", invoice.iban)
    if invoice.payment_terms is not None:
        _sub(_sub(root, "cac:PaymentTerms"), "cbc:Note", invoice.payment_terms)
    tax_total = _sub(root, "cac:TaxTotal")
    _sub(tax_total, "cbc:TaxAmount", _decimal(invoice.vat_cents), currencyID=cur)
    subtotal = _sub(tax_total, "cac:TaxSubtotal")
    _sub(subtotal, "cbc:TaxableAmount", _decimal(invoice.net_cents), currencyID=cur)
    _sub(subtotal, "cbc:TaxAmount", _decimal(invoice.vat_cents), currencyID=cur)
    category = _sub(subtotal, "cac:TaxCategory")
    _sub(category, "cbc:ID", "S")
    _sub(category, "cbc:Percent", invoice.vat_rate)
    _sub(_sub(category, "cac:TaxScheme"), "cbc:ID", "VAT")
    totals = _sub(root, "cac:LegalMonetaryTotal")
    _sub(totals, "cbc:LineExtensionAmount", _decimal(invoice.net_cents), currencyID=cur)
    _sub(totals, "cbc:TaxExclusiveAmount", _decimal(invoice.net_cents), currencyID=cur)
    _sub(totals, "cbc:TaxInclusiveAmount", _decimal(invoice.total), currencyID=cur)
    if invoice.due_payable != invoice.total:
        _sub(totals, "cbc:PrepaidAmount", _decimal(invoice.total - invoice.due_payable), currencyID=cur)
    _sub(totals, "cbc:PayableAmount", _decimal(invoice.due_payable), currencyID=cur)
    _ubl_line(root, invoice)
    return _serialize(root)


# ---------------------------------------------------------------------------- PDF


def _pdf_text(value: str) -> bytes:
    raw = value.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def plain_pdf(lines: Sequence[str]) -> bytes:
    """A one-page A4 PDF showing ``lines`` in Helvetica (no attachment)."""
    writer = PdfWriter()
    page = writer.add_blank_page(width=595, height=842)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
            NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    commands = [b"BT", b"/F1 12 Tf", b"14 TL", b"56 780 Td"]
    for text in lines:
        commands.append(b"(" + _pdf_text(text) + b") Tj T*")
    commands.append(b"ET")
    content = DecodedStreamObject()
    content.set_data(b"\n".join(commands))
    page[NameObject("/Contents")] = writer._add_object(content)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def facturx_pdf(invoice: SampleInvoice) -> bytes:
    """A Factur-X PDF: a one-page human-readable invoice with its CII embedded."""
    kind = "Avoir" if invoice.is_credit_note else "Facture"
    lines = [
        f"{kind} {invoice.number} du {invoice.issue_date:%d/%m/%Y}",
        f"Vendeur : {invoice.seller.name} (SIREN {invoice.seller.siren})",
        f"Acheteur : {invoice.buyer.name} (SIREN {invoice.buyer.siren})",
        f"Total HT : {_decimal(invoice.net_cents)} {invoice.currency}",
        f"TVA : {_decimal(invoice.vat_cents)} {invoice.currency}",
        f"Total TTC : {_decimal(invoice.total)} {invoice.currency}",
    ]
    if invoice.due_date is not None:
        lines.append(f"Echeance : {invoice.due_date:%d/%m/%Y}")
    metadata = {
        "author": invoice.seller.name,
        "keywords": "Factur-X, Invoice",
        "title": f"{invoice.seller.name}: {kind} {invoice.number}",
        "subject": f"{kind} {invoice.number}",
    }
    result = facturx.generate_from_binary(
        plain_pdf(lines),
        cii_xml(invoice),
        flavor="factur-x",
        level="en16931",
        check_xsd=True,
        pdf_metadata=metadata,
        lang="fr-FR",
    )
    return bytes(result)


# ---------------------------------------------------------------------------- lifecycle


def _cdar_datetime(parent: Any, tag: str, value: datetime) -> None:
    text = value.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    _sub_cdar(_sub_cdar(parent, tag), "udt:DateTimeString", text, format="204")


def _sub_cdar(parent: Any, tag: str, text: str | None = None, **attrib: str) -> Any:
    prefix, _, name = tag.partition(":")
    element = etree.SubElement(parent, f"{{{CDAR_NS[prefix]}}}{name}", attrib)
    if text is not None:
        element.text = text
    return element


def _cdar_party(parent: Any, tag: str, siren: str | None, role: str) -> None:
    node = _sub_cdar(parent, tag)
    if siren is not None:
        _sub_cdar(node, "ram:GlobalID", siren, schemeID="0002")
    _sub_cdar(node, "ram:RoleCode", role)


def cdar_xml(statuses: Sequence[SampleStatus]) -> bytes:
    """One CDAR message (UN/CEFACT Cross Domain Acknowledgement and Response, D22B, as
    exchanged between French platforms) carrying ``statuses``, which share one message id
    and one issuer: one ``AcknowledgementDocument`` per status."""
    if not statuses:
        raise ValueError("a CDAR message carries at least one status")
    first = statuses[0]
    if any(s.message_id != first.message_id for s in statuses):
        raise ValueError("one CDAR message has one message id")
    root = etree.Element(f"{{{CDAR_NS['rsm']}}}CrossDomainAcknowledgementAndResponse", nsmap=CDAR_NS)
    context = _sub_cdar(root, "rsm:ExchangedDocumentContext")
    business = _sub_cdar(context, "ram:BusinessProcessSpecifiedDocumentContextParameter")
    _sub_cdar(business, "ram:ID", "REGULATED")
    guideline = _sub_cdar(context, "ram:GuidelineSpecifiedDocumentContextParameter")
    _sub_cdar(guideline, "ram:ID", "urn.cpro.gouv.fr:1p0:CDV:einvoicingF2")
    exchanged = _sub_cdar(root, "rsm:ExchangedDocument")
    _sub_cdar(exchanged, "ram:ID", first.message_id)
    _sub_cdar(exchanged, "ram:Name", "Cycle de vie")
    _cdar_datetime(exchanged, "ram:IssueDateTime", max(s.occurred_at for s in statuses))
    role = ROLE_CODES.get(first.issuer_role, first.issuer_role.upper())
    issuer_siren = {"BY": first.buyer_siren, "SE": first.seller_siren}.get(role)
    _cdar_party(exchanged, "ram:SenderTradeParty", issuer_siren, role)
    _cdar_party(exchanged, "ram:IssuerTradeParty", issuer_siren, role)
    if role != "SE":
        _cdar_party(exchanged, "ram:RecipientTradeParty", first.seller_siren, "SE")
    if role != "BY":
        _cdar_party(exchanged, "ram:RecipientTradeParty", first.buyer_siren, "BY")
    for status in statuses:
        ack = _sub_cdar(root, "rsm:AcknowledgementDocument")
        _sub_cdar(_sub_cdar(ack, "ram:MultipleReferencesIndicator"), "udt:Indicator", "false")
        _sub_cdar(ack, "ram:TypeCode", "305" if status.status_code in (200, 201, 202, 203, 213) else "23")
        _cdar_datetime(ack, "ram:IssueDateTime", status.occurred_at)
        ref = _sub_cdar(ack, "ram:ReferenceReferencedDocument")
        _sub_cdar(ref, "ram:IssuerAssignedID", status.invoice_number)
        _sub_cdar(ref, "ram:TypeCode", status.invoice_type_code)
        if status.issue_date is not None:
            issued = _sub_cdar(ref, "ram:FormattedIssueDateTime")
            _sub_cdar(issued, "qdt:DateTimeString", status.issue_date.strftime("%Y%m%d"), format="102")
        _sub_cdar(ref, "ram:ProcessConditionCode", str(status.status_code))
        _sub_cdar(
            _sub_cdar(ref, "ram:IssuerTradeParty"), "ram:GlobalID", status.seller_siren, schemeID="0002"
        )
        detail = _sub_cdar(ref, "ram:SpecifiedDocumentStatus")
        _cdar_datetime(detail, "ram:ReferenceDateTime", status.occurred_at)
        if status.reason is not None:
            _sub_cdar(detail, "ram:Reason", status.reason)
        _sub_cdar(detail, "ram:SequenceNumeric", "1")
        if status.amount_cents is not None:
            characteristic = _sub_cdar(detail, "ram:SpecifiedDocumentCharacteristic")
            _sub_cdar(characteristic, "ram:TypeCode", "MEN" if status.status_code == 212 else "MPA")
            _sub_cdar(
                characteristic, "ram:ValueAmount", _decimal(status.amount_cents), currencyID=status.currency
            )
    return _serialize(root)


def lifecycle_json(statuses: Sequence[SampleStatus]) -> bytes:
    """The same statuses in the JSON format Escompte accepts from aggregators."""
    items: list[dict[str, Any]] = []
    for s in statuses:
        item: dict[str, Any] = {
            "message_id": s.message_id,
            "invoice_number": s.invoice_number,
            "seller_siren": s.seller_siren,
            "buyer_siren": s.buyer_siren,
            "status_code": s.status_code,
            "occurred_at": s.occurred_at.isoformat(),
            "issuer_role": s.issuer_role,
        }
        if s.issue_date is not None:
            item["issue_date"] = s.issue_date.isoformat()
        if s.reason is not None:
            item["reason"] = s.reason
        if s.amount_cents is not None:
            item["amount"] = {"amount": s.amount_cents, "currency": s.currency}
        items.append(item)
    return json.dumps({"statuses": items}, ensure_ascii=False, indent=2).encode()
