"""Reconciliation: incoming bank credits matched to the open receivables they pay.

A credit (a ``BankTransaction`` with a positive amount, unmatched or partially matched)
is matched with the open receivable invoices of the same company and currency, in this
order of trust (docs/reconciliation.md gives the examples):

1. **Reference** — the structured reference, the remittance text or the end-to-end id
   names invoice numbers. Numbers are compared on their letters and digits only, so
   ``F-2026/00123``, ``f 2026 00123`` and ``FACT202600123`` all name ``F-2026-00123``
   (a leading prefix such as FACT, F, N°, Facture n° is ignored when the full form does
   not match). A number naming several invoices (same number at two debtors) is settled
   by the payer, then by the exact amount, else ignored. The credit pays the named
   invoices oldest due date first (art. 1342-10 Code civil), never more than each
   amount due: a smaller credit leaves the last one partially paid, a larger one keeps
   its surplus unallocated (the credit is then ``partially_matched``). Disputed invoices
   are matched only when named.
2. **Amount and payer** — no usable reference and no earlier allocation: the payer is
   recognised by its IBAN (the same IBAN already paid invoices of exactly one debtor)
   or by its name (normalised: case, accents, punctuation and legal forms ignored; a
   bank-truncated name, added words or a close spelling count). Among that debtor's
   open invoices (not disputed), the credit pays the oldest one whose amount due equals
   the credit; else its oldest invoices whose dues add up to the credit exactly; else
   2 or 3 of its 20 oldest that do. When the name fits several debtors (at most 5:
   "Dupont SAS" and "Dupont SARL"), the amount decides: exactly one of them must have
   invoices that fit, else nothing is matched.
3. Anything else stays ``unmatched`` for the back-office queue. An amount alone, with
   no payer, is never enough: a wrong match would mark an invoice paid and could repay
   an advance.

The passes repeat until nothing changes (a match teaches an IBAN, a paid invoice lifts
an ambiguity), so running the reconciliation again changes nothing. A run holds a
transaction-scoped advisory lock per company: runs for one company queue up, runs for
different companies proceed in parallel and touch disjoint rows.

Results are written set-based: one ``Payment`` per credit (source ``bank``, source_ref
= the transaction id, unique per company) with its allocations, the invoices refreshed
once per run through ``connectors.payments.refresh_invoices``, and each credit's
``matched_cents`` and status derived from its allocations.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from difflib import SequenceMatcher
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.clock import Clock
from escompte.connectors.behaviour import compute_debtor_behaviour
from escompte.connectors.payments import Allocation, record_payment, refresh_invoices
from escompte.errors import Conflict, FieldError, NotFound, ValidationFailed, invariant
from escompte.ids import new_id
from escompte.models import (
    BankTransaction,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    MatchStatus,
    Payment,
    PaymentAllocation,
    PaymentSource,
)

# --- limits ------------------------------------------------------------------------

MIN_KEY_CHARS = 4  # shorter invoice numbers are never matched from free text
MAX_WINDOW_TOKENS = 4  # "F 2026 00123" spans 3 tokens
MAX_WINDOW_CHARS = 24
MAX_TEXT_CHARS = 500  # per text field scanned
MAX_REFERENCES = 50  # invoices one credit may name
SUBSET_WINDOW = 20  # oldest open invoices of a payer tried in 2- and 3-invoice sums
MAX_ROUNDS = 6
NAME_SCORE_MIN = 0.86
NAME_SCORE_MARGIN = 0.04  # the best name must beat the second by this much
NAME_TOKEN_MAX_DEBTORS = 200  # tokens shared by more debtors do not propose candidates
MAX_NAME_CANDIDATES = 5  # a name that fits more debtors designates none
MAX_MANUAL_ALLOCATIONS = 50

RULE_REFERENCE = "reference"
RULE_AMOUNT_PAYER = "amount_payer"
RULE_SEVERAL_INVOICES = "several_invoices"

OPEN_STATUSES = (InvoiceStatus.OPEN.value, InvoiceStatus.PARTIALLY_PAID.value, InvoiceStatus.DISPUTED.value)
_DISPUTED = InvoiceStatus.DISPUTED.value
_QUEUE_STATUSES = (MatchStatus.UNMATCHED, MatchStatus.PARTIALLY_MATCHED)


# --- text --------------------------------------------------------------------------

_SPLIT = re.compile(r"[^A-Z0-9]+")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_RF = re.compile(r"^RF[0-9]{2}")


def fold(value: str) -> str:
    """Upper case without accents (é → E, ° dropped)."""
    if value.isascii():
        return value.upper()
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


def tokens(value: str) -> list[str]:
    return [t for t in _SPLIT.split(fold(value)) if t]


def compact(value: str) -> str:
    """An invoice number's comparison key: its letters and digits, upper case."""
    return _SPLIT.sub("", fold(value))


def _usable(key: str) -> bool:
    return len(key) >= MIN_KEY_CHARS and not key.isalpha()  # keys are [A-Z0-9]+: a digit


def invoice_keys(number: str) -> tuple[str | None, str | None]:
    """(full key, key without its leading letters) of an invoice number, when usable."""
    full = compact(number)
    core = full.lstrip(_LETTERS)
    return (full if _usable(full) else None, core if _usable(core) else None)


