"""E-invoices: Factur-X / ZUGFeRD 2 PDFs, UN/CEFACT CII XML and UBL 2.1 Invoice/CreditNote.

One file is one invoice. The EN 16931 business terms Escompte needs are read with XPath
(after the XML went through ``connectors.xml``, which refuses DOCTYPEs and entities);
every error names the XML path it is about. The direction follows the company's SIREN:
seller → a receivable (the counterparty is the buyer), buyer → a payable (the
counterparty is the seller). The invoice then goes through ``upsert_invoice``: the same
invoice again changes nothing, other facts are refused, and the e-invoice's due date
confirms an estimated one. An amount due (BT-115) below the total is a prepaid part
(BT-113), recorded as a payment: the invoice is partially paid (or paid) from the start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import facturx  # type: ignore[import-untyped]
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy import select
from stdnum.fr import siren as std_siren
from stdnum.fr import siret as std_siret
from stdnum.fr import tva as std_tva

from escompte import money
from escompte.connectors.base import ImportContext, ImportOutcome, IssueCollector
from escompte.connectors.invoices import InvoiceFacts, find_or_create_debtor, upsert_invoice
from escompte.connectors.payments import Allocation, record_payment, refresh_invoices
from escompte.connectors.xml import (
    XmlError,
    child_path,
    element_path,
    local_name,
    parse_xml,
    read_bounded,
)
from escompte.models import (
    Debtor,
    DocumentType,
    Invoice,
    InvoiceKind,
    InvoiceSource,
    Payment,
    PaymentAllocation,
    PaymentSource,
)
from escompte.money import SUPPORTED_CURRENCIES

MAX_PDF_BYTES = 50 * 1024 * 1024
MAX_XML_BYTES = 20 * 1024 * 1024
NUMBER_MAX_LENGTH = 64  # invoices.number

CII_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}
UBL_ROOTS = {
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2": "Invoice",
    "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2": "CreditNote",
}
UBL_NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}

# UNTDID 1001 document type codes (BT-3) Escompte imports.
INVOICE_TYPE_CODES = frozenset({"380", "384", "386", "389", "393", "326", "875", "876", "877"})
CREDIT_NOTE_TYPE_CODES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)

SIREN_SCHEME = "0002"
SIRET_SCHEME = "0009"

_AMOUNT = re.compile(r"^[+-]?[0-9]{1,15}(\.[0-9]+)?$")


class _Refused(Exception):
    """The file cannot be read at all (the message is already in the collector)."""


@dataclass(frozen=True)
class Party:
    role: Literal["seller", "buyer"]
    name: str | None
    siren: str | None
    vat_number: str | None
    path: str


@dataclass(frozen=True)
class EInvoice:
    """The business terms of one e-invoice Escompte uses (EN 16931 numbering)."""

    number: str  # BT-1
    type_code: str  # BT-3
    document_type: DocumentType
    issue_date: date  # BT-2
    due_date: date | None  # BT-9
    payment_terms: str | None  # BT-20
    seller: Party  # BG-4
    buyer: Party  # BG-7
    currency: str  # BT-5
    net_cents: int | None  # BT-109
    vat_cents: int | None  # BT-110
    total_cents: int  # BT-112
    due_payable_cents: int | None  # BT-115
    iban: str | None  # BT-84
    number_path: str


class _Reader:
    """XPath reads that report what is missing or wrong, with its path."""

    def __init__(self, root: Any, namespaces: dict[str, str], issues: IssueCollector) -> None:
        self.root = root
        self.ns = namespaces
        self.issues = issues

    def find(self, base: Any, xpath: str) -> Any | None:
        found = base.xpath(xpath, namespaces=self.ns)
        return found[0] if found else None

    def find_all(self, base: Any, xpath: str) -> list[Any]:
        return list(base.xpath(xpath, namespaces=self.ns))

    def text(self, base: Any, xpath: str, *, term: str, label: str, required: bool) -> tuple[str | None, str]:
        element = self.find(base, xpath)
        value = (element.text or "").strip() if element is not None else ""
        path = element_path(element) if element is not None else child_path(base, xpath)
        if not value:
            if required:
                self.issues.add(f"The {label} ({term}) is missing.", path=path, field=term)
            return None, path
        return value, path

    def amount(self, base: Any, xpath: str, *, term: str, label: str, required: bool) -> int | None:
        value, path = self.text(base, xpath, term=term, label=label, required=required)
        if value is None:
            return None
        cents = parse_cents(value)
        if cents is None:
            self.issues.add(
                f"The {label} ({term}) {value!r} is not an amount with at most 2 decimals.",
                path=path,
                field=term,
            )
        return cents

    def add(self, message: str, *, path: str, term: str) -> None:
        self.issues.add(message, path=path, field=term)


def parse_cents(value: str) -> int | None:
    """``"1234.50"`` → 123450; None when not a plain decimal with whole cents."""
    if not _AMOUNT.match(value):
        return None
    try:
        cents = Decimal(value) * 100
    except InvalidOperation:
        return None
    if cents != cents.to_integral_value():
        return None
    return int(cents)


def format_cents(cents: int) -> str:
    """123450 → ``"1234.50"`` (no float on the way)."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _compact(value: str) -> str:
    return re.sub(r"[\s.\-]", "", value).upper()


