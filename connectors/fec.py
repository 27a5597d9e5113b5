"""FEC import: an SME's books (Fichier des Écritures Comptables, art. A47 A-1 LPF) into
``book_lines``, and the receivables, payables and payments they show.

The file
    18 columns, header checked (names and order; the legal variant with ``Montant`` and
    ``Sens`` (D/C) in place of ``Debit``/``Credit`` too), tab or pipe separated (told by
    the header line), decimal comma or dot, dates ``YYYYMMDD``, UTF-8 with or without BOM,
    else Windows-1252 (when it uses bytes 0x80-0x9F) or ISO-8859-15.

All or nothing
    Every line is checked (column count, dates, amounts, required fields, lengths) and
    every entry (EcritureNum within a JournalCode) must balance; all errors are reported
    with their line numbers and nothing is kept when there is one.

Speed and memory
    The file is streamed: read by blocks while the connection is idle (the stream may
    itself read from the database), each block's lines parsed into COPY data (CSV with
    the file's own separator, so a line goes out as its own fields) and sent while the
    next lines are parsed; amounts become integer cents with string operations and
    PostgreSQL reads the dates. Memory stays bounded whatever the file size (the 411/401
    lines kept aside for deriving spill to a temporary file past ``SPOOL_BYTES``).

Lines
    The first FEC of a company is copied straight into ``book_lines``. Later ones go
    through a temporary table: a line already known (same journal, entry number and
    position in its entry) with the same facts is unchanged; its lettering, validation
    date or labels may have moved on (updated); other facts changed is an error: books
    are never rewritten silently. One FEC at a time per company (a transaction-level
    advisory lock): the second waits.

Fiscal year
    A line's key also holds its fiscal year (closing date), as most software numbers
    entries from 1 again each year: the import's option ``fiscal_year_end``
    (``YYYY-MM-DD``), else the closing date of the legal file name
    (``<SIREN>FEC<YYYYMMDD>``, art. A47 A-1), else the 31 December of the year of the
    file's first line. Exports of the same year (a FEC to date each month, then the
    closed year) thus match line for line; the next year's entry 1 is another line.

What is derived (set-based SQL, same rules as ``connectors.invoices``)
    - Receivables: the 411* lines of entries with sales (7*, 4457*): one document per
      counterparty (CompAuxNum, else CompteNum) and PieceRef; its amount incl. VAT is the
      net 411 debit of the piece (a net credit is a credit note). Payables likewise from
      401* lines of entries with purchases (6*, 4456*), the net 401 credit. Issue date:
      PieceDate. A FEC has no due date: issue date + the counterparty's payment terms
      (``DEFAULT_PAYMENT_TERMS_DAYS`` for a new one), marked estimated.
    - Counterparties: one debtor per auxiliary account, named after CompAuxLib.
    - Payments: the 411/401 lines of entries touching a treasury account (5*) and no
      sales/purchase account are money received (paid); they are never invoices. Each
      lettering code of an account whose money lines meet invoices gives one payment
      (``source_ref = "<account>:<code>"``, paid on the last money line's date),
      allocated to the code's invoices oldest first — this file's, or known ones whose
      number is lettered here (opening entries) — so a partially lettered group leaves an
      invoice partially paid. A credit note lettered with an invoice is no money: it
      does not pay it. New invoices are inserted with what they are paid (the status
      rule of ``connectors.payments``); known ones are refreshed by ``refresh_invoices``.
    - A known invoice with other facts, or a known lettering payment with another
      amount, is an error, never an overwrite.
"""

from __future__ import annotations

import codecs
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

import psycopg
from psycopg.copy import LibpqWriter
from sqlalchemy import text
from sqlalchemy.orm import Session

from escompte.connectors.base import MAX_ERRORS_KEPT, ImportContext, ImportOutcome, IssueCollector
from escompte.connectors.invoices import DEFAULT_PAYMENT_TERMS_DAYS
from escompte.connectors.payments import refresh_invoices
from escompte.errors import invariant
from escompte.ids import ALPHABET as ID_ALPHABET
from escompte.models import Company

HEADER = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
)
HEADER_MONTANT_SENS = (*HEADER[:11], "Montant", "Sens", *HEADER[13:])
COLUMN_COUNT = len(HEADER)

BLOCK_BYTES = 8 * 1024 * 1024  # read while no COPY runs (the stream may use the connection)
SLICE_LINES = 512  # ~64 KB of a FEC: parse, send to COPY, report progress
COPY_QUEUE_BYTES = 4 * 1024 * 1024  # COPY data queued in libpq before waiting for the server
SPOOL_BYTES = 16 * 1024 * 1024  # counterparty lines kept in memory before spilling to disk
DATES_MAX = 100_000  # distinct valid dates remembered
AMOUNT_DIGITS_MAX = 15  # units: 10^15 euros fits a bigint of cents with room
YEAR_MIN, YEAR_MAX = 1900, 2199
CURRENCY = "EUR"  # FEC amounts are in the books' currency, the euro; Montantdevise is kept aside

# Longest value per column (the book_lines columns): identifiers longer are errors,
# labels are cut.
LIMITS = {
    "JournalCode": 20,
    "EcritureNum": 40,
    "CompteNum": 40,
    "CompAuxNum": 40,
    "PieceRef": 64,
    "EcritureLet": 20,
    "Idevise": 3,
}
LABEL_MAX = 200
_LONG_LINE = LABEL_MAX + COLUMN_COUNT - 1  # a shorter line cannot hold a label too long
REQUIRED = ("JournalCode", "EcritureNum", "EcritureDate", "CompteNum", "PieceRef", "PieceDate")

# Account classes, from the first characters of CompteNum (bits of an entry's flags).
SALES, PURCHASES, TREASURY, RECEIVABLE, PAYABLE, _VAT = 1, 2, 4, 8, 16, 32
_CLASS3: dict[str, int] = {
    **{f"5{i:02d}": TREASURY for i in range(100)},
    **{f"6{i:02d}": PURCHASES for i in range(100)},
    **{f"7{i:02d}": SALES for i in range(100)},
    "411": RECEIVABLE,
    "401": PAYABLE,
    "445": _VAT,
}
_CLASS4 = {"4457": SALES, "4456": PURCHASES}

_C1 = re.compile(rb"[\x80-\x9f]")

BOOK_COLUMNS = (
    "journal_code, journal_lib, entry_num, entry_date, account_num, account_lib, aux_account_num, "
    "aux_account_lib, piece_ref, piece_date, label, debit_cents, credit_cents, lettering, "
    "lettering_date, validation_date, currency_amount_cents, currency, line_no"
)
TIERS_COLUMNS = (
    "src_line, side, journal_code, entry_num, aux, aux_lib, piece_ref, piece_date, entry_date, "
    "debit_cents, credit_cents, lettering, flags"
)


