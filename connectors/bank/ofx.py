"""OFX bank statements (OFX 1.x SGML and 2.x XML), read with ofxtools.

What is read, per bank statement (``STMTRS``; credit-card statements are refused):

- the account from ``BANKACCTFROM``: an IBAN in ``ACCTID``, or the French
  ``BANKID`` (code banque) + ``BRANCHID`` (code guichet) + ``ACCTID`` (numéro de compte,
  with or without its two-digit RIB key), from which the IBAN follows. Otherwise the
  import needs the ``iban`` option; when both are there they must agree;
- the currency ``CURDEF``; balances ``LEDGERBAL`` (stored as CLBD) and ``AVAILBAL`` (CLAV);
- each ``STMTTRN``: ``FITID`` (the bank's id), ``DTPOSTED`` (booking date, the calendar
  day as written), ``DTAVAIL`` (value date), ``TRNAMT`` (signed), ``TRNTYPE`` (kept as the
  bank code), ``NAME`` or ``PAYEE/NAME`` (counterparty), ``MEMO`` (remittance
  information) and ``BANKACCTTO/ACCTID`` when it is an IBAN (the counterparty's).

OFX gives no line numbers once parsed: errors name the element's path.
"""

from __future__ import annotations

import io
import warnings
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from ofxtools.header import OFXHeaderError
from ofxtools.models.base import Aggregate
from ofxtools.Parser import OFXTree, ParseError
from ofxtools.Types import OFXTypeWarning
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from escompte.connectors.bank.accounts import (
    NAME_MAX,
    REMITTANCE_MAX,
    AccountRef,
    BankDataError,
    BankLine,
    BankWriter,
    check_currency,
    check_date,
    clean_text,
    import_outcome,
    minor_units,
    normalize_iban,
)
from escompte.connectors.base import ImportContext, ImportOutcome
from escompte.errors import invariant

MAX_OFX_BYTES = 64 * 1024 * 1024  # OFX is read whole; a year of a busy account is far below
_STATEMENT_PATH = "/OFX/BANKMSGSRSV1/STMTTRNRS[{n}]/STMTRS"


def import_ofx(ctx: ImportContext) -> ImportOutcome:
    company = ctx.company
    invariant(company is not None, "a bank statement belongs to a company")
    assert company is not None
    stream = ctx.open_stream()
    try:
        data = stream.read(MAX_OFX_BYTES + 1)
    finally:
        stream.close()
    if len(data) > MAX_OFX_BYTES:
        ctx.issues.add(f"The OFX file is larger than {MAX_OFX_BYTES // (1024 * 1024)} MiB.")
        ctx.issues.raise_if_any()
    tree = OFXTree()
    try:
        tree.parse(io.BytesIO(data))
    except (OFXHeaderError, ParseError, ValueError) as exc:
        ctx.issues.add(f"The file is not a readable OFX statement: {exc}.", path="/OFX")
        ctx.issues.raise_if_any()
    ofx = _convert(ctx, tree)
    root = tree.getroot()
    raw_statements = [] if root is None else root.findall(".//STMTRS") + root.findall(".//CCSTMTRS")
    statements = list(getattr(ofx, "statements", []))
    if not statements:
        ctx.issues.add("The OFX file holds no bank statement (STMTRS).", path="/OFX/BANKMSGSRSV1")
    skipped = 0
    with BankWriter(
        ctx.session, ctx.clock.now(), company_id=company.id, source="ofx", import_id=ctx.data_import.id
    ) as writer:
        for number, (statement, raw) in enumerate(zip(statements, raw_statements, strict=False), start=1):
            skipped += _statement(ctx, writer, statement, raw, _STATEMENT_PATH.format(n=number))
        ctx.issues.raise_if_any()
        result = writer.finish()
    return import_outcome(result, **({"bank_entries_zero_amount": skipped} if skipped else {}))


