"""E-invoicing lifecycle statuses (France's reform, AFNOR XP Z12-012 codes 200 to 225).

Two inputs, told apart by their content:

- a **CDAR** message (UN/CEFACT Cross Domain Acknowledgement And Response, D22B, CII
  syntax), as platforms exchange them — the subset read is documented in
  ``docs/formats-einvoicing.md``;
- its **JSON** equivalent for aggregators: ``{"statuses": [{"message_id": …,
  "invoice_number": …, "seller_siren": …, "buyer_siren": …, "status_code": 205,
  "occurred_at": "2026-03-02T10:00:00+01:00", …}]}``.

Each status is matched to an invoice of the company (counterparty SIREN and number; an
unknown invoice refuses the file) and stored once: an event is unique on (invoice,
message id, status code), so importing the same statuses again changes nothing. The
invoice shows its latest status by ``occurred_at`` (events may arrive out of order).
Effects of new events: 207/210/213 make the invoice disputed when that status is its
latest; 212 records a payment (source ``lifecycle``) allocated to the invoice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from stdnum.fr import siren as std_siren

from escompte.connectors.base import ImportContext, ImportOutcome, IssueCollector
from escompte.connectors.einvoice import parse_cents
from escompte.connectors.payments import Allocation, allocated_cents, record_payment, refresh_invoices
from escompte.connectors.xml import XmlError, child_path, element_path, local_name, parse_xml, read_bounded
from escompte.errors import InvalidTransition, invariant
from escompte.invoices.states import transition_to
from escompte.models import (
    Debtor,
    Invoice,
    InvoiceKind,
    InvoiceLifecycleEvent,
    InvoiceStatus,
    PaymentSource,
)
from escompte.money import SUPPORTED_CURRENCIES

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_STATUSES = 10_000  # per file
MESSAGE_ID_MAX = 120
PAYMENT_REF_MAX = 120  # payments.source_ref
NUMBER_MAX = 64
REASON_MAX = 2_000
ROLE_MAX = 40
MATCH_BATCH = 1_000

# AFNOR XP Z12-012 status codes: (stored name, French label)
STATUSES: dict[int, tuple[str, str]] = {
    200: ("deposited", "Déposée"),
    201: ("issued_by_platform", "Émise par la plateforme"),
    202: ("received_by_platform", "Reçue par la plateforme"),
    203: ("made_available", "Mise à disposition"),
    204: ("taken_over", "Prise en charge"),
    205: ("approved", "Approuvée"),
    206: ("partially_approved", "Approuvée partiellement"),
    207: ("disputed", "En litige"),
    208: ("suspended", "Suspendue"),
    209: ("completed", "Complétée"),
    210: ("refused", "Refusée"),
    211: ("payment_sent", "Paiement transmis"),
    212: ("cashed", "Encaissée"),
    213: ("rejected", "Rejetée"),
    214: ("certified", "Visée"),
    220: ("cancelled", "Annulée"),
    224: ("direct_payment_requested", "Demande de paiement direct"),
    225: ("factored", "Affacturée"),
}
APPROVED = 205
CASHED = 212
DISPUTING = frozenset({207, 210, 213})
# After an approval, these statuses mean the buyer no longer stands by the whole invoice.
UNDOES_APPROVAL = frozenset({206, 207, 208, 210, 213, 220})

CDAR_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossDomainAcknowledgementAndResponse:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}
# UNCL 3035 party roles seen in CDAR messages
ROLES = {"BY": "buyer", "SE": "seller", "WK": "platform", "DFH": "ppf", "DL": "factor", "PE": "payee"}
_SIREN_SCHEMES = ("0002", "0009", "0225")  # SIREN, SIRET, routing address starting with the SIREN

_JSON_KEYS = frozenset(
    {
        "message_id",
        "invoice_number",
        "seller_siren",
        "buyer_siren",
        "issue_date",
        "status_code",
        "occurred_at",
        "reason",
        "amount",
        "issuer_role",
    }
)


@dataclass(frozen=True)
class Status:
    """One lifecycle status read from the file, before it is matched to an invoice."""

    message_id: str
    invoice_number: str
    seller_siren: str
    buyer_siren: str | None  # a CDAR message may only name the seller
    issue_date: date | None
    status_code: int
    occurred_at: datetime
    reason: str | None
    amount_cents: int | None
    currency: str | None
    issuer_role: str | None
    path: str  # where in the file, for errors


def _valid_siren(value: str) -> bool:
    return bool(std_siren.is_valid(value))


# ---------------------------------------------------------------------------- JSON


def _json_str(
    item: dict[str, Any], key: str, path: str, issues: IssueCollector, *, max_length: int, required: bool
) -> str | None:
    value = item.get(key)
    if value is None:
        if required:
            issues.add(f"{key} is missing.", path=path, field=key)
        return None
    if not isinstance(value, str) or not value.strip():
        issues.add(f"{key} must be a non-empty string.", path=path, field=key)
        return None
    value = value.strip()
    if len(value) > max_length:
        issues.add(f"{key} is longer than {max_length} characters.", path=path, field=key)
        return None
    return value


def _json_siren(item: dict[str, Any], key: str, path: str, issues: IssueCollector) -> str | None:
    value = _json_str(item, key, path, issues, max_length=9, required=True)
    if value is not None and not (value.isdigit() and _valid_siren(value)):
        issues.add(
            f"{key} {value!r} is not a valid SIREN (9 digits, Luhn check digit).", path=path, field=key
        )
        return None
    return value


def _json_date(item: dict[str, Any], path: str, issues: IssueCollector) -> date | None:
    raw = _json_str(item, "issue_date", path, issues, max_length=10, required=False)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    issues.add(f"issue_date {raw!r} is not a date YYYY-MM-DD.", path=path, field="issue_date")
    return None


def _json_code(item: dict[str, Any], path: str, issues: IssueCollector) -> int | None:
    code = item.get("status_code")
    if code is None:
        issues.add("status_code is missing.", path=path, field="status_code")
    elif not isinstance(code, int) or isinstance(code, bool):
        issues.add(f"status_code {code!r} must be an integer, e.g. 205.", path=path, field="status_code")
    elif code not in STATUSES:
        _unknown_code(code, path, issues)
    else:
        return code
    return None


def _json_occurred_at(item: dict[str, Any], path: str, issues: IssueCollector) -> datetime | None:
    raw = _json_str(item, "occurred_at", path, issues, max_length=40, required=True)
    if raw is None:
        return None
    try:
        occurred_at = datetime.fromisoformat(raw)
    except ValueError:
        issues.add(f"occurred_at {raw!r} is not an ISO 8601 date-time.", path=path, field="occurred_at")
        return None
    if occurred_at.tzinfo is None:
        issues.add(
            f"occurred_at {raw!r} has no UTC offset: write e.g. 2026-03-02T10:00:00+01:00.",
            path=path,
            field="occurred_at",
        )
        return None
    return occurred_at


def _json_amount(item: dict[str, Any], path: str, issues: IssueCollector) -> tuple[int | None, str | None]:
    amount = item.get("amount")
    if amount is None:
        return None, None
    if not isinstance(amount, dict) or set(amount) != {"amount", "currency"}:
        issues.add(
            'amount must be {"amount": <integer cents>, "currency": "EUR"}.', path=path, field="amount"
        )
        return None, None
    cents, currency = amount["amount"], amount["currency"]
    if not isinstance(cents, int) or isinstance(cents, bool) or cents <= 0:
        issues.add(
            f"amount.amount {cents!r} must be a positive integer number of cents.", path=path, field="amount"
        )
        return None, None
    if currency not in SUPPORTED_CURRENCIES:
        issues.add(
            f"amount.currency {currency!r}: Escompte handles EUR only for now.", path=path, field="amount"
        )
        return None, None
    return cents, str(currency)


def _json_status(item: Any, index: int, issues: IssueCollector) -> Status | None:
    path = f"statuses[{index}]"
    before = issues.total
    if not isinstance(item, dict):
        issues.add("Each status is a JSON object.", path=path)
        return None
    unknown = sorted(set(item) - _JSON_KEYS)
    if unknown:
        issues.add(f"Unknown field(s): {', '.join(unknown)}.", path=path, field=unknown[0])
    message_id = _json_str(item, "message_id", path, issues, max_length=MESSAGE_ID_MAX, required=True)
    number = _json_str(item, "invoice_number", path, issues, max_length=NUMBER_MAX, required=True)
    seller = _json_siren(item, "seller_siren", path, issues)
    buyer = _json_siren(item, "buyer_siren", path, issues)
    issue_date = _json_date(item, path, issues)
    code = _json_code(item, path, issues)
    occurred_at = _json_occurred_at(item, path, issues)
    reason = _json_str(item, "reason", path, issues, max_length=REASON_MAX, required=False)
    role = _json_str(item, "issuer_role", path, issues, max_length=ROLE_MAX, required=False)
    amount_cents, currency = _json_amount(item, path, issues)
    if issues.total > before:
        return None
    assert message_id and number and seller and buyer and code is not None and occurred_at is not None
    return Status(
        message_id=message_id,
        invoice_number=number,
        seller_siren=seller,
        buyer_siren=buyer,
        issue_date=issue_date,
        status_code=code,
        occurred_at=occurred_at,
        reason=reason,
        amount_cents=amount_cents,
        currency=currency,
        issuer_role=role.lower() if role else None,
        path=path,
    )


def read_json(data: bytes, issues: IssueCollector) -> list[Status]:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        issues.add("The file is not UTF-8 text.")
        return []
    except json.JSONDecodeError as exc:
        issues.add(f"The file is not valid JSON: {exc.msg}.", line=exc.lineno)
        return []
    statuses = document.get("statuses") if isinstance(document, dict) else None
    if not isinstance(statuses, list):
        issues.add('Expected a JSON object {"statuses": [...]}.', path="statuses")
        return []
    if len(statuses) > MAX_STATUSES:
        issues.add(f"{len(statuses)} statuses in one file: the limit is {MAX_STATUSES}; split the file.")
        return []
    found = [_json_status(item, index, issues) for index, item in enumerate(statuses)]
    return [s for s in found if s is not None]


# ---------------------------------------------------------------------------- CDAR


def _unknown_code(code: object, path: str, issues: IssueCollector) -> None:
    issues.add(
        f"Status code {code!r} is not an AFNOR XP Z12-012 lifecycle status Escompte knows "
        f"({', '.join(str(c) for c in STATUSES)}).",
        path=path,
        field="status_code",
    )


def _xpath(element: Any, expression: str) -> list[Any]:
    return list(element.xpath(expression, namespaces=CDAR_NS))


def _text(element: Any, expression: str) -> tuple[str | None, Any | None]:
    found = _xpath(element, expression)
    if not found:
        return None, None
    value = (found[0].text or "").strip()
    return (value or None), found[0]


def _cdar_datetime(element: Any, issues: IssueCollector, what: str) -> datetime | None:
    """A ``udt``/``qdt:DateTimeString``: format 204 (YYYYMMDDHHMMSS), 203 (YYYYMMDDHHMM) or
    102 (YYYYMMDD), read as UTC (the messages carry no offset)."""
    value = (element.text or "").strip()
    fmt = element.get("format")
    patterns = {"204": "%Y%m%d%H%M%S", "203": "%Y%m%d%H%M", "102": "%Y%m%d"}
    by_length = {14: "204", 12: "203", 8: "102"}
    fmt = fmt or by_length.get(len(value))
    pattern = patterns.get(fmt or "")
    if pattern is None or not value.isdigit():
        issues.add(
            f"The {what} {value!r} (format {fmt}) is not a date-time in format 204, 203 or 102.",
            path=element_path(element),
            field="occurred_at",
        )
        return None
    try:
        return datetime.strptime(value, pattern).replace(tzinfo=UTC)
    except ValueError:
        issues.add(
            f"The {what} {value!r} is not a calendar date.", path=element_path(element), field="occurred_at"
        )
        return None


def _party_siren(party: Any) -> str | None:
    for global_id in _xpath(party, "ram:GlobalID"):
        value = re.sub(r"\s", "", global_id.text or "")
        scheme = global_id.get("schemeID")
        if scheme in _SIREN_SCHEMES and value[:9].isdigit() and _valid_siren(value[:9]):
            return value[:9]
    return None


def _message_parties(exchanged: Any) -> tuple[dict[str, str], str | None]:
    """SIRENs by role (BY, SE) named in the message header, and the issuer's role."""
    sirens: dict[str, str] = {}
    issuer_role = None
    for tag in ("ram:IssuerTradeParty", "ram:SenderTradeParty", "ram:RecipientTradeParty"):
        for party in _xpath(exchanged, tag):
            role, _ = _text(party, "ram:RoleCode")
            if tag != "ram:RecipientTradeParty" and issuer_role is None and role:
                issuer_role = ROLES.get(role.upper(), role.lower())
            siren = _party_siren(party)
            if role and siren:
                sirens.setdefault(role.upper(), siren)
    return sirens, issuer_role