def text_windows(value: str) -> Iterator[tuple[int, int, str]]:
    """(first token, last token, joined text) of every run of up to 4 tokens holding a
    digit: "FACTURE N° F-2026-00123" yields … F202600123, 202600123, 00123."""
    toks = tokens(value[:MAX_TEXT_CHARS])
    digits = [not t.isalpha() for t in toks]  # tokens are [A-Z0-9]+
    n = len(toks)
    for i in range(n):
        joined = ""
        has_digit = False
        for j in range(i, min(n, i + MAX_WINDOW_TOKENS)):
            joined += toks[j]
            if len(joined) > MAX_WINDOW_CHARS:
                break
            has_digit = has_digit or digits[j]
            if has_digit:
                yield i, j, joined


# --- payer names -------------------------------------------------------------------

_NAME_NOISE = frozenset(
    {
        # legal forms and their abbreviations
        "SA", "SAS", "SASU", "SARL", "EURL", "SNC", "SCI", "SCA", "SCS", "SCOP", "SELARL", "SELAS",
        "SELAFA", "SEL", "GIE", "EI", "EIRL", "ETS", "ETABLISSEMENTS", "STE", "SOCIETE", "CIE",
        # small words and civilities
        "ET", "DE", "DU", "DES", "LA", "LE", "LES", "MR", "MME", "MLLE",
        # what some banks put before the payer's name
        "VIR", "VIREMENT", "SEPA", "RECU", "EMIS", "INST", "INSTANTANE", "PAR", "ORDRE", "FAVEUR",
    }
)  # fmt: skip


def name_key(name: str) -> str:
    return " ".join(t for t in tokens(name) if t not in _NAME_NOISE and len(t) > 1)