def import_fec(ctx: ImportContext) -> ImportOutcome:
    """Import a FEC for ``ctx.company``: all its lines, then what they show."""
    company = ctx.company
    invariant(company is not None, "a FEC is one company's books")
    assert company is not None
    session = ctx.session
    # One FEC at a time per company: lines and documents are matched against known ones.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fec:' || :c))"), {"c": company.id})
    first = session.execute(
        text("SELECT NOT EXISTS (SELECT 1 FROM book_lines WHERE company_id = :c)"), {"c": company.id}
    ).scalar_one()
    encoding = "utf-8"
    kept = (list(ctx.issues.issues), ctx.issues.total)
    while True:
        try:
            with session.begin_nested():
                return _import(ctx, company, encoding, direct=bool(first))
        except _WrongEncoding as wrong:  # found late in the file: start again, nothing kept
            invariant(wrong.encoding != encoding, "each encoding is tried once")
            encoding = wrong.encoding
            ctx.issues.issues[:], ctx.issues.total = kept


# --- reading ------------------------------------------------------------------------------------


class _WrongEncoding(Exception):
    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


class _Decoder:
    """Bytes to text in the file's encoding; UTF-8 (BOM or not) unless proven otherwise.

    Bytes that are not UTF-8 mean a single-byte encoding: Windows-1252 if bytes 0x80-0x9F
    appear (control characters in ISO-8859-15), else ISO-8859-15 (€ at 0xA4, œ at 0xBD).
    """

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._decoder: codecs.IncrementalDecoder
        if encoding == "utf-8":
            self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        else:  # undefined cp1252 bytes become U+FFFD, reported on their line
            self._decoder = codecs.getincrementaldecoder(encoding)("replace")

    def decode(self, data: bytes, final: bool = False) -> str:
        try:
            decoded: str = self._decoder.decode(data, final)
        except UnicodeDecodeError:
            raise _WrongEncoding("cp1252" if _C1.search(data) else "iso8859-15") from None
        if self.encoding == "iso8859-15" and _C1.search(data):
            raise _WrongEncoding("cp1252")
        return decoded


# --- parsing ------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """The entry being read (lines of an entry normally follow each other)."""

    journal: str = ""
    num: str = ""
    count: int = 0  # lines so far
    debit: int = 0
    credit: int = 0
    flags: int = 0
    first_line: int = 0
    pending: list[str] = field(default_factory=list)  # its 411/401 lines, flags to come


@dataclass
class _Parsed:
    lines: int = 0
    entries: int = 0