def _cdar_amount(reference: Any, issues: IssueCollector) -> tuple[int | None, str | None]:
    """The sum of the status characteristics' amounts, RAP (remaining to pay) excepted."""
    total, currency, seen = 0, None, False
    for characteristic in _xpath(
        reference, "ram:SpecifiedDocumentStatus/ram:SpecifiedDocumentCharacteristic"
    ):
        type_code, _ = _text(characteristic, "ram:TypeCode")
        if type_code == "RAP":
            continue
        for amount in _xpath(characteristic, "ram:ValueAmount"):
            value = (amount.text or "").strip()
            cents = parse_cents(value)
            if cents is None or cents <= 0:
                issues.add(
                    f"The amount {value!r} is not a positive amount with at most 2 decimals.",
                    path=element_path(amount),
                    field="amount",
                )
                continue
            code = amount.get("currencyID", "EUR")
            if code not in SUPPORTED_CURRENCIES or (currency is not None and code != currency):
                issues.add(
                    f"The amount is in {code}: Escompte handles EUR only for now.",
                    path=element_path(amount),
                    field="amount",
                )
                continue
            total, currency, seen = total + cents, code, True
    return (total, currency) if seen else (None, None)


def _cdar_reference(
    reference: Any,
    *,
    message_id: str,
    header_sirens: dict[str, str],
    issuer_role: str | None,
    fallback_at: datetime | None,
    issues: IssueCollector,
) -> Status | None:
    before = issues.total
    path = element_path(reference)
    number, number_element = _text(reference, "ram:IssuerAssignedID")
    if number is None:
        issues.add(
            "The invoice number (ram:IssuerAssignedID) is missing.",
            path=child_path(reference, "ram:IssuerAssignedID"),
            field="invoice_number",
        )
    elif len(number) > NUMBER_MAX:
        issues.add(
            f"The invoice number is longer than {NUMBER_MAX} characters.",
            path=element_path(number_element),
            field="invoice_number",
        )
    code_text, code_element = _text(reference, "ram:ProcessConditionCode")
    if code_text is None:
        code_text, code_element = _text(reference, "ram:SpecifiedDocumentStatus/ram:ProcessConditionCode")
    code = None
    if code_text is None:
        issues.add(
            "The status code (ram:ProcessConditionCode) is missing.",
            path=child_path(reference, "ram:ProcessConditionCode"),
            field="status_code",
        )
    elif not code_text.isdigit() or int(code_text) not in STATUSES:
        _unknown_code(code_text, element_path(code_element), issues)
    else:
        code = int(code_text)
    seller = None
    seller_party = _xpath(reference, "ram:IssuerTradeParty")
    if seller_party:
        seller = _party_siren(seller_party[0])
    seller = seller or header_sirens.get("SE")
    if seller is None:
        issues.add(
            "The seller's SIREN is missing: expected ram:IssuerTradeParty/ram:GlobalID with "
            "schemeID 0002 in the referenced document.",
            path=child_path(reference, "ram:IssuerTradeParty"),
            field="seller_siren",
        )
    buyer = None
    buyer_party = _xpath(reference, "ram:RecipientTradeParty")
    if buyer_party:
        buyer = _party_siren(buyer_party[0])
    buyer = buyer or header_sirens.get("BY")
    issue_date = None
    issued = _xpath(reference, "ram:FormattedIssueDateTime/*[local-name()='DateTimeString']")
    if issued:
        at = _cdar_datetime(issued[0], issues, "invoice issue date")
        issue_date = at.date() if at is not None else None
    occurred_at = fallback_at
    status_at = _xpath(reference, "ram:SpecifiedDocumentStatus/ram:ReferenceDateTime/udt:DateTimeString")
    if status_at:
        occurred_at = _cdar_datetime(status_at[0], issues, "status date-time")
    elif occurred_at is None:
        issues.add(
            "The status has no date-time (ReferenceDateTime, or the acknowledgement's or the "
            "message's IssueDateTime).",
            path=path,
            field="occurred_at",
        )
    reason_code, _ = _text(reference, "ram:SpecifiedDocumentStatus/ram:ReasonCode")
    reason_text, _ = _text(reference, "ram:SpecifiedDocumentStatus/ram:Reason")
    reason = ": ".join(part for part in (reason_code, reason_text) if part) or None
    amount_cents, currency = _cdar_amount(reference, issues)
    if issues.total > before:
        return None
    assert number is not None and code is not None and seller is not None and occurred_at is not None
    return Status(
        message_id=message_id,
        invoice_number=number,
        seller_siren=seller,
        buyer_siren=buyer,
        issue_date=issue_date,
        status_code=code,
        occurred_at=occurred_at,
        reason=reason[:REASON_MAX] if reason else None,
        amount_cents=amount_cents,
        currency=currency,
        issuer_role=issuer_role[:ROLE_MAX] if issuer_role else None,
        path=element_path(number_element) if number_element is not None else path,
    )


