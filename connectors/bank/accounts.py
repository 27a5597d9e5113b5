"""The one place that stores bank data: accounts, end-of-day balances and transactions.

Every format (camt.053, OFX, CSV, aggregator pushes) reads its lines into ``BankLine``
values and hands them to a ``BankWriter``, which

- finds or creates the company's ``BankAccount`` (IBAN checked with schwifty);
- gives each line a fingerprint: the bank's or aggregator's id when there is one,
  prefixed by its kind (``camt:<AcctSvcrRef>``, ``ofx:<FITID>``, ``csv:<reference>``,
  ``agg:<id>``), else the SHA-256 of (booking date, amount, currency, counterparty IBAN
  and name, remittance information, structured reference, end-to-end id) plus the
  line's occurrence number among identical lines of the same file. Importing a
  statement again, or one that overlaps an earlier one, therefore changes nothing;
- streams the lines with COPY into a temporary staging table as the file is read, then
  inserts them in one ``INSERT … ON CONFLICT DO NOTHING`` (deduplicated on
  ``(bank_account_id, fingerprint)``), inside the caller's transaction: when the file
  is refused, the caller's rollback removes everything;
- recognises a movement already stored from another source (the same account read from
  camt.053 and from OFX, or pushed by an aggregator too): a new line whose account,
  booking date and signed amount are those of a stored line that this source has not
  reported yet is kept as a ``BankLineAlias`` of that line, not stored twice. Lines of
  one key pair in order (file order, and stored lines oldest first); a pair that is
  alone in its key completes an unmatched stored line with what it lacks (counterparty,
  references, remittance text). Imports into one
  account take turns (a transaction-scoped advisory lock), so two sources read at the
  same time pair the same way;
- upserts balances, one per (account, date, kind).

Amounts are signed integer minor units (credits positive, debits negative), parsed from
the text of the file, never through floats. New credits are ``unmatched`` (waiting for
reconciliation), debits ``ignored``.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy import exists, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from escompte.connectors.base import ImportOutcome
from escompte.errors import invariant
from escompte.models import BankAccount, BankBalance, BankTransaction

FINGERPRINT_MAX = 64  # bank_transactions.fingerprint
EXTERNAL_ID_MAX = 120  # bank_transactions.external_id
NAME_MAX = 200
REMITTANCE_MAX = 2000
REFERENCE_MAX = 64  # structured_reference, end_to_end_id
BANK_CODE_MAX = 40
BALANCE_KIND_MAX = 8
# Lines per batch streamed to PostgreSQL. Small batches keep the connection free for the
# reads of the file (which may come through the same connection) most of the time.
STAGE_FLUSH_ROWS = 2000
DATE_MIN = date(1990, 1, 1)
DATE_MAX = date(2100, 12, 31)

# ISO 4217 minor units, where they are not 2.
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF"), 0),
    **dict.fromkeys(("UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class BankDataError(ValueError):
    """A value of the file cannot be stored; the message says why (the caller says where)."""


# --- values -----------------------------------------------------------------------------


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def check_currency(value: str) -> str:
    if not _CURRENCY.match(value):
        raise BankDataError(f"currency {value!r} is not an ISO 4217 code (three capital letters)")
    return value


def parse_amount(value: str, currency: str, *, decimal_mark: str = ".") -> int:
    """``"1234.56"`` → 123456 minor units. Signs are the caller's business (a leading
    ``-`` is accepted and kept). No floats: the digits are read as they are written."""
    raw = value.strip()
    negative = raw.startswith("-")
    if negative or raw.startswith("+"):
        raw = raw[1:]
    whole, mark, fraction = raw.partition(decimal_mark)
    digits = minor_units(currency)
    if (
        not whole.isdigit()
        or not whole.isascii()
        or (mark and not (fraction.isdigit() and fraction.isascii()))
    ):
        raise BankDataError(f"amount {value!r} is not a decimal number")
    if len(fraction) > digits:
        if fraction[digits:].strip("0"):
            raise BankDataError(f"amount {value!r} has more than {digits} decimals for {currency}")
        fraction = fraction[:digits]
    cents = int(whole + fraction.ljust(digits, "0"))  # the digits as written, the mark moved
    return -cents if negative else cents


def check_date(value: date) -> date:
    if not DATE_MIN <= value <= DATE_MAX:
        raise BankDataError(f"date {value.isoformat()} is not plausible for a bank statement")
    return value


@lru_cache(maxsize=65_536)
def normalize_iban(value: str) -> str:
    """The IBAN in compact form; BankDataError when schwifty does not accept it."""
    try:
        return str(IBAN(value).compact)
    except (SchwiftyException, ValueError) as exc:
        raise BankDataError(f"{value!r} is not a valid IBAN ({exc})") from None


_IBAN_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}$")


def reported_iban(value: str) -> str | None:
    """A counterparty's account as a bank statement reports it: the IBAN in compact form,
    or, when it fails the IBAN checks, what the bank wrote (compacted) if it has an
    IBAN's shape, else None. The bank moved the money whatever the counterparty's account
    looks like, so a statement is not refused for it; a malformed account just never
    matches a customer's IBAN."""
    try:
        return normalize_iban(value)
    except BankDataError:
        compact = re.sub(r"\s+", "", value).upper()
        return compact if _IBAN_SHAPE.match(compact) else None