class _Parser:
    """FEC lines → COPY data (CSV flavour, the file's own separator) for the book lines,
    and the 411/401 lines on the side.

    COPY reads CSV with a quote character that no FEC holds (``QUOTE``), empty fields as
    NULL (labels excepted), so a valid line goes out as its own fields, amounts turned
    into cents and its position in the entry appended. ``feed`` takes whole lines; the
    common line takes a short path, anything unusual goes through ``_checked``, which
    validates every field and explains errors. Both give the same output.
    """

    def __init__(
        self,
        issues: IssueCollector,
        *,
        staging: bool,
        constants: Sequence[str],
        fiscal_year_end: date | None,
        fallback_year: int,
    ) -> None:
        self.issues = issues
        self.staging = staging  # output carries the file line number (temp table)
        # values appended to each line: the fiscal year's closing date (direct load only),
        # company and import; set by ``settle_fiscal_year`` before the first line
        self._constants = tuple(constants)
        self.constants: tuple[str, ...] = ()
        self.fiscal_year_end = fiscal_year_end
        self.fallback_year = fallback_year
        self.sep = "\t"
        self.decimal = ","
        self.montant_sens = False
        self.trailing_sep = False
        self.header_done = False
        self.line_no = 0
        self.dates: set[str] = set()
        self.entry = _Entry()
        self.closed: dict[str, int] = {}  # entry key → line count << 6 | flags
        self.unbalanced: dict[str, tuple[int, int, int]] = {}  # key → (debit, credit, first line)
        self.broken: set[str] = set()  # entries with an invalid line (balance not judged)
        self.reopened: set[str] = set()
        self.tiers: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by close())
            max_size=SPOOL_BYTES, mode="w+", encoding="utf-8", newline="\n"
        )
        self.stats = _Parsed()

    def close(self) -> None:
        self.tiers.close()

    def header(self, line: str) -> bool:
        self.header_done = True
        self.line_no += 1
        line = line.rstrip("\r").removeprefix("\ufeff").removeprefix("ï»¿")  # a BOM, read as UTF-8 or not
        if line.startswith(("ÿþ", "þÿ")):  # a UTF-16 BOM, read as Windows-1252
            self.issues.add("the file is in UTF-16: export the FEC in UTF-8 or ISO-8859-15", line=1)
            return False
        self.sep = "\t" if line.count("\t") >= line.count("|") else "|"
        names = [n.strip() for n in line.split(self.sep)]
        if len(names) == COLUMN_COUNT + 1 and names[-1] == "":
            names.pop()
            self.trailing_sep = True
        expected = HEADER
        if [n.lower() for n in names[11:13]] == ["montant", "sens"]:
            expected, self.montant_sens = HEADER_MONTANT_SENS, True
        if len(names) != COLUMN_COUNT:
            self.issues.add(
                f"header: {len(names)} column(s) found, a FEC has {COLUMN_COUNT} separated by tabs or "
                f"'|': {' '.join(HEADER)}",
                line=1,
            )
            return False
        wrong = [
            (i, found, wanted)
            for i, (found, wanted) in enumerate(zip(names, expected, strict=True), start=1)
            if found.lower() != wanted.lower()
        ]
        for i, found, wanted in wrong:
            self.issues.add(
                f"header: column {i} is '{found[:40]}', expected '{wanted}'", line=1, field=wanted
            )
        return not wrong

    def settle_fiscal_year(self, first_line: str) -> date:
        """The fiscal year of the file's lines (see the module's docstring), once the header
        is read: told, else the 31 December of the first line's EcritureDate (a line
        whose date is invalid is reported anyway)."""
        if self.fiscal_year_end is None:
            fields = first_line.split(self.sep)
            year = self.fallback_year
            if len(fields) > 3 and (day := _date(fields[3].strip())) is not None:
                year = day.year
            self.fiscal_year_end = date(year, 12, 31)
        if not self.staging:
            self.constants = (self.fiscal_year_end.isoformat(), *self._constants)
        return self.fiscal_year_end

    def feed(self, lines: Sequence[str], clean: bool) -> str:  # noqa: PLR0915 (one loop, inlined for speed)
        """COPY data for ``lines`` (whole lines, in file order). ``clean``: no character of
        the slice needs a closer look (see ``_dirty``); else each line is looked at."""
        out: list[str] = []
        append = out.append
        sep = self.sep
        dec = self.decimal
        dates = self.dates
        staging = self.staging
        constants = self.constants
        class3 = _CLASS3
        positions = _POSITIONS
        n = self.line_no
        e = self.entry
        jc_cur, en_cur = e.journal, e.num
        count, deb, cred, flags = e.count, e.debit, e.credit, e.flags
        pending_add = e.pending.append
        short = clean and not self.montant_sens
        look = not clean and not self.montant_sens  # a dirty slice: look at each line
        for line in lines:
            n += 1
            f = line.split(sep)
            jc, jl, en, ed, cn, cl, an, al, pr, pd, el, de, cr, lt, dl, vd, md, dv = (
                f if (short or (look and not _dirty(line))) and len(f) == COLUMN_COUNT else _ODD
            )
            if de in {"0,00", "0.00"}:
                d, ds = 0, "0"
            elif de[-3:-2] == dec and (ds := de[:-3] + de[-2:]).isdigit() and ds.isascii():
                d = int(ds)
            else:
                d, ds = -1, ""
            if cr in {"0,00", "0.00"}:
                c, cs = 0, "0"
            elif cr[-3:-2] == dec and (cs := cr[:-3] + cr[-2:]).isdigit() and cs.isascii():
                c = int(cs)
            else:
                c, cs = -1, ""
            if not md:
                ms = ""
            elif md in {"0,00", "0.00"}:
                ms = "0"
            elif not (md[-3:-2] == dec and (ms := md[:-3] + md[-2:]).isdigit() and ms.isascii()):
                ms = "?"
            if (
                d < 0
                or c < 0
                or ms == "?"
                or ed not in dates
                or pd not in dates
                or (dl and dl not in dates)
                or (vd and vd not in dates)
                or not (jc and en and cn and pr)
                or len(jc) > 20
                or len(en) > 40
                or len(cn) > 40
                or len(an) > 40
                or len(pr) > 64
                or len(lt) > 20
                or len(dv) > 3
                or (len(line) > _LONG_LINE and max(len(jl), len(cl), len(al), len(el)) > LABEL_MAX)
            ):
                checked = self._checked(line, n, clean)
                if checked is None:
                    continue
                f, d, c = checked
                jc, jl, en, ed, cn, cl, an, al, pr, pd, el, ds, cs, lt, dl, vd, md, dv = f
                dec = self.decimal
            else:
                f[11] = ds
                f[12] = cs
                f[16] = ms
            if en != en_cur or jc != jc_cur:
                e.count, e.debit, e.credit, e.flags = count, deb, cred, flags
                self._close_entry()
                e = self.entry = self._open_entry(jc, en, n)
                jc_cur, en_cur = jc, en
                count, deb, cred, flags = e.count, e.debit, e.credit, e.flags
                pending_add = e.pending.append
            count += 1
            deb += d
            cred += c
            k = class3.get(cn[:3])
            if k is not None:
                if k == _VAT:
                    k = _CLASS4.get(cn[:4], 0)
                flags |= k
                if k >= RECEIVABLE:
                    pending_add(
                        sep.join(
                            (
                                str(n),
                                "R" if k == RECEIVABLE else "P",
                                jc,
                                en,
                                an or cn,
                                al or cl,
                                pr,
                                pd,
                                ed,
                                str(d),
                                str(c),
                                lt,
                                "",
                            )
                        )
                    )
            f.append(positions[count] if count < _POSITION_MAX else str(count))
            if staging:
                f.append(str(n))
            else:
                f.extend(constants)
            append(sep.join(f))
        self.line_no = n
        e.count, e.debit, e.credit, e.flags = count, deb, cred, flags
        self.stats.lines += len(out)
        if not out:
            return ""
        out.append("")
        return "\n".join(out)

    def finish(self) -> None:
        """End of file: close the last entry, report the unbalanced ones."""
        self._close_entry()
        self.entry = _Entry()
        for key, (debit, credit, first_line) in self.unbalanced.items():
            if key in self.broken:
                continue
            journal, _, num = key.partition("\x00")
            self.issues.add(
                f"entry {num} of journal {journal} is not balanced: debit {_euros(debit)}, "
                f"credit {_euros(credit)} (difference {_euros(debit - credit)})",
                line=first_line,
                field="EcritureNum",
            )
        # Lines of these entries were not together: their flags are complete only now.
        sep = self.sep
        for key in self.reopened:
            journal, _, num = key.partition("\x00")
            flags = str(self.closed.get(key, 0) & 63)
            self.tiers.write(
                sep.join(("", "F", journal, num, "", "", "", "", "", "0", "0", "", flags)) + "\n"
            )

    def _open_entry(self, journal: str, num: str, line: int) -> _Entry:
        key = f"{journal}\x00{num}"
        packed = self.closed.pop(key, None)
        if packed is None:
            self.stats.entries += 1
            return _Entry(journal, num, 0, 0, 0, 0, line, [])
        self.reopened.add(key)
        debit, credit, first_line = self.unbalanced.pop(key, (0, 0, line))
        return _Entry(journal, num, packed >> 6, debit, credit, packed & 63, first_line, [])

    def _close_entry(self) -> None:
        e = self.entry
        if not e.count:
            return
        key = f"{e.journal}\x00{e.num}"
        self.closed[key] = e.count << 6 | e.flags
        if e.debit != e.credit:
            self.unbalanced[key] = (e.debit, e.credit, e.first_line)
        if e.pending:
            flags = str(e.flags)
            self.tiers.write("".join(f"{p}{flags}\n" for p in e.pending))

    def _checked(self, line: str, n: int, clean: bool) -> tuple[list[str], int, int] | None:
        """Every check on one line, with its errors: (output fields, debit, credit) or None."""
        issues = self.issues
        before = issues.total
        f = line.split(self.sep)
        if not line.strip(" \t|\r\x1a"):
            return None  # a blank line
        if len(f) == COLUMN_COUNT + 1 and self.trailing_sep and f[-1] == "":
            f.pop()
        if len(f) != COLUMN_COUNT:
            issues.add(f"{len(f)} column(s), expected {COLUMN_COUNT}", line=n)
            if len(f) >= 3:
                self.broken.add(f"{f[0]}\x00{f[2]}")
            return None
        values = dict(zip(HEADER, f, strict=True))
        if not clean:
            for name, value in values.items():
                if "\ufffd" in value:
                    issues.add(f"{name}: bytes that are neither UTF-8 nor Windows-1252", line=n, field=name)
                elif "\x00" in value or _QUOTE in value:
                    issues.add(
                        f"{name}: control characters (NUL, SOH) have no place in a FEC", line=n, field=name
                    )
        for name in REQUIRED:
            if not values[name].strip():
                issues.add(f"{name} is required", line=n, field=name)
        for name, limit in LIMITS.items():
            if len(values[name]) > limit:
                issues.add(
                    f"{name} '{values[name][:80]}' is longer than {limit} characters", line=n, field=name
                )
        for name in LABELS:
            values[name] = values[name][:LABEL_MAX]
        for name in ("EcritureDate", "PieceDate", "DateLet", "ValidDate"):
            value = values[name]
            if value and not self._date_ok(value):
                issues.add(f"{name} '{value[:20]}' is not a date YYYYMMDD", line=n, field=name)
        debit, credit, currency_amount = self._amounts(values, n)
        if issues.total != before or debit is None or credit is None:
            self.broken.add(f"{_csv(values['JournalCode'])}\x00{_csv(values['EcritureNum'])}")
            return None
        out = [_csv(values[name]) for name in HEADER]
        out[11], out[12], out[16] = str(debit), str(credit), currency_amount
        return out, debit, credit

    def _amounts(self, values: dict[str, str], n: int) -> tuple[int | None, int | None, str]:
        """Debit and credit in cents (None when invalid) and Montantdevise as COPY text."""
        issues = self.issues
        debit: int | None = 0
        credit: int | None = 0
        if self.montant_sens:  # Montant and Sens sit where Debit and Credit are
            amount = self._amount(values["Debit"])
            sens = values["Credit"].strip().upper()
            if amount is None:
                issues.add(f"Montant '{values['Debit'][:30]}' is not an amount", line=n, field="Montant")
            if sens not in ("D", "C"):
                issues.add(f"Sens '{values['Credit'][:10]}' is neither D nor C", line=n, field="Sens")
            debit, credit = (amount, 0) if sens == "D" else (0, amount)
        else:
            debit = self._amount(values["Debit"])
            credit = self._amount(values["Credit"])
            for name, parsed in (("Debit", debit), ("Credit", credit)):
                if parsed is None:
                    issues.add(f"{name} '{values[name][:30]}' is not an amount", line=n, field=name)
        currency_amount = ""
        if values["Montantdevise"].strip():
            parsed = self._amount(values["Montantdevise"])
            if parsed is None:
                issues.add(
                    f"Montantdevise '{values['Montantdevise'][:30]}' is not an amount",
                    line=n,
                    field="Montantdevise",
                )
            else:
                currency_amount = str(parsed)
        return debit, credit, currency_amount

    def _date_ok(self, value: str) -> bool:
        if value in self.dates:
            return True
        if _date(value) is None:
            return False
        if len(self.dates) < DATES_MAX:
            self.dates.add(value)
        return True

    def _amount(self, value: str) -> int | None:
        cents = _cents(value)
        if cents is not None and self.decimal not in value and ("," in value or "." in value):
            self.decimal = "." if "." in value else ","  # the file's habit: lets the short path read it
        return cents