def read_cdar(root: Any, issues: IssueCollector) -> list[Status]:
    if local_name(root) != "CrossDomainAcknowledgementAndResponse" or not root.tag.startswith(
        "{" + CDAR_NS["rsm"] + "}"
    ):
        issues.add(
            f"The root element is {local_name(root)!r}: expected a CDAR message "
            f"(CrossDomainAcknowledgementAndResponse, {CDAR_NS['rsm']}) or the JSON format.",
            path=element_path(root),
        )
        return []
    exchanged = _xpath(root, "rsm:ExchangedDocument")
    if not exchanged:
        issues.add("rsm:ExchangedDocument is missing.", path=child_path(root, "rsm:ExchangedDocument"))
        return []
    message_id, id_element = _text(exchanged[0], "ram:ID")
    if message_id is None:
        issues.add(
            "The message id (ram:ID) is missing.", path=child_path(exchanged[0], "ram:ID"), field="message_id"
        )
        return []
    if len(message_id) > MESSAGE_ID_MAX:
        issues.add(
            f"The message id is longer than {MESSAGE_ID_MAX} characters.",
            path=element_path(id_element),
            field="message_id",
        )
        return []
    header_sirens, issuer_role = _message_parties(exchanged[0])
    message_at = None
    header_at = _xpath(exchanged[0], "ram:IssueDateTime/udt:DateTimeString")
    if header_at:
        message_at = _cdar_datetime(header_at[0], issues, "message date-time")
    acknowledgements = _xpath(root, "rsm:AcknowledgementDocument")
    if not acknowledgements:
        issues.add(
            "The message carries no rsm:AcknowledgementDocument.",
            path=child_path(root, "rsm:AcknowledgementDocument"),
        )
        return []
    statuses: list[Status] = []
    count = 0
    for ack in acknowledgements:
        ack_at = message_at
        ack_time = _xpath(ack, "ram:IssueDateTime/udt:DateTimeString")
        if ack_time:
            ack_at = _cdar_datetime(ack_time[0], issues, "acknowledgement date-time") or message_at
        references = _xpath(ack, "ram:ReferenceReferencedDocument")
        if not references:
            issues.add(
                "No ram:ReferenceReferencedDocument: which invoice is this status about?",
                path=element_path(ack),
            )
        for reference in references:
            count += 1
            if count > MAX_STATUSES:
                issues.add(f"More than {MAX_STATUSES} statuses in one file; split the file.")
                return statuses
            status = _cdar_reference(
                reference,
                message_id=message_id,
                header_sirens=header_sirens,
                issuer_role=issuer_role,
                fallback_at=ack_at,
                issues=issues,
            )
            if status is not None:
                statuses.append(status)
    return statuses