class NameIndex:
    """Debtor legal names, found back from what a bank shows as the payer's name."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self._keys: dict[str, str] = {}
        self._exact: dict[str, list[str]] = {}
        self._by_token: dict[str, list[str]] = {}
        for debtor_id, legal_name in names.items():
            key = name_key(legal_name)
            if not key:
                continue
            self._keys[debtor_id] = key
            self._exact.setdefault(key, []).append(debtor_id)
            for token in set(key.split()):
                if len(token) >= 3:
                    self._by_token.setdefault(token, []).append(debtor_id)
        self._cache: dict[str, tuple[str, ...]] = {}

    def find(self, name: str | None) -> str | None:
        """The one debtor this payer name designates, or None."""
        found = self.candidates(name)
        return found[0] if len(found) == 1 else None

    def candidates(self, name: str | None) -> tuple[str, ...]:
        """The debtors this payer name may designate (at most MAX_NAME_CANDIDATES): the
        same normalised name, else the close names tied for the best score."""
        if not name:
            return ()
        key = name_key(name)
        if len(key) < 3:
            return ()
        if key not in self._cache:
            self._cache[key] = self._candidates(key)
        return self._cache[key]

    def _candidates(self, key: str) -> tuple[str, ...]:
        exact = self._exact.get(key)
        if exact is not None:
            return tuple(exact) if len(exact) <= MAX_NAME_CANDIDATES else ()
        votes: Counter[str] = Counter()
        for token in set(key.split()):
            debtors = self._by_token.get(token, ())
            if len(token) >= 3 and len(debtors) <= NAME_TOKEN_MAX_DEBTORS:
                votes.update(debtors)
        if not votes:
            return ()
        top = max(votes.values())
        candidates = sorted(d for d, v in votes.items() if v >= top - 1)[:50]
        scored = sorted(((self._score(key, self._keys[d]), d) for d in candidates), reverse=True)
        best = scored[0][0]
        if best < NAME_SCORE_MIN:
            return ()
        tied = tuple(d for score, d in scored if score > best - NAME_SCORE_MARGIN)
        return tied if len(tied) <= MAX_NAME_CANDIDATES else ()

    @staticmethod
    def _score(key: str, debtor_key: str) -> float:
        if len(key) >= 8 and debtor_key.startswith(key):
            return 0.95  # the bank truncated the name
        words, debtor_words = set(key.split()), set(debtor_key.split())
        if len(debtor_words) >= 2 and debtor_words <= words:
            return 0.92  # the bank added words (a city, an agency)
        matcher = SequenceMatcher(None, key, debtor_key, autojunk=False)
        if matcher.real_quick_ratio() < NAME_SCORE_MIN or matcher.quick_ratio() < NAME_SCORE_MIN:
            return 0.0
        return matcher.ratio()


def normalise_iban(iban: str | None) -> str | None:
    if not iban:
        return None
    value = "".join(iban.split()).upper()
    return value or None


# --- the matching itself (no database) ------------------------------------------------


@dataclass(slots=True)
class OpenInvoice:
    id: str
    debtor_id: str
    number: str
    currency: str
    due_date: date
    status: str
    due_cents: int  # still due; decreases as this run allocates
    loaded_due_cents: int = 0

    def __post_init__(self) -> None:
        self.loaded_due_cents = self.due_cents


@dataclass(slots=True)
class Credit:
    id: str
    amount_cents: int
    matched_cents: int  # allocated before this run
    currency: str
    booking_date: date
    counterparty_name: str | None = None
    counterparty_iban: str | None = None
    texts: tuple[str, ...] = ()  # structured reference first, then free texts
    payment_id: str | None = None  # the payment an earlier run or a manual match recorded
    allocated_invoice_ids: frozenset[str] = frozenset()
    allocations: dict[int, int] = field(default_factory=dict)  # invoice index -> cents, this run
    new_cents: int = 0
    rule: str | None = None
    references: list[list[int]] | None = None  # cached: candidate invoices per named number

    @property
    def remaining_cents(self) -> int:
        return self.amount_cents - self.matched_cents - self.new_cents


def find_sum(dues: Sequence[int], target: int) -> tuple[int, ...] | None:
    """Positions of 2 or 3 of ``dues`` adding up to ``target`` exactly, earliest first."""
    first: dict[int, int] = {}
    for position, due in enumerate(dues):
        first.setdefault(due, position)
    for j, due in enumerate(dues):
        i = first.get(target - due)
        if i is not None and i < j:
            return (i, j)
    for k in range(2, len(dues)):
        for j in range(1, k):
            i = first.get(target - dues[j] - dues[k])
            if i is not None and i < j:
                return (i, j, k)
    return None


class Matcher:
    """The matching rules over one company's open invoices, debtors and IBAN history."""

    def __init__(
        self,
        invoices: Sequence[OpenInvoice],
        debtor_names: Mapping[str, str],
        iban_history: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.invoices = invoices
        self._full: dict[str, list[int]] = {}
        self._core: dict[str, list[int]] = {}
        self._by_debtor: dict[str, list[int]] = {}
        for index, invoice in enumerate(invoices):
            full, core = invoice_keys(invoice.number)
            if full:
                self._full.setdefault(full, []).append(index)
            if core:
                self._core.setdefault(core, []).append(index)
            self._by_debtor.setdefault(invoice.debtor_id, []).append(index)
        self.names = NameIndex(debtor_names)
        self._ibans: dict[str, set[str]] = {}
        for iban, debtor_id in iban_history:
            key = normalise_iban(iban)
            if key:
                self._ibans.setdefault(key, set()).add(debtor_id)

    # -- the passes

    def run(self, credits: Sequence[Credit]) -> int:
        """Allocate ``credits`` (in the given order); returns the rounds it took."""
        for round_number in range(1, MAX_ROUNDS + 1):
            changed = False
            for credit in credits:
                if credit.remaining_cents > 0 and self._by_reference(credit):
                    changed = True
            for credit in credits:
                if credit.matched_cents == 0 and credit.new_cents == 0 and self._by_amount(credit):
                    changed = True
            if not changed:
                return round_number
        return MAX_ROUNDS

    def payers(self, credit: Credit) -> tuple[str, ...]:
        """The debtors the credit may come from: the one debtor its IBAN already paid for;
        else its name's candidates (narrowed by the IBAN's debtors when it paid for
        several, as a group treasury does)."""
        iban = normalise_iban(credit.counterparty_iban)
        known = self._ibans.get(iban, set()) if iban else set()
        if len(known) == 1:
            return tuple(known)
        named = self.names.candidates(credit.counterparty_name)
        if known:
            both = tuple(d for d in named if d in known)
            return both or tuple(sorted(known))[:MAX_NAME_CANDIDATES]
        return named

    def _references(self, credit: Credit) -> list[list[int]]:
        if credit.references is None:
            found: list[list[int]] = []
            seen: set[tuple[int, ...]] = set()
            for source in credit.texts:
                if not source:
                    continue
                for value in self._reference_texts(source):
                    for group in self._scan(value):
                        key = tuple(group)
                        if key not in seen and len(found) < MAX_REFERENCES:
                            seen.add(key)
                            found.append(group)
            credit.references = found
        return credit.references

    @staticmethod
    def _reference_texts(source: str) -> list[str]:
        whole = compact(source)
        match = _RF.match(whole)
        return [whole[4:], source] if match else [source]  # RF creditor reference: RFkk + ref

    def _scan(self, value: str) -> list[list[int]]:
        """The invoices named in ``value``, in text order. Overlapping candidates are
        settled by strength: the longer key wins, then the full form over the form
        without its leading letters ("FACT 2026-0012" is not "2026" + "0012")."""
        hits: list[tuple[int, int, int, int, list[int]]] = []
        for start, end, joined in text_windows(value):
            found = self._full.get(joined)
            if found:
                hits.append((len(joined), 1, start, end, found))
                continue
            core = joined.lstrip(_LETTERS)
            found = self._core.get(core)
            if found:
                hits.append((len(core), 0, start, end, found))
        hits.sort(key=lambda h: (-h[0], -h[1], h[2]))
        taken: list[tuple[int, int, list[int]]] = []
        for _, _, start, end, found in hits:
            if all(end < s or start > e for s, e, _ in taken):
                taken.append((start, end, found))
        return [found for _, _, found in sorted(taken, key=lambda t: t[0])]

    def _by_reference(self, credit: Credit) -> bool:
        groups = self._references(credit)
        if not groups:
            return False
        payers: tuple[str, ...] | None = None
        chosen: list[int] = []
        for group in groups:
            live = [
                i
                for i in group
                if self.invoices[i].due_cents > 0
                and self.invoices[i].currency == credit.currency
                and self.invoices[i].id not in credit.allocated_invoice_ids
            ]
            if len(live) > 1:
                payers = self.payers(credit) if payers is None else payers
                live = [i for i in live if self.invoices[i].debtor_id in payers] or live
            if len(live) > 1:
                live = [i for i in live if self.invoices[i].due_cents == credit.remaining_cents]
            if len(live) == 1 and live[0] not in chosen:
                chosen.append(live[0])
        if not chosen:
            return False
        chosen.sort(key=lambda i: (self.invoices[i].due_date, self.invoices[i].id))
        return self._allocate(credit, chosen, RULE_REFERENCE, partial=True)

    def _by_amount(self, credit: Credit) -> bool:
        proposals = [p for d in self.payers(credit) if (p := self._proposal(credit, d)) is not None]
        if len(proposals) != 1:
            return False  # no payer, nothing fits, or several payers fit: the back-office decides
        chosen, rule = proposals[0]
        return self._allocate(credit, chosen, rule)

    def _proposal(self, credit: Credit, debtor_id: str) -> tuple[list[int], str] | None:
        """The oldest invoice of the debtor due exactly the credit's amount; else its oldest
        invoices adding up to it; else 2 or 3 of its 20 oldest adding up to it."""
        target = credit.remaining_cents
        open_ = [
            i
            for i in self._by_debtor.get(debtor_id, ())
            if self.invoices[i].due_cents > 0
            and self.invoices[i].status != _DISPUTED
            and self.invoices[i].currency == credit.currency
        ]
        for i in open_:
            if self.invoices[i].due_cents == target:
                return [i], RULE_AMOUNT_PAYER
        running = 0
        for count, i in enumerate(open_, start=1):
            running += self.invoices[i].due_cents
            if running >= target:
                if running == target and count > 1:
                    return open_[:count], RULE_SEVERAL_INVOICES
                break
        oldest = open_[:SUBSET_WINDOW]
        positions = find_sum([self.invoices[i].due_cents for i in oldest], target)
        if positions is not None:
            return [oldest[p] for p in positions], RULE_SEVERAL_INVOICES
        return None

    def _allocate(self, credit: Credit, chosen: Sequence[int], rule: str, *, partial: bool = False) -> bool:
        left = credit.remaining_cents
        debtors: set[str] = set()
        for i in chosen:
            if left <= 0:
                break
            invoice = self.invoices[i]
            cents = min(invoice.due_cents, left)
            invariant(partial or cents == invoice.due_cents, "amount rules pay invoices in full")
            if cents <= 0:
                continue
            invoice.due_cents -= cents
            credit.allocations[i] = credit.allocations.get(i, 0) + cents
            credit.new_cents += cents
            left -= cents
            debtors.add(invoice.debtor_id)
        if not debtors:
            return False
        credit.rule = credit.rule or rule
        iban = normalise_iban(credit.counterparty_iban)
        if iban:
            self._ibans.setdefault(iban, set()).update(debtors)
        invariant(credit.remaining_cents >= 0, "a credit is never over-allocated")
        return True


# --- the run against the database ------------------------------------------------------


@dataclass
class ReconciliationStats:
    company_id: str
    credits_examined: int = 0
    credits_newly_allocated: int = 0
    matched: int = 0  # examined credits now fully allocated
    partially_matched: int = 0  # examined credits with a surplus or a part still unexplained
    unmatched: int = 0  # examined credits left for the back-office queue
    payments_created: int = 0
    allocations_created: int = 0
    allocated_cents: dict[str, int] = field(default_factory=dict)  # per currency
    invoices_updated: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)  # credits per deciding rule
    skipped_concurrent: int = 0  # credits left for the next run: their rows changed meanwhile
    rounds: int = 0
    booked: int = 0  # credits the books already record (linked to their bank line in the FEC)
    cashed: int = 0  # credits an e-invoicing "cashed" status already recorded (linked to its payment)