def clean_text(value: str | None, max_length: int) -> str | None:
    """Whitespace collapsed (line breaks included), None when empty, cut to ``max_length``."""
    if value is None:
        return None
    cleaned = " ".join(value.split())
    return cleaned[:max_length] or None


@dataclass(slots=True)
class BankLine:
    """One booked transaction as read from a file or a push. ``amount_cents`` is signed."""

    booking_date: date
    amount_cents: int
    currency: str
    value_date: date | None = None
    counterparty_name: str | None = None
    counterparty_iban: str | None = None
    remittance_info: str | None = None
    structured_reference: str | None = None
    end_to_end_id: str | None = None
    bank_code: str | None = None
    external_id: str | None = None  # the bank's or aggregator's own id, if any


@dataclass(frozen=True, slots=True)
class AccountRef:
    id: str
    iban: str
    currency: str
    created: bool


@dataclass
class StoreResult:
    created: int = 0
    unchanged: int = 0
    accounts_created: int = 0
    balances_created: int = 0
    balances_updated: int = 0
    balances_unchanged: int = 0
    # new lines that are movements already stored from another source (kept as aliases)
    known_from_other_sources: int = 0
    # when asked for: the id of each stored line (new or already known) by (account id, fingerprint)
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)  # ids of every account touched


# --- ids --------------------------------------------------------------------------------

_RANDOM_BITS = 80
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


_PAIRS = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]  # 10 bits → 2 characters