# ---------------------------------------------------------------------------- matching and effects


def _match(ctx: ImportContext, statuses: list[Status]) -> list[tuple[Status, Invoice]]:
    """Each status's invoice, locked: the counterparty by SIREN, the invoice by number."""
    company = ctx.company
    assert company is not None
    numbers = sorted({s.invoice_number for s in statuses})
    rows: dict[str, list[tuple[Invoice, str | None]]] = defaultdict(list)
    for start in range(0, len(numbers), MATCH_BATCH):
        batch = numbers[start : start + MATCH_BATCH]
        result = ctx.session.execute(
            select(Invoice, Debtor.siren)
            .join(Debtor, Debtor.id == Invoice.debtor_id)
            .where(Invoice.company_id == company.id, Invoice.number.in_(batch))
            .order_by(Invoice.id)
            .with_for_update(of=Invoice)
            .execution_options(populate_existing=True)  # decide on the locked row's state
        )
        for invoice, siren in result:
            rows[invoice.number].append((invoice, siren))
    matched: list[tuple[Status, Invoice]] = []
    for status in statuses:
        between = (
            f"invoice {status.invoice_number} "
            f"(seller {status.seller_siren}, buyer {status.buyer_siren or 'not given'})"
        )
        if status.seller_siren == company.siren and status.buyer_siren != company.siren:
            kind, counterparty = InvoiceKind.RECEIVABLE, status.buyer_siren
        elif status.buyer_siren == company.siren and status.seller_siren != company.siren:
            kind, counterparty = InvoiceKind.PAYABLE, status.seller_siren
        else:
            ctx.issues.add(
                f"The status of {between} is not about this company (SIREN {company.siren}).",
                path=status.path,
                field="seller_siren",
            )
            continue
        candidates = [
            invoice
            for invoice, siren in rows.get(status.invoice_number, [])
            if invoice.kind == kind and (counterparty is None or siren == counterparty)
        ]
        if not candidates:
            ctx.issues.add(
                f"Unknown {between}: import the invoice (FEC, e-invoice or API) before its statuses.",
                path=status.path,
                field="invoice_number",
            )
            continue
        if len(candidates) > 1:
            ctx.issues.add(
                f"Several {kind} invoices are numbered {status.invoice_number}: the status must "
                "name the buyer's SIREN.",
                path=status.path,
                field="buyer_siren",
            )
            continue
        invoice = candidates[0]
        if status.issue_date is not None and status.issue_date != invoice.issue_date:
            ctx.issues.add(
                f"Invoice {status.invoice_number} ({invoice.id}) was issued on {invoice.issue_date}; "
                f"the status says {status.issue_date}.",
                path=status.path,
                field="issue_date",
            )
            continue
        if status.amount_cents is not None and status.currency != invoice.currency:
            ctx.issues.add(
                f"The amount is in {status.currency}; invoice {status.invoice_number} is in "
                f"{invoice.currency}.",
                path=status.path,
                field="amount",
            )
            continue
        matched.append((status, invoice))
    return matched