# Stands for a line that is not 18 fields or needs a closer look: fails the short path.
_ODD = ("",) * COLUMN_COUNT
_POSITION_MAX = 1000
_POSITIONS = [str(i) for i in range(_POSITION_MAX)]
_QUOTE = "\x01"  # COPY's CSV quote character: never in a FEC (checked)
LABELS = ("JournalLib", "CompteLib", "CompAuxLib", "EcritureLib")


def _date(value: str) -> date | None:
    """``YYYYMMDD`` → a date (years YEAR_MIN … YEAR_MAX); None if not one."""
    if len(value) != 8 or not value.isdigit() or not value.isascii():
        return None
    try:
        day = date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None
    return day if YEAR_MIN <= day.year <= YEAR_MAX else None


_LEGAL_NAME = re.compile(r"\d{9}FEC(\d{8})", re.IGNORECASE)


def fiscal_year_end(ctx: ImportContext) -> date | None:
    """The closing date of the FEC's fiscal year when told: the import's option
    ``fiscal_year_end`` (``YYYY-MM-DD``, an error otherwise), else the legal file name
    ``<SIREN>FEC<YYYYMMDD>``; None leaves it to the file's first line."""
    told = ctx.options.get("fiscal_year_end")
    if told is not None:
        try:
            day = date.fromisoformat(told) if isinstance(told, str) and len(told) == 10 else None
        except ValueError:
            day = None
        if day is None or not YEAR_MIN <= day.year <= YEAR_MAX:
            ctx.issues.add(
                "options.fiscal_year_end must be the fiscal year's closing date as YYYY-MM-DD, "
                f"not {told!r:.40}",
                field="options.fiscal_year_end",
            )
            ctx.issues.raise_if_any()
        return day
    found = _LEGAL_NAME.search(ctx.data_import.filename or "")
    return _date(found.group(1)) if found else None


def _cents(value: str) -> int | None:
    """``1234,56`` / ``-1234.5`` / ``12`` → integer cents; None if not an amount (no
    thousands separators, no more than 2 decimals unless the extra ones are zeros)."""
    s = value.strip()
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    units, dot, decimals = s.partition(",")
    if not dot:
        units, dot, decimals = s.partition(".")
    if not units:
        units = "0" if dot and decimals else ""
    if not (units.isdigit() and units.isascii()) or len(units) > AMOUNT_DIGITS_MAX:
        return None
    if decimals and not (decimals.isdigit() and decimals.isascii()):
        return None
    if len(decimals) > 2 and decimals[2:].strip("0"):
        return None
    return sign * (int(units) * 100 + int((decimals[:2] + "00")[:2]))


def _csv(value: str) -> str:
    """A field for COPY's CSV: quoted when it holds a carriage return."""
    return f"{_QUOTE}{value}{_QUOTE}" if "\r" in value else value


def _euros(cents: int) -> str:
    units, rest = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{units}.{rest:02d}"


def _dirty(text_: str) -> bool:
    """Does this text hold a character the short path must not pass on (carriage return,
    NUL, COPY's quote character, an undecodable byte)?"""
    return "\r" in text_ or "\x00" in text_ or _QUOTE in text_ or "\ufffd" in text_


# --- loading ------------------------------------------------------------------------------------