class _IdBlock:
    """Ids in the format of ``escompte.ids.new_id`` (48-bit milliseconds then 80 random
    bits), made for bulk: one timestamp per block and consecutive low bits, so the ids of
    one file sort in the file's order."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._head = ""  # prefix, time and the high random characters
        self._high = -1
        self._next = 0
        self._left = 0

    def _refill(self) -> None:
        self._time = f"{self._prefix}_{_base32(time.time_ns() // 1_000_000, 10)}"
        self._left = 1_000_000
        self._high = -1
        # random low bits, with room below 2**80 for the block's consecutive ids
        self._next = int.from_bytes(os.urandom(10), "big") % (2**_RANDOM_BITS - self._left)

    def take(self) -> str:
        if self._left == 0:
            self._refill()
        self._left -= 1
        value = self._next
        self._next += 1
        high = value >> 20
        if high != self._high:  # 60 high bits (12 characters) change once per 2**20 ids
            self._high = high
            self._head = self._time + _base32(high, 12)
        return self._head + _PAIRS[(value >> 10) & 1023] + _PAIRS[value & 1023]


# --- the writer -------------------------------------------------------------------------


def find_or_create_account(
    session: Session,
    now: datetime,
    *,
    company_id: str,
    iban: str,
    currency: str,
    name: str | None = None,
    bic: str | None = None,
) -> AccountRef:
    """The company's account with this IBAN, created when new. BankDataError when the
    IBAN is invalid or the account is held in another currency."""
    compact = normalize_iban(iban)
    check_currency(currency)
    name = clean_text(name, NAME_MAX)
    bic = clean_text(bic, 11)
    new_id = _IdBlock("bac").take()
    created_id = session.execute(
        insert(BankAccount)
        .values(
            id=new_id,
            company_id=company_id,
            iban=compact,
            bic=bic,
            name=name,
            currency=currency,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["company_id", "iban"])
        .returning(BankAccount.id)
    ).scalar_one_or_none()
    if created_id is not None:
        return AccountRef(created_id, compact, currency, created=True)
    row = session.execute(
        select(BankAccount.id, BankAccount.currency, BankAccount.name, BankAccount.bic).where(
            BankAccount.company_id == company_id, BankAccount.iban == compact
        )
    ).one()
    if row.currency != currency:
        raise BankDataError(f"account {compact} is held in {row.currency}, not {currency}")
    fill = {k: v for k, v in (("name", name), ("bic", bic)) if v and getattr(row, k) is None}
    if fill:
        session.execute(update(BankAccount).where(BankAccount.id == row.id).values(**fill))
    return AccountRef(row.id, compact, row.currency, created=False)


def _copy_field(value: str | None) -> str:
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


_COPY_STAGE = (
    "COPY bank_lines_stage (seq, id, bank_account_id, fingerprint, external_id, booking_date, "
    "value_date, amount_cents, currency, counterparty_name, counterparty_iban, remittance_info, "
    "structured_reference, end_to_end_id, bank_code) FROM STDIN"
)


_CREATE_STAGE = (
    "CREATE TEMP TABLE bank_lines_stage (seq integer, id text, bank_account_id text, fingerprint text, "
    "external_id text, booking_date date, value_date date, amount_cents bigint, currency text, "
    "counterparty_name text, counterparty_iban text, remittance_info text, structured_reference text, "
    "end_to_end_id text, bank_code text) ON COMMIT DROP"
)
_INSERT_FROM_STAGE = """
    WITH inserted AS (
        INSERT INTO bank_transactions (
            id, company_id, bank_account_id, import_id, external_id, fingerprint, source,
            booking_date, value_date, amount_cents, currency, counterparty_name,
            counterparty_iban, remittance_info, structured_reference, end_to_end_id, bank_code,
            match_status, matched_cents, created_at)
        SELECT id, %(company)s, bank_account_id, %(import)s, external_id, fingerprint, %(source)s,
               booking_date, value_date, amount_cents, currency, counterparty_name,
               counterparty_iban, remittance_info, structured_reference, end_to_end_id, bank_code,
               CASE WHEN amount_cents > 0 THEN 'unmatched' ELSE 'ignored' END, 0, %(now)s
        FROM bank_lines_stage s
        {where}
        ORDER BY seq
        ON CONFLICT (bank_account_id, fingerprint) DO NOTHING
        RETURNING 1)
    SELECT count(*) FROM inserted