def _siren_of(
    identifiers: list[tuple[str | None, str, str]], role: str, reader: _Reader, party_path: str
) -> str | None:
    """The SIREN among a party's identifiers (scheme, value, path): 0002 SIREN, 0009 SIRET,
    or an unqualified 9- or 14-digit number with a valid check digit."""
    for scheme, raw, path in identifiers:
        value = _compact(raw)
        if scheme == SIREN_SCHEME:
            if not std_siren.is_valid(value):
                reader.add(
                    f"The {role}'s SIREN {raw!r} is not valid (9 digits with a Luhn check digit).",
                    path=path,
                    term="BT-30" if role == "seller" else "BT-47",
                )
                return None
            return value
        if scheme == SIRET_SCHEME:
            if not std_siret.is_valid(value):
                reader.add(
                    f"The {role}'s SIRET {raw!r} is not valid (14 digits with a Luhn check digit).",
                    path=path,
                    term="BT-30" if role == "seller" else "BT-47",
                )
                return None
            return value[:9]
        if scheme is None and value.isdigit():
            if len(value) == 9 and std_siren.is_valid(value):
                return value
            if len(value) == 14 and std_siret.is_valid(value):
                return value[:9]
    reader.add(
        f"The {role} has no SIREN: Escompte needs the legal registration identifier with "
        f"schemeID {SIREN_SCHEME} (SIREN) or {SIRET_SCHEME} (SIRET).",
        path=party_path,
        term="BT-30" if role == "seller" else "BT-47",
    )
    return None


def _vat_of(raw: str | None, siren: str | None, role: str, reader: _Reader, path: str) -> str | None:
    if raw is None:
        return None
    value = _compact(raw)
    term = "BT-31" if role == "seller" else "BT-48"
    if value.startswith("FR"):
        if not std_tva.is_valid(value):
            reader.add(
                f"The {role}'s VAT number {raw!r} is not a valid French VAT number.", path=path, term=term
            )
            return None
        if siren is not None and std_tva.to_siren(value) != siren:
            reader.add(
                f"The {role}'s VAT number {value} belongs to SIREN {std_tva.to_siren(value)}, "
                f"not to its SIREN {siren}.",
                path=path,
                term=term,
            )
            return None
    if len(value) > 20:
        reader.add(f"The {role}'s VAT number {raw!r} is longer than 20 characters.", path=path, term=term)
        return None
    return value


def _iban_of(raw: str | None, reader: _Reader, path: str) -> str | None:
    if raw is None:
        return None
    try:
        return str(IBAN(raw).compact)
    except (SchwiftyException, ValueError) as exc:
        reader.add(f"The payee's IBAN {raw!r} is not valid ({exc}).", path=path, term="BT-84")
        return None


def _document_type(type_code: str | None, reader: _Reader, path: str) -> DocumentType | None:
    if type_code is None:
        return None
    if type_code in INVOICE_TYPE_CODES:
        return DocumentType.INVOICE
    if type_code in CREDIT_NOTE_TYPE_CODES:
        return DocumentType.CREDIT_NOTE
    reader.add(
        f"Document type code {type_code!r} is not an invoice or a credit note Escompte imports "
        f"(invoices: {', '.join(sorted(INVOICE_TYPE_CODES))}; credit notes: "
        f"{', '.join(sorted(CREDIT_NOTE_TYPE_CODES))}).",
        path=path,
        term="BT-3",
    )
    return None


