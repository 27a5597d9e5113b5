"""Benchmark of bank reconciliation: one company's bank credits matched with its open
invoices in one run, against a 30 s target.

    .venv/bin/python bench/reconciliation.py [--credits 100000 --invoices 200000]

Builds an embedded PostgreSQL in a temporary folder, loads a generated company (debtors,
open invoices, bank credits of a realistic mix) with COPY, times ``reconcile()`` and its
commit, checks every allocation against what the generator intended, runs it a second
time (which must change nothing), prints the figures and writes
bench/results/reconciliation.json. What the figures mean: docs/reconciliation.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from schwifty import IBAN
from sqlalchemy.orm import Session
from stdnum import luhn
from stdnum.iso7064 import mod_97_10

from escompte.clock import FrozenClock
from escompte.connectors.reconciliation import reconcile
from escompte.db import embedded, make_engine
from escompte.db.migrate import upgrade
from escompte.ids import new_id

RESULTS = Path(__file__).resolve().parent / "results" / "reconciliation.json"
TARGET_SECONDS = 30.0
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TODAY = NOW.date()

# share of the credits per kind (the rest of the mix is noise: not a customer payment)
MIX = {
    "reference_text": 0.40,  # the invoice number somewhere in the remittance text
    "reference_structured": 0.05,  # an RF creditor reference
    "amount_payer_name": 0.12,  # no reference: the exact amount due, the payer's name
    "amount_payer_iban": 0.08,  # no reference, no name: the amount and a known IBAN
    "several_referenced": 0.06,  # one transfer naming 2-3 invoices
    "several_by_amount": 0.06,  # one transfer paying the payer's 2 oldest invoices
    "partial": 0.09,  # an instalment on a named invoice
    "overpaid": 0.02,  # a named invoice paid with a surplus
    "noise": 0.12,  # tax refunds, loans, interest, strangers
}
EXPECT_PARTIAL_STATUS = {"overpaid"}

SECTORS = [
    "Boulangerie", "Transports", "Garage", "Menuiserie", "Plomberie", "Imprimerie", "Pharmacie",
    "Librairie", "Brasserie", "Fromagerie", "Quincaillerie", "Electricite", "Maconnerie",
    "Couverture", "Carrosserie", "Pressing", "Optique", "Jardinerie", "Fleuriste", "Charcuterie",
    "Conseil", "Informatique", "Architecture", "Peinture", "Serrurerie", "Textiles", "Cartonnages",
    "Laboratoires", "Ambulances", "Nettoyage",
]
SURNAMES = [
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "Andre", "Lefevre", "Mercier", "Dupont", "Lambert",
    "Bonnet", "Francois", "Martinez", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc", "Guerin",
    "Muller", "Henry", "Roussel", "Nicolas", "Perrin", "Morin", "Mathieu", "Clement", "Gauthier",
    "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin", "Masson", "Sanchez", "Gerard", "Nguyen",
    "Boyer", "Denis", "Lemaire", "Duval", "Joly", "Gautier", "Roger", "Roche", "Roy", "Noel",
    "Meyer", "Lucas", "Meunier", "Jean", "Perez", "Marchand", "Dufour", "Blanchard", "Marie",
    "Barbier", "Brun", "Dumas", "Brunet", "Schmitt", "Leroux", "Colin", "Fernandez", "Pierre",
    "Renard", "Arnaud", "Rolland", "Caron", "Aubert", "Giraud", "Leclerc", "Vidal", "Bourgeois",
    "Renaud", "Lemoine", "Picard", "Gaillard", "Philippe", "Leclercq", "Lacroix", "Fabre",
    "Dupuis", "Olivier", "Rodriguez", "Da", "Silva", "Hubert", "Louis", "Charles", "Guillot",
    "Riviere", "Le", "Gall", "Guillaume", "Adam", "Rey", "Moulin", "Gonzalez", "Berger", "Lecomte",
    "Menard", "Fleury", "Deschamps", "Carpentier", "Julien", "Benoit", "Paris", "Maillard",
    "Marchal", "Aubry", "Vasseur", "Le", "Roux", "Renault", "Jacquet", "Collet", "Prevost",
    "Poirier", "Charpentier", "Royer", "Huet", "Baron", "Dupuy", "Pons", "Paul", "Laine", "Carre",
    "Breton", "Remy", "Schneider", "Perrot", "Guyot", "Barre", "Marty", "Cousin",
]
FORMS = ["SARL", "SAS", "SA", "EURL", "SASU", "et Fils", "Freres", ""]
NOISE_PAYERS = ["DGFIP REMBOURSEMENT TVA", "URSSAF", "BPIFRANCE PRET", "CPAM", "INTERETS CREDITEURS",
                "SNCF REMBOURSEMENT", "ASSURANCE MAIF INDEMNITE", "M JEAN DURAND", "MME CLAIRE MOREAU",
                "APPORT EN COMPTE COURANT", None]


class BenchError(Exception):
    """A failure with a message meant for the person running the benchmark."""


@dataclass
class Debtor:
    id: str
    name: str
    iban: str
    invoices: list[int] = field(default_factory=list)  # indexes, oldest due first
    next_free: int = 0


@dataclass
class Invoice:
    id: str
    debtor: int
    number: str
    issue: date
    due: date
    cents: int
    used: bool = False


@dataclass
class Credit:
    id: str
    kind: str
    cents: int
    booked: date
    name: str | None
    iban: str | None
    text: str | None
    reference: str | None
    expected: frozenset[str]  # invoice ids the generator meant


# --- data ----------------------------------------------------------------------------


def _siren(n: int) -> str:
    stem = f"{n:08d}"
    return stem + luhn.calc_check_digit(stem)


def _payer_name(rng: random.Random, legal_name: str) -> str:
    upper = legal_name.upper()
    variant = rng.random()
    if variant < 0.5:
        return upper
    if variant < 0.7:
        return " ".join(w for w in upper.split() if w not in {"SARL", "SAS", "SA", "EURL", "SASU"})
    if variant < 0.85:
        return upper[:18]  # the bank cut the name
    return "STE " + upper


def _reference_text(rng: random.Random, number: str, payer: str) -> str:
    year, seq = number.split("-")[1:]
    return rng.choice([
        f"VIR SEPA RECU /DE {payer} /MOTIF FACTURE N° {number}",
        f"fact f {year} {seq}",
        f"PAIEMENT F{year}{seq} {payer[:12]}",
        f"Facture n°{number} du {TODAY - timedelta(days=rng.randint(20, 90)):%d/%m/%Y}",
        f"REGLEMENT {year}-{seq}",
    ])


def generate(
    n_credits: int, n_invoices: int, n_debtors: int, seed: int
) -> tuple[list[Debtor], list[Invoice], list[Credit]]:
    rng = random.Random(seed)
    names: set[str] = set()
    debtors: list[Debtor] = []
    while len(debtors) < n_debtors:
        name = f"{rng.choice(SECTORS)} {rng.choice(SURNAMES)} {rng.choice(FORMS)}".strip()
        if name.upper() in names:
            name = f"{name} {len(debtors)}"
        names.add(name.upper())
        iban = str(IBAN.generate("FR", bank_code=f"{30000 + len(debtors) % 999:05d}",
                                 account_code=f"{len(debtors):011d}").compact)
        debtors.append(Debtor(new_id("dbt"), name, iban))
    invoices: list[Invoice] = []
    for k in range(n_invoices):
        issue = TODAY - timedelta(days=rng.randint(0, 150))
        invoices.append(Invoice(new_id("inv"), rng.randrange(n_debtors), f"F-{issue.year}-{k + 1:06d}", issue,
                                issue + timedelta(days=rng.choice((30, 45, 60))),
                                rng.randint(50_00, 20_000_00)))
    for index in sorted(range(n_invoices), key=lambda i: (invoices[i].due, invoices[i].id)):
        debtors[invoices[index].debtor].invoices.append(index)

    def take(debtor: Debtor, count: int, oldest: bool) -> list[Invoice] | None:
        if oldest:
            mine = debtor.invoices
            while debtor.next_free < len(mine) and invoices[mine[debtor.next_free]].used:
                debtor.next_free += 1
            free = [invoices[i] for i in debtor.invoices[debtor.next_free:] if not invoices[i].used][:count]
        else:
            pool = [i for i in rng.sample(debtor.invoices, min(len(debtor.invoices), 3 * count))
                    if not invoices[i].used]
            free = [invoices[i] for i in pool[:count]]
        if len(free) < count:
            return None
        for invoice in free:
            invoice.used = True
        return free

    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    credits: list[Credit] = []
    while len(credits) < n_credits:
        kind = rng.choices(kinds, weights)[0]
        booked = TODAY - timedelta(days=rng.randint(0, 60))
        if kind == "noise":
            payer = rng.choice(NOISE_PAYERS)
            text = rng.choice(["REMBOURSEMENT", f"REF {rng.randint(10**6, 10**7)}", "ECHEANCE PRET", None])
            credits.append(Credit(new_id("btx"), kind, rng.randint(1_00, 50_000_00), booked, payer,
                                  None, text, None, frozenset()))
            continue
        debtor = debtors[rng.randrange(n_debtors)]
        count = {"several_referenced": rng.choice((2, 3)), "several_by_amount": 2}.get(kind, 1)
        chosen = take(debtor, count, oldest=kind == "several_by_amount")
        if chosen is None:
            continue
        due = sum(i.cents for i in chosen)
        payer = _payer_name(rng, debtor.name)
        iban: str | None = debtor.iban if rng.random() < 0.8 else None
        text: str | None = None
        reference: str | None = None
        cents = due
        if kind == "reference_text":
            text = _reference_text(rng, chosen[0].number, payer)
        elif kind == "reference_structured":
            ref = chosen[0].number.replace("-", "")
            reference, text = "RF" + mod_97_10.calc_check_digits(ref + "RF") + ref, "VIREMENT"
        elif kind == "amount_payer_name":
            text = rng.choice(["VIREMENT", "PAIEMENT FOURNISSEUR", None])
        elif kind == "amount_payer_iban":
            payer, iban, text = "", debtor.iban, "VIR INST"
        elif kind == "several_referenced":
            text = "FACTURES " + " ".join(i.number for i in chosen)
        elif kind == "several_by_amount":
            text = "REGLEMENT RELEVE"
        elif kind == "partial":
            cents = max(1, due * rng.randint(30, 90) // 100)
            text = f"ACOMPTE FACTURE {chosen[0].number}"
        elif kind == "overpaid":
            cents = due + rng.randint(1, 100_00)
            text = f"FACTURE {chosen[0].number}"
        credits.append(Credit(new_id("btx"), kind, cents, booked, payer or None, iban, text, reference,
                              frozenset(i.id for i in chosen)))
    return debtors, invoices, credits


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def load(url: str, company_id: str, debtors: list[Debtor], invoices: list[Invoice],
         credits: list[Credit]) -> None:
    with psycopg.connect(_psycopg_url(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO companies (id, legal_name, siren, contact_email, created_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            (company_id, "Vendeur Bench SAS", _siren(73282932), "bench@example.org", NOW),
        )
        account_id = new_id("bac")
        cur.execute(
            "INSERT INTO bank_accounts (id, company_id, iban, currency, created_at) "
            "VALUES (%s, %s, %s, 'EUR', %s)",
            (account_id, company_id, "FR7630006000011234567890189", NOW),
        )
        with cur.copy("COPY debtors (id, company_id, siren, legal_name, payment_terms_days, "
                      "created_at) FROM STDIN") as copy:
            for n, d in enumerate(debtors):
                copy.write_row((d.id, company_id, _siren(10_000_000 + n), d.name, 30, NOW))
        with cur.copy(
            "COPY invoices (id, company_id, debtor_id, kind, number, issue_date, due_date, amount_cents, "
            "amount_paid_cents, currency, status, source, document_type, due_date_estimated, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for i in invoices:
                copy.write_row((i.id, company_id, debtors[i.debtor].id, "receivable", i.number, i.issue,
                                i.due, i.cents, 0, "EUR", "open", "api", "invoice", False, NOW, NOW))
        with cur.copy(
            "COPY bank_transactions (id, company_id, bank_account_id, fingerprint, source, booking_date, "
            "amount_cents, currency, counterparty_name, counterparty_iban, remittance_info, "
            "structured_reference, match_status, matched_cents, created_at) FROM STDIN"
        ) as copy:
            for c in credits:
                fingerprint = hashlib.sha256(c.id.encode()).hexdigest()
                copy.write_row((c.id, company_id, account_id, fingerprint, "camt", c.booked, c.cents, "EUR",
                                c.name, c.iban, c.text, c.reference, "unmatched", 0, NOW))
        cur.execute("ANALYZE")


# --- measure -------------------------------------------------------------------------


def outcome(url: str, credits: list[Credit]) -> dict[str, Any]:
    """Compare what was allocated with what the generator meant, per kind of credit."""
    with psycopg.connect(_psycopg_url(url)) as conn:
        allocated = {
            ref: frozenset(ids)
            for ref, ids in conn.execute(
                "SELECT p.source_ref, array_agg(a.invoice_id) FROM payments p "
                "JOIN payment_allocations a ON a.payment_id = p.id GROUP BY p.source_ref"
            )
        }
        status = dict(conn.execute("SELECT id, match_status FROM bank_transactions").fetchall())
    per_kind: dict[str, Counter[str]] = {kind: Counter() for kind in MIX}
    for c in credits:
        got = allocated.get(c.id, frozenset())
        if not got:
            verdict = "unmatched"
        elif got == c.expected:
            verdict = "as_intended"
        else:
            verdict = "other_invoices"
        per_kind[c.kind][verdict] += 1
        per_kind[c.kind]["credits"] += 1
        if c.kind in EXPECT_PARTIAL_STATUS and status[c.id] == "partially_matched":
            per_kind[c.kind]["surplus_kept"] += 1
    return {kind: dict(counts) for kind, counts in per_kind.items()}


def run(n_credits: int, n_invoices: int, n_debtors: int, seed: int) -> dict[str, Any]:
    print(f"generating {n_credits:,} credits, {n_invoices:,} open invoices, {n_debtors:,} debtors…",
          file=sys.stderr)
    debtors, invoices, credits = generate(n_credits, n_invoices, n_debtors, seed)
    company_id = new_id("cmp")
    with tempfile.TemporaryDirectory(prefix="escompte-bench-reco-") as tmp:
        data_dir = Path(tmp)
        print("starting PostgreSQL, migrating, loading with COPY…", file=sys.stderr)
        url = embedded.start(data_dir, database="bench_reco")
        try:
            upgrade(url)
            started = time.perf_counter()
            load(url, company_id, debtors, invoices, credits)
            load_seconds = time.perf_counter() - started
            engine = make_engine(url, pool_size=1)
            clock = FrozenClock(NOW)
            runs = []
            try:
                for label in ("first", "again"):
                    print(f"reconciling ({label} run)…", file=sys.stderr)
                    with Session(engine) as session:
                        started = time.perf_counter()
                        stats = reconcile(session, clock, company_id)
                        matched_at = time.perf_counter()
                        session.commit()
                        done = time.perf_counter()
                    runs.append({"run": label, "seconds": round(done - started, 2),
                                 "reconcile_s": round(matched_at - started, 2),
                                 "commit_s": round(done - matched_at, 2), "stats": stats})
            finally:
                engine.dispose()
            quality = outcome(url, credits)
        finally:
            pgserver = importlib.import_module("pgserver")
            pgserver.get_server(data_dir.resolve() / "pg").cleanup()
    first, again = runs
    if again["stats"].payments_created or again["stats"].allocations_created:
        raise BenchError("the second run changed something: reconciliation is not idempotent")
    stats = first["stats"]
    noise = quality["noise"]["credits"]
    wanted = n_credits - noise
    intended = sum(q.get("as_intended", 0) for k, q in quality.items() if k != "noise")
    return {
        "benchmark": "reconciliation",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "settings": {"credits": n_credits, "invoices": n_invoices, "debtors": n_debtors, "seed": seed,
                     "mix": MIX},
        "target_s": TARGET_SECONDS,
        "load_s": round(load_seconds, 2),
        "runs": [{**r, "stats": {k: v for k, v in vars(r["stats"]).items() if k != "company_id"}}
                 for r in runs],
        "match_rate": round((stats.matched + stats.partially_matched) / n_credits, 4),
        "matchable_share": round(wanted / n_credits, 4),
        "as_intended_rate": round(intended / wanted, 4) if wanted else None,
        "noise_matched": quality["noise"].get("as_intended", 0) + quality["noise"].get("other_invoices", 0),
        "per_kind": quality,
    }


def report(doc: dict[str, Any]) -> None:
    first, again = doc["runs"]
    s = first["stats"]
    ok = "within" if first["seconds"] <= doc["target_s"] else "OVER"
    print(f"\nEscompte reconciliation — {doc['settings']['credits']:,} credits against "
          f"{doc['settings']['invoices']:,} open invoices, {doc['settings']['debtors']:,} debtors, "
          f"{doc['machine']['cpus']} CPUs\n")
    print(f"first run   {first['seconds']:>7.2f} s  ({first['reconcile_s']:.2f} s reconcile + "
          f"{first['commit_s']:.2f} s commit)  {ok} the {doc['target_s']:.0f} s target")
    print(f"second run  {again['seconds']:>7.2f} s  (changed nothing: "
          f"{again['stats']['payments_created']} payments, "
          f"{again['stats']['allocations_created']} allocations)")
    print(f"data load   {doc['load_s']:>7.2f} s  (COPY, not timed against the target)\n")
    print(f"credits matched {s['matched']:,}, partially {s['partially_matched']:,}, unmatched "
          f"{s['unmatched']:,}: match rate {doc['match_rate']:.1%} (matchable share of the mix "
          f"{doc['matchable_share']:.1%}); {s['payments_created']:,} payments, "
          f"{s['allocations_created']:,} allocations, {s['invoices_updated']:,} invoices updated, "
          f"{s['rounds']} rounds")
    print(f"allocated as the generator intended: {doc['as_intended_rate']:.1%} of matchable credits; "
          f"noise credits matched: {doc['noise_matched']}\n")
    header = f"{'kind':<22} {'credits':>8} {'as intended':>12} {'other inv.':>11} {'unmatched':>10}"
    print(header)
    print("-" * len(header))
    for kind, q in doc["per_kind"].items():
        print(f"{kind:<22} {q.get('credits', 0):>8} {q.get('as_intended', 0):>12} "
              f"{q.get('other_invoices', 0):>11} {q.get('unmatched', 0):>10}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--credits", type=int, default=100_000, help="bank credits to reconcile")
    parser.add_argument("--invoices", type=int, default=200_000, help="open invoices")
    parser.add_argument("--debtors", type=int, default=5_000, help="debtors of the company")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the generated data")
    args = parser.parse_args()
    if not (1 <= args.credits <= 2_000_000 and 1 <= args.invoices <= 5_000_000
            and 1 <= args.debtors <= args.invoices):
        parser.error("--credits in 1..2,000,000, --invoices in 1..5,000,000, 1 <= --debtors <= --invoices")
    try:
        document = run(args.credits, args.invoices, args.debtors, args.seed)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        reason = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        print(f"bench: failed: {reason}", file=sys.stderr)
        return 1
    report(document)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nresults written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