"""
_NOT_ALIASED = (
    "WHERE NOT EXISTS (SELECT 1 FROM bank_line_aliases a "
    "WHERE a.bank_account_id = s.bank_account_id AND a.fingerprint = s.fingerprint)"
)
# Staged lines of accounts that hold lines of other sources, not known by their own
# fingerprint, paired by rank within (account, booking date, amount) with the stored
# lines of other sources that this source has not reported yet. When a key holds one
# line on each side (no doubt which is which), a stored line still unmatched takes what
# the new one says and it does not: counterparty, structured reference, end-to-end id,
# and remittance text it lacks (an aggregator's short label completed by the statement).
_ALIAS_FROM_STAGE = """
    WITH fresh AS (
        SELECT s.bank_account_id, s.fingerprint, s.external_id, s.booking_date, s.amount_cents,
               s.counterparty_name, s.counterparty_iban, s.remittance_info,
               s.structured_reference, s.end_to_end_id,
               row_number() OVER key_order AS rank, count(*) OVER key_all AS n
        FROM bank_lines_stage s
        WHERE s.bank_account_id = ANY(%(accounts)s)
          AND NOT EXISTS (SELECT 1 FROM bank_transactions t
                          WHERE t.bank_account_id = s.bank_account_id AND t.fingerprint = s.fingerprint)
          AND NOT EXISTS (SELECT 1 FROM bank_line_aliases a
                          WHERE a.bank_account_id = s.bank_account_id AND a.fingerprint = s.fingerprint)
        WINDOW key_all AS (PARTITION BY s.bank_account_id, s.booking_date, s.amount_cents),
               key_order AS (key_all ORDER BY s.seq)
    ),
    unreported AS (
        SELECT t.id, t.bank_account_id, t.booking_date, t.amount_cents,
               row_number() OVER key_order AS rank, count(*) OVER key_all AS n
        FROM bank_transactions t
        JOIN (SELECT DISTINCT bank_account_id, booking_date, amount_cents FROM fresh) k
          USING (bank_account_id, booking_date, amount_cents)
        WHERE t.source <> %(source)s
          AND NOT EXISTS (SELECT 1 FROM bank_line_aliases a
                          WHERE a.bank_transaction_id = t.id AND a.source = %(source)s)
        WINDOW key_all AS (PARTITION BY t.bank_account_id, t.booking_date, t.amount_cents),
               key_order AS (key_all ORDER BY t.id)
    ),
    pairs AS (
        SELECT f.*, u.id AS transaction_id, f.n = 1 AND u.n = 1 AS certain
        FROM fresh f JOIN unreported u USING (bank_account_id, booking_date, amount_cents, rank)
    ),
    aliased AS (
        INSERT INTO bank_line_aliases (
            bank_account_id, fingerprint, bank_transaction_id, source, external_id, import_id,
            created_at)
        SELECT bank_account_id, fingerprint, transaction_id, %(source)s, external_id, %(import)s, %(now)s
        FROM pairs
        RETURNING 1),
    completed AS (
        UPDATE bank_transactions t SET
            counterparty_name = coalesce(t.counterparty_name, p.counterparty_name),
            counterparty_iban = coalesce(t.counterparty_iban, p.counterparty_iban),
            structured_reference = coalesce(t.structured_reference, p.structured_reference),
            end_to_end_id = coalesce(t.end_to_end_id, p.end_to_end_id),
            remittance_info = CASE
                WHEN p.remittance_info IS NULL
                  OR strpos(coalesce(t.remittance_info, ''), p.remittance_info) > 0 THEN t.remittance_info
                WHEN t.remittance_info IS NULL THEN p.remittance_info
                ELSE left(t.remittance_info || ' | ' || p.remittance_info, 2000) END
        FROM pairs p
        WHERE t.id = p.transaction_id AND p.certain AND t.match_status = 'unmatched'
        RETURNING 1)
    SELECT (SELECT count(*) FROM aliased), (SELECT count(*) FROM completed)
"""
_STAGED_IDS = (
    "SELECT s.bank_account_id, s.fingerprint, t.id FROM bank_lines_stage s JOIN bank_transactions t "
    "ON t.bank_account_id = s.bank_account_id AND t.fingerprint = s.fingerprint "
    "UNION ALL "
    "SELECT s.bank_account_id, s.fingerprint, a.bank_transaction_id FROM bank_lines_stage s "
    "JOIN bank_line_aliases a ON a.bank_account_id = s.bank_account_id AND a.fingerprint = s.fingerprint"
)


class _Stage:
    """The temporary staging table and the statements around it, run on the session's
    own psycopg connection (inside its transaction; psycopg serialises the connection
    between threads, a COPY included)."""

    def __init__(self, connection: Any, params: dict[str, Any], shared_accounts: list[str]) -> None:
        self._connection = connection
        self._params = params
        # the accounts that hold lines of other sources (grows as the file names accounts)
        self._shared_accounts = shared_accounts
        self.exists = False

    def copy(self, rows: list[str]) -> None:
        with self._connection.cursor() as cursor:
            if not self.exists:
                cursor.execute("DROP TABLE IF EXISTS pg_temp.bank_lines_stage")
                cursor.execute(_CREATE_STAGE)
                self.exists = True
            with cursor.copy(_COPY_STAGE) as copy:
                copy.write("".join(rows))

    def insert(self) -> tuple[int, int]:
        """Move the staged lines into bank_transactions, those already stored from another
        source into bank_line_aliases; returns how many of each were new."""
        aliased = 0
        with self._connection.cursor() as cursor:
            shared = list(self._shared_accounts)
            if shared:
                cursor.execute(_ALIAS_FROM_STAGE, {**self._params, "accounts": shared})
                aliased, _completed = cursor.fetchone()
                cursor.execute(_INSERT_FROM_STAGE.format(where=_NOT_ALIASED), self._params)
            else:
                cursor.execute(_INSERT_FROM_STAGE.format(where=""), self._params)
            (created,) = cursor.fetchone()
            return int(created), int(aliased)

    def clear(self) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute("TRUNCATE bank_lines_stage")

    def ids(self) -> dict[tuple[str, str], str]:
        with self._connection.cursor() as cursor:
            cursor.execute(_STAGED_IDS)
            return {(account_id, fp): tx_id for account_id, fp, tx_id in cursor.fetchall()}

    def drop(self) -> None:
        if self.exists:
            with self._connection.cursor() as cursor:
                cursor.execute("DROP TABLE bank_lines_stage")
            self.exists = False


class _Pipeline:
    """Moves batches of lines into bank_transactions on a helper thread (COPY into the
    staging table, INSERT … ON CONFLICT, TRUNCATE), so that PostgreSQL stores one batch
    while Python reads the next. At most two batches wait; a failure stops the rest and
    is raised to the reading thread."""

    def __init__(self, stage: _Stage) -> None:
        self._stage = stage
        self._queue: queue.Queue[list[str] | None] = queue.Queue(maxsize=2)
        self._abandoned = False
        self.created = 0
        self.aliased = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bank-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self.error is not None or self._abandoned:
                continue
            try:
                self._stage.copy(batch)
                created, aliased = self._stage.insert()
                self.created += created
                self.aliased += aliased
                self._stage.clear()
            except BaseException as exc:  # handed to the reading thread
                self.error = exc

    def put(self, batch: list[str]) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(batch)

    def close(self) -> tuple[int, int]:
        """Wait for every batch; returns how many lines were new, and how many of those
        were movements already stored from another source."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.created, self.aliased

    def abandon(self) -> None:
        """Stop without storing what is still queued (the caller rolls back anyway)."""
        self._abandoned = True
        self._queue.put(None)
        self._thread.join()