def _raw(session: Session) -> psycopg.Connection[Any]:
    """The session's psycopg connection, inside the session's transaction."""
    dbapi = session.connection().connection.driver_connection
    invariant(isinstance(dbapi, psycopg.Connection), "the FEC import needs psycopg 3")
    assert isinstance(dbapi, psycopg.Connection)
    return dbapi


def _csv_options(sep: str, not_null: Sequence[str] = ()) -> str:
    """COPY options reading what ``_Parser`` writes: CSV with the file's separator."""
    delimiter = "E'\\t'" if sep == "\t" else f"'{sep}'"
    force = f", FORCE_NOT_NULL ({', '.join(not_null)})" if not_null else ""
    return f"(FORMAT csv, DELIMITER {delimiter}, QUOTE E'\\x01', NULL ''{force})"


@contextmanager
def _copy(conn: psycopg.Connection[Any], statement: str) -> Iterator[psycopg.Copy]:
    with conn.cursor() as cursor:
        # Data queues in libpq (bounded) and goes out whenever the socket takes it: the
        # server works on one part while the next is parsed.
        writer = LibpqWriter(cursor, flush_threshold=COPY_QUEUE_BYTES)
        with cursor.copy(statement, writer=writer) as copy:
            yield copy


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _load(
    ctx: ImportContext, conn: psycopg.Connection[Any], parser: _Parser, encoding: str, target: str
) -> None:
    """Stream the file through the parser into ``target``: read a block while the
    connection is idle, then one COPY for its lines."""
    decoder = _Decoder(encoding)
    total = ctx.size_bytes
    done = 0
    carry = ""
    statement = ""
    stream = ctx.open_stream()
    try:
        while True:
            block = stream.read(BLOCK_BYTES)
            final = not block
            decoded = carry + decoder.decode(block, final)  # before any COPY of this block
            if "\r" in decoded:
                decoded = decoded.replace("\r\n", "\n")
            lines = decoded.split("\n")
            carry = "" if final else lines.pop()
            del decoded
            if not parser.header_done and lines:
                if final and not "".join(lines).strip():
                    break
                if not parser.header(lines[0]):
                    return
                lines = lines[1:]
                parser.settle_fiscal_year(lines[0] if lines else "")
                not_null = ("journal_lib", "account_lib", "label")
                statement = f"COPY {target} FROM STDIN WITH {_csv_options(parser.sep, not_null)}"
            step = len(block) / max(len(lines), 1)
            with _copy(conn, statement) if lines and not ctx.issues else _nothing() as copy:
                for start in range(0, len(lines), SLICE_LINES):
                    part = lines[start : start + SLICE_LINES]
                    out = parser.feed(part, clean=not _dirty("\n".join(part)))
                    if copy is not None and out and not ctx.issues:
                        copy.write(out)
                    ctx.progress(min(done + int((start + len(part)) * step), total), total)
            done += len(block)
            if final:
                break
        if not parser.header_done:
            ctx.issues.add("the file is empty: a FEC starts with its header line", line=1)
            return
        parser.finish()
    finally:
        stream.close()


def _copy_spool(conn: psycopg.Connection[Any], spool: IO[str], statement: str) -> None:
    spool.seek(0)
    with _copy(conn, statement) as copy:
        while chunk := spool.read(1 << 20):
            copy.write(chunk)


# --- the import ---------------------------------------------------------------------------------


def _import(ctx: ImportContext, company: Company, encoding: str, *, direct: bool) -> ImportOutcome:
    session = ctx.session
    session.flush()
    conn = _raw(session)
    imp = ctx.data_import.id
    session.execute(text("DROP TABLE IF EXISTS pg_temp.fec_lines, pg_temp.fec_tiers"))
    session.execute(
        text(
            "CREATE TEMP TABLE fec_tiers (src_line integer, side char(1), journal_code text, "
            "entry_num text, aux text, aux_lib text, piece_ref text, piece_date date, entry_date date, "
            "debit_cents bigint, credit_cents bigint, lettering text, flags integer) ON COMMIT DROP"
        )
    )
    constants: tuple[str, ...] = ()
    if direct:
        target = f"book_lines ({BOOK_COLUMNS}, fiscal_year_end, company_id, import_id)"
        constants = (company.id, imp)
    else:
        session.execute(
            text(
                "CREATE TEMP TABLE fec_lines (journal_code text, journal_lib text, entry_num text, "
                "entry_date date, account_num text, account_lib text, aux_account_num text, "
                "aux_account_lib text, piece_ref text, piece_date date, label text, debit_cents bigint, "
                "credit_cents bigint, lettering text, lettering_date date, validation_date date, "
                "currency_amount_cents bigint, currency text, line_no integer, src_line integer) "
                "ON COMMIT DROP"
            )
        )
        target = f"fec_lines ({BOOK_COLUMNS}, src_line)"
    invariant(all(_csv(c) == c and "|" not in c and "\t" not in c for c in constants), "ids are plain")
    parser = _Parser(
        ctx.issues,
        staging=not direct,
        constants=constants,
        fiscal_year_end=fiscal_year_end(ctx),
        fallback_year=ctx.clock.today().year,
    )
    try:
        _load(ctx, conn, parser, encoding, target)
        ctx.issues.raise_if_any()
        statement = f"COPY fec_tiers ({TIERS_COLUMNS}) FROM STDIN WITH {_csv_options(parser.sep)}"
        _copy_spool(conn, parser.tiers, statement)
    finally:
        parser.close()
    if parser.reopened:
        session.execute(
            text(
                "UPDATE fec_tiers t SET flags = f.flags FROM fec_tiers f "
                "WHERE f.side = 'F' AND t.side <> 'F' AND t.journal_code = f.journal_code "
                "AND t.entry_num = f.entry_num"
            )
        )
        session.execute(text("DELETE FROM fec_tiers WHERE side = 'F'"))
    if direct:
        lines_created, lines_updated, lines_unchanged = parser.stats.lines, 0, 0
    else:
        assert parser.fiscal_year_end is not None  # settled with the header
        lines_created, lines_updated, lines_unchanged = _merge_lines(
            ctx, company.id, imp, parser.fiscal_year_end
        )
    derived = _derive(ctx, company.id, imp)
    session.execute(text("DROP TABLE IF EXISTS pg_temp.fec_lines, pg_temp.fec_tiers"))
    return ImportOutcome(
        created=lines_created + derived.created,
        updated=lines_updated,
        unchanged=lines_unchanged + derived.unchanged,
        counts={"book_lines": lines_created, **derived.counts},
    )


