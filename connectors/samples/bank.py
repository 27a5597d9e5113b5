"""Bank statement writers for tests, benchmarks and the demo.

camt.053 (versions 001.02 to 001.08), OFX 1.x (SGML) and 2.x (XML), and bank CSV exports,
all written from the same small dataclasses. Amounts are signed integer cents: credits
positive, debits negative.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr

CAMT053_VERSIONS = ("001.02", "001.03", "001.04", "001.05", "001.06", "001.07", "001.08")


@dataclass(frozen=True)
class SampleTx:
    """One transaction of a batch entry (one ``TxDtls``)."""

    amount_cents: int  # signed, same sign as its entry
    counterparty_name: str | None = None
    counterparty_iban: str | None = None
    remittance: str | None = None
    structured_reference: str | None = None
    end_to_end_id: str | None = None
    account_servicer_ref: str | None = None


@dataclass(frozen=True)
class SampleEntry:
    """One statement line (a camt.053 ``Ntry``, an OFX ``STMTTRN``, a CSV row)."""

    booking_date: date
    amount_cents: int  # signed; for a batch entry, the sum of its parts
    value_date: date | None = None
    currency: str = "EUR"
    status: str = "BOOK"  # camt.053 only: BOOK, PDNG, INFO
    account_servicer_ref: str | None = None  # AcctSvcrRef / FITID / CSV reference
    entry_ref: str | None = None  # NtryRef
    bank_code: str | None = "PMNT/RCDT/ESCT"  # domain/family/sub-family
    counterparty_name: str | None = None
    counterparty_iban: str | None = None
    remittance: str | None = None
    structured_reference: str | None = None
    end_to_end_id: str | None = None
    additional_info: str | None = None  # AddtlNtryInf
    batch: tuple[SampleTx, ...] = ()


@dataclass(frozen=True)
class SampleBalance:
    kind: str  # CLBD, OPBD, ITBD, CLAV …
    balance_date: date
    amount_cents: int  # signed
    currency: str = "EUR"


@dataclass(frozen=True)
class SampleStatement:
    account_iban: str
    entries: Iterable[SampleEntry]  # iterated once: a generator keeps large files out of memory
    balances: Sequence[SampleBalance] = ()
    account_name: str | None = None
    currency: str = "EUR"
    bic: str | None = None
    statement_id: str = "STMT-0001"
    created_at: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 6, 0, tzinfo=UTC))


def decimal_text(amount_cents: int, separator: str = ".") -> str:
    """Unsigned amount with two decimals, e.g. 123456 → ``1234.56``."""
    units, cents = divmod(abs(amount_cents), 100)
    return f"{units}{separator}{cents:02d}"


def sample_iban(n: int, country: str = "FR") -> str:
    """A valid IBAN (mod-97 check digits right) numbered ``n``."""
    bban = f"30004{n % 100_000:05d}{n:011d}00" if country == "FR" else f"{n:018d}"
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def synthetic_entries(count: int, *, start: date = date(2026, 1, 2), seed: int = 7) -> Iterator[SampleEntry]:
    """Plausible statement lines: customer transfers in (with invoice numbers, some with
    RF creditor references), card and supplier payments out, a batch now and then."""
    rng = random.Random(seed)
    customers = [(f"CLIENT {i:03d} SAS", sample_iban(1000 + i)) for i in range(300)]
    suppliers = [(f"FOURNISSEUR {i:03d}", sample_iban(5000 + i)) for i in range(100)]
    for n in range(count):
        day = start + timedelta(days=n * 365 // max(count, 1))
        ref = f"ACSV{n:012d}"
        if n % 50 == 49:  # a batch of incoming transfers booked as one entry
            parts = tuple(
                SampleTx(
                    amount_cents=rng.randint(10_000, 900_000),
                    counterparty_name=customers[(n + k) % len(customers)][0],
                    counterparty_iban=customers[(n + k) % len(customers)][1],
                    remittance=f"FACTURE F-2026-{n:06d}-{k}",
                    end_to_end_id=f"E2E{n:010d}{k}",
                    account_servicer_ref=f"{ref}-{k}",
                )
                for k in range(3)
            )
            yield SampleEntry(
                booking_date=day,
                value_date=day,
                amount_cents=sum(p.amount_cents for p in parts),
                account_servicer_ref=ref,
                entry_ref=f"N{n}",
                batch=parts,
            )
        elif rng.random() < 0.6:
            name, iban = customers[rng.randrange(len(customers))]
            structured = rng.random() < 0.2
            yield SampleEntry(
                booking_date=day,
                value_date=day,
                amount_cents=rng.randint(1_000, 5_000_000),
                account_servicer_ref=ref,
                entry_ref=f"N{n}",
                counterparty_name=name,
                counterparty_iban=iban,
                remittance=f"VIR SEPA FACTURE F-2026-{n:06d}",
                structured_reference=f"RF18{n:08d}" if structured else None,
                end_to_end_id=f"E2E{n:010d}",
            )
        else:
            name, iban = suppliers[rng.randrange(len(suppliers))]
            yield SampleEntry(
                booking_date=day,
                value_date=day,
                amount_cents=-rng.randint(500, 2_000_000),
                account_servicer_ref=ref,
                entry_ref=f"N{n}",
                bank_code="PMNT/ICDT/ESCT",
                counterparty_name=name,
                counterparty_iban=iban,
                remittance=f"PRLV SEPA {name} ECH {day.isoformat()}",
            )


# --- camt.053 ---------------------------------------------------------------------------


def _t(tag: str, value: str | None) -> str:
    return "" if value is None else f"<{tag}>{escape(value)}</{tag}>"


def _bank_code(code: str | None) -> str:
    if not code:
        return ""
    parts = code.split("/")
    if len(parts) != 3:
        return f"<BkTxCd><Prtry><Cd>{escape(code)}</Cd></Prtry></BkTxCd>"
    domain, family, sub = parts
    return (
        f"<BkTxCd><Domn><Cd>{escape(domain)}</Cd><Fmly><Cd>{escape(family)}</Cd>"
        f"<SubFmlyCd>{escape(sub)}</SubFmlyCd></Fmly></Domn></BkTxCd>"
    )


def _party(role: str, name: str | None, iban: str | None, minor: int) -> str:
    out = ""
    if name is not None:
        inner = f"<Nm>{escape(name)}</Nm>"
        out += f"<{role}><Pty>{inner}</Pty></{role}>" if minor >= 8 else f"<{role}>{inner}</{role}>"
    if iban is not None:
        out += f"<{role}Acct><Id><IBAN>{escape(iban)}</IBAN></Id></{role}Acct>"
    return out


def _tx_details(
    tx: SampleTx, currency: str, credit: bool, minor: int, own_name: str | None, batch: bool
) -> str:
    amount = f"<Amt Ccy={quoteattr(currency)}>{decimal_text(tx.amount_cents)}</Amt>"
    refs = _t("AcctSvcrRef", tx.account_servicer_ref) + _t("EndToEndId", tx.end_to_end_id or "NOTPROVIDED")
    parts = [f"<TxDtls><Refs>{refs}</Refs>"]
    if minor >= 4 and batch:
        parts.append(amount + f"<CdtDbtInd>{'CRDT' if credit else 'DBIT'}</CdtDbtInd>")
    if batch:
        parts.append(f"<AmtDtls><TxAmt>{amount}</TxAmt></AmtDtls>")
    if tx.counterparty_name is not None or tx.counterparty_iban is not None:
        if credit:
            own = _party("Cdtr", own_name, None, minor)
            parties = _party("Dbtr", tx.counterparty_name, tx.counterparty_iban, minor) + own
        else:
            parties = _party("Dbtr", own_name, None, minor) + _party(
                "Cdtr", tx.counterparty_name, tx.counterparty_iban, minor
            )
        parts.append(f"<RltdPties>{parties}</RltdPties>")
    if tx.remittance is not None or tx.structured_reference is not None:
        rmt = _t("Ustrd", tx.remittance)
        if tx.structured_reference is not None:
            rmt += (
                "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
                f"<Ref>{escape(tx.structured_reference)}</Ref></CdtrRefInf></Strd>"
            )
        parts.append(f"<RmtInf>{rmt}</RmtInf>")
    parts.append("</TxDtls>")
    return "".join(parts)


def _entry(e: SampleEntry, minor: int, own_name: str | None) -> str:
    credit = e.amount_cents > 0
    status = f"<Sts><Cd>{e.status}</Cd></Sts>" if minor >= 7 else f"<Sts>{e.status}</Sts>"
    head = (
        f"<Ntry>{_t('NtryRef', e.entry_ref)}"
        f"<Amt Ccy={quoteattr(e.currency)}>{decimal_text(e.amount_cents)}</Amt>"
        f"<CdtDbtInd>{'CRDT' if credit else 'DBIT'}</CdtDbtInd>{status}"
        f"<BookgDt><Dt>{e.booking_date.isoformat()}</Dt></BookgDt>"
        + (f"<ValDt><Dt>{e.value_date.isoformat()}</Dt></ValDt>" if e.value_date else "")
        + _t("AcctSvcrRef", e.account_servicer_ref)
        + _bank_code(e.bank_code)
    )
    if e.batch:
        details = f"<Btch><NbOfTxs>{len(e.batch)}</NbOfTxs></Btch>" + "".join(
            _tx_details(tx, e.currency, credit, minor, own_name, batch=True) for tx in e.batch
        )
    else:
        single = SampleTx(
            amount_cents=e.amount_cents,
            counterparty_name=e.counterparty_name,
            counterparty_iban=e.counterparty_iban,
            remittance=e.remittance,
            structured_reference=e.structured_reference,
            end_to_end_id=e.end_to_end_id,
        )
        details = _tx_details(single, e.currency, credit, minor, own_name, batch=False)
    return f"{head}<NtryDtls>{details}</NtryDtls>{_t('AddtlNtryInf', e.additional_info)}</Ntry>\n"


def _balance(b: SampleBalance) -> str:
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{escape(b.kind)}</Cd></CdOrPrtry></Tp>"
        f"<Amt Ccy={quoteattr(b.currency)}>{decimal_text(b.amount_cents)}</Amt>"
        f"<CdtDbtInd>{'DBIT' if b.amount_cents < 0 else 'CRDT'}</CdtDbtInd>"
        f"<Dt><Dt>{b.balance_date.isoformat()}</Dt></Dt></Bal>\n"
    )


def camt053_chunks(statements: Iterable[SampleStatement], version: str = "001.02") -> Iterator[bytes]:
    """A camt.053 document in pieces (for files too large to build in memory at once)."""
    if version not in CAMT053_VERSIONS:
        raise ValueError(f"camt.053 version must be one of {', '.join(CAMT053_VERSIONS)}")
    minor = int(version.rsplit(".", 1)[1])
    bic_tag = "BIC" if minor < 4 else "BICFI"
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.{version}">\n'
        "<BkToCstmrStmt><GrpHdr><MsgId>ESCOMPTE-SAMPLE</MsgId>"
        "<CreDtTm>2026-03-01T06:00:00</CreDtTm></GrpHdr>\n"
    ).encode()
    for st in statements:
        account = (
            f"<Acct><Id><IBAN>{escape(st.account_iban)}</IBAN></Id><Ccy>{escape(st.currency)}</Ccy>"
            + _t("Nm", st.account_name)
            + (
                f"<Svcr><FinInstnId><{bic_tag}>{escape(st.bic)}</{bic_tag}></FinInstnId></Svcr>"
                if st.bic
                else ""
            )
            + "</Acct>\n"
        )
        created = st.created_at.strftime("%Y-%m-%dT%H:%M:%S")
        yield (
            f"<Stmt><Id>{escape(st.statement_id)}</Id><CreDtTm>{created}</CreDtTm>{account}"
            + "".join(_balance(b) for b in st.balances)
        ).encode()
        batch: list[str] = []
        for entry in st.entries:
            batch.append(_entry(entry, minor, st.account_name))
            if len(batch) == 1000:
                yield "".join(batch).encode()
                batch.clear()
        yield ("".join(batch) + "</Stmt>\n").encode()
    yield b"</BkToCstmrStmt>\n</Document>\n"


def camt053_xml(
    account_iban: str,
    entries: Sequence[SampleEntry],
    balances: Sequence[SampleBalance] = (),
    version: str = "001.02",
    *,
    account_name: str | None = None,
    currency: str = "EUR",
    bic: str | None = None,
    statement_id: str = "STMT-0001",
) -> bytes:
    """A camt.053 document with one statement of one account."""
    statement = SampleStatement(
        account_iban=account_iban,
        entries=entries,
        balances=balances,
        account_name=account_name,
        currency=currency,
        bic=bic,
        statement_id=statement_id,
    )
    return b"".join(camt053_chunks([statement], version))


# --- OFX --------------------------------------------------------------------------------

_OFX1_HEADER = (
    "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\n"
    "CHARSET:1252\r\nCOMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n"
)
_OFX2_HEADER = (
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)


def _ofx_trntype(entry: SampleEntry) -> str:
    return "CREDIT" if entry.amount_cents > 0 else "DEBIT"


def ofx(
    entries: Sequence[SampleEntry],
    *,
    bank_id: str = "30004",
    branch_id: str = "00001",
    account_id: str = "12345678901",
    ledger_balance: SampleBalance | None = None,
    currency: str = "EUR",
    version: int = 102,
) -> bytes:
    """An OFX bank statement: SGML (version 102) or XML (version 220). The ledger balance
    defaults to the sum of the lines at the last booking date.

    French banks fill BANKID (code banque), BRANCHID (code guichet) and ACCTID (numéro de
    compte); the IBAN follows from them and the RIB key.
    """
    xml = version >= 200

    def el(tag: str, value: str) -> str:
        value = escape(value)
        return f"<{tag}>{value}</{tag}>" if xml else f"<{tag}>{value}"

    start = min((e.booking_date for e in entries), default=date(2026, 3, 1))
    end = max((e.booking_date for e in entries), default=date(2026, 3, 1))
    lines = []
    for e in entries:
        memo = e.remittance
        line = (
            "<STMTTRN>"
            + el("TRNTYPE", _ofx_trntype(e))
            + el("DTPOSTED", e.booking_date.strftime("%Y%m%d"))
            + (el("DTUSER", e.value_date.strftime("%Y%m%d")) if e.value_date else "")
            + el("TRNAMT", ("-" if e.amount_cents < 0 else "") + decimal_text(e.amount_cents))
            + el("FITID", e.account_servicer_ref or "")
            + (el("NAME", e.counterparty_name[:32]) if e.counterparty_name else "")
            + (el("MEMO", memo) if memo else "")
            + "</STMTTRN>\n"
        )
        lines.append(line)
    if ledger_balance is None:  # LEDGERBAL is required: the sum of the lines, at the last date
        ledger_balance = SampleBalance("CLBD", end, sum(e.amount_cents for e in entries), currency)
    ledger = ""
    if ledger_balance is not None:
        sign = "-" if ledger_balance.amount_cents < 0 else ""
        ledger = (
            "<LEDGERBAL>"
            + el("BALAMT", sign + decimal_text(ledger_balance.amount_cents))
            + el("DTASOF", ledger_balance.balance_date.strftime("%Y%m%d"))
            + "</LEDGERBAL>\n"
        )
    body = (
        "<OFX>\n<SIGNONMSGSRSV1><SONRS><STATUS>"
        + el("CODE", "0")
        + el("SEVERITY", "INFO")
        + "</STATUS>"
        + el("DTSERVER", "20260301060000")
        + el("LANGUAGE", "FRA")
        + "</SONRS></SIGNONMSGSRSV1>\n<BANKMSGSRSV1><STMTTRNRS>"
        + el("TRNUID", "1")
        + "<STATUS>"
        + el("CODE", "0")
        + el("SEVERITY", "INFO")
        + "</STATUS>\n<STMTRS>"
        + el("CURDEF", currency)
        + "<BANKACCTFROM>"
        + el("BANKID", bank_id)
        + el("BRANCHID", branch_id)
        + el("ACCTID", account_id)
        + el("ACCTTYPE", "CHECKING")
        + "</BANKACCTFROM>\n<BANKTRANLIST>"
        + el("DTSTART", start.strftime("%Y%m%d"))
        + el("DTEND", end.strftime("%Y%m%d"))
        + "\n"
        + "".join(lines)
        + "</BANKTRANLIST>\n"
        + ledger
        + "</STMTRS></STMTTRNRS></BANKMSGSRSV1>\n</OFX>\n"
    )
    header = _OFX2_HEADER if xml else _OFX1_HEADER
    return (header + body).encode("utf-8" if xml else "cp1252")


# --- CSV --------------------------------------------------------------------------------

CSV_COLUMNS = {
    "booking_date": "Date",
    "value_date": "Date de valeur",
    "label": "Libellé",
    "counterparty_name": "Contrepartie",
    "counterparty_iban": "IBAN contrepartie",
    "reference": "Référence",
}


def bank_csv_options(iban: str, *, split_debit_credit: bool = False) -> dict[str, Any]:
    """The import options (column mapping …) matching what ``bank_csv`` writes."""
    mapping = dict(CSV_COLUMNS)
    if split_debit_credit:
        mapping |= {"debit": "Débit", "credit": "Crédit"}
    else:
        mapping["amount"] = "Montant"
    return {
        "mapping": mapping,
        "iban": iban,
        "date_format": "%d/%m/%Y",
        "decimal": ",",
        "delimiter": ";",
        "encoding": "utf-8",
    }


def bank_csv(entries: Sequence[SampleEntry], *, split_debit_credit: bool = False) -> bytes:
    """A French-style bank CSV export: ``;``-separated, decimal comma, dd/mm/yyyy dates."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    amount_columns = ["Débit", "Crédit"] if split_debit_credit else ["Montant"]
    writer.writerow([*CSV_COLUMNS.values(), *amount_columns])
    for e in entries:
        amount = decimal_text(e.amount_cents, ",")
        if split_debit_credit:
            amounts = ["", amount] if e.amount_cents > 0 else [amount, ""]
        else:
            amounts = [("-" if e.amount_cents < 0 else "") + amount]
        writer.writerow(
            [
                e.booking_date.strftime("%d/%m/%Y"),
                e.value_date.strftime("%d/%m/%Y") if e.value_date else "",
                e.remittance or "",
                e.counterparty_name or "",
                e.counterparty_iban or "",
                e.account_servicer_ref or "",
                *amounts,
            ]
        )
    return out.getvalue().encode("utf-8")