class BankWriter:
    """Collects one file's (or one push's) accounts, lines and balances and stores them.

    Use it as a context manager. ``add`` may be called while the file is being read from
    the same connection: lines are staged in batches between two reads. Past the first
    batch, batches are inserted into ``bank_transactions`` on a helper thread while the
    file is still being read; a refused file is undone by the caller's rollback, as
    everything else the import wrote. ``keep_ids`` keeps every line staged until
    ``finish`` instead, which then returns each line's transaction id.
    """

    def __init__(
        self,
        session: Session,
        now: datetime,
        *,
        company_id: str,
        source: str,
        import_id: str | None = None,
        keep_ids: bool = False,
    ) -> None:
        invariant(source.isalpha() and source.islower(), "a fingerprint source is a short lowercase word")
        session.flush()  # the import row and the company must exist before COPY refers to them
        self._session = session
        self._now = now
        self._company_id = company_id
        self._import_id = import_id
        self._source = source
        self._keep_ids = keep_ids
        self._ids = _IdBlock("btx")
        self._accounts: dict[str, AccountRef] = {}  # by compact IBAN
        self._shared_accounts: list[str] = []  # those holding lines of other sources
        self._pending: list[str] = []
        self._stage: _Stage | None = None
        self._pipeline: _Pipeline | None = None
        self._seq = 0
        self._seen: dict[tuple[str, str], tuple[int, int]] = {}  # id fingerprint → (content, seq)
        self._occurrences: dict[tuple[str, str], int] = {}
        self._balances: dict[tuple[str, date, str], tuple[int, str]] = {}
        self.duplicates_in_input = 0
        self.lines = 0

    def __enter__(self) -> BankWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pipeline is not None:  # finish was not reached: the import failed
            self._pipeline.abandon()
            self._pipeline = None

    # accounts ---------------------------------------------------------------------------

    def account(
        self, iban: str, *, currency: str, name: str | None = None, bic: str | None = None
    ) -> AccountRef:
        key = normalize_iban(iban)
        known = self._accounts.get(key)
        if known is not None:
            if known.currency != currency:
                raise BankDataError(f"account {key} is held in {known.currency}, not {currency}")
            return known
        ref = find_or_create_account(
            self._session,
            self._now,
            company_id=self._company_id,
            iban=key,
            currency=currency,
            name=name,
            bic=bic,
        )
        # one import into an account at a time, so that lines of two sources read at the
        # same time pair as if read one after the other
        self._session.execute(text("SELECT pg_advisory_xact_lock(hashtext('bank:' || :a))"), {"a": ref.id})
        if (
            not ref.created
            and self._session.execute(
                select(
                    exists().where(
                        BankTransaction.bank_account_id == ref.id, BankTransaction.source != self._source
                    )
                )
            ).scalar()
        ):
            self._shared_accounts.append(ref.id)
        self._accounts[key] = ref
        return ref

    # lines ------------------------------------------------------------------------------

    def fingerprint(self, account_id: str, line: BankLine) -> str:
        ext = line.external_id
        if ext is not None:
            fp = f"{self._source}:{ext}"
            if len(fp) > FINGERPRINT_MAX:
                fp = f"{self._source}#{hashlib.sha256(ext.encode()).hexdigest()}"[:FINGERPRINT_MAX]
            return fp
        basis = "\x1f".join(
            (
                line.booking_date.isoformat(),
                str(line.amount_cents),
                line.currency,
                line.counterparty_iban or "",
                (line.counterparty_name or "").upper(),
                line.remittance_info or "",
                line.structured_reference or "",
                line.end_to_end_id or "",
            )
        )
        key = (account_id, basis)
        occurrence = self._occurrences.get(key, 0)
        self._occurrences[key] = occurrence + 1
        return hashlib.sha256(f"{basis}\x1f{occurrence}".encode()).hexdigest()

    def add(self, account: AccountRef, line: BankLine) -> str:
        """Stage one line; returns its fingerprint. BankDataError when the line cannot be
        stored (its id already used in this input by a different line, a zero amount …)."""
        if line.amount_cents == 0:
            raise BankDataError("the amount is zero")
        if line.currency != account.currency:
            raise BankDataError(
                f"the amount is in {line.currency}, the account is held in {account.currency}"
            )
        if line.external_id is not None and len(line.external_id) > EXTERNAL_ID_MAX:
            raise BankDataError(f"the transaction id is longer than {EXTERNAL_ID_MAX} characters")
        fp = self.fingerprint(account.id, line)
        if line.external_id is not None:
            content = hash(
                (
                    line.booking_date,
                    line.amount_cents,
                    line.currency,
                    line.counterparty_iban,
                    line.counterparty_name,
                    line.remittance_info,
                    line.structured_reference,
                    line.end_to_end_id,
                )
            )
            seen = self._seen.get((account.id, fp))
            if seen is not None:
                if seen[0] != content:
                    raise BankDataError(
                        f"id {line.external_id!r} is used by two different transactions of "
                        f"account {account.iban} (the first is number {seen[1] + 1})"
                    )
                self.duplicates_in_input += 1
                return fp
            self._seen[(account.id, fp)] = (content, self.lines)
        self.lines += 1
        self._seq += 1
        value_date = line.value_date.isoformat() if line.value_date else "\\N"
        self._pending.append(
            f"{self._seq}\t{self._ids.take()}\t{account.id}\t{_copy_field(fp)}\t"
            f"{_copy_field(line.external_id)}\t{line.booking_date.isoformat()}\t"
            f"{value_date}\t{line.amount_cents}\t{line.currency}\t"
            f"{_copy_field(line.counterparty_name)}\t{_copy_field(line.counterparty_iban)}\t"
            f"{_copy_field(line.remittance_info)}\t{_copy_field(line.structured_reference)}\t"
            f"{_copy_field(line.end_to_end_id)}\t{_copy_field(line.bank_code)}\n"
        )
        if len(self._pending) >= STAGE_FLUSH_ROWS:
            self.flush()
        return fp

    def add_balance(
        self, account: AccountRef, balance_date: date, kind: str, amount_cents: int, currency: str
    ) -> None:
        if currency != account.currency:
            raise BankDataError(f"the balance is in {currency}, the account is held in {account.currency}")
        kind = kind[:BALANCE_KIND_MAX]
        key = (account.id, balance_date, kind)
        known = self._balances.get(key)
        if known is not None and known != (amount_cents, currency):
            raise BankDataError(
                f"two different {kind} balances of account {account.iban} on {balance_date.isoformat()}"
            )
        self._balances[key] = (amount_cents, currency)

    def flush(self) -> None:
        """Hand the pending lines on (between two reads of the file)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        stage = self._stage_table()
        if self._keep_ids:
            stage.copy(batch)
            return
        if self._pipeline is None:
            self._pipeline = _Pipeline(stage)
        self._pipeline.put(batch)

    def _stage_table(self) -> _Stage:
        if self._stage is None:
            params = {
                "company": self._company_id,
                "import": self._import_id,
                "now": self._now,
                "source": self._source,
            }
            connection = self._session.connection().connection.driver_connection
            self._stage = _Stage(connection, params, self._shared_accounts)
        return self._stage

    # the end ----------------------------------------------------------------------------

    def finish(self) -> StoreResult:
        """Store what is left (deduplicated), upsert the balances, and say what changed."""
        result = StoreResult(
            accounts_created=sum(1 for a in self._accounts.values() if a.created),
            accounts=[a.id for a in self._accounts.values()],
        )
        if self._pipeline is not None:
            self.flush()
            pipeline, self._pipeline = self._pipeline, None
            result.created, result.known_from_other_sources = pipeline.close()
        elif self._pending or self._stage is not None:
            stage = self._stage_table()
            if self._pending:
                stage.copy(self._pending)
                self._pending = []
            result.created, result.known_from_other_sources = stage.insert()
            if self._keep_ids:
                result.ids = stage.ids()
        if self._stage is not None:
            self._stage.drop()
        result.unchanged = (
            self.lines - result.created - result.known_from_other_sources + self.duplicates_in_input
        )
        self._store_balances(result)
        return result

    def _store_balances(self, result: StoreResult) -> None:
        items = list(self._balances.items())
        for start in range(0, len(items), 1000):
            rows = [
                {
                    "bank_account_id": account_id,
                    "balance_date": day,
                    "kind": kind,
                    "amount_cents": amount,
                    "currency": currency,
                    "import_id": self._import_id,
                }
                for (account_id, day, kind), (amount, currency) in items[start : start + 1000]
            ]
            statement = insert(BankBalance).values(rows)
            excluded = statement.excluded
            outcome: list[bool] = list(
                self._session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["bank_account_id", "balance_date", "kind"],
                        set_={
                            "amount_cents": excluded.amount_cents,
                            "currency": excluded.currency,
                            "import_id": excluded.import_id,
                        },
                        where=(BankBalance.amount_cents != excluded.amount_cents)
                        | (BankBalance.currency != excluded.currency),
                    ).returning(literal_column("xmax = 0"))
                )
                .scalars()
                .all()
            )
            result.balances_created += sum(1 for inserted in outcome if inserted)
            result.balances_updated += sum(1 for inserted in outcome if not inserted)
            result.balances_unchanged += len(rows) - len(outcome)


def import_outcome(result: StoreResult, **extra_counts: int) -> ImportOutcome:
    """An import's outcome: objects created, updated (balances) and unchanged, and the
    counts per object type."""
    return ImportOutcome(
        created=result.created + result.balances_created + result.accounts_created,
        updated=result.balances_updated,
        unchanged=result.unchanged + result.known_from_other_sources + result.balances_unchanged,
        counts={**outcome_counts(result), **extra_counts},
    )


def outcome_counts(result: StoreResult) -> dict[str, int]:
    """What an import created, per object type (the import's ``counts``)."""
    counts = {
        "bank_transactions": result.created,
        "bank_balances": result.balances_created,
        "bank_accounts": result.accounts_created,
    }
    if result.known_from_other_sources:
        counts["bank_transactions_known_from_other_sources"] = result.known_from_other_sources
    return counts


def latest_balances(session: Session, account_ids: Sequence[str]) -> dict[str, BankBalance]:
    """Each account's most recent booked balance (closing booked preferred on a given day)."""
    if not account_ids:
        return {}
    ranked = (
        select(
            BankBalance.id,
            func.row_number()
            .over(
                partition_by=BankBalance.bank_account_id,
                order_by=(
                    BankBalance.balance_date.desc(),
                    (BankBalance.kind == "CLBD").desc(),
                    (BankBalance.kind == "ITBD").desc(),
                    (BankBalance.kind == "OPBD").desc(),
                    BankBalance.kind,
                ),
            )
            .label("rank"),
        )
        .where(BankBalance.bank_account_id.in_(account_ids))
        .subquery()
    )
    rows = session.execute(
        select(BankBalance).join(ranked, ranked.c.id == BankBalance.id).where(ranked.c.rank == 1)
    ).scalars()
    return {b.bank_account_id: b for b in rows}