def _insert_event(ctx: ImportContext, status: Status, invoice: Invoice) -> bool:
    """Store the event; False when this (invoice, message, code) is already known."""
    name, _label = STATUSES[status.status_code]
    inserted = ctx.session.execute(
        insert(InvoiceLifecycleEvent)
        .values(
            company_id=invoice.company_id,
            invoice_id=invoice.id,
            import_id=ctx.data_import.id,
            message_id=status.message_id,
            status_code=status.status_code,
            status=name,
            occurred_at=status.occurred_at,
            issuer_role=status.issuer_role,
            reason=status.reason,
            amount_cents=status.amount_cents,
            created_at=ctx.clock.now(),
        )
        .on_conflict_do_nothing(index_elements=["invoice_id", "message_id", "status_code"])
        .returning(InvoiceLifecycleEvent.id)
    ).scalar_one_or_none()
    return inserted is not None


def _latest_codes(session: Session, invoice_ids: list[str]) -> dict[str, int]:
    """Each invoice's latest status code by occurred_at (the last stored wins a tie)."""
    event = InvoiceLifecycleEvent
    ranked = (
        select(
            event.invoice_id,
            event.status_code,
            func.row_number()
            .over(partition_by=event.invoice_id, order_by=(event.occurred_at.desc(), event.id.desc()))
            .label("rank"),
        )
        .where(event.invoice_id.in_(invoice_ids))
        .subquery()
    )
    rows = session.execute(select(ranked.c.invoice_id, ranked.c.status_code).where(ranked.c.rank == 1))
    return {invoice_id: code for invoice_id, code in rows}