def lock_company(session: Session, company_id: str) -> None:
    """Serialise reconciliation work per company until the transaction ends."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"escompte:reconciliation:{company_id}"},
    )


BOOKED_WINDOW_DAYS = 5
_LINK_BOOKED = text(
    """
    WITH candidates AS (
        SELECT t.id AS tx, b.id AS line, abs(t.booking_date - b.entry_date) AS distance
        FROM bank_transactions t
        JOIN book_lines b
          ON b.company_id = t.company_id AND b.account_num LIKE '512%'
         AND b.debit_cents = t.amount_cents
         AND b.entry_date BETWEEN t.booking_date - :window AND t.booking_date + :window
        WHERE t.company_id = :company AND t.amount_cents > 0 AND t.match_status = 'unmatched'
          AND t.book_line_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM bank_transactions used WHERE used.book_line_id = b.id)
          AND EXISTS (
              SELECT 1 FROM book_lines settled
              WHERE settled.company_id = b.company_id AND settled.journal_code = b.journal_code
                AND settled.entry_num = b.entry_num AND settled.account_num LIKE '411%'
                AND coalesce(settled.lettering, '') <> '')
    ), ranked AS (
        SELECT tx, line,
               row_number() OVER (PARTITION BY tx ORDER BY distance, line) AS for_tx,
               row_number() OVER (PARTITION BY line ORDER BY distance, tx) AS for_line
        FROM candidates
    )
    UPDATE bank_transactions t
    SET book_line_id = r.line, match_status = 'matched', matched_cents = t.amount_cents
    FROM ranked r
    WHERE t.id = r.tx AND r.for_tx = 1 AND r.for_line = 1
    """
)


def link_booked_credits(session: Session, company_id: str) -> int:
    """Credits the SME's books already record — a bank line (512 debit) of the same
    amount within a few days, in an entry that settled invoices by lettering — are the
    money the books' payments came from: link them and take them off the queue rather
    than paying an invoice twice. Mutually closest pairs first, one line per credit."""
    return _link_in_rounds(session, _LINK_BOOKED, {"company": company_id, "window": BOOKED_WINDOW_DAYS})


def _link_in_rounds(session: Session, statement: Any, params: dict[str, Any]) -> int:
    """Run a linking statement until it links nothing (at most 5 rounds): each round
    pairs the mutually closest credit and record, so a pair left out by a closer one is
    taken in the next. Returns the credits linked."""
    linked = 0
    for _ in range(5):
        count = int(session.execute(statement, params).rowcount or 0)  # type: ignore[attr-defined]
        linked += count
        if count == 0:
            break
    return linked


_LINK_CASHED = text(
    """
    WITH candidates AS (
        SELECT t.id AS tx, p.id AS payment, abs(t.booking_date - p.paid_on) AS distance
        FROM bank_transactions t
        JOIN payments p
          ON p.company_id = t.company_id AND p.source = 'lifecycle' AND p.bank_transaction_id IS NULL
         AND p.amount_cents = t.amount_cents AND p.currency = t.currency
         AND p.paid_on BETWEEN t.booking_date - :window AND t.booking_date + :window
        JOIN payment_allocations a ON a.payment_id = p.id
        JOIN invoices i ON i.id = a.invoice_id
        WHERE t.company_id = :company AND t.amount_cents > 0 AND t.match_status = 'unmatched'
          AND t.book_line_id IS NULL
          AND length(regexp_replace(upper(i.number), '[^A-Z0-9]', '', 'g')) >= :min_key
          AND strpos(
                regexp_replace(
                    upper(concat_ws(' ', t.structured_reference, t.remittance_info, t.end_to_end_id)),
                    '[^A-Z0-9]', '', 'g'),
                regexp_replace(upper(i.number), '[^A-Z0-9]', '', 'g')) > 0
          AND NOT EXISTS (SELECT 1 FROM payments used WHERE used.bank_transaction_id = t.id)
    ), ranked AS (
        SELECT tx, payment,
               row_number() OVER (PARTITION BY tx ORDER BY distance, payment) AS for_tx,
               row_number() OVER (PARTITION BY payment ORDER BY distance, tx) AS for_payment
        FROM candidates
    ), linked AS (
        UPDATE payments p SET bank_transaction_id = r.tx
        FROM ranked r
        WHERE p.id = r.payment AND r.for_tx = 1 AND r.for_payment = 1
        RETURNING p.bank_transaction_id AS tx
    )
    UPDATE bank_transactions t
    SET match_status = 'matched', matched_cents = t.amount_cents
    FROM linked l
    WHERE t.id = l.tx
    """
)


def link_cashed_credits(session: Session, company_id: str) -> int:
    """Credits whose money an e-invoicing "cashed" status already recorded — the same
    amount within a few days, and the credit's reference names the cashed invoice — are
    linked to that payment (``payments.bank_transaction_id``) and taken off the queue,
    never allocated a second time. An amount alone links nothing."""
    return _link_in_rounds(
        session, _LINK_CASHED, {"company": company_id, "window": BOOKED_WINDOW_DAYS, "min_key": MIN_KEY_CHARS}
    )


def reconcile(
    session: Session,
    clock: Clock,
    company_id: str,
    *,
    transaction_ids: Sequence[str] | None = None,
) -> ReconciliationStats:
    """Match the company's open bank credits (or only ``transaction_ids``) with its open
    receivables and record the payments. Flushes, never commits."""
    stats = ReconciliationStats(company_id=company_id)
    session.flush()
    lock_company(session, company_id)
    stats.booked = link_booked_credits(session, company_id)
    stats.cashed = link_cashed_credits(session, company_id)
    credits = _load_credits(session, company_id, transaction_ids)
    stats.credits_examined = len(credits)
    if not credits:
        return stats
    invoices = _load_open_invoices(session, company_id)
    matcher = Matcher(
        invoices, _load_debtor_names(session, company_id), _load_iban_history(session, company_id)
    )
    stats.rounds = matcher.run(credits)
    _write(session, clock, company_id, credits, invoices, stats)
    return stats


def _load_credits(session: Session, company_id: str, transaction_ids: Sequence[str] | None) -> list[Credit]:
    sql = """
        SELECT id, amount_cents, matched_cents, currency, booking_date, counterparty_name,
               counterparty_iban, structured_reference, remittance_info, end_to_end_id
        FROM bank_transactions
        WHERE company_id = :company AND amount_cents > 0
          AND match_status IN ('unmatched', 'partially_matched')
    """
    params: dict[str, Any] = {"company": company_id}
    if transaction_ids is not None:
        sql += " AND id = ANY(:ids)"
        params["ids"] = list(transaction_ids)
    rows = session.execute(text(sql + " ORDER BY booking_date, id"), params).all()
    credits = [
        Credit(
            id=r[0],
            amount_cents=r[1],
            matched_cents=r[2],
            currency=r[3],
            booking_date=r[4],
            counterparty_name=r[5],
            counterparty_iban=r[6],
            texts=tuple(t for t in (r[7], r[8], r[9]) if t),
        )
        for r in rows
    ]
    earlier = {c.id: c for c in credits if c.matched_cents > 0}
    if earlier:
        for ref, payment_id, invoice_ids in session.execute(
            text(
                """
                SELECT p.source_ref, p.id, array_remove(array_agg(a.invoice_id), NULL)
                FROM payments p LEFT JOIN payment_allocations a ON a.payment_id = p.id
                WHERE p.company_id = :company AND p.source = 'bank' AND p.source_ref = ANY(:refs)
                GROUP BY p.source_ref, p.id
                """
            ),
            {"company": company_id, "refs": list(earlier)},
        ):
            earlier[ref].payment_id = payment_id
            earlier[ref].allocated_invoice_ids = frozenset(invoice_ids)
    return credits


def _load_open_invoices(session: Session, company_id: str) -> list[OpenInvoice]:
    rows = session.execute(
        text(
            """
            SELECT id, debtor_id, number, currency, due_date, status, amount_cents - amount_paid_cents
            FROM invoices
            WHERE company_id = :company AND kind = 'receivable' AND document_type = 'invoice'
              AND status IN ('open', 'partially_paid', 'disputed') AND amount_paid_cents < amount_cents
            ORDER BY due_date, id
            """
        ),
        {"company": company_id},
    ).all()
    return [OpenInvoice(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


def _load_debtor_names(session: Session, company_id: str) -> dict[str, str]:
    rows = session.execute(
        text("SELECT id, legal_name FROM debtors WHERE company_id = :company"), {"company": company_id}
    ).all()
    return {r[0]: r[1] for r in rows}


def _load_iban_history(session: Session, company_id: str) -> list[tuple[str, str]]:
    rows = session.execute(
        text(
            """
            SELECT DISTINCT bt.counterparty_iban, i.debtor_id
            FROM payments p
            JOIN bank_transactions bt ON bt.id = p.source_ref
            JOIN payment_allocations a ON a.payment_id = p.id
            JOIN invoices i ON i.id = a.invoice_id
            WHERE p.company_id = :company AND p.source = 'bank' AND bt.company_id = :company
              AND bt.counterparty_iban IS NOT NULL
            """
        ),
        {"company": company_id},
    ).all()
    return [(r[0], r[1]) for r in rows]


def _write(
    session: Session,
    clock: Clock,
    company_id: str,
    credits: Sequence[Credit],
    invoices: Sequence[OpenInvoice],
    stats: ReconciliationStats,
) -> None:
    now = clock.now()
    allocated = [c for c in credits if c.allocations]
    if allocated:
        allocated = _still_current(session, allocated, invoices, stats)
    new = [c for c in allocated if c.payment_id is None]
    if new:
        inserted: dict[str, str] = dict(
            session.execute(
                text(
                    """
                    INSERT INTO payments (id, company_id, source, source_ref, bank_transaction_id,
                                          amount_cents, currency, paid_on, payer_name, created_at)
                    SELECT u.id, :company, 'bank', u.ref, u.ref, u.amount, u.currency, u.paid_on,
                           u.payer, :now
                    FROM unnest(CAST(:ids AS text[]), CAST(:refs AS text[]), CAST(:amounts AS bigint[]),
                                CAST(:currencies AS text[]), CAST(:paid_on AS date[]),
                                CAST(:payers AS text[])) AS u(id, ref, amount, currency, paid_on, payer)
                    ON CONFLICT (company_id, source, source_ref) DO NOTHING
                    RETURNING source_ref, id
                    """
                ),
                {
                    "company": company_id,
                    "now": now,
                    "ids": [new_id("pay") for _ in new],
                    "refs": [c.id for c in new],
                    "amounts": [c.amount_cents for c in new],
                    "currencies": [c.currency for c in new],
                    "paid_on": [c.booking_date for c in new],
                    "payers": [(c.counterparty_name or None) and c.counterparty_name[:200] for c in new],
                },
            ).all()
        )
        stats.payments_created = len(inserted)
        # A payment already recorded for the credit outside reconciliation: left alone,
        # as record_payment does.
        stats.skipped_concurrent += len(new) - len(inserted)
        allocated = [c for c in allocated if c.payment_id is not None or c.id in inserted]
        for credit in allocated:
            credit.payment_id = credit.payment_id or inserted[credit.id]
    rows = [(c.payment_id, invoices[i].id, cents) for c in allocated for i, cents in c.allocations.items()]
    if rows:
        session.execute(
            text(
                """
                INSERT INTO payment_allocations (payment_id, invoice_id, amount_cents, created_at)
                SELECT u.payment_id, u.invoice_id, u.amount, :now
                FROM unnest(CAST(:payments AS text[]), CAST(:invoices AS text[]), CAST(:amounts AS bigint[]))
                     AS u(payment_id, invoice_id, amount)
                """
            ),
            {
                "now": now,
                "payments": [r[0] for r in rows],
                "invoices": [r[1] for r in rows],
                "amounts": [r[2] for r in rows],
            },
        )
    stats.allocations_created = len(rows)
    stats.credits_newly_allocated = len(allocated)
    for credit in allocated:
        stats.allocated_cents[credit.currency] = (
            stats.allocated_cents.get(credit.currency, 0) + credit.new_cents
        )
        if credit.rule:
            stats.by_rule[credit.rule] = stats.by_rule.get(credit.rule, 0) + 1
    touched_invoices = {invoices[i].id for c in allocated for i in c.allocations}
    stats.invoices_updated = refresh_invoices(session, touched_invoices, now)
    statuses = refresh_bank_transactions(session, company_id, [c.id for c in allocated])
    for credit in credits:
        status = statuses.get(credit.id)
        if status is None:
            status = MatchStatus.PARTIALLY_MATCHED if credit.matched_cents else MatchStatus.UNMATCHED
        if status is MatchStatus.MATCHED:
            stats.matched += 1
        elif status is MatchStatus.PARTIALLY_MATCHED:
            stats.partially_matched += 1
        else:
            stats.unmatched += 1
    if allocated:
        debtors = {invoices[i].debtor_id for c in allocated for i in c.allocations}
        compute_debtor_behaviour(session, clock, company_id, debtor_ids=sorted(debtors))


def _still_current(
    session: Session, allocated: list[Credit], invoices: Sequence[OpenInvoice], stats: ReconciliationStats
) -> list[Credit]:
    """Lock the rows about to change and keep only credits whose invoices and own state
    are as read: anything changed meanwhile waits for the next run."""
    invoice_ids = sorted({invoices[i].id for c in allocated for i in c.allocations})
    current = {
        r[0]: (r[1], r[2])
        for r in session.execute(
            text(
                """
                SELECT id, amount_cents - amount_paid_cents, status FROM invoices
                WHERE id = ANY(:ids) ORDER BY id FOR UPDATE
                """
            ),
            {"ids": invoice_ids},
        )
    }
    loaded = {
        invoices[i].id: (invoices[i].loaded_due_cents, invoices[i].status)
        for c in allocated
        for i in c.allocations
    }
    changed = {invoice_id for invoice_id, state in loaded.items() if current.get(invoice_id) != state}
    credit_state = {
        r[0]: (r[1], r[2])
        for r in session.execute(
            text(
                """
                SELECT id, matched_cents, match_status FROM bank_transactions
                WHERE id = ANY(:ids) ORDER BY id FOR UPDATE
                """
            ),
            {"ids": sorted(c.id for c in allocated)},
        )
    }
    kept = []
    for credit in allocated:
        state = credit_state.get(credit.id)
        fresh = state is not None and state[0] == credit.matched_cents and state[1] in _QUEUE_STATUSES
        if fresh and not any(invoices[i].id in changed for i in credit.allocations):
            kept.append(credit)
        else:
            stats.skipped_concurrent += 1
    return kept


def refresh_bank_transactions(
    session: Session, company_id: str, transaction_ids: Sequence[str]
) -> dict[str, MatchStatus]:
    """Derive each credit's matched amount and status from its payment's allocations."""
    if not transaction_ids:
        return {}
    rows = session.execute(
        text(
            """
            UPDATE bank_transactions bt
            SET matched_cents = s.total,
                match_status = CASE WHEN s.total >= bt.amount_cents THEN 'matched'
                                    WHEN s.total > 0 THEN 'partially_matched'
                                    ELSE 'unmatched' END
            FROM (
                SELECT p.source_ref AS id, COALESCE(SUM(a.amount_cents), 0) AS total
                FROM payments p LEFT JOIN payment_allocations a ON a.payment_id = p.id
                WHERE p.company_id = :company AND p.source = 'bank' AND p.source_ref = ANY(:ids)
                GROUP BY p.source_ref
            ) s
            WHERE bt.id = s.id AND bt.company_id = :company AND bt.amount_cents > 0
            RETURNING bt.id, bt.match_status
            """
        ),
        {"company": company_id, "ids": list(transaction_ids)},
    ).all()
    return {r[0]: MatchStatus(r[1]) for r in rows}


# --- the back-office queue and manual matching ------------------------------------------------


def list_unmatched(
    session: Session,
    principal: Principal,
    *,
    company_id: str | None,
    limit: int,
    starting_after: str | None,
) -> list[BankTransaction]:
    """Credits waiting for the back-office, newest first (keyset on id)."""
    query = select(BankTransaction).where(
        visible_company_ids(principal, BankTransaction.company_id),
        BankTransaction.amount_cents > 0,
        BankTransaction.match_status.in_(_QUEUE_STATUSES),
    )
    if company_id:
        query = query.where(BankTransaction.company_id == company_id)
    if starting_after:
        query = query.where(BankTransaction.id < starting_after)
    return list(session.execute(query.order_by(BankTransaction.id.desc()).limit(limit)).scalars())


def allocations_of(
    session: Session, transactions: Sequence[BankTransaction]
) -> dict[str, list[tuple[str, int]]]:
    """(invoice id, cents) allocated from each bank transaction's payment."""
    found: dict[str, list[tuple[str, int]]] = {t.id: [] for t in transactions}
    if not transactions:
        return found
    rows = session.execute(
        select(Payment.source_ref, PaymentAllocation.invoice_id, PaymentAllocation.amount_cents)
        .join(PaymentAllocation, PaymentAllocation.payment_id == Payment.id)
        .where(
            Payment.company_id.in_({t.company_id for t in transactions}),
            Payment.source == PaymentSource.BANK,
            Payment.source_ref.in_(list(found)),
        )
        .order_by(PaymentAllocation.id)
    ).all()
    for ref, invoice_id, cents in rows:
        if ref in found:
            found[ref].append((invoice_id, cents))
    return found