# ---------------------------------------------------------------------------- CII


def _cii_date(
    reader: _Reader, base: Any, xpath: str, *, term: str, label: str, required: bool
) -> date | None:
    element = reader.find(base, xpath + "/udt:DateTimeString")
    if element is None:
        if required:
            reader.add(f"The {label} ({term}) is missing.", path=child_path(base, xpath), term=term)
        return None
    path = element_path(element)
    value = (element.text or "").strip()
    fmt = element.get("format", "102")
    if fmt != "102" or not re.fullmatch(r"[0-9]{8}", value):
        reader.add(
            f"The {label} ({term}) {value!r} (format {fmt}) is not a date written YYYYMMDD (format 102).",
            path=path,
            term=term,
        )
        return None
    try:
        return datetime.strptime(value, "%Y%m%d").date()  # noqa: DTZ007 - a date, no time
    except ValueError:
        reader.add(f"The {label} ({term}) {value!r} is not a calendar date.", path=path, term=term)
        return None


def _cii_party(reader: _Reader, agreement: Any, tag: str, role: Literal["seller", "buyer"]) -> Party | None:
    node = reader.find(agreement, f"ram:{tag}")
    if node is None:
        reader.add(
            f"The {role} is missing.",
            path=child_path(agreement, f"ram:{tag}"),
            term="BG-4" if role == "seller" else "BG-7",
        )
        return None
    path = element_path(node)
    name, _ = reader.text(
        node, "ram:Name", term="BT-27" if role == "seller" else "BT-44", label=f"{role}'s name", required=True
    )
    identifiers: list[tuple[str | None, str, str]] = []
    for xpath in ("ram:SpecifiedLegalOrganization/ram:ID", "ram:GlobalID", "ram:ID"):
        for element in reader.find_all(node, xpath):
            if element.text and element.text.strip():
                identifiers.append((element.get("schemeID"), element.text.strip(), element_path(element)))
    siren = _siren_of(identifiers, role, reader, path)
    vat_raw, vat_path = reader.text(
        node, "ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']", term="", label="", required=False
    )
    vat = _vat_of(vat_raw, siren, role, reader, vat_path)
    return Party(role=role, name=name, siren=siren, vat_number=vat, path=path)