def _add_conflicts(issues: IssueCollector, rows: Sequence[Any], message: Any, field_name: str) -> None:
    """Report rows of a conflict query (capped, with the total in ``rows[0].total``)."""
    for row in rows:
        issues.add(message(row), line=row.src_line, field=field_name)
    if rows:
        issues.total += int(rows[0].total) - len(rows)


_LINE_FACTS = (
    "entry_date",
    "account_num",
    "aux_account_num",
    "piece_ref",
    "piece_date",
    "debit_cents",
    "credit_cents",
    "currency_amount_cents",
    "currency",
)
_LINE_MUTABLE = (
    "journal_lib",
    "account_lib",
    "aux_account_lib",
    "label",
    "lettering",
    "lettering_date",
    "validation_date",
)


def _merge_lines(
    ctx: ImportContext, company_id: str, import_id: str, fiscal_year_end: date
) -> tuple[int, int, int]:
    """Lines of a later FEC against the known ones of its fiscal year, in one pass over
    them: new lines added, known ones with moved-on lettering or labels updated, other
    facts changed refused. Returns (created, updated, unchanged)."""
    session = ctx.session
    params = {"c": company_id, "i": import_id, "fy": fiscal_year_end}
    session.execute(text("ANALYZE fec_lines (journal_code, entry_num, line_no)"))
    session.execute(text("DROP TABLE IF EXISTS pg_temp.fec_match"))
    _sql(
        session,
        f"""
        CREATE TEMP TABLE fec_match ON COMMIT DROP AS
        SELECT s.src_line, b.id AS book_id,
               ({", ".join(f"b.{c}" for c in _LINE_FACTS)})
                   IS DISTINCT FROM ({", ".join(f"s.{c}" for c in _LINE_FACTS)}) AS conflict,
               ({", ".join(f"b.{c}" for c in _LINE_MUTABLE)})
                   IS DISTINCT FROM ({", ".join(f"s.{c}" for c in _LINE_MUTABLE)}) AS changed
        FROM fec_lines s
        JOIN book_lines b ON b.company_id = :c AND b.fiscal_year_end = :fy
             AND b.journal_code = s.journal_code AND b.entry_num = s.entry_num AND b.line_no = s.line_no
        """,  # noqa: S608 (SQL from constants, values bound)
        params,
    )
    conflicts = session.execute(
        text(
            f"""
            SELECT s.src_line, s.journal_code, s.entry_num, s.line_no, b.import_id,
                   b.account_num, b.debit_cents, b.credit_cents, b.piece_ref, b.entry_date,
                   count(*) OVER () AS total
            FROM fec_match m JOIN fec_lines s ON s.src_line = m.src_line JOIN book_lines b ON b.id = m.book_id
            WHERE m.conflict
            ORDER BY s.src_line
            LIMIT {MAX_ERRORS_KEPT}
            """  # noqa: S608 (SQL from constants)
        ),
        params,
    ).all()
    _add_conflicts(
        ctx.issues,
        conflicts,
        lambda r: (
            f"line {r.line_no} of entry {r.entry_num} (journal {r.journal_code}, fiscal year closing "
            f"{fiscal_year_end}) was imported before "
            f"({r.import_id}: account {r.account_num}, piece {r.piece_ref}, {r.entry_date}, debit "
            f"{_euros(r.debit_cents)}, credit {_euros(r.credit_cents)}) with other facts. Books are never "
            "rewritten silently: export the same books again or correct them."
        ),
        "EcritureNum",
    )
    ctx.issues.raise_if_any()
    created = _sql(
        session,
        f"""
        INSERT INTO book_lines ({BOOK_COLUMNS}, fiscal_year_end, company_id, import_id)
        SELECT {BOOK_COLUMNS}, :fy, :c, :i FROM fec_lines s
        WHERE NOT EXISTS (SELECT 1 FROM fec_match m WHERE m.src_line = s.src_line)
        ORDER BY s.src_line
        """,  # noqa: S608 (SQL from constants, values bound)
        params,
    )
    updated = _sql(
        session,
        f"""
        UPDATE book_lines b SET {", ".join(f"{c} = s.{c}" for c in _LINE_MUTABLE)}
        FROM fec_match m JOIN fec_lines s ON s.src_line = m.src_line
        WHERE m.changed AND b.id = m.book_id
        """,  # noqa: S608 (SQL from constants)
    )
    total = int(session.execute(text("SELECT count(*) FROM fec_lines")).scalar_one())
    session.execute(text("DROP TABLE pg_temp.fec_match"))
    return created, updated, total - created - updated


# --- deriving -----------------------------------------------------------------------------------


@dataclass
class _Derived:
    created: int = 0
    unchanged: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def _id_sql(prefix: str) -> str:
    """SQL for a new id per row, like ``escompte.ids.new_id``: this millisecond (from
    Python), then 16 random base32 characters (80 bits; PostgreSQL's ``random()``, seeded
    per server process from a strong source, is ample for unique ids and a third of the cost
    per row of ``gen_random_uuid``)."""
    millis = time.time_ns() // 1_000_000
    head = f"{prefix}_" + "".join(ID_ALPHABET[(millis >> (5 * (9 - k))) & 31] for k in range(10))
    char = f"substr('{ID_ALPHABET}', floor(random() * 32)::integer + 1, 1)"
    return "('" + head + "' || " + " || ".join([char] * 16) + ")"


def _money(t: str = "") -> str:
    """SQL: this 411/401 line is money received or paid — its entry touches a bank or cash
    account and no sales (for 411) or purchases (for 401) account."""
    return (
        f"({t}flags & {TREASURY} <> 0 AND "
        f"{t}flags & (CASE {t}side WHEN 'R' THEN {SALES} ELSE {PURCHASES} END) = 0)"
    )


# SQL: this 411/401 line belongs to a document — its entry books sales (411) or purchases (401).
_DOCUMENT = f"(flags & (CASE side WHEN 'R' THEN {SALES} ELSE {PURCHASES} END) <> 0)"
_KIND = "(CASE WHEN d.side = 'R' THEN 'receivable' ELSE 'payable' END)"
_DOC_TYPE = "(CASE WHEN d.net_cents > 0 THEN 'invoice' ELSE 'credit_note' END)"
# An invoice's status from what is paid: the rule of connectors.payments.refresh_invoices,
# applied as new invoices are inserted (their allocations are known by then).
_STATUS = (
    "(CASE WHEN coalesce(s.cents, 0) >= abs(d.net_cents) THEN 'paid' "
    "WHEN coalesce(s.cents, 0) > 0 THEN 'partially_paid' ELSE 'open' END)"
)


def _sql(session: Session, statement: str, params: dict[str, Any] | None = None) -> int:
    """Run one statement; its row count."""
    return int(session.execute(text(statement), params or {}).rowcount)  # type: ignore[attr-defined]


