"""FEC (Fichier des Écritures Comptables) writers for tests, benchmarks and the demo.

- ``write_fec``: any list of entries, in every variant seen in practice (tab or pipe,
  decimal comma or dot, Debit/Credit or Montant/Sens, UTF-8 with or without BOM,
  ISO-8859-15, Windows-1252, CRLF).
- ``generate_year``: a plausible year of an SME's books — sales (VT), purchases (HA),
  bank receipts and payments (BQ) lettered against the invoices they settle, some
  invoices unpaid, some partially paid, a few credit notes — and what an import should
  derive from it.
- ``synthetic_chunks``: the same kind of books at any size (a million lines and more),
  written as it goes, for the benchmark.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Literal

from escompte.connectors.fec import HEADER, HEADER_MONTANT_SENS

# the legal header, and its Montant/Sens variant: the parser's, one definition
FEC_COLUMNS = HEADER
FEC_COLUMNS_MONTANT_SENS = HEADER_MONTANT_SENS

JOURNALS = {"VT": "Ventes", "HA": "Achats", "BQ": "Banque", "OD": "Opérations diverses"}


@dataclass(frozen=True)
class FecLine:
    account_num: str
    account_lib: str
    debit_cents: int = 0
    credit_cents: int = 0
    aux_account_num: str = ""
    aux_account_lib: str = ""
    label: str = ""
    lettering: str = ""
    lettering_date: date | None = None
    currency_amount_cents: int | None = None
    currency: str = ""


@dataclass(frozen=True)
class FecEntry:
    journal_code: str
    entry_num: str
    entry_date: date
    piece_ref: str
    lines: tuple[FecLine, ...]
    journal_lib: str = ""  # JOURNALS[journal_code] when empty
    piece_date: date | None = None  # the entry date when None
    validation_date: date | None = None  # the entry date when None


def amount_text(cents: int, decimal: str = ",") -> str:
    """Signed amount with two decimals: 123456 → ``1234,56``."""
    units, rest = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{units}{decimal}{rest:02d}"


def fec_filename(siren: str, closing_date: date) -> str:
    """The legal file name: ``<SIREN>FEC<closing date YYYYMMDD>.txt``."""
    return f"{siren}FEC{closing_date:%Y%m%d}.txt"


def _ymd(day: date | None) -> str:
    return "" if day is None else f"{day:%Y%m%d}"


def fec_rows(
    entries: Iterable[FecEntry], *, decimal: str = ",", montant_sens: bool = False
) -> Iterator[list[str]]:
    """The 18 fields of every line of ``entries``, in file order."""
    for entry in entries:
        piece_date = entry.piece_date or entry.entry_date
        valid = entry.validation_date or entry.entry_date
        for line in entry.lines:
            if montant_sens:
                debit = line.debit_cents > 0 or (line.debit_cents == 0 and line.credit_cents == 0)
                amounts = [
                    amount_text(line.debit_cents if debit else line.credit_cents, decimal),
                    "D" if debit else "C",
                ]
            else:
                amounts = [amount_text(line.debit_cents, decimal), amount_text(line.credit_cents, decimal)]
            yield [
                entry.journal_code,
                entry.journal_lib or JOURNALS.get(entry.journal_code, entry.journal_code),
                entry.entry_num,
                _ymd(entry.entry_date),
                line.account_num,
                line.account_lib,
                line.aux_account_num,
                line.aux_account_lib,
                entry.piece_ref,
                _ymd(piece_date),
                line.label,
                *amounts,
                line.lettering,
                _ymd(line.lettering_date),
                _ymd(valid),
                ""
                if line.currency_amount_cents is None
                else amount_text(line.currency_amount_cents, decimal),
                line.currency,
            ]


def write_fec(
    entries: Iterable[FecEntry],
    *,
    separator: str = "\t",
    encoding: str = "utf-8",
    bom: bool = False,
    decimal: str = ",",
    montant_sens: bool = False,
    newline: str = "\n",
) -> bytes:
    """A FEC file of ``entries``: header line, then one line per entry line."""
    header = FEC_COLUMNS_MONTANT_SENS if montant_sens else FEC_COLUMNS
    rows = [separator.join(header)]
    rows.extend(separator.join(row) for row in fec_rows(entries, decimal=decimal, montant_sens=montant_sens))
    data = (newline.join(rows) + newline).encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


# --- a plausible year ------------------------------------------------------------------------

Kind = Literal["receivable", "payable"]


@dataclass(frozen=True)
class SampleDocument:
    """An invoice or credit note the import should derive, and what it should find paid."""

    kind: Kind
    aux_account_num: str
    number: str
    issue_date: date
    amount_cents: int  # incl. VAT, positive
    paid_cents: int = 0
    document_type: Literal["invoice", "credit_note"] = "invoice"

    @property
    def status(self) -> str:
        if self.document_type == "credit_note" or self.paid_cents == 0:
            return "open"
        return "paid" if self.paid_cents >= self.amount_cents else "partially_paid"


@dataclass(frozen=True)
class FecSummary:
    company_name: str
    filename: str
    lines: int
    entries: int
    counterparties: dict[str, str]  # auxiliary account → name, customers and suppliers
    documents: tuple[SampleDocument, ...]
    payments: int  # lettering groups settled by the bank: one payment each

    def document(self, number: str) -> SampleDocument:
        return next(d for d in self.documents if d.number == number)


def _lettering_code(n: int) -> str:
    """AA, AB, … ZZ, then AAA …: one sequence per account, as most software does."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if n < 26 * 26:
        return letters[n // 26] + letters[n % 26]
    n -= 26 * 26
    return letters[n // 676 % 26] + letters[n // 26 % 26] + letters[n % 26]


@dataclass
class _Open:
    """A document being written, with the payment that will settle it (if any)."""

    doc: SampleDocument
    entry: FecEntry
    line_index: int  # the 411/401 line to letter
    name: str
    pay_on: date | None = None
    pay_cents: int = 0
    lettering: tuple[str, date] | None = None


class _Year:
    """The books of one year, written in three passes: documents, then their settlement."""

    def __init__(self, year_end: date, seed: int) -> None:
        self.rng = random.Random(seed)
        self.start = year_end - timedelta(days=364)
        self.year_end = year_end
        self.opened: list[_Open] = []
        self.payments: list[FecEntry] = []
        self.seq = {"VT": 0, "HA": 0, "BQ": 0}
        self.letters: dict[str, int] = {}

    def num(self, journal: str) -> str:
        self.seq[journal] += 1
        return f"{journal}{self.seq[journal]:06d}"

    def day(self, i: int, count: int) -> date:
        return self.start + timedelta(days=(i * 364) // max(count, 1))

    def fate(
        self, issued: date, gross: int, delays: tuple[int, ...], unpaid: float, partial: float
    ) -> tuple[date | None, int]:
        """When and how much of ``gross`` is paid (None: not in this year)."""
        roll = self.rng.random()
        pay_on = issued + timedelta(days=self.rng.choice(delays))
        if roll < unpaid or pay_on > self.year_end:
            return None, 0
        if roll < unpaid + partial:
            return pay_on, gross * self.rng.randint(25, 75) // 100
        return pay_on, gross

    def sale(self, i: int, count: int, aux: str, name: str) -> None:
        issued = self.day(i, count)
        net = self.rng.randint(20_00, 15_000_00)
        vat = net * 20 // 100
        number = f"F{issued.year}-{i + 1:05d}"
        entry = FecEntry(
            "VT",
            self.num("VT"),
            issued,
            number,
            (
                FecLine(
                    "411000",
                    "Clients",
                    debit_cents=net + vat,
                    aux_account_num=aux,
                    aux_account_lib=name,
                    label=f"Facture {number} {name}",
                ),
                FecLine("706000", "Prestations de services", credit_cents=net, label=f"Facture {number}"),
                FecLine("445710", "TVA collectée", credit_cents=vat, label=f"TVA facture {number}"),
            ),
        )
        pay_on, paid = self.fate(issued, net + vat, (15, 30, 30, 45, 60, 75), unpaid=0.2, partial=0.12)
        doc = SampleDocument("receivable", aux, number, issued, net + vat)
        self.opened.append(_Open(doc, entry, 0, name, pay_on, paid))

    def credit_note(self, i: int, count: int, aux: str, name: str) -> None:
        issued = self.day(i, count)
        net = self.rng.randint(10_00, 500_00)
        vat = net * 20 // 100
        number = f"AV{issued.year}-{i // 25 + 1:04d}"
        entry = FecEntry(
            "VT",
            self.num("VT"),
            issued,
            number,
            (
                FecLine(
                    "411000",
                    "Clients",
                    credit_cents=net + vat,
                    aux_account_num=aux,
                    aux_account_lib=name,
                    label=f"Avoir {number} {name}",
                ),
                FecLine("706000", "Prestations de services", debit_cents=net, label=f"Avoir {number}"),
                FecLine("445710", "TVA collectée", debit_cents=vat, label=f"TVA avoir {number}"),
            ),
        )
        doc = SampleDocument("receivable", aux, number, issued, net + vat, document_type="credit_note")
        self.opened.append(_Open(doc, entry, 0, name))

    def purchase(self, i: int, count: int, aux: str, name: str) -> None:
        issued = self.day(i, count)
        net = self.rng.randint(50_00, 8_000_00)
        vat = net * 20 // 100
        number = f"FA-{aux}-{i + 1:05d}"
        entry = FecEntry(
            "HA",
            self.num("HA"),
            issued,
            number,
            (
                FecLine("607000", "Achats de marchandises", debit_cents=net, label=f"Facture {number}"),
                FecLine("445660", "TVA déductible sur ABS", debit_cents=vat, label=f"TVA {number}"),
                FecLine(
                    "401000",
                    "Fournisseurs",
                    credit_cents=net + vat,
                    aux_account_num=aux,
                    aux_account_lib=name,
                    label=f"Facture {number} {name}",
                ),
            ),
        )
        pay_on, paid = self.fate(issued, net + vat, (30, 45, 60), unpaid=0.2, partial=0.0)
        doc = SampleDocument("payable", aux, number, issued, net + vat)
        self.opened.append(_Open(doc, entry, 2, name, pay_on, paid))

    def settle(self) -> None:
        """A transfer per document paid — one for two invoices of a customer paid in full
        one after the other — lettered on both sides with the account's next code."""
        to_pay = sorted(
            (o for o in self.opened if o.pay_on is not None), key=lambda o: (o.pay_on, o.doc.number)
        )
        k = 0
        while k < len(to_pay):
            group = to_pay[k : k + 1]
            nxt = to_pay[k + 1] if k + 1 < len(to_pay) else None
            first = group[0]
            if (
                nxt is not None
                and nxt.doc.aux_account_num == first.doc.aux_account_num
                and first.pay_cents == first.doc.amount_cents
                and nxt.pay_cents == nxt.doc.amount_cents
            ):
                group.append(nxt)
            k += len(group)
            self.transfer(group)

    def transfer(self, group: list[_Open]) -> None:
        first = group[0]
        aux = first.doc.aux_account_num
        code = _lettering_code(self.letters.get(aux, 0))
        self.letters[aux] = self.letters.get(aux, 0) + 1
        paid_on = max(o.pay_on for o in group if o.pay_on is not None)
        total = sum(o.pay_cents for o in group)
        refs = " ".join(o.doc.number for o in group)
        bank = "Banque"
        if first.doc.kind == "receivable":
            lines = (
                FecLine("512000", bank, debit_cents=total, label=f"Virement {first.name} {refs}"),
                FecLine(
                    "411000",
                    "Clients",
                    credit_cents=total,
                    aux_account_num=aux,
                    aux_account_lib=first.name,
                    label=f"Règlement {refs}",
                    lettering=code,
                    lettering_date=paid_on,
                ),
            )
        else:
            lines = (
                FecLine(
                    "401000",
                    "Fournisseurs",
                    debit_cents=total,
                    aux_account_num=aux,
                    aux_account_lib=first.name,
                    label=f"Règlement {refs}",
                    lettering=code,
                    lettering_date=paid_on,
                ),
                FecLine("512000", bank, credit_cents=total, label=f"Virement {first.name} {refs}"),
            )
        self.payments.append(
            FecEntry("BQ", self.num("BQ"), paid_on, f"VIR{len(self.payments) + 1:06d}", lines)
        )
        for o in group:
            o.lettering = (code, paid_on)

    def entries(self) -> list[FecEntry]:
        entries = list(self.payments)
        for o in self.opened:
            entry = o.entry
            if o.lettering is not None:
                lines = list(entry.lines)
                lines[o.line_index] = replace(
                    lines[o.line_index], lettering=o.lettering[0], lettering_date=o.lettering[1]
                )
                entry = replace(entry, lines=tuple(lines))
            entries.append(entry)
        entries.sort(key=lambda e: (e.entry_date, e.journal_code, e.entry_num))
        return entries

    def documents(self) -> tuple[SampleDocument, ...]:
        return tuple(replace(o.doc, paid_cents=o.pay_cents if o.lettering else 0) for o in self.opened)


def generate_year(
    company_name: str,
    siren: str,
    debtors: int = 12,
    suppliers: int = 5,
    year_end: date = date(2025, 12, 31),
    invoice_count: int = 120,
    seed: int = 1,
) -> tuple[bytes, FecSummary]:
    """A year of books of ``company_name``: ``invoice_count`` sales invoices (and a credit
    note every 25), a third as many purchases, the bank entries settling them.

    Each invoice is paid in full (sometimes two by one transfer), in part, or not at all;
    a payment that would fall after ``year_end`` leaves its invoice open.
    """
    year = _Year(year_end, seed)
    customers = [(f"C{i + 1:05d}", f"{_NAMES[i % len(_NAMES)]} {i + 1}") for i in range(debtors)]
    vendors = [(f"F{i + 1:05d}", f"{_VENDORS[i % len(_VENDORS)]} {i + 1}") for i in range(suppliers)]
    for i in range(invoice_count):
        aux, name = customers[year.rng.randrange(len(customers))]
        year.sale(i, invoice_count, aux, name)
        if i % 25 == 24:
            year.credit_note(i, invoice_count, aux, name)
    purchases = max(invoice_count // 3, 1)
    for i in range(purchases):
        aux, name = vendors[year.rng.randrange(len(vendors))]
        year.purchase(i, purchases, aux, name)
    year.settle()
    entries = year.entries()
    summary = FecSummary(
        company_name=company_name,
        filename=fec_filename(siren, year_end),
        lines=sum(len(e.lines) for e in entries),
        entries=len(entries),
        counterparties=dict(customers + vendors),
        documents=year.documents(),
        payments=len(year.payments),
    )
    return write_fec(entries), summary


_NAMES = (
    "Boulangerie Martin",
    "Garage Dupont",
    "Hôtel des Écrins",
    "Menuiserie Lefèvre",
    "Pharmacie Siméon",
    "Transports Bœuf",
    "Cabinet Rousseau",
    "Épicerie Noël",
    "Imprimerie Gérard",
    "Clinique Sainte-Anne",
)
_VENDORS = (
    "Fournitures Bureau Pro",
    "Électricité Générale",
    "Grossiste Alimentaire",
    "Location Matériel",
    "Assurances Mutuelles",
)


# --- any size, streamed -----------------------------------------------------------------------

_PRODUCTS = (
    "706100\tVentes de prestations",
    "706200\tVentes de formations",
    "707000\tVentes de marchandises",
    "708500\tPorts et frais facturés",
)
_CHARGES = (
    "607000\tAchats de marchandises",
    "606300\tFournitures d'entretien",
    "613200\tLocations immobilières",
    "622600\tHonoraires",
    "626000\tFrais postaux et télécommunications",
)


class _Stream:
    """``synthetic_chunks``' state: lines written, payments to come, lettering codes."""

    def __init__(self, seed: int, year_end: date, customers: int, suppliers: int) -> None:
        self.rng = random.Random(seed)
        self.start = year_end - timedelta(days=364)
        self.lines: list[str] = []
        self.written = 0
        self.due: list[
            tuple[int, int, str, str, str, int, str, str]
        ] = []  # day, seq, side, aux, name, cents, refs, code
        self.codes: dict[str, int] = {}
        self.seq = {"VT": 0, "HA": 0, "BQ": 0, "OD": 0}
        self.customers = [(f"C{i:06d}", f"{_NAMES[i % len(_NAMES)]} {i}") for i in range(customers)]
        self.suppliers = [(f"F{i:06d}", f"{_VENDORS[i % len(_VENDORS)]} {i}") for i in range(suppliers)]

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.written += 1

    def letter(self, aux: str, day: int, side: str, name: str, cents: int, refs: str) -> tuple[str, str]:
        """Schedule the payment of ``cents`` on ``day``; its (code, DateLet)."""
        n = self.codes.get(aux, 0)
        self.codes[aux] = n + 1
        code = _lettering_code(n)
        heapq.heappush(self.due, (day, len(self.due) + self.written, side, aux, name, cents, refs, code))
        return code, f"{self.start + timedelta(days=day):%Y%m%d}"

    def payments(self, d: int, ymd: str) -> None:
        while self.due and self.due[0][0] <= d:
            _, _, side, aux, name, cents, refs, code = heapq.heappop(self.due)
            self.seq["BQ"] += 1
            head = f"BQ\tBanque\tBQ{self.seq['BQ']:07d}\t{ymd}\t"
            piece = f"VIR{self.seq['BQ']:07d}\t{ymd}\t"
            amount = amount_text(cents)
            bank = f"512000\tBanque\t\t\t{piece}Virement {name}"
            tiers = f"\t{aux}\t{name}\t{piece}Règlement {refs}"
            if side == "R":
                self.add(f"{head}{bank}\t{amount}\t0,00\t\t\t{ymd}\t\t")
                self.add(f"{head}411000\tClients{tiers}\t0,00\t{amount}\t{code}\t{ymd}\t{ymd}\t\t")
            else:
                self.add(f"{head}401000\tFournisseurs{tiers}\t{amount}\t0,00\t{code}\t{ymd}\t{ymd}\t\t")
                self.add(f"{head}{bank}\t0,00\t{amount}\t\t\t{ymd}\t\t")

    def sale(self, d: int, ymd: str, year: int) -> None:
        rng = self.rng
        self.seq["VT"] += 1
        number = f"F{year}{self.seq['VT']:07d}"
        aux, name = self.customers[rng.randrange(len(self.customers))]
        parts = [rng.randint(10_00, 2_000_00) for _ in range(rng.randint(3, 14))]
        vat = sum(parts) // 5
        gross = sum(parts) + vat
        fate = rng.random()
        pay_day = d + rng.choice((20, 30, 30, 45, 60, 60, 90))
        code, date_let = "", ""
        if fate < 0.8 and pay_day < 365:
            cents = gross if fate < 0.7 else gross * rng.randint(20, 80) // 100
            code, date_let = self.letter(aux, pay_day, "R", name, cents, number)
        head = f"VT\tVentes\tVT{self.seq['VT']:07d}\t{ymd}\t"
        self.add(
            f"{head}411000\tClients\t{aux}\t{name}\t{number}\t{ymd}\tFacture {number} {name}"
            f"\t{amount_text(gross)}\t0,00\t{code}\t{date_let}\t{ymd}\t\t"
        )
        for k, part in enumerate(parts):
            self.add(
                f"{head}{_PRODUCTS[k % len(_PRODUCTS)]}\t\t\t{number}\t{ymd}\tFacture {number}"
                f"\t0,00\t{amount_text(part)}\t\t\t{ymd}\t\t"
            )
        self.add(
            f"{head}445710\tTVA collectée\t\t\t{number}\t{ymd}\tTVA {number}\t0,00\t{amount_text(vat)}"
            f"\t\t\t{ymd}\t\t"
        )

    def purchase(self, d: int, ymd: str) -> None:
        rng = self.rng
        self.seq["HA"] += 1
        number = f"A{self.seq['HA']:07d}"
        aux, name = self.suppliers[rng.randrange(len(self.suppliers))]
        parts = [rng.randint(5_00, 2_000_00) for _ in range(rng.randint(1, 5))]
        vat = sum(parts) // 5
        gross = sum(parts) + vat
        pay_day = d + rng.choice((30, 45, 60))
        code, date_let = "", ""
        if rng.random() < 0.85 and pay_day < 365:
            code, date_let = self.letter(aux, pay_day, "P", name, gross, number)
        head = f"HA\tAchats\tHA{self.seq['HA']:07d}\t{ymd}\t"
        for k, part in enumerate(parts):
            self.add(
                f"{head}{_CHARGES[(k + self.seq['HA']) % len(_CHARGES)]}\t\t\t{number}\t{ymd}"
                f"\tFacture {name}\t{amount_text(part)}\t0,00\t\t\t{ymd}\t\t"
            )
        self.add(
            f"{head}445660\tTVA déductible\t\t\t{number}\t{ymd}\tTVA {number}\t{amount_text(vat)}\t0,00"
            f"\t\t\t{ymd}\t\t"
        )
        self.add(
            f"{head}401000\tFournisseurs\t{aux}\t{name}\t{number}\t{ymd}\tFacture {number}"
            f"\t0,00\t{amount_text(gross)}\t{code}\t{date_let}\t{ymd}\t\t"
        )

    def payroll(self, ymd: str) -> None:
        self.seq["OD"] += 1
        gross = self.rng.randint(2_000_00, 6_000_00)
        social = gross * 22 // 100
        employer = gross * 42 // 100
        net = gross - social
        urssaf, pension = employer * 7 // 10, employer - employer * 7 // 10
        piece = f"PAIE{self.seq['OD']:06d}"
        head = f"OD\tOpérations diverses\tOD{self.seq['OD']:07d}\t{ymd}\t"
        for account, debit, credit in (
            ("641100\tSalaires", gross, 0),
            ("645100\tCotisations URSSAF", urssaf, 0),
            ("645300\tCotisations retraite", pension, 0),
            ("421000\tPersonnel rémunérations dues", 0, net),
            ("431000\tSécurité sociale", 0, social * 6 // 10 + urssaf),
            ("437000\tAutres organismes sociaux", 0, social - social * 6 // 10 + pension),
            ("421000\tPersonnel rémunérations dues", net, 0),
            ("512000\tBanque", 0, net),
        ):
            self.add(
                f"{head}{account}\t\t\t{piece}\t{ymd}\tPaie {piece}\t{amount_text(debit)}"
                f"\t{amount_text(credit)}\t\t\t{ymd}\t\t"
            )


def synthetic_chunks(
    lines: int,
    *,
    seed: int = 7,
    year_end: date = date(2025, 12, 31),
    customers: int = 2_000,
    suppliers: int = 300,
) -> Iterator[bytes]:
    """A FEC of about ``lines`` lines (whole entries: a few more at most), UTF-8, tab
    separated, written chunk by chunk in bounded memory.

    Per day, in order: bank receipts and payments due that day, lettered against the
    invoices they settle (about 70 % of sales paid in full, 10 % in part, 85 % of
    purchases), then sales invoices of 5 to 16 lines (411 debit, 706-708 lines, 44571),
    purchases of 3 to 7 lines (401 credit, 6xx lines, 44566) and payroll entries (OD)
    of 8 lines. A million lines hold about 55,000 sales, 30,000 purchases and 63,000
    payments.
    """
    books = _Stream(seed, year_end, customers, suppliers)
    books.lines.append("\t".join(FEC_COLUMNS))
    for d in range(365):
        day = books.start + timedelta(days=d)
        ymd = f"{day:%Y%m%d}"
        books.payments(d, ymd)
        target = lines * (d + 1) // 365
        while books.written < target:
            roll = books.rng.random()
            if roll < 0.55:
                books.sale(d, ymd, day.year)
            elif roll < 0.85:
                books.purchase(d, ymd)
            else:
                books.payroll(ymd)
            if len(books.lines) >= 2_000:
                yield ("\n".join(books.lines) + "\n").encode()
                books.lines.clear()
    if books.lines:
        yield ("\n".join(books.lines) + "\n").encode()