def read_cii(root: Any, issues: IssueCollector) -> EInvoice | None:
    """The business terms of a CII ``CrossIndustryInvoice``; None when errors were added."""
    reader = _Reader(root, CII_NS, issues)
    before = issues.total
    document = reader.find(root, "rsm:ExchangedDocument")
    transaction = reader.find(root, "rsm:SupplyChainTradeTransaction")
    if document is None or transaction is None:
        missing = "rsm:ExchangedDocument" if document is None else "rsm:SupplyChainTradeTransaction"
        reader.add(
            f"{missing} is missing: this is not a complete CII invoice.",
            path=child_path(root, missing),
            term="BT-1",
        )
        return None
    number, number_path = reader.text(document, "ram:ID", term="BT-1", label="invoice number", required=True)
    type_code, type_path = reader.text(
        document, "ram:TypeCode", term="BT-3", label="document type code", required=True
    )
    document_type = _document_type(type_code, reader, type_path)
    issue_date = _cii_date(
        reader, document, "ram:IssueDateTime", term="BT-2", label="issue date", required=True
    )

    agreement = reader.find(transaction, "ram:ApplicableHeaderTradeAgreement")
    settlement = reader.find(transaction, "ram:ApplicableHeaderTradeSettlement")
    if agreement is None or settlement is None:
        missing = (
            "ram:ApplicableHeaderTradeAgreement"
            if agreement is None
            else "ram:ApplicableHeaderTradeSettlement"
        )
        reader.add(f"{missing} is missing.", path=child_path(transaction, missing), term="BG-4")
        return None
    seller = _cii_party(reader, agreement, "SellerTradeParty", "seller")
    buyer = _cii_party(reader, agreement, "BuyerTradeParty", "buyer")

    currency, currency_path = reader.text(
        settlement, "ram:InvoiceCurrencyCode", term="BT-5", label="invoice currency", required=True
    )
    _check_currency(currency, reader, currency_path)
    # several payment terms (instalments): the earliest due date, the prudent one to finance on
    due_dates = [
        _cii_date(reader, terms, "ram:DueDateDateTime", term="BT-9", label="due date", required=False)
        for terms in reader.find_all(settlement, "ram:SpecifiedTradePaymentTerms[ram:DueDateDateTime]")
    ]
    due_date = min((d for d in due_dates if d is not None), default=None)
    payment_terms, _ = reader.text(
        settlement,
        "ram:SpecifiedTradePaymentTerms/ram:Description",
        term="BT-20",
        label="payment terms",
        required=False,
    )
    iban_raw, iban_path = reader.text(
        settlement,
        "ram:SpecifiedTradeSettlementPaymentMeans/ram:PayeePartyCreditorFinancialAccount/ram:IBANID",
        term="BT-84",
        label="payee IBAN",
        required=False,
    )
    iban = _iban_of(iban_raw, reader, iban_path)

    summation = reader.find(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    if summation is None:
        reader.add(
            "The document totals are missing.",
            path=child_path(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation"),
            term="BG-22",
        )
        return None
    net = reader.amount(
        summation, "ram:TaxBasisTotalAmount", term="BT-109", label="total without VAT", required=True
    )
    vat = _cii_vat_total(reader, summation, currency)
    total = reader.amount(
        summation, "ram:GrandTotalAmount", term="BT-112", label="total with VAT", required=True
    )
    due_payable = reader.amount(
        summation, "ram:DuePayableAmount", term="BT-115", label="amount due", required=False
    )
    total_path = child_path(summation, "ram:GrandTotalAmount")

    if issues.total > before:
        return None
    assert number is not None and document_type is not None and issue_date is not None
    assert seller is not None and buyer is not None and currency is not None and total is not None
    return _checked(
        reader,
        EInvoice(
            number=number,
            type_code=type_code or "",
            document_type=document_type,
            issue_date=issue_date,
            due_date=due_date,
            payment_terms=payment_terms,
            seller=seller,
            buyer=buyer,
            currency=currency,
            net_cents=net,
            vat_cents=vat,
            total_cents=total,
            due_payable_cents=due_payable,
            iban=iban,
            number_path=number_path,
        ),
        total_path,
    )


def _cii_vat_total(reader: _Reader, summation: Any, currency: str | None) -> int | None:
    """BT-110: the TaxTotalAmount in the invoice currency (a second one may be BT-111)."""
    elements = reader.find_all(summation, "ram:TaxTotalAmount")
    chosen = None
    for element in elements:
        if element.get("currencyID") in (None, currency):
            chosen = element
            break
    if chosen is None:
        return None
    value = (chosen.text or "").strip()
    cents = parse_cents(value)
    if cents is None:
        reader.add(
            f"The VAT total (BT-110) {value!r} is not an amount with at most 2 decimals.",
            path=element_path(chosen),
            term="BT-110",
        )
    return cents


# ---------------------------------------------------------------------------- UBL


def _ubl_date(
    reader: _Reader, base: Any, xpath: str, *, term: str, label: str, required: bool
) -> date | None:
    value, path = reader.text(base, xpath, term=term, label=label, required=required)
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        reader.add(f"The {label} ({term}) {value!r} is not a date written YYYY-MM-DD.", path=path, term=term)
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        reader.add(f"The {label} ({term}) {value!r} is not a calendar date.", path=path, term=term)
        return None


def _ubl_party(reader: _Reader, root: Any, tag: str, role: Literal["seller", "buyer"]) -> Party | None:
    node = reader.find(root, f"cac:{tag}/cac:Party")
    if node is None:
        reader.add(
            f"The {role} is missing.",
            path=child_path(root, f"cac:{tag}/cac:Party"),
            term="BG-4" if role == "seller" else "BG-7",
        )
        return None
    path = element_path(node)
    name_term = "BT-27" if role == "seller" else "BT-44"
    name, _ = reader.text(
        node, "cac:PartyLegalEntity/cbc:RegistrationName", term=name_term, label="", required=False
    )
    if name is None:
        name, _ = reader.text(
            node, "cac:PartyName/cbc:Name", term=name_term, label=f"{role}'s name", required=True
        )
    identifiers: list[tuple[str | None, str, str]] = []
    for xpath in ("cac:PartyLegalEntity/cbc:CompanyID", "cac:PartyIdentification/cbc:ID"):
        for element in reader.find_all(node, xpath):
            if element.text and element.text.strip():
                identifiers.append((element.get("schemeID"), element.text.strip(), element_path(element)))
    siren = _siren_of(identifiers, role, reader, path)
    vat_raw, vat_path = reader.text(
        node,
        "cac:PartyTaxScheme[cac:TaxScheme/cbc:ID='VAT']/cbc:CompanyID",
        term="",
        label="",
        required=False,
    )
    vat = _vat_of(vat_raw, siren, role, reader, vat_path)
    return Party(role=role, name=name, siren=siren, vat_number=vat, path=path)


def read_ubl(root: Any, issues: IssueCollector) -> EInvoice | None:
    """The business terms of a UBL 2.1 Invoice or CreditNote; None when errors were added."""
    reader = _Reader(root, UBL_NS, issues)
    before = issues.total
    credit_root = local_name(root) == "CreditNote"
    number, number_path = reader.text(root, "cbc:ID", term="BT-1", label="invoice number", required=True)
    type_tag = "cbc:CreditNoteTypeCode" if credit_root else "cbc:InvoiceTypeCode"
    type_code, type_path = reader.text(root, type_tag, term="BT-3", label="document type code", required=True)
    document_type = _document_type(type_code, reader, type_path)
    issue_date = _ubl_date(reader, root, "cbc:IssueDate", term="BT-2", label="issue date", required=True)
    # BT-9 is cbc:DueDate in an Invoice, cac:PaymentMeans/cbc:PaymentDueDate in a CreditNote
    due_date = None
    for due_xpath in ("cbc:DueDate", "cac:PaymentMeans/cbc:PaymentDueDate"):
        if due_date is None and reader.find(root, due_xpath) is not None:
            due_date = _ubl_date(reader, root, due_xpath, term="BT-9", label="due date", required=False)
    payment_terms, _ = reader.text(
        root, "cac:PaymentTerms/cbc:Note", term="BT-20", label="payment terms", required=False
    )
    seller = _ubl_party(reader, root, "AccountingSupplierParty", "seller")
    buyer = _ubl_party(reader, root, "AccountingCustomerParty", "buyer")
    currency, currency_path = reader.text(
        root, "cbc:DocumentCurrencyCode", term="BT-5", label="invoice currency", required=True
    )
    _check_currency(currency, reader, currency_path)
    iban_raw, iban_path = reader.text(
        root,
        "cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID",
        term="BT-84",
        label="payee IBAN",
        required=False,
    )
    iban = _iban_of(iban_raw, reader, iban_path)

    totals = reader.find(root, "cac:LegalMonetaryTotal")
    if totals is None:
        reader.add(
            "The document totals are missing.", path=child_path(root, "cac:LegalMonetaryTotal"), term="BG-22"
        )
        return None
    for element in reader.find_all(totals, "*[@currencyID]"):
        if currency is not None and element.get("currencyID") != currency:
            reader.add(
                f"Amount in {element.get('currencyID')} in an invoice in {currency}.",
                path=element_path(element),
                term="BT-5",
            )
    net = reader.amount(
        totals, "cbc:TaxExclusiveAmount", term="BT-109", label="total without VAT", required=True
    )
    total = reader.amount(
        totals, "cbc:TaxInclusiveAmount", term="BT-112", label="total with VAT", required=True
    )
    due_payable = reader.amount(
        totals, "cbc:PayableAmount", term="BT-115", label="amount due", required=False
    )
    vat = None
    found = root.xpath(
        "cac:TaxTotal/cbc:TaxAmount[@currencyID=$currency]", namespaces=UBL_NS, currency=currency
    )
    vat_element = found[0] if found else None
    if vat_element is not None:
        vat = parse_cents((vat_element.text or "").strip())
        if vat is None:
            reader.add(
                f"The VAT total (BT-110) {vat_element.text!r} is not an amount with at most 2 decimals.",
                path=element_path(vat_element),
                term="BT-110",
            )
    total_path = child_path(totals, "cbc:TaxInclusiveAmount")

    if issues.total > before:
        return None
    assert number is not None and document_type is not None and issue_date is not None
    assert seller is not None and buyer is not None and currency is not None and total is not None
    return _checked(
        reader,
        EInvoice(
            number=number,
            type_code=type_code or "",
            document_type=document_type,
            issue_date=issue_date,
            due_date=due_date,
            payment_terms=payment_terms,
            seller=seller,
            buyer=buyer,
            currency=currency,
            net_cents=net,
            vat_cents=vat,
            total_cents=total,
            due_payable_cents=due_payable,
            iban=iban,
            number_path=number_path,
        ),
        total_path,
    )


# ---------------------------------------------------------------------------- common


def _check_currency(currency: str | None, reader: _Reader, path: str) -> None:
    if currency is not None and currency not in SUPPORTED_CURRENCIES:
        reader.add(
            f"The invoice is in {currency}: Escompte handles EUR only for now.", path=path, term="BT-5"
        )


def _checked(reader: _Reader, invoice: EInvoice, total_path: str) -> EInvoice | None:
    """Cross-field rules: a positive total, totals that add up (BR-CO-15), a short number."""
    ok = True
    if len(invoice.number) > NUMBER_MAX_LENGTH:
        reader.add(
            f"The invoice number {invoice.number[:80]!r} is longer than {NUMBER_MAX_LENGTH} characters.",
            path=invoice.number_path,
            term="BT-1",
        )
        ok = False
    if invoice.total_cents <= 0:
        kind = "credit note" if invoice.document_type is DocumentType.CREDIT_NOTE else "invoice"
        reader.add(
            f"The {kind}'s total with VAT is {format_cents(invoice.total_cents)} {invoice.currency}: "
            "Escompte imports documents with a positive total (a credit note is type 381 with "
            "positive amounts).",
            path=total_path,
            term="BT-112",
        )
        ok = False
    if invoice.net_cents is not None and invoice.net_cents + (invoice.vat_cents or 0) != invoice.total_cents:
        reader.add(
            f"The totals do not add up: {format_cents(invoice.net_cents)} without VAT + "
            f"{format_cents(invoice.vat_cents or 0)} VAT ≠ {format_cents(invoice.total_cents)} "
            "with VAT (BR-CO-15).",
            path=total_path,
            term="BT-112",
        )
        ok = False
    if invoice.due_payable_cents is not None and invoice.due_payable_cents < 0:
        reader.add(
            f"The amount due is negative ({format_cents(invoice.due_payable_cents)}).",
            path=total_path.rsplit("/", 1)[0],
            term="BT-115",
        )
        ok = False
    return invoice if ok else None


def _read_input(ctx: ImportContext, max_bytes: int, what: str) -> bytes:
    try:
        return read_bounded(ctx.open_stream(), max_bytes, what=what)
    except XmlError as exc:
        ctx.issues.add(exc.message)
        raise _Refused from None


def _parse(ctx: ImportContext, data: bytes, what: str) -> Any:
    try:
        return parse_xml(data, max_bytes=MAX_XML_BYTES)
    except XmlError as exc:
        ctx.issues.add(f"{what}: {exc.message}" if what else exc.message, line=exc.line)
        raise _Refused from None


def _xml_from_pdf(ctx: ImportContext, data: bytes) -> bytes:
    try:
        _filename, xml = facturx.get_facturx_xml_from_pdf(data, check_xsd=False)
    except Exception as exc:  # pypdf raises many types on damaged or hostile PDFs
        ctx.issues.add(f"The file is not a readable PDF ({type(exc).__name__}: {exc}).")
        raise _Refused from None
    if not xml:
        ctx.issues.add(
            "This PDF carries no Factur-X or ZUGFeRD XML (no factur-x.xml or ZUGFeRD-invoice.xml "
            "attachment holding a CII invoice): it is a plain PDF. Escompte reads the structured "
            "data only: send the Factur-X version of the invoice, or its CII or UBL file."
        )
        raise _Refused
    return bytes(xml)


def _is_pdf(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:5] == b"%PDF-"


def _read_document(ctx: ImportContext, root: Any, expected: Literal["cii", "ubl"]) -> EInvoice | None:
    namespace = root.tag.partition("}")[0].lstrip("{") if root.tag.startswith("{") else ""
    name = local_name(root)
    if name == "CrossIndustryInvoice" and namespace == CII_NS["rsm"]:
        actual = "cii"
    elif UBL_ROOTS.get(namespace) == name:
        actual = "ubl"
    elif name == "CrossIndustryDocument":
        ctx.issues.add(
            "This is a ZUGFeRD 1.0 invoice (CrossIndustryDocument): Escompte reads ZUGFeRD 2 / "
            "Factur-X (CrossIndustryInvoice) and UBL 2.1.",
            path=element_path(root),
        )
        return None
    else:
        ctx.issues.add(
            f"The root element is {name!r} ({namespace or 'no namespace'}): expected a CII "
            "CrossIndustryInvoice or a UBL 2.1 Invoice or CreditNote.",
            path=element_path(root),
        )
        return None
    if actual != expected:
        ctx.issues.add(
            f"This file is {actual.upper()}, not {expected.upper()}: import it as {actual}.",
            path=element_path(root),
        )
        return None
    return read_cii(root, ctx.issues) if actual == "cii" else read_ubl(root, ctx.issues)


def _account_in_the_books(ctx: ImportContext, kind: InvoiceKind, siren: str, invoice: EInvoice) -> str | None:
    """The auxiliary account of the debtor this invoice was already imported under from the
    books, when that debtor has no SIREN yet: the e-invoice teaches it its SIREN instead of
    creating a second debtor. None when a debtor already has the SIREN, or no single match.

    The company's own invoice numbers are unique (sequential numbering), so a receivable
    is recognised by its number; a supplier's number is not, so a payable must also have
    the same issue date and amount."""
    company = ctx.company
    assert company is not None
    session = ctx.session
    known = session.execute(
        select(Debtor.id).where(Debtor.company_id == company.id, Debtor.siren == siren)
    ).first()
    if known is not None:
        return None
    query = (
        select(Debtor.aux_account_num)
        .join(Invoice, Invoice.debtor_id == Debtor.id)
        .where(
            Invoice.company_id == company.id,
            Invoice.kind == kind,
            Invoice.number == invoice.number,
            Debtor.siren.is_(None),
            Debtor.aux_account_num.is_not(None),
        )
        .limit(2)
    )
    if kind == InvoiceKind.PAYABLE:
        query = query.where(
            Invoice.issue_date == invoice.issue_date, Invoice.amount_cents == invoice.total_cents
        )
    accounts = list(session.execute(query).scalars())
    return accounts[0] if len(accounts) == 1 else None


def _store(ctx: ImportContext, invoice: EInvoice, source: InvoiceSource) -> ImportOutcome:
    company = ctx.company
    assert company is not None
    seller, buyer = invoice.seller, invoice.buyer
    if seller.siren == company.siren and buyer.siren == company.siren:
        ctx.issues.add(
            f"The seller and the buyer are both this company (SIREN {company.siren}).",
            path=seller.path,
            field="BT-30",
        )
        ctx.issues.raise_if_any()
    if seller.siren == company.siren:
        kind, counterparty = InvoiceKind.RECEIVABLE, buyer
    elif buyer.siren == company.siren:
        kind, counterparty = InvoiceKind.PAYABLE, seller
    else:
        ctx.issues.add(
            f"This invoice is between seller SIREN {seller.siren} and buyer SIREN {buyer.siren}; "
            f"neither is this company's SIREN {company.siren}. Import it into the right company.",
            path=seller.path,
            field="BT-30",
        )
        ctx.issues.raise_if_any()
    assert counterparty.siren is not None
    debtor, debtor_change = find_or_create_debtor(
        ctx,
        siren=counterparty.siren,
        legal_name=counterparty.name or counterparty.siren,
        vat_number=counterparty.vat_number,
        aux_account_num=_account_in_the_books(ctx, kind, counterparty.siren, invoice),
    )
    facts = InvoiceFacts(
        kind=kind,
        number=invoice.number,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        amount_cents=invoice.total_cents,
        currency=invoice.currency,
        source=source,
        document_type=invoice.document_type,
        net_cents=invoice.net_cents,
        vat_cents=invoice.vat_cents,
        payment_iban=invoice.iban,
    )
    stored, change = upsert_invoice(ctx, debtor, facts, path=invoice.number_path)
    ctx.issues.raise_if_any()
    assert stored is not None
    ctx.session.flush()
    if _record_prepaid(ctx, invoice, stored) and change == "unchanged":
        change = "updated"
    ctx.issues.raise_if_any()
    outcome = ImportOutcome(
        counts={"invoices": int(change == "created"), "debtors": int(debtor_change == "created")}
    )
    if change == "created":
        outcome.created = 1
    elif change == "updated" or debtor_change == "updated":
        outcome.updated = 1
    else:
        outcome.unchanged = 1
    return outcome


def _record_prepaid(ctx: ImportContext, invoice: EInvoice, stored: Invoice) -> bool:
    """An invoice whose amount due (BT-115) is below its total (BT-112) was partly paid
    before it was issued (a down payment, BT-113): that part is recorded as a payment
    (source ``prepaid``, dated the issue date, one per invoice) so only what the debtor
    still owes can be financed. True if it was recorded now.

    A credit note's amount due is what the seller refunds: nothing is recorded for it.
    The same prepaid amount again changes nothing; another one is an error (never an
    overwrite)."""
    due = invoice.due_payable_cents
    if invoice.document_type is not DocumentType.INVOICE or due is None or due >= invoice.total_cents:
        return False
    prepaid = invoice.total_cents - due
    session = ctx.session
    known = session.execute(
        select(Payment.amount_cents, Payment.id)
        .join(PaymentAllocation, PaymentAllocation.payment_id == Payment.id)
        .where(
            Payment.company_id == stored.company_id,
            Payment.source == PaymentSource.PREPAID,
            PaymentAllocation.invoice_id == stored.id,
        )
    ).first()
    if known is not None:
        if known.amount_cents != prepaid:
            ctx.issues.add(
                f"Invoice {stored.number} ({stored.id}) is known with "
                f"{money.format_cents(known.amount_cents, stored.currency)} paid in advance ({known.id}); "
                f"this file says {money.format_cents(prepaid, stored.currency)} (BT-113). "
                "Escompte never overwrites silently: correct the file.",
                path=invoice.number_path,
                field="BT-113",
            )
        return False
    recorded = record_payment(
        session,
        ctx.clock.now(),
        company_id=stored.company_id,
        source=PaymentSource.PREPAID,
        source_ref=stored.id,
        amount_cents=prepaid,
        currency=stored.currency,
        paid_on=stored.issue_date,
        allocations=[Allocation(stored.id, prepaid)],
    )
    refresh_invoices(session, [stored.id], ctx.clock.now())
    return recorded is not None


def _import(ctx: ImportContext, expected: Literal["facturx", "cii", "ubl"]) -> ImportOutcome:
    if ctx.company is None:
        ctx.issues.add("An e-invoice belongs to a company: say which.")
        ctx.issues.raise_if_any()
    ctx.progress(0, ctx.size_bytes)
    try:
        data = _read_input(ctx, MAX_PDF_BYTES if expected != "ubl" else MAX_XML_BYTES, "file")
        if _is_pdf(data):
            if expected == "ubl":
                ctx.issues.add("This file is a PDF, not UBL XML: import it as facturx.")
                raise _Refused
            source = InvoiceSource.FACTURX
            root = _parse(ctx, _xml_from_pdf(ctx, data), "The XML embedded in the PDF")
        else:
            if expected == "facturx" and not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
                ctx.issues.add("The file is neither a PDF nor XML: expected a Factur-X PDF.")
                raise _Refused
            source = InvoiceSource.UBL if expected == "ubl" else InvoiceSource.CII
            root = _parse(ctx, data, "")
        invoice = _read_document(ctx, root, "ubl" if expected == "ubl" else "cii")
    except _Refused:
        invoice = None
    ctx.issues.raise_if_any()
    assert invoice is not None
    outcome = _store(ctx, invoice, source)
    ctx.progress(ctx.size_bytes, ctx.size_bytes)
    return outcome


def import_facturx(ctx: ImportContext) -> ImportOutcome:
    """A Factur-X / ZUGFeRD 2 PDF (its embedded CII is read); a bare CII XML is accepted too."""
    return _import(ctx, "facturx")


def import_cii(ctx: ImportContext) -> ImportOutcome:
    """A UN/CEFACT CII CrossIndustryInvoice XML (a Factur-X PDF is accepted too)."""
    return _import(ctx, "cii")


def import_ubl(ctx: ImportContext) -> ImportOutcome:
    """A UBL 2.1 Invoice or CreditNote XML."""
    return _import(ctx, "ubl")