def _derive(ctx: ImportContext, company_id: str, import_id: str) -> _Derived:
    """Counterparties, invoices and payments from the 411/401 lines (``fec_tiers``)."""
    session = ctx.session
    now = ctx.clock.now()
    p: dict[str, Any] = {"c": company_id, "i": import_id, "now": now, "terms": DEFAULT_PAYMENT_TERMS_DAYS}
    _sql(session, "ANALYZE fec_tiers (side, aux, piece_ref, lettering)")
    _sql(session, "DROP TABLE IF EXISTS pg_temp.fec_docs, pg_temp.fec_groups, pg_temp.fec_alloc")
    # Documents: one per counterparty and piece, signed so that an invoice is positive.
    _sql(
        session,
        f"""
        CREATE TEMP TABLE fec_docs ON COMMIT DROP AS
        SELECT side, aux, piece_ref AS number, min(piece_date) AS issue_date,
               sum(CASE side WHEN 'R' THEN debit_cents - credit_cents
                             ELSE credit_cents - debit_cents END)::bigint AS net_cents,
               min(src_line) AS src_line, max(aux_lib) AS aux_lib,
               NULL::text AS debtor_id, NULL::integer AS terms, {_id_sql("inv")} AS invoice_id,
               false AS known
        FROM fec_tiers
        WHERE {_DOCUMENT}
        GROUP BY side, aux, piece_ref
        HAVING sum(debit_cents - credit_cents) <> 0
        """,  # noqa: S608 (SQL from constants, values bound)
    )
    _sql(session, "ANALYZE fec_docs (side, aux, number)")
    both = session.execute(
        text(
            f"""
            SELECT aux, number, min(src_line) AS src_line, count(*) OVER () AS total FROM fec_docs
            GROUP BY aux, number HAVING count(*) > 1 ORDER BY 3 LIMIT {MAX_ERRORS_KEPT}
            """  # noqa: S608 (SQL from constants)
        )
    ).all()
    _add_conflicts(
        ctx.issues,
        both,
        lambda r: f"piece {r.number} of account {r.aux} is both a sale and a purchase",
        "PieceRef",
    )
    ctx.issues.raise_if_any()
    # Counterparties, by auxiliary account (find_or_create_debtor's rule without a SIREN).
    debtors = _sql(
        session,
        f"""
        INSERT INTO debtors (id, company_id, aux_account_num, legal_name, payment_terms_days, created_at)
        SELECT {_id_sql("dbt")}, :c, aux, left(coalesce(nullif(btrim(name), ''), aux), 200), :terms, :now
        FROM (SELECT aux, max(aux_lib) AS name FROM fec_docs GROUP BY aux ORDER BY aux) d
        ON CONFLICT (company_id, aux_account_num) DO NOTHING
        """,  # noqa: S608 (SQL from constants, values bound)
        p,
    )
    _sql(
        session,
        "UPDATE fec_docs d SET debtor_id = b.id, terms = b.payment_terms_days "
        "FROM debtors b WHERE b.company_id = :c AND b.aux_account_num = d.aux",
        p,
    )
    # Known invoices: the same facts → unchanged; other facts → an error, never an overwrite.
    _sql(
        session,
        "UPDATE fec_docs d SET invoice_id = i.id, known = true FROM invoices i "
        "WHERE i.company_id = :c AND i.debtor_id = d.debtor_id AND i.number = d.number",
        p,
    )
    conflicts = session.execute(
        text(
            f"""
            SELECT d.number, d.src_line, i.id, i.amount_cents, i.currency, i.kind, i.issue_date,
                   i.document_type, abs(d.net_cents) AS new_amount, {_KIND} AS new_kind,
                   d.issue_date AS new_issue_date, {_DOC_TYPE} AS new_type, count(*) OVER () AS total
            FROM fec_docs d JOIN invoices i ON i.id = d.invoice_id
            WHERE d.known AND (i.amount_cents, i.currency, i.kind, i.issue_date, i.document_type)
                  IS DISTINCT FROM (abs(d.net_cents), '{CURRENCY}', {_KIND}, d.issue_date, {_DOC_TYPE})
            ORDER BY d.src_line
            LIMIT {MAX_ERRORS_KEPT}
            """  # noqa: S608 (SQL from constants, values bound)
        ),
        p,
    ).all()
    _add_conflicts(ctx.issues, conflicts, _invoice_conflict, "PieceRef")
    ctx.issues.raise_if_any()
    new_documents = int(session.execute(text("SELECT count(*) FROM fec_docs WHERE NOT known")).scalar_one())
    groups, allocated_known = _settle(ctx, p)
    # New invoices go in with what their lettering paid (no second pass over them).
    invoices = _sql(
        session,
        f"""
        INSERT INTO invoices (id, company_id, debtor_id, kind, number, issue_date, due_date,
                              amount_cents, amount_paid_cents, currency, status, source, document_type,
                              due_date_estimated, import_id, created_at, updated_at)
        SELECT d.invoice_id, :c, debtor_id, {_KIND}, number, issue_date, issue_date + terms,
               abs(net_cents),
               LEAST(coalesce(s.cents, 0), abs(net_cents)), '{CURRENCY}', {_STATUS}, 'fec', {_DOC_TYPE},
               true, :i, :now, :now
        FROM fec_docs d
        LEFT JOIN (SELECT a.invoice_id, sum(a.cents) AS cents FROM fec_alloc a
                   JOIN fec_groups g ON g.ref = a.ref WHERE a.new AND NOT g.known GROUP BY a.invoice_id) s
               ON s.invoice_id = d.invoice_id
        WHERE NOT d.known ORDER BY issue_date, number
        ON CONFLICT (company_id, debtor_id, number) DO NOTHING
        """,  # noqa: S608 (SQL from constants, values bound)
        p,
    )
    if invoices != new_documents:  # another import or the API created some meanwhile
        ctx.issues.add("invoices of this file were created meanwhile by another import: import it again")
        ctx.issues.raise_if_any()
    payments = _sql(
        session,
        f"""
        INSERT INTO payments (id, company_id, source, source_ref, amount_cents, currency, paid_on,
                              payer_name, created_at)
        SELECT payment_id, :c, 'books', ref, paid_cents, '{CURRENCY}', paid_on,
               left(nullif(btrim(payer), ''), 200), :now
        FROM fec_groups WHERE NOT known ORDER BY paid_on, ref
        """,  # noqa: S608 (SQL from constants, values bound)
        p,
    )
    _sql(
        session,
        "INSERT INTO payment_allocations (payment_id, invoice_id, amount_cents, created_at) "
        "SELECT g.payment_id, a.invoice_id, a.cents, :now "
        "FROM fec_alloc a JOIN fec_groups g ON g.ref = a.ref "
        "WHERE NOT g.known AND a.cents > 0 ORDER BY g.payment_id, a.invoice_id",
        p,
    )
    if allocated_known:
        refresh_invoices(session, allocated_known, now)
    documents = int(session.execute(text("SELECT count(*) FROM fec_docs")).scalar_one())
    _sql(session, "DROP TABLE IF EXISTS pg_temp.fec_docs, pg_temp.fec_groups, pg_temp.fec_alloc")
    return _Derived(
        created=debtors + invoices + payments,
        unchanged=documents - invoices + groups - payments,
        counts={"debtors": debtors, "invoices": invoices, "payments": payments},
    )