def _payment_ref(message_id: str, invoice_id: str) -> str:
    """One payment per (message, invoice): one CDAR message may report several invoices
    cashed, and payments are unique per source reference (120 characters)."""
    ref = f"{message_id}#{invoice_id}"
    if len(ref) <= PAYMENT_REF_MAX:
        return ref
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:40]
    return f"sha256:{digest}#{invoice_id}"


def _record_cashed(ctx: ImportContext, status: Status, invoice: Invoice) -> bool:
    """A 212 status: the money came in. A payment for what the invoice still has due, at
    most the amount the status tells: money the bank, the books or an earlier status
    already recorded is the same money, never counted twice (an invoice already paid
    keeps the status only)."""
    remaining = invoice.amount_cents - allocated_cents(ctx.session, invoice.id)
    amount = status.amount_cents if status.amount_cents is not None else remaining
    amount = min(amount, remaining)
    if amount <= 0:
        return False  # nothing due (or nothing said): the status is kept, no payment invented
    payment = record_payment(
        ctx.session,
        ctx.clock.now(),
        company_id=invoice.company_id,
        source=PaymentSource.LIFECYCLE,
        source_ref=_payment_ref(status.message_id, invoice.id),
        amount_cents=amount,
        currency=invoice.currency,
        paid_on=status.occurred_at.date(),
        allocations=[Allocation(invoice.id, amount)],
    )
    return payment is not None