def get_transaction(session: Session, principal: Principal, transaction_id: str) -> BankTransaction:
    txn = session.execute(
        select(BankTransaction).where(
            BankTransaction.id == transaction_id, visible_company_ids(principal, BankTransaction.company_id)
        )
    ).scalar_one_or_none()
    if txn is None:
        raise NotFound(f"No such bank transaction: {transaction_id}")
    return txn


@dataclass(frozen=True)
class ManualAllocation:
    invoice_id: str
    amount_cents: int
    currency: str


def match_manually(
    session: Session,
    clock: Clock,
    principal: Principal,
    transaction_id: str,
    allocations: Sequence[ManualAllocation],
) -> BankTransaction:
    """Allocate a credit to invoices chosen by a person (back-office or the SME).

    Each amount at most the invoice's amount due, their sum at most what remains of
    the credit, every invoice a receivable of the credit's company in its currency."""
    txn = get_transaction(session, principal, transaction_id)
    lock_company(session, txn.company_id)
    session.refresh(txn, with_for_update=True)
    if txn.amount_cents <= 0:
        raise Conflict(f"Bank transaction {txn.id} is a debit: only credits pay receivables.")
    if txn.match_status is MatchStatus.MATCHED:
        raise Conflict(
            f"Bank transaction {txn.id} is already fully matched.",
            extra={"match_status": txn.match_status.value},
        )
    invariant(0 < len(allocations) <= MAX_MANUAL_ALLOCATIONS, "allocations are bounded by the schema")
    wanted = sorted({a.invoice_id for a in allocations})
    found = {
        i.id: i
        for i in session.execute(
            select(Invoice)
            .where(Invoice.id.in_(wanted), visible_company_ids(principal, Invoice.company_id))
            .order_by(Invoice.id)
            .with_for_update(of=Invoice)
        ).scalars()
    }
    errors: list[FieldError] = []
    seen: set[str] = set()
    for k, a in enumerate(allocations):
        where = f"allocations.{k}"
        invoice = found.get(a.invoice_id)
        if invoice is None:
            raise NotFound(f"No such invoice: {a.invoice_id}", [FieldError(f"{where}.invoice", "not found")])
        if invoice.status in (InvoiceStatus.CANCELLED, InvoiceStatus.PAID):
            raise Conflict(
                f"Invoice {invoice.id} is {invoice.status.value}: it takes no payment.",
                [FieldError(f"{where}.invoice", f"invoice is {invoice.status.value}", code="state")],
            )
        if a.invoice_id in seen:
            errors.append(FieldError(f"{where}.invoice", "named twice", code="duplicate"))
        seen.add(a.invoice_id)
        if invoice.company_id != txn.company_id:
            errors.append(FieldError(f"{where}.invoice", f"is not an invoice of {txn.company_id}"))
        elif invoice.kind is not InvoiceKind.RECEIVABLE:
            errors.append(FieldError(f"{where}.invoice", "is not a receivable"))
        if a.currency != txn.currency or a.currency != invoice.currency:
            errors.append(
                FieldError(f"{where}.amount.currency", f"must be {txn.currency}, the credit's currency")
            )
        due = invoice.amount_cents - invoice.amount_paid_cents
        if a.amount_cents > due:
            errors.append(FieldError(f"{where}.amount.amount", f"exceeds the invoice's amount due ({due})"))
    remaining = txn.amount_cents - txn.matched_cents
    total = sum(a.amount_cents for a in allocations)
    if total > remaining:
        errors.append(
            FieldError("allocations", f"add up to {total}, more than the credit's remaining {remaining}")
        )
    if errors:
        raise ValidationFailed("These allocations cannot be recorded.", errors)
    now = clock.now()
    payment_id = session.execute(
        select(Payment.id).where(
            Payment.company_id == txn.company_id,
            Payment.source == PaymentSource.BANK,
            Payment.source_ref == txn.id,
        )
    ).scalar_one_or_none()
    if payment_id is None:
        payment = record_payment(
            session,
            now,
            company_id=txn.company_id,
            source=PaymentSource.BANK,
            source_ref=txn.id,
            amount_cents=txn.amount_cents,
            currency=txn.currency,
            paid_on=txn.booking_date,
            allocations=[Allocation(a.invoice_id, a.amount_cents) for a in allocations],
            payer_name=txn.counterparty_name,
            bank_transaction_id=txn.id,
        )
        invariant(payment is not None, "no payment exists for this credit")
    else:
        stmt = insert(PaymentAllocation).values(
            [
                {
                    "payment_id": payment_id,
                    "invoice_id": a.invoice_id,
                    "amount_cents": a.amount_cents,
                    "created_at": now,
                }
                for a in allocations
            ]
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["payment_id", "invoice_id"],
                set_={"amount_cents": PaymentAllocation.amount_cents + stmt.excluded.amount_cents},
            )
        )
    refresh_invoices(session, wanted, now)
    refresh_bank_transactions(session, txn.company_id, [txn.id])
    compute_debtor_behaviour(
        session, clock, txn.company_id, debtor_ids=sorted({found[i].debtor_id for i in wanted})
    )
    session.refresh(txn)
    return txn