def _convert(ctx: ImportContext, tree: OFXTree) -> Any:
    """The ofxtools model of the file; when it does not convert, the transactions that
    do not are reported one by one (with their path), else the file as a whole."""
    try:
        with warnings.catch_warnings():
            # e.g. an IBAN in ACCTID is longer than OFX's 22 characters: accepted, not noise
            warnings.simplefilter("ignore", OFXTypeWarning)
            return tree.convert()
    except Exception as exc:  # ofxtools raises many kinds (ValueError, InvalidOperation …)
        root = tree.getroot()
        for s_number, raw in enumerate([] if root is None else root.findall(".//STMTRS"), start=1):
            path = _STATEMENT_PATH.format(n=s_number)
            for t_number, element in enumerate(raw.findall("BANKTRANLIST/STMTTRN"), start=1):
                try:
                    Aggregate.from_etree(element)
                except Exception as inner:
                    ctx.issues.add(
                        f"The transaction is not valid OFX: {_reason(inner)}.",
                        path=f"{path}/BANKTRANLIST/STMTTRN[{t_number}]",
                        field=_failing_field(element),
                    )
        if not ctx.issues:
            ctx.issues.add(f"The file is not a valid OFX statement: {_reason(exc)}.", path="/OFX")
        ctx.issues.raise_if_any()
        raise  # unreachable: raise_if_any raised


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, InvalidOperation):
        text = "a number is not a decimal number"
    return text[:300]


def _failing_field(element: Any) -> str | None:
    """The first child of a transaction whose text cannot be what OFX says it is."""
    for child in element:
        value = (child.text or "").strip()
        if child.tag == "TRNAMT":
            try:
                Decimal(value.replace(",", "."))
            except InvalidOperation:
                return "TRNAMT"
        if child.tag.startswith("DT") and not value[:8].isdigit():
            return str(child.tag)
    return None


def _statement(ctx: ImportContext, writer: BankWriter, statement: Any, raw: Any, path: str) -> int:
    if raw.tag != "STMTRS":
        ctx.issues.add(
            "Credit-card statements (CCSTMTRS) are not bank account statements: Escompte "
            "imports bank accounts only.",
            path=path.replace("/STMTRS", "/CCSTMTRS"),
        )
        return 0
    currency = str(statement.curdef)
    try:
        check_currency(currency)
    except BankDataError as exc:
        ctx.issues.add(f"The statement currency is invalid: {exc}.", path=f"{path}/CURDEF")
        return 0
    iban = _account_iban(ctx, statement.account, path)
    if iban is None:
        return 0
    try:
        account = writer.account(iban, currency=currency)
    except BankDataError as exc:
        ctx.issues.add(f"The account cannot be used: {exc}.", path=f"{path}/BANKACCTFROM")
        return 0
    skipped = 0
    raw_lines = raw.findall("BANKTRANLIST/STMTTRN")
    for number, (tx, element) in enumerate(zip(statement.transactions, raw_lines, strict=False), start=1):
        where = f"{path}/BANKTRANLIST/STMTTRN[{number}]"
        line = _line(ctx, tx, element, currency, where)
        if line is None:
            continue
        if line.amount_cents == 0:
            skipped += 1
            continue
        if ctx.issues:
            continue  # the file is refused anyway: keep checking, stop staging
        try:
            writer.add(account, line)
        except BankDataError as exc:
            ctx.issues.add(f"The transaction cannot be stored: {exc}.", path=where)
    _balances(ctx, writer, account, statement, raw, currency, path)
    return skipped


def _account_iban(ctx: ImportContext, acct: Any, path: str) -> str | None:
    """The IBAN the statement is for (see the module's docstring)."""
    where = f"{path}/BANKACCTFROM"
    given = ctx.options.get("iban")
    found: str | None = None
    acctid = str(getattr(acct, "acctid", "") or "").replace(" ", "").upper()
    bankid = str(getattr(acct, "bankid", "") or "").strip()
    branchid = str(getattr(acct, "branchid", "") or "").strip()
    try:
        found = normalize_iban(acctid)
    except BankDataError:
        found = _french_iban(bankid, branchid, acctid)
    if given is not None:
        try:
            expected = normalize_iban(str(given))
        except BankDataError as exc:
            ctx.issues.add(f"The `iban` option is invalid: {exc}.", field="options.iban")
            return None
        if found is not None and found != expected:
            ctx.issues.add(
                f"The file's account ({found}) is not the IBAN given in the options ({expected}).",
                path=where,
                field="options.iban",
            )
            return None
        return expected
    if found is None:
        ctx.issues.add(
            f"The OFX account (BANKID {bankid or '-'}, BRANCHID {branchid or '-'}, ACCTID "
            f"{acctid or '-'}) does not give an IBAN: say it with the `iban` option.",
            path=where,
            field="options.iban",
        )
    return found


