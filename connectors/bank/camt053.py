"""ISO 20022 camt.053 bank-to-customer statements, versions 001.02 to 001.13.

Read as a stream (files of hundreds of thousands of entries): lxml ``iterparse`` keeps
one entry in memory at a time. What is read, per statement (``Stmt``):

- the account: ``Acct/Id/IBAN``, ``Acct/Ccy``, ``Acct/Nm``, ``Acct/Svcr/FinInstnId/BIC``
  (``BICFI`` from 001.04);
- balances: ``Bal`` with its type code (CLBD, OPBD, ITBD, CLAV …), signed amount and date;
- booked entries only (``Sts`` ``BOOK``, or ``Sts/Cd`` ``BOOK`` from 001.07); pending and
  information entries are counted and skipped. Per entry: credit/debit indicator,
  amount and currency, booking and value dates (``Dt`` or ``DtTm``), ``AcctSvcrRef``,
  the bank transaction code, and each ``NtryDtls/TxDtls``: one transaction per
  ``TxDtls`` (a batch entry with several gives several transactions, whose amounts must
  add up to the entry's). Per transaction: ``Refs/EndToEndId`` and ``Refs/AcctSvcrRef``,
  the counterparty (for a credit the debtor ``RltdPties/Dbtr`` and ``DbtrAcct``, for a
  debit the creditor; ``Dbtr/Nm`` or ``Dbtr/Pty/Nm`` from 001.08), remittance information
  (``RmtInf/Ustrd`` lines joined, else referred document numbers, else ``AddtlTxInf`` or
  ``AddtlNtryInf``) and the structured creditor reference ``RmtInf/Strd/CdtrRefInf/Ref``.

All or nothing: every error is reported with its XML path (and line), and nothing is
stored unless the whole file is valid. A DOCTYPE is refused (see ``escompte.connectors.xml``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from lxml import etree  # type: ignore[import-untyped]

from escompte.connectors.bank.accounts import (
    NAME_MAX,
    REFERENCE_MAX,
    REMITTANCE_MAX,
    AccountRef,
    BankDataError,
    BankLine,
    BankWriter,
    check_currency,
    check_date,
    clean_text,
    import_outcome,
    normalize_iban,
    parse_amount,
    reported_iban,
)
from escompte.connectors.base import ImportContext, ImportOutcome
from escompte.errors import invariant

NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."
VERSIONS = tuple(f"001.{minor:02d}" for minor in range(2, 14))
HEAD_BYTES = 64 * 1024
_DOCTYPE_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")
_OTHER_ISO = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:([a-z]{4}\.\d{3})\.(\d{3}\.\d{2})$")

# Local names the reader looks at; everything else is skipped without a look.
_NAMES = (
    "Acct",
    "Id",
    "IBAN",
    "Othr",
    "Ccy",
    "Nm",
    "Svcr",
    "FinInstnId",
    "BIC",
    "BICFI",
    "Bal",
    "Tp",
    "CdOrPrtry",
    "Cd",
    "Prtry",
    "Amt",
    "CdtDbtInd",
    "Dt",
    "DtTm",
    "Ntry",
    "NtryRef",
    "Sts",
    "BookgDt",
    "ValDt",
    "AcctSvcrRef",
    "BkTxCd",
    "Domn",
    "Fmly",
    "SubFmlyCd",
    "NtryDtls",
    "TxDtls",
    "AddtlNtryInf",
    "Refs",
    "EndToEndId",
    "AmtDtls",
    "TxAmt",
    "RltdPties",
    "Dbtr",
    "DbtrAcct",
    "Cdtr",
    "CdtrAcct",
    "Pty",
    "Agt",
    "RmtInf",
    "Ustrd",
    "Strd",
    "CdtrRefInf",
    "Ref",
    "RfrdDocInf",
    "Nb",
    "AddtlTxInf",
    "Stmt",
)
_NOT_PROVIDED = "NOTPROVIDED"


class _Refused(Exception):
    """The document cannot be read further (not camt.053, not well-formed)."""

    def __init__(self, message: str, *, line: int | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.path = path


def import_camt053(ctx: ImportContext) -> ImportOutcome:
    company = ctx.company
    invariant(company is not None, "a bank statement belongs to a company")
    assert company is not None
    try:
        namespace = _document_namespace(ctx)
    except _Refused as refused:
        ctx.issues.add(refused.message, line=refused.line, path=refused.path)
        ctx.issues.raise_if_any()
        raise  # unreachable: raise_if_any raised
    with BankWriter(
        ctx.session, ctx.clock.now(), company_id=company.id, source="camt", import_id=ctx.data_import.id
    ) as writer:
        reader = _Reader(ctx, writer, namespace)
        try:
            reader.run()
        except _Refused as refused:
            ctx.issues.add(refused.message, line=refused.line, path=refused.path)
        ctx.issues.raise_if_any()
        result = writer.finish()
    extra = {"bank_entries_not_booked": reader.not_booked} if reader.not_booked else {}
    return import_outcome(result, **extra)


# --- the document ------------------------------------------------------------------------


def _safe_options() -> dict[str, Any]:
    return {
        "resolve_entities": False,
        "no_network": True,
        "load_dtd": False,
        "dtd_validation": False,
        "huge_tree": False,
        "remove_comments": True,
        "remove_pis": True,
    }


def _document_namespace(ctx: ImportContext) -> str:
    """The camt.053 namespace of the file, read from its root element; refuses anything
    else, and any DOCTYPE, before the file is read in full."""
    stream = ctx.open_stream()
    try:
        head = stream.read(HEAD_BYTES)
    finally:
        stream.close()
    if not head.strip():
        raise _Refused("The file is empty.")
    if any(marker in head for marker in _DOCTYPE_MARKERS):
        raise _doctype_refused()
    parser = etree.XMLPullParser(events=("start",), **_safe_options())
    root = None
    try:
        parser.feed(head)
        for _event, element in parser.read_events():
            root = element
            break
    except etree.XMLSyntaxError as exc:
        raise _Refused(f"The file is not well-formed XML: {exc.msg}.", line=_line(exc)) from None
    if root is None:
        raise _Refused("The file does not start with an XML element within its first 64 KiB.")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise _doctype_refused()
    qname = etree.QName(root)
    namespace = qname.namespace or ""
    if qname.localname == "Document" and namespace.startswith(NAMESPACE_PREFIX):
        version = namespace[len(NAMESPACE_PREFIX) - 4 :]
        if version not in VERSIONS:
            raise _Refused(
                f"camt.053 version {version} is not supported: Escompte reads versions "
                f"{VERSIONS[0]} to {VERSIONS[-1]}.",
                path="/Document",
            )
        return namespace
    other = _OTHER_ISO.match(namespace)
    if other:
        raise _Refused(
            f"This is an ISO 20022 {other.group(1)} document (version {other.group(2)}), not a camt.053 "
            "bank statement.",
            path=f"/{qname.localname}",
        )
    raise _Refused(
        f"This is not a camt.053 bank statement: the root element is {qname.localname}"
        + (f" in namespace {namespace}" if namespace else " without a namespace")
        + f", not Document in namespace {NAMESPACE_PREFIX}0X.",
        path=f"/{qname.localname}",
    )


def _doctype_refused() -> _Refused:
    return _Refused(
        "The XML contains a DOCTYPE or ENTITY declaration. Escompte refuses them: camt.053 needs "
        "none, and they are how XML bombs and external entities work. Export the statement again "
        "without a DOCTYPE."
    )


def _line(exc: etree.XMLSyntaxError) -> int | None:
    return exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None


class _Progress:
    """A read-only stream that reports how far the file has been read."""

    def __init__(self, stream: IO[bytes], ctx: ImportContext) -> None:
        self._stream = stream
        self._ctx = ctx
        self._done = 0
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._done += len(data)
        if self._done - self._reported >= 4 * 1024 * 1024 or not data:
            self._reported = self._done
            self._ctx.progress(self._done, self._ctx.size_bytes)
        return data


# --- statements, balances, entries ---------------------------------------------------------


@dataclass
class _Statement:
    index: int
    iban: str | None = None
    currency: str | None = None
    name: str | None = None
    bic: str | None = None
    account: AccountRef | None = None
    account_failed: bool = False
    balances: int = 0
    entries: int = 0
    seen_account: bool = False

    @property
    def path(self) -> str:
        return f"/Document/BkToCstmrStmt/Stmt[{self.index}]"


@dataclass
class _Tx:
    """What one TxDtls says."""

    amount_text: str | None = None
    currency: str | None = None
    indicator: str | None = None
    account_servicer_ref: str | None = None
    end_to_end_id: str | None = None
    bank_code: str | None = None
    parties: dict[str, str] = field(default_factory=dict)  # Dbtr, DbtrAcct, Cdtr, CdtrAcct
    ustrd: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    structured_reference: str | None = None
    additional_info: str | None = None


class _Reader:
    def __init__(self, ctx: ImportContext, writer: BankWriter, namespace: str) -> None:
        self.ctx = ctx
        self.writer = writer
        self.ns = namespace
        self.local = {f"{{{namespace}}}{name}": name for name in _NAMES}
        # tags and paths used on every entry, built once
        self.tx_amount_path = f"{self.tag('TxAmt')}/{self.tag('Amt')}"
        self.iban_path = f"{self.tag('Id')}/{self.tag('IBAN')}"
        self.proprietary_code_path = f"{self.tag('Prtry')}/{self.tag('Cd')}"
        self.domain_tag = self.tag("Domn")
        self.code_tags = (self.tag("Cd"), self.tag("SubFmlyCd"))
        self.statements = 0
        self.not_booked = 0
        self.statement: _Statement | None = None

    def tag(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    def error(self, message: str, path: str, line: int | None, field: str | None = None) -> None:
        self.ctx.issues.add(message, path=path, line=line, field=field)

    def run(self) -> None:
        stream = self.ctx.open_stream()
        try:
            events = etree.iterparse(
                _Progress(stream, self.ctx),
                events=("end",),
                tag=[self.tag(name) for name in ("Stmt", "Acct", "Bal", "Ntry")],
                **_safe_options(),
            )
            for _event, element in _guarded(events):
                self._on(element)
        finally:
            stream.close()
        if self.statements == 0:
            raise _Refused(
                "The document has no statement (BkToCstmrStmt/Stmt).", path="/Document/BkToCstmrStmt"
            )

    def _on(self, element: Any) -> None:
        name = self.local[element.tag]
        parent = element.getparent()
        if name == "Stmt":
            statement = self.statement
            if statement is None:  # a statement with neither account, balance nor entry
                self.statements += 1
                statement = _Statement(index=self.statements)
            if not statement.seen_account:
                self.error("The statement has no account (Acct).", statement.path, element.sourceline)
            self.statement = None
        elif parent is None or self.local.get(parent.tag) != "Stmt":
            return  # an element of that name elsewhere (none in camt.053 today)
        else:
            statement = self.statement
            if statement is None:
                self.statements += 1
                statement = self.statement = _Statement(index=self.statements)
            if name == "Ntry":
                statement.entries += 1
                self._entry(element, statement)
            elif name == "Bal":
                statement.balances += 1
                self._balance(element, statement)
            else:
                statement.seen_account = True
                self._account(element, statement)
        if parent is None:
            return
        # Free what has been read: this element and everything before it.
        element.clear(keep_tail=True)
        while element.getprevious() is not None:
            del parent[0]

    # account and balances -----------------------------------------------------------------

    def _account(self, element: Any, st: _Statement) -> None:
        path = f"{st.path}/Acct"
        for child in element:
            name = self.local.get(child.tag)
            if name == "Id":
                for ident in child:
                    kind = self.local.get(ident.tag)
                    if kind == "IBAN":
                        st.iban = (ident.text or "").strip()
                    elif kind == "Othr":
                        st.iban = st.iban or ""
            elif name == "Ccy":
                st.currency = (child.text or "").strip()
            elif name == "Nm":
                st.name = clean_text(child.text, NAME_MAX)
            elif name == "Svcr":
                for agent in child.iter(self.tag("BIC"), self.tag("BICFI")):
                    st.bic = (agent.text or "").strip() or None
        if not st.iban:
            st.account_failed = True
            self.error(
                "The account is not identified by an IBAN (Acct/Id/IBAN): Escompte needs the IBAN.",
                f"{path}/Id/IBAN",
                element.sourceline,
            )
            return
        try:
            st.iban = normalize_iban(st.iban)
        except BankDataError as exc:
            st.account_failed = True
            self.error(f"The account IBAN is invalid: {exc}.", f"{path}/Id/IBAN", element.sourceline)
            return
        if st.currency is not None:
            try:
                check_currency(st.currency)
            except BankDataError as exc:
                self.error(f"The account currency is invalid: {exc}.", f"{path}/Ccy", element.sourceline)
                st.currency = None

    def _account_ref(self, st: _Statement, currency: str, path: str, line: int | None) -> AccountRef | None:
        if st.account is not None:
            return st.account
        if st.account_failed:
            return None
        if not st.seen_account or st.iban is None:
            st.account_failed = True
            self.error(
                "The statement's account (Acct) must come before its balances and entries.", path, line
            )
            return None
        try:
            st.account = self.writer.account(
                st.iban, currency=st.currency or currency, name=st.name, bic=st.bic
            )
        except BankDataError as exc:
            st.account_failed = True
            self.error(f"The account cannot be used: {exc}.", f"{st.path}/Acct", line)
            return None
        return st.account

    def _balance(self, element: Any, st: _Statement) -> None:
        path = f"{st.path}/Bal[{st.balances}]"
        line = element.sourceline
        kind = amount_text = currency = indicator = None
        day: date | None = None
        for child in element:
            name = self.local.get(child.tag)
            if name == "Tp":
                for code in child.iter(self.tag("Cd"), self.tag("Prtry")):
                    kind = kind or (code.text or "").strip() or None
            elif name == "Amt":
                amount_text, currency = child.text, child.get("Ccy")
            elif name == "CdtDbtInd":
                indicator = (child.text or "").strip()
            elif name == "Dt":
                day = self._date_choice(child, f"{path}/Dt", line)
        if kind is None:
            self.error("The balance has no type (Tp/CdOrPrtry/Cd).", f"{path}/Tp", line)
            return
        amount = self._amount(amount_text, currency, f"{path}/Amt", line)
        signed = self._signed(amount, indicator, f"{path}/CdtDbtInd", line)
        if day is None:
            self.error("The balance has no date (Dt/Dt).", f"{path}/Dt", line)
        if signed is None or day is None or currency is None:
            return
        account = self._account_ref(st, currency, path, line)
        if account is None or self.ctx.issues:
            return
        try:
            self.writer.add_balance(account, day, kind, signed, currency)
        except BankDataError as exc:
            self.error(f"The balance cannot be stored: {exc}.", path, line)

    # entries --------------------------------------------------------------------------

    def _entry(self, element: Any, st: _Statement) -> None:
        path = f"{st.path}/Ntry[{st.entries}]"
        line = element.sourceline
        local = self.local
        amount_text = currency = indicator = status = account_servicer_ref = bank_code = None
        booking: date | None = None
        value: date | None = None
        additional: str | None = None
        details: list[Any] = []
        for child in element:
            name = local.get(child.tag)
            if name is None:
                continue
            if name == "Amt":
                amount_text, currency = child.text, child.get("Ccy")
            elif name == "CdtDbtInd":
                indicator = child.text
            elif name == "Sts":
                status = (child.text or "").strip() or (child[0].text if len(child) else None)
            elif name == "BookgDt":
                booking = self._date_choice(child, f"{path}/BookgDt", line)
            elif name == "ValDt":
                value = self._date_choice(child, f"{path}/ValDt", line)
            elif name == "AcctSvcrRef":
                account_servicer_ref = child.text
            elif name == "BkTxCd":
                bank_code = self._bank_code(child)
            elif name == "NtryDtls":
                details.extend(d for d in child if local.get(d.tag) == "TxDtls")
            elif name == "AddtlNtryInf":
                additional = child.text
        if status is None:
            self.error("The entry has no status (Sts).", f"{path}/Sts", line)
            return
        if status.strip() != "BOOK":
            self.not_booked += 1
            return
        amount = self._amount(amount_text, currency, f"{path}/Amt", line)
        signed = self._signed(amount, indicator, f"{path}/CdtDbtInd", line)
        if booking is None:
            self.error("A booked entry needs a booking date (BookgDt/Dt).", f"{path}/BookgDt", line)
            return
        if signed is None or currency is None:
            return
        account = self._account_ref(st, currency, path, line)
        if account is None:
            return
        entry_ref = _text(account_servicer_ref)
        txs = [self._tx(d) for d in details]
        if len(txs) <= 1:
            tx = txs[0] if txs else _Tx()
            parts = [(tx, signed, tx.account_servicer_ref if entry_ref is None else entry_ref, path)]
        else:
            found = self._batch(txs, signed, currency, indicator, entry_ref, path, line)
            if found is None:
                return
            parts = found
        for tx, cents, external_id, where in parts:
            self._emit(
                account, tx, cents, external_id, where, line, booking, value, currency, bank_code, additional
            )

    def _emit(
        self,
        account: AccountRef,
        tx: _Tx,
        cents: int,
        external_id: str | None,
        where: str,
        line: int | None,
        booking: date,
        value: date | None,
        currency: str,
        entry_bank_code: str | None,
        entry_info: str | None,
    ) -> None:
        """Stage one transaction of a booked entry."""
        remittance = (
            " ".join(tx.ustrd) if tx.ustrd else " ".join(tx.documents) or tx.additional_info or entry_info
        )
        credit = cents > 0
        iban = tx.parties.get("DbtrAcct" if credit else "CdtrAcct")
        if iban is not None:
            iban = reported_iban(iban)
        bank_line = BankLine(
            booking_date=booking,
            amount_cents=cents,
            currency=currency,
            value_date=value,
            counterparty_name=clean_text(tx.parties.get("Dbtr" if credit else "Cdtr"), NAME_MAX),
            counterparty_iban=iban,
            remittance_info=clean_text(remittance, REMITTANCE_MAX),
            structured_reference=clean_text(tx.structured_reference, REFERENCE_MAX),
            end_to_end_id=clean_text(tx.end_to_end_id, REFERENCE_MAX),
            bank_code=tx.bank_code or entry_bank_code,
            external_id=external_id,
        )
        if self.ctx.issues:
            return  # the file is refused anyway: keep checking, stop staging
        try:
            self.writer.add(account, bank_line)
        except BankDataError as exc:
            self.error(f"The transaction cannot be stored: {exc}.", where, line)

    def _batch(
        self,
        txs: list[_Tx],
        entry_cents: int,
        currency: str,
        indicator: str | None,
        entry_ref: str | None,
        path: str,
        line: int | None,
    ) -> list[tuple[_Tx, int, str | None, str]] | None:
        """A batch entry: one transaction per TxDtls, amounts adding up to the entry's."""
        parts = []
        total = 0
        for number, tx in enumerate(txs, start=1):
            where = f"{path}/NtryDtls/TxDtls[{number}]"
            if tx.amount_text is None:
                self.error(
                    "A transaction of a batch entry has no amount in the entry's currency "
                    "(TxDtls/Amt or TxDtls/AmtDtls/TxAmt/Amt).",
                    f"{where}/Amt",
                    line,
                )
                return None
            if tx.currency != currency:
                self.error(
                    f"A transaction of a batch entry is in {tx.currency}, the entry in {currency}.",
                    f"{where}/Amt",
                    line,
                )
                return None
            amount = self._amount(tx.amount_text, currency, f"{where}/Amt", line)
            cents = self._signed(amount, tx.indicator or indicator, f"{where}/CdtDbtInd", line)
            if cents is None:
                return None
            total += cents
            own = _text(tx.account_servicer_ref)
            if own is None or own == entry_ref:
                own = f"{entry_ref}/{number}" if entry_ref is not None else None
            parts.append((tx, cents, own, where))
        if total != entry_cents:
            self.error(
                f"The transactions of this batch entry add up to {total / 100:.2f}, "
                f"the entry says {entry_cents / 100:.2f}.",
                f"{path}/Amt",
                line,
            )
            return None
        return parts

    def _tx(self, element: Any) -> _Tx:
        local = self.local
        tx = _Tx()
        for child in element:
            name = local.get(child.tag)
            if name is None:
                continue
            if name == "Refs":
                for ref in child:
                    kind = local.get(ref.tag)
                    if kind == "EndToEndId":
                        value = _text(ref.text)
                        tx.end_to_end_id = None if value == _NOT_PROVIDED else value
                    elif kind == "AcctSvcrRef":
                        tx.account_servicer_ref = ref.text
            elif name == "Amt":
                tx.amount_text, tx.currency = child.text, child.get("Ccy")
            elif name == "CdtDbtInd":
                tx.indicator = child.text
            elif name == "AmtDtls":
                if tx.amount_text is None:
                    for amount in child.iterfind(self.tx_amount_path):
                        tx.amount_text, tx.currency = amount.text, amount.get("Ccy")
            elif name == "BkTxCd":
                tx.bank_code = self._bank_code(child)
            elif name == "RltdPties":
                for party in child:
                    role = local.get(party.tag)
                    if role in ("Dbtr", "Cdtr"):
                        party_name = self._party_name(party)
                        if party_name:
                            tx.parties[role] = party_name
                    elif role in ("DbtrAcct", "CdtrAcct"):
                        for iban in party.iterfind(self.iban_path):
                            if iban.text and iban.text.strip():
                                tx.parties[role] = iban.text.strip()
            elif name == "RmtInf":
                for info in child:
                    kind = local.get(info.tag)
                    if kind == "Ustrd":
                        if info.text and info.text.strip():
                            tx.ustrd.append(info.text.strip())
                    elif kind == "Strd":
                        self._structured(info, tx)
            elif name == "AddtlTxInf":
                tx.additional_info = child.text
        return tx

    def _structured(self, element: Any, tx: _Tx) -> None:
        for part in element:
            kind = self.local.get(part.tag)
            if kind == "CdtrRefInf" and tx.structured_reference is None:
                for ref in part:
                    if self.local.get(ref.tag) == "Ref":
                        tx.structured_reference = _text(ref.text)
            elif kind == "RfrdDocInf":
                for number in part:
                    if self.local.get(number.tag) == "Nb" and _text(number.text):
                        tx.documents.append(str(_text(number.text)))

    def _party_name(self, element: Any) -> str | None:
        """``Nm`` of a party: directly (up to 001.07), under ``Pty`` (001.08 on), or the
        agent's ``FinInstnId/Nm`` when the party is a bank."""
        for child in element:
            name = self.local.get(child.tag)
            if name == "Nm":
                return _text(child.text)
            if name in ("Pty", "Agt", "FinInstnId"):
                found = self._party_name(child)
                if found:
                    return found
        return None

    def _bank_code(self, element: Any) -> str | None:
        """``PMNT/RCDT/ESCT`` (domain/family/sub-family), else the proprietary code."""
        domain = element.find(self.domain_tag)
        if domain is not None:
            codes = [_text(code.text) for code in domain.iter(*self.code_tags)]
            return "/".join(code for code in codes if code)[:40] or None
        for code in element.iterfind(self.proprietary_code_path):
            return (_text(code.text) or "")[:40] or None
        return None

    # values ---------------------------------------------------------------------------

    def _date_choice(self, element: Any, path: str, line: int | None) -> date | None:
        """``<Dt>2026-03-02</Dt>`` or ``<DtTm>2026-03-02T10:00:00+01:00</DtTm>``: the date as
        the bank wrote it (a date-time keeps its own calendar day)."""
        for child in element:
            name = self.local.get(child.tag)
            if name in ("Dt", "DtTm"):
                raw = (child.text or "").strip()
                try:
                    return check_date(date.fromisoformat(raw[:10]))
                except (ValueError, BankDataError):
                    self.error(
                        f"{raw!r} is not a date (YYYY-MM-DD) Escompte accepts.", f"{path}/{name}", line
                    )
                    return None
        self.error("The date is missing (Dt or DtTm).", f"{path}/Dt", line)
        return None

    def _amount(self, text: str | None, currency: str | None, path: str, line: int | None) -> int | None:
        if text is None:
            self.error("The amount is missing.", path, line)
            return None
        if currency is None:
            self.error("The amount has no currency (Ccy attribute).", f"{path}/@Ccy", line)
            return None
        try:
            check_currency(currency)
            return parse_amount(text, currency)
        except BankDataError as exc:
            self.error(f"The amount is invalid: {exc}.", path, line)
            return None

    def _signed(self, amount: int | None, indicator: str | None, path: str, line: int | None) -> int | None:
        if indicator is None:
            self.error("The credit/debit indicator is missing (CdtDbtInd).", path, line)
            return None
        indicator = indicator.strip()
        if indicator not in ("CRDT", "DBIT"):
            self.error(f"The credit/debit indicator is {indicator!r}, not CRDT or DBIT.", path, line)
            return None
        if amount is None:
            return None
        return amount if indicator == "CRDT" else -amount


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _guarded(events: Any) -> Iterator[tuple[str, Any]]:
    """The parser's events; a syntax error ends the file with its line."""
    try:
        yield from events
    except etree.XMLSyntaxError as exc:
        raise _Refused(f"The file is not well-formed XML: {exc.msg}.", line=_line(exc)) from None