def _invoice_conflict(row: Any) -> str:
    differences = []
    if row.amount_cents != row.new_amount or row.currency != CURRENCY:
        differences.append(
            f"amount {_euros(row.amount_cents)} {row.currency} known, "
            f"{_euros(row.new_amount)} {CURRENCY} in this file"
        )
    if row.kind != row.new_kind:
        differences.append(f"kind {row.kind} known, {row.new_kind} in this file")
    if row.issue_date != row.new_issue_date:
        differences.append(f"issue date {row.issue_date} known, {row.new_issue_date} in this file")
    if row.document_type != row.new_type:
        differences.append(f"{row.document_type} known, {row.new_type} in this file")
    return (
        f"invoice {row.number} ({row.id}) already exists with other facts: "
        + "; ".join(differences)
        + ". Escompte never overwrites silently: correct the file or update the invoice explicitly."
    )


def _settle(ctx: ImportContext, p: dict[str, Any]) -> tuple[int, list[str]]:
    """Lettering: one payment per code whose money lines meet invoices (``fec_groups``,
    new ones not ``known``), allocated oldest invoice first (``fec_alloc``). Returns the
    number of payments in the file and the known invoices that new payments reach."""
    session = ctx.session
    _sql(
        session,
        f"""
        CREATE TEMP TABLE fec_groups ON COMMIT DROP AS
        SELECT aux, lettering, aux || ':' || lettering AS ref,
               sum(CASE WHEN {_money()} THEN (CASE side WHEN 'R' THEN credit_cents - debit_cents
                                                       ELSE debit_cents - credit_cents END)
                        ELSE 0 END)::bigint AS paid_cents,
               max(entry_date) FILTER (WHERE {_money()}) AS paid_on,
               min(src_line) AS src_line, max(aux_lib) AS payer, {_id_sql("pay")} AS payment_id,
               false AS known
        FROM fec_tiers
        WHERE lettering IS NOT NULL
        GROUP BY aux, lettering
        HAVING sum(CASE WHEN {_money()} THEN 1 ELSE 0 END) > 0
        """,  # noqa: S608 (SQL from constants, values bound)
    )
    _sql(session, "DELETE FROM fec_groups WHERE paid_cents <= 0")
    _sql(session, "ANALYZE fec_groups (aux, lettering, ref)")
    _sql(
        session,
        f"""
        CREATE TEMP TABLE fec_alloc ON COMMIT DROP AS
        SELECT ref, invoice_id, new,
               LEAST(amount_cents, GREATEST(0, paid_cents - coalesce(sum(amount_cents) OVER (
                   PARTITION BY ref ORDER BY issue_date, number, invoice_id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)))::bigint AS cents
        FROM (
            -- the invoices of this file
            SELECT g.ref, g.paid_cents, d.invoice_id, NOT d.known AS new, abs(d.net_cents) AS amount_cents,
                   d.issue_date, d.number
            FROM fec_tiers t
            JOIN fec_groups g ON g.aux = t.aux AND g.lettering = t.lettering
            JOIN fec_docs d ON d.aux = t.aux AND d.number = t.piece_ref AND d.side = t.side
            WHERE NOT {_money("t.")} AND d.net_cents > 0
            UNION
            -- invoices known before, lettered here (carried forward from last year …)
            SELECT g.ref, g.paid_cents, i.id, false, i.amount_cents, i.issue_date, i.number
            FROM fec_tiers t
            JOIN fec_groups g ON g.aux = t.aux AND g.lettering = t.lettering
            JOIN debtors b ON b.company_id = :c AND b.aux_account_num = t.aux
            JOIN invoices i ON i.company_id = :c AND i.debtor_id = b.id AND i.number = t.piece_ref
                            AND i.document_type = 'invoice'
                            AND i.kind = (CASE t.side WHEN 'R' THEN 'receivable' ELSE 'payable' END)
            WHERE NOT {_money("t.")}
              AND NOT EXISTS (SELECT 1 FROM fec_docs d WHERE d.aux = t.aux AND d.number = t.piece_ref)
        ) targets
        """,  # noqa: S608 (SQL from constants, values bound)
        p,
    )
    _sql(session, "DELETE FROM fec_groups g WHERE NOT EXISTS (SELECT 1 FROM fec_alloc a WHERE a.ref = g.ref)")
    groups = int(session.execute(text("SELECT count(*) FROM fec_groups")).scalar_one())
    # A lettering code recorded before: the same amount → unchanged; another → an error.
    _sql(
        session,
        "UPDATE fec_groups g SET payment_id = x.id, known = true FROM payments x "
        "WHERE x.company_id = :c AND x.source = 'books' AND x.source_ref = g.ref",
        p,
    )
    conflicts = session.execute(
        text(
            f"""
            SELECT g.ref, g.src_line, g.paid_cents, x.id, x.amount_cents, count(*) OVER () AS total
            FROM fec_groups g JOIN payments x ON x.id = g.payment_id
            WHERE g.known AND x.amount_cents <> g.paid_cents
            ORDER BY g.src_line
            LIMIT {MAX_ERRORS_KEPT}
            """  # noqa: S608 (SQL from constants, values bound)
        ),
        p,
    ).all()
    _add_conflicts(
        ctx.issues,
        conflicts,
        lambda r: (
            f"lettering {r.ref} was recorded as a payment of {_euros(r.amount_cents)} ({r.id}); this file "
            f"letters {_euros(r.paid_cents)}. Escompte never overwrites silently."
        ),
        "EcritureLet",
    )
    ctx.issues.raise_if_any()
    known = session.execute(
        text(
            "SELECT DISTINCT a.invoice_id FROM fec_alloc a JOIN fec_groups g ON g.ref = a.ref "
            "WHERE NOT a.new AND NOT g.known AND a.cents > 0"
        )
    ).scalars()
    return groups, list(known)