def _french_iban(bankid: str, branchid: str, acctid: str) -> str | None:
    """code banque + code guichet + numéro de compte (± clé RIB) → IBAN, when it is one."""
    if not (len(bankid) == 5 and bankid.isdigit() and len(branchid) == 5 and branchid.isdigit()):
        return None
    if len(acctid) not in (11, 13) or not acctid.isalnum():
        return None
    try:
        iban = IBAN.generate("FR", bank_code=bankid + branchid, account_code=acctid[:11])
    except (SchwiftyException, ValueError):
        return None
    compact = str(iban.compact)
    if len(acctid) == 13 and compact[-2:] != acctid[-2:]:
        return None  # the RIB key written in the file does not match: not this account
    return compact


def _raw_date(element: Any, tag: str) -> date | None:
    value = (element.findtext(tag) or "").strip()
    if not value:
        return None
    return check_date(date(int(value[0:4]), int(value[4:6]), int(value[6:8])))


def _line(ctx: ImportContext, tx: Any, element: Any, currency: str, where: str) -> BankLine | None:
    amount: Decimal = tx.trnamt
    scaled = amount.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        ctx.issues.add(
            f"The amount {amount} has more decimals than {currency} allows.",
            path=f"{where}/TRNAMT",
            field="TRNAMT",
        )
        return None
    try:
        booking = _raw_date(element, "DTPOSTED")
        value_date = _raw_date(element, "DTAVAIL")
    except (ValueError, BankDataError) as exc:
        ctx.issues.add(f"A date is not valid: {exc}.", path=where)
        return None
    if booking is None:
        ctx.issues.add("The transaction has no DTPOSTED.", path=f"{where}/DTPOSTED", field="DTPOSTED")
        return None
    name = tx.name or (tx.payee.name if getattr(tx, "payee", None) is not None else None)
    counterparty_iban = None
    to = getattr(tx, "bankacctto", None)
    if to is not None and to.acctid:
        try:
            counterparty_iban = normalize_iban(str(to.acctid))
        except BankDataError:
            counterparty_iban = None  # a national account number, not an IBAN
    fitid = (str(tx.fitid).strip() if tx.fitid is not None else "") or None
    return BankLine(
        booking_date=booking,
        amount_cents=int(scaled),
        currency=currency,
        value_date=value_date,
        counterparty_name=clean_text(name, NAME_MAX),
        counterparty_iban=counterparty_iban,
        remittance_info=clean_text(tx.memo, REMITTANCE_MAX),
        bank_code=clean_text(str(tx.trntype) if tx.trntype else None, 40),
        external_id=fitid,
    )


def _balances(
    ctx: ImportContext,
    writer: BankWriter,
    account: AccountRef,
    statement: Any,
    raw: Any,
    currency: str,
    path: str,
) -> None:
    for tag, kind in (("LEDGERBAL", "CLBD"), ("AVAILBAL", "CLAV")):
        balance = getattr(statement, tag.lower(), None)
        element = raw.find(tag)
        if balance is None or element is None:
            continue
        amount: Decimal = balance.balamt
        scaled = amount.scaleb(minor_units(currency))
        try:
            day = _raw_date(element, "DTASOF")
            if day is None or scaled != scaled.to_integral_value():
                raise BankDataError("it needs a DTASOF date and an amount in whole cents")
            if not ctx.issues:
                writer.add_balance(account, day, kind, int(scaled), currency)
        except (ValueError, BankDataError) as exc:
            ctx.issues.add(f"The balance is not valid: {exc}.", path=f"{path}/{tag}")