def _dispute(ctx: ImportContext, invoice: Invoice) -> bool:
    if invoice.status == InvoiceStatus.DISPUTED:
        return False
    try:
        transition_to(ctx.session, invoice, InvoiceStatus.DISPUTED, ctx.clock.now())
    except InvalidTransition:
        return False  # e.g. already paid: the status is kept, the invoice is not touched
    return True


def _apply(ctx: ImportContext, matched: list[tuple[Status, Invoice]]) -> ImportOutcome:
    session = ctx.session
    new: list[tuple[Status, Invoice]] = []
    duplicates = 0
    for status, invoice in sorted(matched, key=lambda pair: (pair[0].occurred_at, pair[0].status_code)):
        if _insert_event(ctx, status, invoice):
            new.append((status, invoice))
        else:
            duplicates += 1
    invoices = {invoice.id: invoice for _status, invoice in new}
    if not invoices:
        return ImportOutcome(
            unchanged=duplicates, counts={"lifecycle_events": 0, "payments": 0, "disputes": 0}
        )

    payments = 0
    paid: set[str] = set()
    for status, invoice in new:
        if status.status_code == CASHED and _record_cashed(ctx, status, invoice):
            payments += 1
            paid.add(invoice.id)
    if paid:
        session.flush()
        refresh_invoices(session, paid, ctx.clock.now())
        for invoice_id in paid:
            session.refresh(invoices[invoice_id])

    latest = _latest_codes(session, sorted(invoices))
    now = ctx.clock.now()
    disputes = 0
    updated = 0
    disputed_now = {invoice.id for status, invoice in new if status.status_code in DISPUTING}
    for invoice_id, invoice in invoices.items():
        code = latest[invoice_id]
        if invoice.lifecycle_status_code != code:
            invoice.lifecycle_status_code = code
            invoice.lifecycle_status = STATUSES[code][0]
            invoice.updated_at = now
            updated += 1
        # a dispute counts only while it is the invoice's latest word (events arrive late)
        if invoice_id in disputed_now and code in DISPUTING and _dispute(ctx, invoice):
            disputes += 1
    session.flush()
    return ImportOutcome(
        created=len(new),
        updated=updated,
        unchanged=duplicates,
        counts={"lifecycle_events": len(new), "payments": payments, "disputes": disputes},
    )


