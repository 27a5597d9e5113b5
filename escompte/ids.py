"""Prefixed, time-ordered identifiers (``cmp_01J…``).

26 characters of Crockford base32 after the prefix: 48 bits of milliseconds then 80
random bits, so ids sort by creation time and keyset pagination can order by id alone.
"""

from __future__ import annotations

import os
import re
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32

PREFIXES = {
    "advance": "adv",
    "api_key": "key",
    "company": "cmp",
    "debtor": "dbt",
    "eligibility_decision": "eld",
    "event": "evt",
    "idempotency_key": "idk",
    "import": "imp",
    "payment": "pay",
    "bank_account": "bac",
    "bank_transaction": "btx",
    "invoice": "inv",
    "job": "job",
    "ledger_transaction": "ltx",
    "payment_file": "pmf",
    "payment_operation": "pop",
    "quote": "qte",
    "repayment": "rpy",
    "partner": "prt",
}

ID_PATTERN = r"^[a-z]{2,5}_[0-9A-HJKMNP-TV-Z]{26}$"
_ID_RE = re.compile(ID_PATTERN)


def new_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def id_pattern(prefix: str) -> str:
    return rf"^{prefix}_[0-9A-HJKMNP-TV-Z]{{26}}$"


def is_id(value: str, prefix: str | None = None) -> bool:
    if not _ID_RE.match(value):
        return False
    return prefix is None or value.startswith(prefix + "_")
