"""The demo's files: for each SME, what its accounting package, its bank, its
customers' e-invoicing platforms and the registries would hand over — a FEC of the last
twelve closed months, a camt.053 of the same months and of the current one, a few
Factur-X invoices, lifecycle statuses — plus a SIRENE and a BODACC extract.

Deterministic for a seed and a date, realistic: payments late or on time, partial
payments, one transfer for two invoices, remittances naming the invoice or only the
payer, supplier invoices, an unpaid debtor, a debtor in receivership, a ceased one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from schwifty import IBAN
from stdnum import luhn
from stdnum.fr import siren as std_siren

from escompte.connectors.samples.bank import SampleBalance, SampleEntry, camt053_xml, ofx
from escompte.connectors.samples.einvoice import (
    SampleInvoice,
    SampleParty,
    SampleStatus,
    facturx_pdf,
    lifecycle_json,
)
from escompte.connectors.samples.fec import FecEntry, FecLine, fec_filename, write_fec
from escompte.connectors.samples.registries import Announcement, LegalUnit, bodacc_csv, sirene_csv


def siren_of(stem8: str) -> str:
    return stem8 + luhn.calc_check_digit(stem8)


def siret_of(siren: str, establishment: int = 1) -> str:
    stem = f"{siren}{establishment:04d}"
    return stem + luhn.calc_check_digit(stem)


def vat_of(siren: str) -> str:
    return "FR" + str(std_siren.to_tva(siren))


@dataclass(frozen=True)
class Customer:
    name: str
    siren: str
    aux: str  # auxiliary account in the seller's books
    iban: str
    terms_days: int
    lateness: tuple[int, int]  # days late, min..max
    pays: float  # share of invoices it pays at all


@dataclass(frozen=True)
class Sme:
    legal_name: str
    siren: str
    iban: str
    bic: str
    city: str
    postal_code: str
    street: str
    customers: tuple[Customer, ...]


@dataclass
class _Invoice:
    number: str
    customer: Customer
    issued: date
    net_cents: int
    paid: list[tuple[date, int]] = field(default_factory=list)  # (date, cents)

    @property
    def gross_cents(self) -> int:
        return self.net_cents + self.net_cents * 20 // 100

    @property
    def vat_cents(self) -> int:
        return self.net_cents * 20 // 100


@dataclass(frozen=True)
class DemoFiles:
    fec: tuple[str, bytes]
    camt053: tuple[str, bytes]
    # the same account's last 60 days exported from online banking as OFX: the movements
    # the camt.053 already brought are recognised, not stored twice
    ofx: tuple[str, bytes]
    facturx: tuple[tuple[str, bytes], ...]
    lifecycle: tuple[str, bytes]


CUSTOMER_NAMES = (
    ("Groupe Hôtelier Bellecour SA", "40512378"),
    ("Distribution Rhône-Alpes SAS", "38274619"),
    ("Cabinet Architectes Vauban SARL", "49182736"),
    ("Transports Loire Atlantique SA", "33019284"),
    ("Clinique Saint-Roch SAS", "77483920"),
    ("Industries Métallurgiques du Nord SA", "31275648"),
    ("Restaurants Le Comptoir SAS", "85102937"),
)
SUPPLIER = ("Fournitures Pro Ouest SAS", "60918273", "F00001")


def _iban(rng: random.Random, bank: str) -> str:
    return str(
        IBAN.generate("FR", bank_code=bank + "00001", account_code=f"{rng.randrange(10**10):011d}").compact
    )


def smes(seed: int = 2026) -> list[Sme]:
    rng = random.Random(seed)
    specs = (
        ("Atelier Lumière SAS", "81234567", "Lyon", "69002", "12 rue de la République", "30004", "BNPAFRPP"),
        (
            "Boulangeries Martin SARL",
            "52398741",
            "Nantes",
            "44000",
            "3 quai de la Fosse",
            "10278",
            "CMCIFR2A",
        ),
        ("TechNord Solutions SAS", "89012345", "Lille", "59000", "45 rue Nationale", "30003", "SOGEFRPP"),
    )
    result = []
    for index, (name, stem, city, postal, street, bank, bic) in enumerate(specs):
        chosen = rng.sample(CUSTOMER_NAMES, k=5)
        customers = tuple(
            Customer(
                name=cname,
                siren=siren_of(cstem),
                aux=f"C{k + 1:05d}",
                iban=_iban(rng, "10107"),
                terms_days=rng.choice((30, 45, 60)),
                # the fifth customer of the second SME pays late and not always
                lateness=(20, 75) if (index, k) == (1, 4) else (0, 12),
                pays=0.6 if (index, k) == (1, 4) else 0.97,
            )
            for k, (cname, cstem) in enumerate(chosen)
        )
        result.append(Sme(name, siren_of(stem), _iban(rng, bank), bic, city, postal, street, customers))
    return result


def files_for(sme: Sme, today: date, seed: int) -> DemoFiles:
    """The SME's files as of ``today`` (the FEC closes at the end of the previous month)."""
    rng = random.Random(seed)
    year_end = today.replace(day=1) - timedelta(days=1)
    start = year_end - timedelta(days=364)
    invoices: list[_Invoice] = []
    day = start
    n = 0
    while day <= today - timedelta(days=2):
        day += timedelta(days=rng.randint(4, 9))
        customer = rng.choice(sme.customers)
        n += 1
        invoices.append(
            _Invoice(
                f"F{day:%y%m}-{n:04d}",
                customer,
                day,
                rng.choice((rng.randint(900, 8_000), rng.randint(8_000, 42_000))) * 100,
            )
        )
    for inv in invoices:
        c = inv.customer
        due = inv.issued + timedelta(days=c.terms_days)
        if rng.random() > c.pays:
            continue  # never paid
        pay_day = due + timedelta(days=rng.randint(*c.lateness))
        if rng.random() < 0.08:  # paid in two parts
            first = inv.gross_cents // 2
            inv.paid.append((pay_day, first))
            second_day = pay_day + timedelta(days=rng.randint(15, 40))
            inv.paid.append((second_day, inv.gross_cents - first))
        else:
            inv.paid.append((pay_day, inv.gross_cents))
    fec = (fec_filename(sme.siren, year_end), _fec(sme, invoices, start, year_end, rng))
    entries = _bank_entries(sme, invoices, start, today, rng)
    return DemoFiles(
        fec=fec,
        camt053=(f"{sme.siren}-releve-{today:%Y%m%d}.xml", _camt_entries_xml(sme, entries, start, today)),
        ofx=(f"{sme.siren}-export-{today:%Y%m%d}.ofx", _ofx(sme, entries, today)),
        facturx=_facturx(sme, invoices, year_end),
        lifecycle=(f"{sme.siren}-statuts.json", _statuses(sme, invoices, year_end)),
    )