# ---------------------------------------------------------------------------- entry points


def read_statuses(data: bytes, issues: IssueCollector) -> list[Status]:
    """The statuses of a CDAR message or of the JSON format, told apart by content."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return read_json(data, issues)
    if head.startswith(b"<"):
        try:
            root = parse_xml(data, max_bytes=MAX_FILE_BYTES)
        except XmlError as exc:
            issues.add(exc.message, line=exc.line)
            return []
        return read_cdar(root, issues)
    issues.add('Expected a CDAR XML message or JSON {"statuses": [...]}.')
    return []


def import_lifecycle(ctx: ImportContext) -> ImportOutcome:
    if ctx.company is None:
        ctx.issues.add("Lifecycle statuses belong to a company: say which.")
        ctx.issues.raise_if_any()
    data = b""
    try:
        data = read_bounded(ctx.open_stream(), MAX_FILE_BYTES)
    except XmlError as exc:
        ctx.issues.add(exc.message)
    ctx.issues.raise_if_any()
    ctx.progress(0, len(data))
    statuses = read_statuses(data, ctx.issues)
    ctx.issues.raise_if_any()
    if not statuses:
        ctx.issues.add("The file carries no status.")
        ctx.issues.raise_if_any()
    matched = _match(ctx, statuses)
    ctx.issues.raise_if_any()
    invariant(len(matched) == len(statuses), "every status is matched or refused")
    outcome = _apply(ctx, matched)
    ctx.progress(len(data), len(data))
    return outcome


def buyer_approved(session: Session, invoice_id: str) -> bool:
    """The buyer approved the invoice (205) and has not since partially approved,
    disputed, suspended, refused, rejected or cancelled it: strong evidence for eligibility."""
    approved_at = session.execute(
        select(InvoiceLifecycleEvent.occurred_at)
        .where(InvoiceLifecycleEvent.invoice_id == invoice_id, InvoiceLifecycleEvent.status_code == APPROVED)
        .order_by(InvoiceLifecycleEvent.occurred_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if approved_at is None:
        return False
    undone = session.execute(
        select(InvoiceLifecycleEvent.id)
        .where(
            InvoiceLifecycleEvent.invoice_id == invoice_id,
            InvoiceLifecycleEvent.status_code.in_(sorted(UNDOES_APPROVAL)),
            InvoiceLifecycleEvent.occurred_at >= approved_at,
        )
        .limit(1)
    ).scalar_one_or_none()
    return undone is None
