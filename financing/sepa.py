"""The bank rail for supplier (payables) advances: SEPA credit transfers from the
platform's bank account, ordered in a pain.001.001.03 file (built and checked against the
XSD by ``sepaxml``) and confirmed by that account's camt.053 statement, where each
transfer shows as a debit carrying its end-to-end id (the operation's id without its
underscore: SEPA references allow letters, digits and ``/-?:().,'+`` only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sepaxml import SepaTransfer  # type: ignore[import-untyped]

from escompte.connectors.xml import XmlError, local_name, parse_xml

FORMAT = "pain.001.001.03"


def end_to_end_id(operation_id: str) -> str:
    return operation_id.replace("_", "")


def operation_id(end_to_end: str) -> str | None:
    """``pop01…`` → ``pop_01…``; None for a reference that is not one of ours."""
    if len(end_to_end) == 29 and end_to_end.startswith("pop"):
        return f"pop_{end_to_end[3:]}"
    return None


@dataclass(frozen=True, slots=True)
class Order:
    operation_id: str
    payee_name: str
    payee_iban: str
    amount_cents: int
    reference: str


def credit_transfer_file(
    orders: list[Order], *, name: str, iban: str, bic: str | None, execution_date: date
) -> bytes:
    config = {"name": name, "IBAN": iban, "batch": True, "currency": "EUR"}
    if bic:
        config["BIC"] = bic
    sepa = SepaTransfer(config, schema=FORMAT, clean=True)
    for order in orders:
        sepa.add_payment(
            {
                "name": order.payee_name[:70],
                "IBAN": order.payee_iban,
                "amount": order.amount_cents,
                "execution_date": execution_date,
                "description": order.reference[:140],
                "endtoend_id": end_to_end_id(order.operation_id),
            }
        )
    content: bytes = sepa.export(validate=True)
    return content


@dataclass(frozen=True, slots=True)
class StatementLine:
    end_to_end_id: str
    amount_cents: int
    debit: bool
    booked: bool
    booking_date: date | None
    reference: str | None


def _cents(text: str) -> int:
    return int((Decimal(text) * 100).to_integral_exact())


def statement_lines(content: bytes) -> list[StatementLine]:
    """Every transaction of a camt.053 that carries an end-to-end id (safe parsing: no
    DTD, no entities, bounded size)."""
    root = parse_xml(content)
    if local_name(root) != "Document":
        raise XmlError("not an ISO 20022 document (the root element is not Document)")
    ns = root.nsmap.get(None, "")
    if ".053." not in ns:
        raise XmlError(f"not a camt.053 bank statement (namespace {ns or 'none'})")
    q = f"{{{ns}}}"
    lines: list[StatementLine] = []
    for entry in root.iter(f"{q}Ntry"):
        status = entry.findtext(f"{q}Sts/{q}Cd") or entry.findtext(f"{q}Sts") or "BOOK"
        debit = entry.findtext(f"{q}CdtDbtInd") == "DBIT"
        booking = entry.findtext(f"{q}BookgDt/{q}Dt")
        entry_amount = entry.findtext(f"{q}Amt")
        details = list(entry.iter(f"{q}TxDtls"))
        for tx in details:
            e2e = tx.findtext(f"{q}Refs/{q}EndToEndId")
            if not e2e or e2e == "NOTPROVIDED":
                continue
            amount = tx.findtext(f"{q}Amt") or tx.findtext(f"{q}AmtDtls/{q}TxAmt/{q}Amt") or entry_amount
            if amount is None:
                raise XmlError(f"entry with end-to-end id {e2e} has no amount")
            lines.append(
                StatementLine(
                    end_to_end_id=e2e.strip(),
                    amount_cents=_cents(amount.strip()),
                    debit=debit,
                    booked=status.strip().upper() == "BOOK",
                    booking_date=date.fromisoformat(booking.strip()[:10]) if booking else None,
                    reference=tx.findtext(f"{q}Refs/{q}AcctSvcrRef"),
                )
            )
    return lines