def _fec(sme: Sme, invoices: list[_Invoice], start: date, year_end: date, rng: random.Random) -> bytes:
    entries: list[FecEntry] = []
    seq = {"VT": 0, "HA": 0, "BQ": 0}
    letters: dict[str, int] = {}

    def num(journal: str) -> str:
        seq[journal] += 1
        return f"{journal}{seq[journal]:06d}"

    def code(aux: str) -> str:
        letters[aux] = letters.get(aux, 0) + 1
        k = letters[aux] - 1
        return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[k // 26 % 26] + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[k % 26]

    for inv in (i for i in invoices if i.issued <= year_end):
        c = inv.customer
        booked = [(d, cents) for d, cents in inv.paid if d <= year_end]
        lettering = code(c.aux) if booked else ""
        last = max((d for d, _ in booked), default=None)
        entries.append(
            FecEntry(
                "VT",
                num("VT"),
                inv.issued,
                inv.number,
                (
                    FecLine(
                        "411000",
                        "Clients",
                        debit_cents=inv.gross_cents,
                        aux_account_num=c.aux,
                        aux_account_lib=c.name,
                        label=f"Facture {inv.number} {c.name}",
                        lettering=lettering,
                        lettering_date=last,
                    ),
                    FecLine(
                        "706000",
                        "Prestations de services",
                        credit_cents=inv.net_cents,
                        label=f"Facture {inv.number}",
                    ),
                    FecLine("445710", "TVA collectée", credit_cents=inv.vat_cents, label=f"TVA {inv.number}"),
                ),
            )
        )
        for paid_on, cents in booked:
            entries.append(
                FecEntry(
                    "BQ",
                    num("BQ"),
                    paid_on,
                    f"VIR-{inv.number}",
                    (
                        FecLine("512000", "Banque", debit_cents=cents, label=f"Virement {c.name}"),
                        FecLine(
                            "411000",
                            "Clients",
                            credit_cents=cents,
                            aux_account_num=c.aux,
                            aux_account_lib=c.name,
                            label=f"Règlement {inv.number}",
                            lettering=lettering,
                            lettering_date=last,
                        ),
                    ),
                )
            )
    # supplier invoices, paid 45 days later
    name, _stem, aux = SUPPLIER
    day = start + timedelta(days=10)
    k = 0
    while day <= year_end:
        k += 1
        net = rng.randint(1_500, 6_000) * 100
        gross = net + net * 20 // 100
        number = f"FPO-{day:%y%m}{k:02d}"
        paid_on = day + timedelta(days=60)
        lettering = code(aux) if paid_on <= year_end else ""
        entries.append(
            FecEntry(
                "HA",
                num("HA"),
                day,
                number,
                (
                    FecLine("607000", "Achats de marchandises", debit_cents=net, label=f"Facture {number}"),
                    FecLine("445660", "TVA déductible", debit_cents=gross - net, label=f"TVA {number}"),
                    FecLine(
                        "401000",
                        "Fournisseurs",
                        credit_cents=gross,
                        aux_account_num=aux,
                        aux_account_lib=name,
                        label=f"Facture {number} {name}",
                        lettering=lettering,
                        lettering_date=paid_on if lettering else None,
                    ),
                ),
            )
        )
        if lettering:
            entries.append(
                FecEntry(
                    "BQ",
                    num("BQ"),
                    paid_on,
                    f"PRLV-{number}",
                    (
                        FecLine(
                            "401000",
                            "Fournisseurs",
                            debit_cents=gross,
                            aux_account_num=aux,
                            aux_account_lib=name,
                            label=f"Paiement {number}",
                            lettering=lettering,
                            lettering_date=paid_on,
                        ),
                        FecLine("512000", "Banque", credit_cents=gross, label=f"Virement {name}"),
                    ),
                )
            )
        day += timedelta(days=30)
    entries.sort(key=lambda e: (e.entry_date, e.journal_code, e.entry_num))
    return write_fec(entries)


def _bank_entries(
    sme: Sme, invoices: list[_Invoice], start: date, today: date, rng: random.Random
) -> list[SampleEntry]:
    entries: list[SampleEntry] = []
    ref = 0
    for inv in invoices:
        c = inv.customer
        for paid_on, cents in inv.paid:
            if paid_on > today:
                continue
            ref += 1
            # most payers name the invoice; some only give their name
            remittance = (
                f"REGLEMENT FACTURE {inv.number}"
                if rng.random() < 0.8
                else f"VIR {c.name.upper()} {paid_on:%m/%Y}"
            )
            entries.append(
                SampleEntry(
                    booking_date=paid_on,
                    value_date=paid_on,
                    amount_cents=cents,
                    account_servicer_ref=f"{sme.siren[:4]}{ref:08d}",
                    counterparty_name=c.name,
                    counterparty_iban=c.iban,
                    remittance=remittance,
                    end_to_end_id=f"E2E{ref:010d}",
                )
            )
    day = start + timedelta(days=3)
    while day <= today:  # card and direct debits: rent, salaries, supplier
        ref += 1
        entries.append(
            SampleEntry(
                booking_date=day,
                value_date=day,
                amount_cents=-rng.randint(2_000, 9_000) * 100,
                account_servicer_ref=f"{sme.siren[:4]}{ref:08d}",
                bank_code="PMNT/RDDT/ESDD",
                counterparty_name="SCI Les Tilleuls",
                remittance=f"LOYER {day:%m/%Y}",
            )
        )
        day += timedelta(days=30)
    entries.sort(key=lambda e: e.booking_date)
    return entries


def _camt_entries_xml(sme: Sme, entries: list[SampleEntry], start: date, today: date) -> bytes:
    balance = 4_500_000 + sum(e.amount_cents for e in entries)
    return camt053_xml(
        sme.iban,
        entries,
        [SampleBalance("OPBD", start, 4_500_000), SampleBalance("CLBD", today, balance)],
        version="001.08",
        account_name=sme.legal_name,
        bic=sme.bic,
        statement_id=f"STMT-{sme.siren}-{today:%Y%m%d}",
    )


def _recent(invoices: list[_Invoice], year_end: date) -> list[_Invoice]:
    last = max(i.issued for i in invoices)
    return [i for i in invoices if i.issued > last - timedelta(days=30) or i.issued > year_end]


def _party(sme: Sme) -> SampleParty:
    return SampleParty(sme.legal_name, sme.siren, vat_of(sme.siren))


def _facturx(sme: Sme, invoices: list[_Invoice], year_end: date) -> tuple[tuple[str, bytes], ...]:
    """One invoice per customer from the books (it confirms the due date the books could
    only estimate and tells the customer's SIREN), then every invoice of the last 30
    days — those of the current month the books do not have yet. The latest one was
    partly paid on order (a down payment on the e-invoice)."""
    chosen: list[_Invoice] = []
    seen: set[str] = set()
    for inv in invoices:
        if inv.issued <= year_end and inv.customer.aux not in seen and not inv.paid:
            chosen.append(inv)
            seen.add(inv.customer.aux)
    for inv in invoices:
        if inv.issued <= year_end and inv.customer.aux not in seen:
            chosen.append(inv)
            seen.add(inv.customer.aux)
    # after the customers are known by SIREN: the last month's invoices
    chosen += [i for i in _recent(invoices, year_end) if i not in chosen]
    files = []
    latest = max(chosen, key=lambda i: (i.issued, i.number), default=None)
    for inv in chosen:
        c = inv.customer
        total = inv.net_cents + inv.vat_cents
        sample = SampleInvoice(
            number=inv.number,
            seller=_party(sme),
            buyer=SampleParty(c.name, c.siren, vat_of(c.siren)),
            issue_date=inv.issued,
            due_date=inv.issued + timedelta(days=c.terms_days),
            net_cents=inv.net_cents,
            vat_cents=inv.vat_cents,
            iban=sme.iban,
            payment_terms=f"Paiement à {c.terms_days} jours",
            # the latest invoice was 30 % paid on order (BT-113): only the rest is due
            due_payable_cents=total - total * 30 // 100 if inv is latest else None,
        )
        files.append((f"{inv.number}.pdf", facturx_pdf(sample)))
    return tuple(files)


def _statuses(sme: Sme, invoices: list[_Invoice], year_end: date) -> bytes:
    """The buyers' platforms approved the last month's invoices, except one disputed."""
    recent = _recent(invoices, year_end)
    statuses = []
    for k, inv in enumerate(recent):
        at = datetime.combine(inv.issued + timedelta(days=2), time(10, 0), tzinfo=UTC)
        statuses.append(
            SampleStatus(
                f"MSG-{inv.number}-204",
                inv.number,
                sme.siren,
                inv.customer.siren,
                204,
                at,
                issue_date=inv.issued,
            )
        )
        disputed = k == 1
        statuses.append(
            SampleStatus(
                f"MSG-{inv.number}-{207 if disputed else 205}",
                inv.number,
                sme.siren,
                inv.customer.siren,
                207 if disputed else 205,
                at + timedelta(days=3),
                issue_date=inv.issued,
                reason="Quantités livrées inférieures à la commande" if disputed else None,
            )
        )
    return lifecycle_json(statuses)


def registry_files(all_smes: list[Sme], today: date) -> tuple[tuple[str, bytes], tuple[str, bytes]]:
    """SIRENE: every company of the demo, one customer ceased; BODACC: one customer in
    receivership (redressement judiciaire)."""
    customers = {c.siren: c for s in all_smes for c in s.customers}
    ceased, receivership = sorted(customers)[:2]
    units = [LegalUnit(siren=s.siren, name=s.legal_name) for s in all_smes]
    units += [
        LegalUnit(
            siren=c.siren,
            name=c.name,
            active=c.siren != ceased,
            period_start=today - timedelta(days=40) if c.siren == ceased else date(2010, 1, 4),
        )
        for c in customers.values()
    ]
    units.append(LegalUnit(siren=siren_of(SUPPLIER[1]), name=SUPPLIER[0]))
    announcement = Announcement(
        id=f"A{today:%Y}00004217",
        sirens=(receivership,),
        nature="Jugement d'ouverture d'une procédure de redressement judiciaire",
        judgment_date=today - timedelta(days=20),
        published_on=today - timedelta(days=12),
        court="TRIBUNAL DE COMMERCE DE LYON",
        name=customers[receivership].name,
    )
    return (f"StockUniteLegale-{today:%Y%m%d}.csv", sirene_csv(units)), (
        f"bodacc-procedures-{today:%Y%m%d}.csv",
        bodacc_csv([announcement]),
    )


def _ofx(sme: Sme, entries: list[SampleEntry], today: date) -> bytes:
    """The online bank's OFX export of the last 60 days: its own transaction ids (FITID),
    the account by bank code, branch code and account number (the IBAN follows)."""
    since = today - timedelta(days=60)
    recent = [
        replace(e, account_servicer_ref=f"OFX{today:%y%m%d}{n:05d}", end_to_end_id=None)
        for n, e in enumerate(e for e in entries if e.booking_date >= since)
    ]
    bban = sme.iban[4:]
    return ofx(recent, bank_id=bban[:5], branch_id=bban[5:10], account_id=bban[10:21])
