"""A local, stateful fake of the Stripe v1 HTTP API, for tests, the demo and the benchmarks.

The real ``stripe`` SDK (16.x) talks to it over HTTP. Call forms checked against stripe 16.1::

    client = stripe.StripeClient(
        "sk_test_x",
        base_addresses={"api": fake.base_url},
        max_network_retries=0,
        http_client=KeptAliveClient(5),  # escompte.financing.stripe_http: the rail's transport
    )
    client.v1.transfers.create(params={...}, options={"idempotency_key": "escompte:transfer:adv_1"})
    client.v1.payouts.create(params={...}, options={"stripe_account": acct_id, "idempotency_key": ...})
    client.v1.accounts.external_accounts.create(acct_id, params={"external_account": {...}})

What it fakes, in memory and guarded by one lock:

- Connect disbursement: connected accounts (``POST /v1/accounts``, external bank accounts given as
  an IBAN string or a token-less ``bank_account`` dict), transfers and their reversals, payouts on
  the connected account (``Stripe-Account`` header), balances and balance transactions.
- SEPA Direct Debit repayment: customers, confirmed setup intents creating a ``sepa_debit``
  payment method and an active multi-use mandate (IBAN checked with schwifty), payment intents
  that stay ``processing`` until settled, charges, refunds and disputes.
- Idempotency as Stripe v1 documents it: the first status and body are saved per
  (``Stripe-Account``, ``Idempotency-Key``) and replayed, errors included, except validation
  errors (missing or malformed parameters, invalid IBAN), which are not saved; same key with other
  parameters or another endpoint -> 400 ``idempotency_error``; same key while the first request is
  still running -> 409 ``idempotency_error`` (code ``idempotency_key_in_use``).
- Events for every state change and their webhook delivery, signed like Stripe
  (``Stripe-Signature: t=...,v1=...``), delivered only when asked (:meth:`FakeStripe.deliver`)
  or by a background thread (``auto_deliver``). Events of connected accounts carry ``account``,
  are listed by ``GET /v1/events`` only with that account's ``Stripe-Account`` header, and go to
  the Connect endpoint (by default the same URL and secret as the account endpoint).
- Controls, in Python and as JSON ``POST /_fake/<method>`` for another process: settlement of
  payouts and payment intents, scheduled failures, disputes, top-ups, account restrictions,
  mandate revocation, fault injection (errors, delays, lost responses), call counters.
- Its whole state saved to a file and loaded back (:meth:`FakeStripe.save`, ``load``): the demo
  keeps it between runs, beside the database whose rows name its objects.

What it does not fake: any other endpoint or payment method, updates (``POST /v1/x/{id}``),
``expand``, fees (always 0), pending balances (everything is available at once), the ``in_transit``
payout state, asynchronous refunds (they succeed at once), currencies other than ``eur``, Accounts
v2, Stripe's magic test IBANs, rate limits (only when injected), key expiry after 24 h.
Dispute statuses: created ``needs_response``, closed ``lost`` (or ``won``) by
:meth:`FakeStripe.close_dispute` - SEPA disputes cannot be contested.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fnmatch
import hashlib
import hmac
import json
import logging
import operator
import os
import pickle
import random
import socket
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl

import httpx
import uvicorn
from schwifty import IBAN
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Obj = dict[str, Any]
_T = TypeVar("_T")
Handler = Callable[["_Ctx"], Obj]

DEFAULT_API_VERSION = "2026-10-28.endive"
DAY_SECONDS = 86_400
PAYOUT_DELAY_SECONDS = 2 * DAY_SECONDS
LIST_LIMIT_MAX = 100
IDEMPOTENCY_KEY_MAX_CHARS = 255
METADATA_KEYS_MAX = 50
METADATA_KEY_CHARS_MAX = 40
METADATA_VALUE_CHARS_MAX = 500
SLEEP_SLICE_SECONDS = 0.05
_ALNUM = string.ascii_letters + string.digits

# Payout failures after which Stripe disables the bank account (it becomes "errored").
_BANK_ACCOUNT_KILLERS = frozenset(
    {"account_closed", "no_account", "invalid_account_number", "bank_account_restricted", "invalid_currency"}
)
# Debit failures after which the mandate is no longer usable.
_MANDATE_KILLERS = frozenset(
    {"account_closed", "no_account", "revocation_of_mandate", "debit_not_authorized"}
)

_PAYOUT_FAILURE_MESSAGES = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "no_account": "No bank account could be located with the details on file.",
    "invalid_account_number": "The bank account number seems to be invalid.",
    "could_not_process": "The bank could not process this payout.",
}
_DEBIT_FAILURE_MESSAGES = {
    "insufficient_funds": "The customer's account has insufficient funds to cover this payment.",
    "account_closed": "The customer's bank account has been closed.",
    "no_account": "The customer's bank account could not be located.",
    "revocation_of_mandate": "The customer has revoked the mandate.",
    "debit_not_authorized": "The customer has notified their bank that this payment was unauthorized.",
}
_REPORTING_CATEGORY = {
    "adjustment": "dispute",
    "payment": "charge",
    "payment_refund": "refund",
    "payout": "payout",
    "payout_failure": "payout_reversal",
    "refund": "refund",
    "topup": "topup",
    "transfer": "transfer",
    "transfer_refund": "transfer_reversal",
}

_CREATED_FILTERS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- helpers


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``payload`` (the exact bytes posted)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def parse_form(body: str) -> Obj:
    """Decode a Stripe form body: ``a[b][c]=v`` nests dicts, ``a[0]=x`` / ``a[]=x`` make lists.

    Values stay strings; blank values are kept (Stripe uses ``metadata[k]=`` to unset a key).
    """
    root: Obj = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head, sep, rest = key.partition("[")
        parts = [head]
        if sep:
            if not rest.endswith("]"):
                parts = [key]
            else:
                parts += rest[:-1].split("][")
        node = root
        for i, raw_part in enumerate(parts):
            part = str(len(node)) if raw_part == "" and i > 0 else raw_part
            if i == len(parts) - 1:
                node[part] = value
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
    result = _listify(root)
    return result if isinstance(result, dict) else {}


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _copy(obj: _T) -> _T:
    """A deep snapshot of a JSON-shaped value (faster than copy.deepcopy)."""
    return cast(_T, json.loads(json.dumps(obj)))


def _diff(before: Obj, after: Obj) -> Obj:
    """Stripe's ``previous_attributes``: the old values of what changed, nested dicts recursed."""
    previous: Obj = {}
    for key, old in before.items():
        new = after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            previous[key] = _diff(old, new)
        else:
            previous[key] = old
    return previous


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class StripeError(Exception):
    """A Stripe-shaped API error. ``stored=False`` for validation errors (not saved for idempotency)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str = "invalid_request_error",
        stored: bool = True,
        extra: Obj | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type
        self.stored = stored
        self.extra = extra or {}

    def body(self) -> Obj:
        error: Obj = {"type": self.error_type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def _missing(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param, stored=False
    )


def _invalid(param: str, message: str, code: str = "parameter_invalid") -> StripeError:
    return StripeError(400, message, code=code, param=param, stored=False)


def _no_such(kind: str, object_id: str, *, param: str | None = None) -> StripeError:
    status = 404 if param is None else 400
    return StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def _opt_str(params: Obj, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid(name, f"Invalid string: {name} must be a string.", "parameter_invalid_string")
    return value


def _req_str(params: Obj, name: str, *, prefix: str = "") -> str:
    value = _opt_str(params, name)
    if value is None:
        raise _missing(prefix + name)
    return value


def _opt_int(params: Obj, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.lstrip("-").isdigit():
        raise _invalid(name, f"Invalid integer: {value}", "parameter_invalid_integer")
    return int(value)


def _opt_amount(params: Obj, name: str = "amount") -> int | None:
    value = _opt_int(params, name)
    if value is not None and value < 1:
        raise _invalid(name, "This value must be greater than or equal to 1.", "parameter_invalid_integer")
    return value


def _amount(params: Obj, name: str = "amount") -> int:
    value = _opt_amount(params, name)
    if value is None:
        raise _missing(name)
    return value


def _bool(params: Obj, name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if value == "true":
        return True
    if value == "false":
        return False
    raise _invalid(name, f"Invalid boolean: {value}")


def _currency(params: Obj) -> str:
    currency = _req_str(params, "currency").lower()
    if currency != "eur":
        raise _invalid("currency", f"The fake supports only eur, not {currency}.", "parameter_invalid_string")
    return currency


def _dict(params: Obj, name: str) -> Obj:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise _invalid(name, f"Invalid object: {name} must be a hash.")
    return value


def _str_list(params: Obj, name: str) -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _invalid(name, f"Invalid array: {name}.")


def _metadata(params: Obj) -> dict[str, str]:
    raw = _dict(params, "metadata")
    if len(raw) > METADATA_KEYS_MAX:
        raise _invalid("metadata", f"Metadata can have at most {METADATA_KEYS_MAX} keys.")
    metadata: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise _invalid(f"metadata[{key}]", "Metadata values must be strings.")
        if len(key) > METADATA_KEY_CHARS_MAX or len(value) > METADATA_VALUE_CHARS_MAX:
            raise _invalid(f"metadata[{key}]", "Metadata key or value too long.")
        if value != "":
            metadata[key] = value
    return metadata


def _list_body(items: list[Obj], params: Obj, url: str) -> Obj:
    """One page of a newest-first list, with limit / starting_after / ending_before / created."""
    limit = _opt_int(params, "limit") or 10
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise _invalid("limit", f"limit must be between 1 and {LIST_LIMIT_MAX}.", "parameter_invalid_integer")
    created = params.get("created")
    if isinstance(created, str) and created:
        if not created.isdigit():
            raise _invalid("created", f"Invalid timestamp: {created}.", "parameter_invalid_integer")
        items = [o for o in items if o.get("created") == int(created)]
    elif isinstance(created, dict):
        for op, raw in created.items():
            compare = _CREATED_FILTERS.get(op)
            if compare is None or not isinstance(raw, str) or not raw.isdigit():
                raise _invalid(f"created[{op}]", f"Invalid created filter: {op}={raw}.")
            items = [o for o in items if compare(o["created"], int(raw))]
    ids = [o["id"] for o in items]
    starting_after = _opt_str(params, "starting_after")
    ending_before = _opt_str(params, "ending_before")
    if starting_after is not None:
        if starting_after not in ids:
            raise _no_such("object", starting_after, param="starting_after")
        items = items[ids.index(starting_after) + 1 :]
        page, has_more = items[:limit], len(items) > limit
    elif ending_before is not None:
        if ending_before not in ids:
            raise _no_such("object", ending_before, param="ending_before")
        items = items[: ids.index(ending_before)]
        page, has_more = items[-limit:], len(items) > limit
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": [_copy(o) for o in page], "has_more": has_more, "url": url}


# --------------------------------------------------------------------------- state


@dataclass
class _Ctx:
    method: str
    template: str
    params: Obj
    path: dict[str, str]
    account: str | None
    request_id: str | None
    idempotency_key: str | None


@dataclass
class _Fault:
    method: str | None
    path_prefix: str
    status: int | None
    timeout: float | None
    times: int
    perform: bool
    record: bool
    code: str | None
    message: str | None

    def error(self) -> StripeError:
        status = self.status or 500
        code = self.code or {429: "rate_limit", 409: "lock_timeout"}.get(status)
        return StripeError(
            status,
            self.message or f"Injected fault ({status}).",
            code=code,
            error_type="api_error" if status >= 500 else "invalid_request_error",
        )


@dataclass
class _IdemRecord:
    fingerprint: tuple[str, str, str]
    done: bool = False
    status: int = 0
    body: bytes = b""
    request_id: str = ""


@dataclass
class _Failure:
    code: str
    message: str
    after_paid: bool = False


# Bumped whenever _State or what it holds changes shape: an older saved state is then
# not loaded (FakeStripe.load).
_STATE_FORMAT = 1


@dataclass
class _State:
    objects: dict[str, Obj] = field(default_factory=dict)
    owner: dict[str, str | None] = field(default_factory=dict)
    accounts: dict[str, Obj] = field(default_factory=dict)
    balances: dict[str | None, int] = field(default_factory=dict)
    bts: dict[str | None, list[Obj]] = field(default_factory=dict)
    events: list[Obj] = field(default_factory=list)
    events_by_id: dict[str, Obj] = field(default_factory=dict)
    pending: dict[str, None] = field(default_factory=dict)
    idem: dict[tuple[str, str], _IdemRecord] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    payouts: list[str] = field(default_factory=list)
    payment_intents: list[str] = field(default_factory=list)
    payout_failures_next: list[_Failure] = field(default_factory=list)
    payout_failures: dict[str, _Failure] = field(default_factory=dict)
    pi_failures_next: list[_Failure] = field(default_factory=list)
    pi_failures: dict[str, _Failure] = field(default_factory=dict)
    pm_mandate: dict[str, str] = field(default_factory=dict)
    restrictions: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    performed: Counter[tuple[str, str]] = field(default_factory=Counter)


# --------------------------------------------------------------------------- the fake


class FakeStripe:
    """A Stripe v1 API on 127.0.0.1 for the real SDK; see the module docstring."""

    sign = staticmethod(sign)

    def __init__(
        self,
        *,
        platform_balance_cents: int = 10_000_000_00,
        webhook_url: str | None = None,
        webhook_secret: str = "whsec_test_fake",  # noqa: S107 - a test-mode placeholder
        auto_deliver: bool = False,
        auto_deliver_delay: float = 0.05,
        sepa_debit_max_cents: int | None = 10_000_00,
        api_key: str = "sk_test_fake",
        api_version: str = DEFAULT_API_VERSION,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        self.initial_balance_cents = platform_balance_cents
        self.api_key = api_key
        self.api_version = api_version
        self.sepa_debit_max_cents = sepa_debit_max_cents
        self.auto_deliver = auto_deliver
        self.auto_deliver_delay = auto_deliver_delay
        self.host = host
        self.port = port
        self.base_url = ""
        self.platform_account_id = "acct_platformfake0001"
        self._webhook: tuple[str | None, str] = (webhook_url, webhook_secret)
        self._connect_webhook: tuple[str | None, str] = (webhook_url, webhook_secret)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._delivery_lock = threading.Lock()
        self._time_offset = 0
        self._state = self._new_state()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._stopping = False
        self._wake = threading.Event()
        self._auto_thread: threading.Thread | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeStripe:
        """Serve on ``host`` (an ephemeral port unless ``port`` was given); returns self."""
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            # like Stripe, keep idle connections longer than clients do (httpx: 5 s), so a
            # client never reuses a connection the server is closing
            timeout_keep_alive=75,
        )
        self._server = uvicorn.Server(config)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-stripe", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Stripe server did not start")
            time.sleep(0.01)
        self._auto_thread = threading.Thread(target=self._auto_loop, name="fake-stripe-webhooks", daemon=True)
        self._auto_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (in-flight injected delays are cut short)."""
        self._stopping = True
        self._wake.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._auto_thread is not None:
            self._auto_thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._auto_thread = self._socket = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every object, event, key, fault and counter; the platform balance starts again."""
        with self._lock:
            self._time_offset = 0
            self._state = self._new_state()

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path) -> None:
        """Write everything the fake holds (accounts, customers, mandates, transfers,
        payouts, balances, events not yet delivered, idempotency records) to ``path``, so
        that a demo restarted on the same database finds the Stripe objects its rows
        name, and a retry with a key already used replays instead of paying twice.

        Pickled, because the state shares objects between its indexes (an account is in
        ``objects`` and ``accounts``, a balance transaction in ``objects`` and ``bts``)
        and must come back shared. A pickle runs code when loaded: only :meth:`load` a
        file this fake wrote, in a folder of the same user (the demo's data folder)."""
        with self._lock:
            data = pickle.dumps((_STATE_FORMAT, self._state, self._time_offset))
        path.parent.mkdir(parents=True, exist_ok=True)
        written = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        written.write_bytes(data)
        os.replace(written, path)  # a reader never sees half a file

    def load(self, path: Path) -> bool:
        """Take back the state :meth:`save` wrote; False (and nothing changed) when there
        is no such file or it was written by another version of the fake."""
        try:
            found, state, offset = pickle.loads(path.read_bytes())  # noqa: S301 - see save
        except FileNotFoundError:
            return False
        except Exception as exc:
            log.warning("fake Stripe state not loaded from %s: %s", path, exc)
            return False
        if found != _STATE_FORMAT or not isinstance(state, _State):
            return False
        with self._lock:
            self._state, self._time_offset = state, int(offset)
        self._wake.set()  # events not delivered before the save go out now
        return True

    def _new_state(self) -> _State:
        state = _State()
        state.balances[None] = 0
        state.bts[None] = []
        if self.initial_balance_cents:
            self._add_bt(
                state, None, self.initial_balance_cents, "topup", self._new_id("tu"), "Initial balance"
            )
        return state

    # ------------------------------------------------------------------ inspection

    @property
    def events(self) -> list[Obj]:
        """Every event, oldest first (live list: do not mutate)."""
        return self._state.events

    @property
    def calls(self) -> Counter[tuple[str, str]]:
        """Requests received per (method, path template), e.g. ``("POST", "/v1/payouts")``."""
        return self._state.calls

    @property
    def performed(self) -> Counter[tuple[str, str]]:
        """Requests that executed and succeeded (not replays, not injected failures)."""
        return self._state.performed

    def pending_events(self) -> list[Obj]:
        """Events not yet delivered with a 2xx answer, oldest first."""
        with self._lock:
            return [self._state.events_by_id[i] for i in self._state.pending]

    def now(self) -> int:
        """The fake's clock (unix seconds), shifted by :meth:`advance_time`."""
        return int(time.time()) + self._time_offset

    def advance_time(self, seconds: int) -> int:
        """Move the fake's clock forward (``created``, ``arrival_date``); returns the new time."""
        self._time_offset += int(seconds)
        return self.now()

    def get(self, object_id: str) -> Obj:
        """A snapshot of any object by id (KeyError if unknown)."""
        with self._lock:
            return _copy(self._state.objects[object_id])

    def objects(self, object_type: str, account: str | None = None) -> list[Obj]:
        """Snapshots of one type of object (``"payout"``...) owned by ``account`` (None: the
        platform; payouts, and the ``py_`` payments of transfers, live on connected accounts)."""
        with self._lock:
            return [
                _copy(o)
                for oid, o in self._state.objects.items()
                if o.get("object") == object_type and self._state.owner.get(oid) == account
            ]

    def balance(self, account: str | None = None) -> int:
        """Available balance in cents of the platform (None) or of a connected account."""
        with self._lock:
            return self._state.balances[account]

    # ------------------------------------------------------------------ money and time controls

    def top_up(self, cents: int) -> Obj:
        """Add available balance to the platform (a ``topup`` balance transaction)."""
        if cents < 1:
            raise ValueError("cents must be positive")
        with self._lock:
            return _copy(self._add_bt(self._state, None, cents, "topup", self._new_id("tu"), "Top-up"))

    def fail_next_payout(
        self, code: str = "account_closed", message: str | None = None, *, after_paid: bool = False
    ) -> None:
        """The next payout created is ``pending`` and fails at settlement (after ``paid`` if asked)."""
        failure = _Failure(
            code, message or _PAYOUT_FAILURE_MESSAGES.get(code, f"The payout failed ({code})."), after_paid
        )
        with self._lock:
            self._state.payout_failures_next.append(failure)

    def fail_payout(
        self,
        payout_id: str,
        code: str = "account_closed",
        message: str | None = None,
        *,
        after_paid: bool = False,
    ) -> None:
        """Schedule the failure of an existing pending (or paid, with ``after_paid``) payout."""
        with self._lock:
            if payout_id not in self._state.payouts:
                raise ValueError(f"no such payout: {payout_id}")
            self._state.payout_failures[payout_id] = _Failure(
                code,
                message or _PAYOUT_FAILURE_MESSAGES.get(code, f"The payout failed ({code})."),
                after_paid,
            )

    def settle_payouts(self, at: int | None = None) -> list[Obj]:
        """Pay (or fail, when scheduled) pending payouts arriving by ``at`` (all when None)."""
        settled: list[Obj] = []
        with self._lock:
            state = self._state
            for payout_id in state.payouts:
                payout = state.objects[payout_id]
                if at is not None and payout["arrival_date"] > at:
                    continue
                failure = state.payout_failures.get(payout_id)
                if payout["status"] == "pending" and (failure is None or failure.after_paid):
                    before = _copy(payout)
                    payout["status"] = "paid"
                    self._event("payout.paid", payout, account=state.owner[payout_id], before=before)
                    settled.append(_copy(payout))
                elif failure is not None and payout["status"] in ("pending", "paid"):
                    del state.payout_failures[payout_id]
                    settled.append(self._fail_payout(payout, failure))
        self._wake.set()
        return settled

    def fail_next_payment_intent(self, code: str = "insufficient_funds", message: str | None = None) -> None:
        """The next payment intent created is ``processing`` and fails at settlement."""
        with self._lock:
            self._state.pi_failures_next.append(
                _Failure(code, message or _DEBIT_FAILURE_MESSAGES.get(code, f"The debit failed ({code})."))
            )

    def fail_payment_intent(
        self, payment_intent_id: str, code: str = "insufficient_funds", message: str | None = None
    ) -> None:
        """Schedule the failure of an existing processing payment intent (at settlement)."""
        with self._lock:
            pi = self._state.objects.get(payment_intent_id)
            if pi is None or pi.get("object") != "payment_intent" or pi["status"] != "processing":
                raise ValueError(f"no processing payment intent {payment_intent_id}")
            self._state.pi_failures[payment_intent_id] = _Failure(
                code, message or _DEBIT_FAILURE_MESSAGES.get(code, f"The debit failed ({code}).")
            )

    def settle_payment_intents(self, ids: Iterable[str] | None = None) -> list[Obj]:
        """Succeed (or fail, when scheduled) processing payment intents (all, or those in ``ids``)."""
        wanted = None if ids is None else set(ids)
        settled: list[Obj] = []
        with self._lock:
            for pi_id in self._state.payment_intents:
                pi = self._state.objects[pi_id]
                if pi["status"] != "processing" or (wanted is not None and pi_id not in wanted):
                    continue
                settled.append(self._settle_payment_intent(pi))
        self._wake.set()
        return settled

    def dispute_charge(self, charge_id: str, reason: str = "general", amount: int | None = None) -> Obj:
        """A chargeback: ``charge.dispute.created`` + ``charge.dispute.funds_withdrawn``, balance debited."""
        with self._lock:
            state = self._state
            charge = state.objects.get(charge_id)
            if charge is None or charge.get("object") != "charge":
                raise ValueError(f"no such charge: {charge_id}")
            if charge["status"] != "succeeded" or charge["disputed"]:
                raise ValueError(f"charge {charge_id} is {charge['status']}, disputed={charge['disputed']}")
            account = state.owner[charge_id]
            disputed = charge["amount"] if amount is None else amount
            dispute_id = self._new_id("du")
            dispute: Obj = {
                "id": dispute_id,
                "object": "dispute",
                "amount": disputed,
                "balance_transactions": [],
                "charge": charge_id,
                "created": self.now(),
                "currency": charge["currency"],
                "evidence": {},
                "evidence_details": {
                    "due_by": None,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
                "payment_intent": charge.get("payment_intent"),
                "payment_method_details": {"type": charge["payment_method_details"]["type"]},
                "reason": reason,
                "status": "needs_response",
            }
            self._store(dispute, account)
            before = _copy(charge)
            charge["disputed"] = True
            self._event("charge.dispute.created", dispute, account=account)
            bt = self._add_bt(
                state, account, -disputed, "adjustment", dispute_id, f"Chargeback withdrawal for {charge_id}"
            )
            dispute["balance_transactions"].append(_copy(bt))
            self._event("charge.dispute.funds_withdrawn", dispute, account=account)
            self._event("charge.updated", charge, account=account, before=before)
            result: Obj = _copy(dispute)
        self._wake.set()
        return result

    def close_dispute(self, dispute_id: str, status: str = "lost") -> Obj:
        """Close a dispute as ``lost`` (SEPA: the usual end) or ``won`` (funds reinstated)."""
        if status not in ("lost", "won"):
            raise ValueError("status must be lost or won")
        with self._lock:
            state = self._state
            dispute = state.objects.get(dispute_id)
            if dispute is None or dispute.get("object") != "dispute":
                raise ValueError(f"no such dispute: {dispute_id}")
            if dispute["status"] in ("lost", "won"):
                raise ValueError(f"dispute {dispute_id} is already {dispute['status']}")
            account = state.owner[dispute_id]
            before = _copy(dispute)
            dispute["status"] = status
            if status == "won":
                bt = self._add_bt(
                    state, account, dispute["amount"], "adjustment", dispute_id, "Chargeback reversal"
                )
                dispute["balance_transactions"].append(_copy(bt))
                self._event("charge.dispute.funds_reinstated", dispute, account=account, before=before)
            self._event("charge.dispute.closed", dispute, account=account, before=before)
            result: Obj = _copy(dispute)
        self._wake.set()
        return result

    def restrict_account(
        self,
        account_id: str,
        disabled_reason: str = "requirements.past_due",
        currently_due: Iterable[str] = ("company.tax_id",),
    ) -> Obj:
        """Disable a connected account's capabilities and payouts (``account.updated``)."""
        with self._lock:
            account = self._account_or_error(account_id)
            self._state.restrictions[account_id] = (disabled_reason, list(currently_due))
            self._refresh_account(account, None)
            result: Obj = _copy(account)
        self._wake.set()
        return result

    def unrestrict_account(self, account_id: str) -> Obj:
        """Lift :meth:`restrict_account` (``account.updated``)."""
        with self._lock:
            account = self._account_or_error(account_id)
            self._state.restrictions.pop(account_id, None)
            self._refresh_account(account, None)
            result: Obj = _copy(account)
        self._wake.set()
        return result

    def revoke_mandate(self, mandate_id: str) -> Obj:
        """The debtor revokes a mandate: status ``inactive`` (``mandate.updated``)."""
        with self._lock:
            mandate = self._state.objects.get(mandate_id)
            if mandate is None or mandate.get("object") != "mandate":
                raise ValueError(f"no such mandate: {mandate_id}")
            self._deactivate_mandate(mandate)
            result: Obj = _copy(mandate)
        self._wake.set()
        return result

    # ------------------------------------------------------------------ fault injection

    def inject(
        self,
        path_prefix: str,
        *,
        method: str | None = None,
        status: int | None = None,
        timeout: float | None = None,
        times: int = 1,
        perform: bool = False,
        record: bool = False,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Tamper with the next ``times`` requests whose path starts with ``path_prefix``.

        ``path_prefix`` may start with the method (``"POST /v1/payouts"``). The request first
        sleeps ``timeout`` seconds if given. Then, with ``perform=False``, it answers a Stripe
        api_error of ``status`` (default 500) without doing anything (saved under the idempotency
        key only with ``record=True``, as a real Stripe 500 would be). With ``perform=True`` it
        does the operation (its result is saved under the idempotency key) and answers it, or
        answers the injected error when ``status`` is given: a lost response.
        """
        if " " in path_prefix:
            method, path_prefix = path_prefix.split(" ", 1)
        with self._lock:
            self._state.faults.append(
                _Fault(
                    method.upper() if method else None,
                    path_prefix,
                    status,
                    timeout,
                    times,
                    perform,
                    record,
                    code,
                    message,
                )
            )

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._state.faults:
                if path.startswith(fault.path_prefix) and fault.method in (None, method):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._state.faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------ webhooks

    def set_webhook(
        self,
        url: str | None,
        secret: str | None = None,
        *,
        connect_url: str | None = None,
        connect_secret: str | None = None,
    ) -> None:
        """Where events are posted: the account endpoint, and the Connect endpoint (events with
        ``account``), which defaults to the same URL and secret."""
        secret = secret or self._webhook[1]
        self._webhook = (url, secret)
        self._connect_webhook = (connect_url or url, connect_secret or secret)
        self._wake.set()

    def deliver(
        self,
        event_id: str | None = None,
        types: Iterable[str] | None = None,
        *,
        twice: bool = False,
        reverse: bool = False,
        delay: float = 0.0,
        timeout: float = 5.0,
    ) -> list[tuple[str, int]]:
        """Post events to the webhook endpoints, signed; returns (event id, HTTP status or 0).

        ``event_id`` posts that event (even if delivered already); otherwise every pending event,
        oldest first, optionally only those whose type matches one of ``types`` (``fnmatch``
        patterns such as ``"payout.*"``). ``reverse`` posts newest first, ``twice`` posts the whole
        batch a second time after the first, ``delay`` sleeps that long before each post. An event
        answered 2xx is no longer pending; a refused connection or another status leaves it pending.
        """
        patterns = None if types is None else list(types)
        with self._lock:
            state = self._state
            if event_id is not None:
                if event_id not in state.events_by_id:
                    raise ValueError(f"no such event: {event_id}")
                batch = [state.events_by_id[event_id]]
            else:
                batch = [state.events_by_id[i] for i in state.pending]
                if patterns is not None:
                    batch = [e for e in batch if any(fnmatch.fnmatchcase(e["type"], p) for p in patterns)]
            posts: list[tuple[str, str, str, bytes]] = []
            for event in batch:
                url, secret = self._connect_webhook if "account" in event else self._webhook
                if url is not None:
                    posts.append((event["id"], url, secret, json.dumps(event, indent=2).encode()))
        if reverse:
            posts.reverse()
        if twice:
            posts = posts + posts
        results: list[tuple[str, int]] = []
        with self._delivery_lock, httpx.Client(timeout=timeout) as http:
            for ev_id, url, secret, payload in posts:
                if delay:
                    time.sleep(delay)
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    "Stripe-Signature": sign(payload, secret),
                }
                try:
                    status = http.post(url, content=payload, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                results.append((ev_id, status))
                if 200 <= status < 300:
                    with self._lock:
                        self._state.pending.pop(ev_id, None)
        return results

    def _auto_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stopping:
                return
            if not self.auto_deliver or not self._state.pending:
                continue
            time.sleep(self.auto_deliver_delay)
            try:
                self.deliver()
            except Exception:  # pragma: no cover - a background thread must not die
                log.exception("fake Stripe webhook delivery failed")

    # ------------------------------------------------------------------ internals: objects

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_1{''.join(self._rng.choices(_ALNUM, k=23))}"

    def _store(self, obj: Obj, account: str | None) -> Obj:
        self._state.objects[obj["id"]] = obj
        self._state.owner[obj["id"]] = account
        return obj

    def _find(self, kind: str, object_id: str, account: str | None, *, param: str | None = None) -> Obj:
        obj = self._state.objects.get(object_id)
        if obj is None or obj.get("object") != kind or self._state.owner.get(object_id) != account:
            raise _no_such(kind.replace("_", " "), object_id, param=param)
        return obj

    def _account_or_error(self, account_id: str) -> Obj:
        account = self._state.accounts.get(account_id)
        if account is None:
            raise ValueError(f"no such account: {account_id}")
        return account

    def _add_bt(
        self,
        state: _State,
        account: str | None,
        amount: int,
        bt_type: str,
        source: str,
        description: str | None,
    ) -> Obj:
        now = self.now()
        bt: Obj = {
            "id": self._new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": now,
            "created": now,
            "currency": "eur",
            "description": description,
            "exchange_rate": None,
            "fee": 0,
            "fee_details": [],
            "net": amount,
            "reporting_category": _REPORTING_CATEGORY.get(bt_type, bt_type),
            "source": source,
            "status": "available",
            "type": bt_type,
        }
        state.balances[account] = state.balances.get(account, 0) + amount
        state.bts.setdefault(account, []).append(bt)
        state.objects[bt["id"]] = bt
        state.owner[bt["id"]] = account
        return bt

    def _event(
        self,
        event_type: str,
        obj: Obj,
        *,
        account: str | None = None,
        before: Obj | None = None,
        ctx: _Ctx | None = None,
    ) -> Obj:
        data: Obj = {"object": _copy(obj)}
        if before is not None:
            data["previous_attributes"] = _diff(before, obj)
        event: Obj = {"id": self._new_id("evt"), "object": "event"}
        if account is not None:
            event["account"] = account
        url = (self._connect_webhook if account is not None else self._webhook)[0]
        event.update(
            {
                "api_version": self.api_version,
                "created": self.now(),
                "data": data,
                "livemode": False,
                "pending_webhooks": 1 if url is not None else 0,
                "request": {
                    "id": ctx.request_id if ctx else None,
                    "idempotency_key": ctx.idempotency_key if ctx else None,
                },
                "type": event_type,
            }
        )
        state = self._state
        state.events.append(event)
        state.events_by_id[event["id"]] = event
        state.pending[event["id"]] = None
        return event

    def _iban(self, value: Any, param: str) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise _missing(param)
        try:
            return IBAN(value)
        except ValueError as exc:  # schwifty's errors derive from ValueError
            raise StripeError(
                400,
                f"The IBAN you provided ({value}) is invalid: {exc}",
                code="invalid_bank_account_iban",
                param=param,
                stored=False,
            ) from exc

    def _bank_account(self, account_id: str, spec: Any, param: str) -> Obj:
        holder: str | None = None
        holder_type = "company"
        currency = "eur"
        if isinstance(spec, str):
            if spec.startswith("btok_"):
                raise StripeError(400, f"No such token: '{spec}'", code="resource_missing", param=param)
            number = spec
        elif isinstance(spec, dict):
            if spec.get("object", "bank_account") != "bank_account":
                raise _invalid(f"{param}[object]", "The fake accepts only bank_account external accounts.")
            number = spec.get("account_number", "")
            if not number:
                raise _missing(f"{param}[account_number]")
            holder = spec.get("account_holder_name") or None
            holder_type = spec.get("account_holder_type") or "company"
            currency = (spec.get("currency") or "eur").lower()
        else:
            raise _invalid(param, "external_account must be an IBAN string or a bank_account hash.")
        iban = self._iban(number, f"{param}[account_number]" if isinstance(spec, dict) else param)
        compact = str(iban.compact)
        try:
            bic = str(iban.bic) if iban.bic is not None else None
            bank_name = iban.bank_name
        except Exception:
            bic, bank_name = None, None
        return {
            "id": self._new_id("ba"),
            "object": "bank_account",
            "account": account_id,
            "account_holder_name": holder,
            "account_holder_type": holder_type,
            "account_type": None,
            "available_payout_methods": ["standard"],
            "bank_name": bank_name,
            "country": str(iban.country_code),
            "currency": currency,
            "default_for_currency": False,
            "fingerprint": hashlib.sha256(compact.encode()).hexdigest()[:16],
            "last4": compact[-4:],
            "metadata": {},
            "routing_number": bic,
            "status": "new",
        }

    def _refresh_account(self, account: Obj, ctx: _Ctx | None, *, event: bool = True) -> None:
        """Derive capabilities, payouts_enabled and requirements; account.updated if they changed."""
        before = _copy(account)
        usable = [ba for ba in account["external_accounts"]["data"] if ba["status"] != "errored"]
        restriction = self._state.restrictions.get(account["id"])
        due = ([] if usable else ["external_account"]) + (restriction[1] if restriction else [])
        requirements = account["requirements"]
        requirements["currently_due"] = list(due)
        requirements["eventually_due"] = list(due)
        requirements["past_due"] = list(restriction[1]) if restriction else []
        requirements["disabled_reason"] = restriction[0] if restriction else None
        for name in account["capabilities"]:
            account["capabilities"][name] = "inactive" if restriction else "active"
        account["payouts_enabled"] = bool(usable) and restriction is None
        if event and account != before:
            self._event("account.updated", account, account=account["id"], before=before, ctx=ctx)

    def _fail_payout(self, payout: Obj, failure: _Failure) -> Obj:
        state = self._state
        account = state.owner[payout["id"]]
        before = _copy(payout)
        bt = self._add_bt(state, account, payout["amount"], "payout_failure", payout["id"], "Payout failure")
        payout.update(
            {
                "status": "failed",
                "failure_code": failure.code,
                "failure_message": failure.message,
                "failure_balance_transaction": bt["id"],
            }
        )
        self._event("payout.failed", payout, account=account, before=before)
        if failure.code in _BANK_ACCOUNT_KILLERS and account is not None:
            connected = state.accounts[account]
            for ba in connected["external_accounts"]["data"]:
                if ba["id"] == payout["destination"]:
                    ba["status"] = "errored"
            self._refresh_account(connected, None)
        return _copy(payout)

    def _settle_payment_intent(self, pi: Obj) -> Obj:
        state = self._state
        account = state.owner[pi["id"]]
        charge = state.objects[pi["latest_charge"]]
        before_pi, before_charge = _copy(pi), _copy(charge)
        failure = state.pi_failures.pop(pi["id"], None)
        if failure is None:
            bt = self._add_bt(state, account, pi["amount"], "payment", charge["id"], pi.get("description"))
            charge.update(
                {
                    "status": "succeeded",
                    "paid": True,
                    "balance_transaction": bt["id"],
                    "outcome": {"network_status": "approved_by_network", "type": "authorized"},
                }
            )
            pi.update({"status": "succeeded", "amount_received": pi["amount"]})
            self._event("charge.succeeded", charge, account=account, before=before_charge)
            self._event("payment_intent.succeeded", pi, account=account, before=before_pi)
        else:
            charge.update(
                {
                    "status": "failed",
                    "failure_code": failure.code,
                    "failure_message": failure.message,
                    "outcome": {"network_status": "declined_by_network", "type": "issuer_declined"},
                }
            )
            pm = state.objects.get(pi["payment_method"] or "")
            pi.update(
                {
                    "status": "requires_payment_method",
                    "last_payment_error": {
                        "type": "card_error",
                        "code": failure.code,
                        "decline_code": failure.code,
                        "message": failure.message,
                        "charge": charge["id"],
                        "payment_method": _copy(pm) if pm else None,
                    },
                }
            )
            self._event("charge.failed", charge, account=account, before=before_charge)
            self._event("payment_intent.payment_failed", pi, account=account, before=before_pi)
            mandate_id = charge["payment_method_details"]["sepa_debit"].get("mandate")
            if failure.code in _MANDATE_KILLERS and mandate_id in state.objects:
                self._deactivate_mandate(state.objects[mandate_id])
        return _copy(pi)

    def _deactivate_mandate(self, mandate: Obj) -> None:
        if mandate["status"] == "inactive":
            return
        before = _copy(mandate)
        mandate["status"] = "inactive"
        self._event("mandate.updated", mandate, account=self._state.owner[mandate["id"]], before=before)

    # ------------------------------------------------------------------ HTTP layer

    def _build_app(self) -> Starlette:
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/accounts", self._h_create_account),
            ("GET", "/v1/accounts/{id}", self._h_get_account),
            ("POST", "/v1/accounts/{id}/external_accounts", self._h_create_external_account),
            ("GET", "/v1/balance", self._h_get_balance),
            ("GET", "/v1/balance_transactions", self._h_list_balance_transactions),
            ("GET", "/v1/balance_transactions/{id}", self._h_get("balance_transaction")),
            ("POST", "/v1/transfers", self._h_create_transfer),
            ("GET", "/v1/transfers", self._h_list("transfer", ("destination", "transfer_group"))),
            ("GET", "/v1/transfers/{id}", self._h_get("transfer")),
            ("POST", "/v1/transfers/{id}/reversals", self._h_create_reversal),
            ("POST", "/v1/payouts", self._h_create_payout),
            ("GET", "/v1/payouts", self._h_list("payout", ("status", "destination"))),
            ("GET", "/v1/payouts/{id}", self._h_get("payout")),
            ("POST", "/v1/customers", self._h_create_customer),
            ("GET", "/v1/customers/{id}", self._h_get("customer")),
            ("POST", "/v1/setup_intents", self._h_create_setup_intent),
            ("GET", "/v1/setup_intents/{id}", self._h_get("setup_intent")),
            ("GET", "/v1/mandates/{id}", self._h_get("mandate")),
            ("GET", "/v1/payment_methods/{id}", self._h_get("payment_method")),
            ("POST", "/v1/payment_intents", self._h_create_payment_intent),
            ("GET", "/v1/payment_intents/{id}", self._h_get("payment_intent")),
            ("GET", "/v1/charges/{id}", self._h_get("charge")),
            ("POST", "/v1/refunds", self._h_create_refund),
            ("GET", "/v1/refunds/{id}", self._h_get("refund")),
            ("GET", "/v1/disputes/{id}", self._h_get("dispute")),
            ("GET", "/v1/events", self._h_list_events),
            ("GET", "/v1/events/{id}", self._h_get_event),
        ]
        routes = [Route(t, self._endpoint(m, t, h), methods=[m]) for m, t, h in table]
        routes.append(Route("/_fake/{name}", self._control, methods=["GET", "POST"]))
        routes.append(Route("/{rest:path}", self._unknown, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]))
        return Starlette(routes=routes)

    @staticmethod
    def _respond(status: int, body: bytes, request_id: str, extra: dict[str, str] | None = None) -> Response:
        headers = {"Request-Id": request_id, **(extra or {})}
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    def _error(self, err: StripeError, request_id: str) -> Response:
        return self._respond(err.status, _dumps(err.body()), request_id)

    async def _unknown(self, request: Request) -> Response:
        err = StripeError(404, f"Unrecognized request URL ({request.method}: {request.url.path}).")
        return self._error(err, self._new_id("req"))

    def _authorized(self, request: Request) -> StripeError | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                token = base64.b64decode(token).decode().split(":", 1)[0]
            except ValueError:
                token = ""
        elif scheme.lower() != "bearer":
            token = ""
        if not token:
            return StripeError(401, "You did not provide an API key.")
        if not token.startswith("sk_test_"):
            return StripeError(401, f"Invalid API Key provided: {token[:8]}***")
        return None

    def _endpoint(self, method: str, template: str, handler: Handler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self._dispatch(request, method, template, handler)

        return endpoint

    async def _dispatch(self, request: Request, method: str, template: str, handler: Handler) -> Response:
        request_id = self._new_id("req")
        with self._lock:
            self._state.calls[(method, template)] += 1
        auth_error = self._authorized(request)
        if auth_error is not None:
            return self._error(auth_error, request_id)
        account = request.headers.get("stripe-account") or None
        if account == self.platform_account_id:
            account = None
        raw = (await request.body()).decode(errors="replace") if method == "POST" else request.url.query
        params = parse_form(raw)
        key = request.headers.get("idempotency-key") if method == "POST" else None
        ctx = _Ctx(method, template, params, dict(request.path_params), account, request_id, key)
        scope = (account or "", key or "")
        if key is not None:
            if len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
                err = _invalid(
                    "Idempotency-Key", f"Idempotency keys are at most {IDEMPOTENCY_KEY_MAX_CHARS} chars."
                )
                return self._error(err, request_id)
            fingerprint = (method, request.url.path, json.dumps(params, sort_keys=True))
            with self._lock:
                record = self._state.idem.get(scope)
                if record is None:
                    self._state.idem[scope] = _IdemRecord(fingerprint)
                elif not record.done:
                    err = StripeError(
                        409,
                        "There is currently another in-progress request using this Idempotent Key (that "
                        "probably means you submitted twice, and the other request is still going through): "
                        f"{key}. Please try again later.",
                        code="idempotency_key_in_use",
                        error_type="idempotency_error",
                    )
                    return self._error(err, request_id)
                elif record.fingerprint != fingerprint:
                    err = StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were "
                        f"first used with. Try using a key other than '{key}' if you meant to execute a "
                        "different request.",
                        error_type="idempotency_error",
                    )
                    return self._error(err, request_id)
                else:
                    extra = {"Idempotent-Replayed": "true", "Original-Request": record.request_id}
                    return self._respond(record.status, record.body, request_id, extra)
        finished = False
        try:
            fault = self._take_fault(method, request.url.path)
            if fault is not None and fault.timeout:
                await self._sleep(fault.timeout)
            if fault is not None and not fault.perform:
                err = fault.error()
                body = _dumps(err.body())
                self._finish_idem(scope, key, err.status, body, request_id, keep=fault.record)
                finished = True
                return self._respond(err.status, body, request_id)
            status, body, keep = self._run(handler, ctx)
            self._finish_idem(scope, key, status, body, request_id, keep=keep)
            finished = True
            if status < 300:
                with self._lock:
                    self._state.performed[(method, template)] += 1
                self._wake.set()
            if fault is not None and fault.status is not None:
                return self._error(fault.error(), request_id)
            return self._respond(status, body, request_id)
        finally:
            if key is not None and not finished:
                with self._lock:
                    self._state.idem.pop(scope, None)

    def _run(self, handler: Handler, ctx: _Ctx) -> tuple[int, bytes, bool]:
        try:
            with self._lock:
                if ctx.account is not None and ctx.account not in self._state.accounts:
                    raise StripeError(
                        403,
                        f"The provided key does not have access to account '{ctx.account}' (or that account "
                        "does not exist). Application access may have been revoked.",
                        code="account_invalid",
                        stored=False,
                    )
                obj = handler(ctx)
            return 200, _dumps(obj), True
        except StripeError as err:
            return err.status, _dumps(err.body()), err.stored
        except Exception:
            log.exception("fake Stripe handler failed for %s %s", ctx.method, ctx.template)
            crash = StripeError(500, "An unknown error occurred in the fake.", error_type="api_error")
            return 500, _dumps(crash.body()), True

    def _finish_idem(
        self,
        scope: tuple[str, str],
        key: str | None,
        status: int,
        body: bytes,
        request_id: str,
        *,
        keep: bool,
    ) -> None:
        if key is None:
            return
        with self._lock:
            record = self._state.idem.get(scope)
            if record is None:
                return
            if keep:
                record.done, record.status, record.body, record.request_id = True, status, body, request_id
            else:
                del self._state.idem[scope]

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(SLEEP_SLICE_SECONDS, remaining))

    _CONTROLS = (
        "top_up",
        "settle_payouts",
        "fail_next_payout",
        "fail_payout",
        "settle_payment_intents",
        "fail_next_payment_intent",
        "dispute_charge",
        "close_dispute",
        "restrict_account",
        "unrestrict_account",
        "revoke_mandate",
        "inject",
        "set_webhook",
        "deliver",
        "pending_events",
        "advance_time",
        "reset",
        "balance",
        "state",
    )

    def state(self) -> Obj:
        """Counters and balances, for another process (``GET /_fake/state``)."""
        with self._lock:
            return {
                "calls": {f"{m} {t}": n for (m, t), n in self._state.calls.items()},
                "performed": {f"{m} {t}": n for (m, t), n in self._state.performed.items()},
                "events": len(self._state.events),
                "pending_events": len(self._state.pending),
                "platform_balance_cents": self._state.balances[None],
            }

    async def _control(self, request: Request) -> Response:
        name = request.path_params["name"]
        request_id = self._new_id("req")
        if name not in self._CONTROLS:
            return self._error(StripeError(404, f"Unknown fake control: {name}"), request_id)
        body = await request.body()
        try:
            kwargs = json.loads(body) if body.strip() else {}
            if not isinstance(kwargs, dict):
                raise TypeError("the body must be a JSON object")
            result = await run_in_threadpool(getattr(self, name), **kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            return self._error(StripeError(400, f"{name}: {exc}"), request_id)
        return self._respond(200, _dumps({"result": result}), request_id)

    # ------------------------------------------------------------------ handlers (run under the lock)

    def _h_get(self, kind: str) -> Handler:
        def handler(ctx: _Ctx) -> Obj:
            return self._find(kind, ctx.path["id"], ctx.account)

        return handler

    def _h_list(self, kind: str, filters: tuple[str, ...]) -> Handler:
        def handler(ctx: _Ctx) -> Obj:
            state = self._state
            items = [
                o
                for oid, o in state.objects.items()
                if o.get("object") == kind and state.owner.get(oid) == ctx.account
            ]
            for name in filters:
                wanted = _opt_str(ctx.params, name)
                if wanted is not None:
                    items = [o for o in items if o.get(name) == wanted]
            items.reverse()
            return _list_body(items, ctx.params, f"/v1/{kind}s")

        return handler

    def _h_create_account(self, ctx: _Ctx) -> Obj:
        p = ctx.params
        account_id = self._new_id("acct")
        capabilities = _dict(p, "capabilities")
        requested = sorted(
            name
            for name, value in capabilities.items()
            if isinstance(value, dict) and _bool(value, "requested")
        )
        bank = None
        if p.get("external_account") not in (None, ""):
            bank = self._bank_account(account_id, p["external_account"], "external_account")
        interval = (((_dict(p, "settings").get("payouts") or {}).get("schedule")) or {}).get(
            "interval"
        ) or "daily"
        company = _dict(p, "company")
        controller = _dict(p, "controller")
        account: Obj = {
            "id": account_id,
            "object": "account",
            "business_profile": _dict(p, "business_profile") or {"name": company.get("name")},
            "business_type": _opt_str(p, "business_type"),
            "capabilities": {name: "inactive" for name in requested},
            "charges_enabled": False,
            "company": {"name": company.get("name"), "address": company.get("address")},
            "controller": {**controller, "is_controller": True, "type": "application"},
            "country": (_opt_str(p, "country") or "FR").upper(),
            "created": self.now(),
            "default_currency": "eur",
            "details_submitted": True,
            "email": _opt_str(p, "email"),
            "external_accounts": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/accounts/{account_id}/external_accounts",
            },
            "livemode": False,
            "metadata": _metadata(p),
            "payouts_enabled": False,
            "requirements": {
                "alternatives": [],
                "current_deadline": None,
                "currently_due": [],
                "disabled_reason": None,
                "errors": [],
                "eventually_due": [],
                "past_due": [],
                "pending_verification": [],
            },
            "settings": {
                "payouts": {
                    "debit_negative_balances": False,
                    "schedule": {"interval": interval},
                    "statement_descriptor": None,
                }
            },
            "tos_acceptance": _dict(p, "tos_acceptance"),
            "type": _opt_str(p, "type") or "none",
        }
        if bank is not None:
            bank["default_for_currency"] = True
            account["external_accounts"]["data"].append(bank)
            account["external_accounts"]["total_count"] = 1
            self._store(bank, account_id)
        self._store(account, None)
        self._state.accounts[account_id] = account
        self._state.balances[account_id] = 0
        self._state.bts[account_id] = []
        self._refresh_account(account, ctx, event=False)
        if requested:
            before = _copy(account)
            before["capabilities"] = {name: "inactive" for name in requested}
            self._event("account.updated", account, account=account_id, before=before, ctx=ctx)
        return account

    def _h_get_account(self, ctx: _Ctx) -> Obj:
        account = self._state.accounts.get(ctx.path["id"])
        if account is None or ctx.account not in (None, account["id"]):
            raise _no_such("account", ctx.path["id"])
        return account

    def _h_create_external_account(self, ctx: _Ctx) -> Obj:
        account = self._h_get_account(ctx)
        spec = ctx.params.get("external_account")
        if spec in (None, ""):
            raise _missing("external_account")
        bank = self._bank_account(account["id"], spec, "external_account")
        externals = account["external_accounts"]
        default = _bool(ctx.params, "default_for_currency") or not externals["data"]
        if default:
            for other in externals["data"]:
                other["default_for_currency"] = False
        bank["default_for_currency"] = default
        bank["metadata"] = _metadata(ctx.params)
        externals["data"].append(bank)
        externals["total_count"] = len(externals["data"])
        self._store(bank, account["id"])
        self._event("account.external_account.created", bank, account=account["id"], ctx=ctx)
        self._refresh_account(account, ctx)
        return bank

    def _h_get_balance(self, ctx: _Ctx) -> Obj:
        amount = self._state.balances.get(ctx.account, 0)
        balance: Obj = {
            "object": "balance",
            "available": [{"amount": amount, "currency": "eur", "source_types": {"bank_account": amount}}],
            "livemode": False,
            "pending": [{"amount": 0, "currency": "eur", "source_types": {"bank_account": 0}}],
        }
        if ctx.account is None:
            balance["connect_reserved"] = [{"amount": 0, "currency": "eur"}]
        return balance

    def _h_list_balance_transactions(self, ctx: _Ctx) -> Obj:
        items = list(reversed(self._state.bts.get(ctx.account, [])))
        for name in ("type", "source", "currency"):
            wanted = _opt_str(ctx.params, name)
            if wanted is not None:
                items = [bt for bt in items if bt[name] == wanted]
        payout = _opt_str(ctx.params, "payout")
        if payout is not None:
            items = [bt for bt in items if bt["source"] == payout]
        return _list_body(items, ctx.params, "/v1/balance_transactions")

    def _h_create_transfer(self, ctx: _Ctx) -> Obj:
        p = ctx.params
        amount = _amount(p)
        currency = _currency(p)
        destination_id = _req_str(p, "destination")
        metadata = _metadata(p)
        state = self._state
        destination = state.accounts.get(destination_id)
        if destination is None:
            raise StripeError(
                400, f"No such destination: '{destination_id}'", code="resource_missing", param="destination"
            )
        if destination["capabilities"].get("transfers") != "active":
            raise StripeError(
                400,
                "Your destination account needs to have at least one of the following capabilities enabled: "
                "transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )
        if state.balances.get(ctx.account, 0) < amount:
            raise StripeError(
                400,
                "You have insufficient available funds in your Stripe account. Try adding funds directly "
                "to your available balance by creating Charges using the 4000000000000077 test card.",
                code="balance_insufficient",
            )
        transfer_id = self._new_id("tr")
        payment_id = self._new_id("py")
        now = self.now()
        bt = self._add_bt(state, ctx.account, -amount, "transfer", transfer_id, _opt_str(p, "description"))
        dest_bt = self._add_bt(state, destination_id, amount, "payment", payment_id, None)
        payment: Obj = {
            "id": payment_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "balance_transaction": dest_bt["id"],
            "captured": True,
            "created": now,
            "currency": currency,
            "disputed": False,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "paid": True,
            "payment_intent": None,
            "payment_method_details": {"type": "stripe_account", "stripe_account": {}},
            "refunded": False,
            "source_transfer": transfer_id,
            "status": "succeeded",
        }
        self._store(payment, destination_id)
        transfer: Obj = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": bt["id"],
            "created": now,
            "currency": currency,
            "description": _opt_str(p, "description"),
            "destination": destination_id,
            "destination_payment": payment_id,
            "livemode": False,
            "metadata": metadata,
            "reversals": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/transfers/{transfer_id}/reversals",
            },
            "reversed": False,
            "source_transaction": None,
            "source_type": "card",
            "transfer_group": _opt_str(p, "transfer_group"),
        }
        self._store(transfer, ctx.account)
        self._event("transfer.created", transfer, ctx=ctx)
        return transfer

    def _h_create_reversal(self, ctx: _Ctx) -> Obj:
        transfer = self._find("transfer", ctx.path["id"], ctx.account)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = _opt_amount(ctx.params) or remaining
        metadata = _metadata(ctx.params)
        if remaining == 0:
            why = f"Transfer {transfer['id']} is already fully reversed."
            raise StripeError(400, why, code="transfer_reversed")
        if amount > remaining:
            raise StripeError(
                400,
                f"Amount ({amount}) is greater than the amount that may be reversed ({remaining}).",
                code="amount_too_large",
                param="amount",
            )
        state = self._state
        destination_id = transfer["destination"]
        if state.balances.get(destination_id, 0) < amount:
            raise StripeError(
                400,
                "The connected account has insufficient available funds to reverse this transfer.",
                code="balance_insufficient",
            )
        reversal_id = self._new_id("trr")
        refund_id = self._new_id("pyr")
        bt = self._add_bt(state, ctx.account, amount, "transfer_refund", reversal_id, None)
        self._add_bt(state, destination_id, -amount, "payment_refund", refund_id, None)
        reversal: Obj = {
            "id": reversal_id,
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": bt["id"],
            "created": self.now(),
            "currency": transfer["currency"],
            "destination_payment_refund": refund_id,
            "metadata": metadata,
            "source_refund": None,
            "transfer": transfer["id"],
        }
        self._store(reversal, ctx.account)
        payment = state.objects.get(transfer["destination_payment"])
        if payment is not None:
            payment["amount_refunded"] += amount
            payment["refunded"] = payment["amount_refunded"] == payment["amount"]
        before = _copy(transfer)
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, _copy(reversal))
        transfer["reversals"]["total_count"] += 1
        self._event("transfer.reversed", transfer, before=before, ctx=ctx)
        return reversal

    def _h_create_payout(self, ctx: _Ctx) -> Obj:
        p = ctx.params
        amount = _amount(p)
        currency = _currency(p)
        metadata = _metadata(p)
        method = _opt_str(p, "method") or "standard"
        if method != "standard":
            raise _invalid("method", "The fake supports only standard payouts.")
        state = self._state
        if ctx.account is None:
            raise StripeError(
                400,
                "The platform has no external account in the fake: create payouts on connected accounts "
                "(Stripe-Account header).",
                code="no_external_account",
            )
        account = state.accounts[ctx.account]
        usable = [ba for ba in account["external_accounts"]["data"] if ba["status"] != "errored"]
        destination_id = _opt_str(p, "destination")
        if destination_id is None:
            defaults = [ba for ba in usable if ba["default_for_currency"]] or usable
            destination_id = defaults[0]["id"] if defaults else None
        elif destination_id not in {ba["id"] for ba in account["external_accounts"]["data"]}:
            raise StripeError(
                400,
                f"No such external account: '{destination_id}'",
                code="resource_missing",
                param="destination",
            )
        if not account["payouts_enabled"] or destination_id is None:
            raise StripeError(
                400,
                "Payouts have been disabled on this account: see requirements.currently_due.",
                code="payouts_not_allowed",
            )
        if state.balances.get(ctx.account, 0) < amount:
            raise StripeError(
                400,
                "You have insufficient funds in your Stripe account for this transfer. Your card balance "
                "is too low.",
                code="balance_insufficient",
            )
        payout_id = self._new_id("po")
        now = self.now()
        bt = self._add_bt(state, ctx.account, -amount, "payout", payout_id, _opt_str(p, "description"))
        payout: Obj = {
            "id": payout_id,
            "object": "payout",
            "amount": amount,
            "application_fee": None,
            "application_fee_amount": None,
            "arrival_date": now + PAYOUT_DELAY_SECONDS,
            "automatic": False,
            "balance_transaction": bt["id"],
            "created": now,
            "currency": currency,
            "description": _opt_str(p, "description"),
            "destination": destination_id,
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": metadata,
            "method": method,
            "original_payout": None,
            "reconciliation_status": "not_applicable",
            "reversed_by": None,
            "source_type": "card",
            "statement_descriptor": _opt_str(p, "statement_descriptor"),
            "status": "pending",
            "type": "bank_account",
        }
        self._store(payout, ctx.account)
        state.payouts.append(payout_id)
        if state.payout_failures_next:
            state.payout_failures[payout_id] = state.payout_failures_next.pop(0)
        self._event("payout.created", payout, account=ctx.account, ctx=ctx)
        return payout

    def _h_create_customer(self, ctx: _Ctx) -> Obj:
        p = ctx.params
        customer: Obj = {
            "id": self._new_id("cus"),
            "object": "customer",
            "address": _dict(p, "address") or None,
            "balance": 0,
            "created": self.now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": _opt_str(p, "description"),
            "email": _opt_str(p, "email"),
            "invoice_prefix": "".join(self._rng.choices(string.ascii_uppercase, k=8)),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": _metadata(p),
            "name": _opt_str(p, "name"),
            "phone": _opt_str(p, "phone"),
            "preferred_locales": _str_list(p, "preferred_locales") or [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        self._store(customer, ctx.account)
        self._event("customer.created", customer, account=ctx.account, ctx=ctx)
        return customer

    def _payment_method_types(self, params: Obj) -> list[str]:
        types = _str_list(params, "payment_method_types") or ["sepa_debit"]
        if types != ["sepa_debit"]:
            raise _invalid(
                "payment_method_types", "The fake supports only payment_method_types=[sepa_debit]."
            )
        return types

    def _new_sepa_payment_method(self, ctx: _Ctx, data: Obj, customer_id: str | None) -> Obj:
        prefix = "payment_method_data"
        if data.get("type") != "sepa_debit":
            raise _invalid(f"{prefix}[type]", "The fake supports only payment_method_data[type]=sepa_debit.")
        iban = self._iban((data.get("sepa_debit") or {}).get("iban"), f"{prefix}[sepa_debit][iban]")
        billing = data.get("billing_details") or {}
        if not isinstance(billing, dict):
            raise _invalid(f"{prefix}[billing_details]", "billing_details must be a hash.")
        for name in ("name", "email"):
            if not billing.get(name):
                raise _missing(f"{prefix}[billing_details][{name}]")
        compact = str(iban.compact)
        address = billing.get("address") or {}
        return {
            "id": self._new_id("pm"),
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {
                    k: address.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")
                },
                "email": billing["email"],
                "name": billing["name"],
                "phone": billing.get("phone"),
            },
            "created": self.now(),
            "customer": customer_id,
            "livemode": False,
            "metadata": {},
            "sepa_debit": {
                "bank_code": str(iban.bank_code),
                "branch_code": str(iban.branch_code),
                "country": str(iban.country_code),
                "fingerprint": hashlib.sha256(compact.encode()).hexdigest()[:16],
                "generated_from": {"charge": None, "setup_attempt": None},
                "last4": compact[-4:],
            },
            "type": "sepa_debit",
        }

    def _mandate_acceptance(self, params: Obj) -> Obj:
        mandate_data = _dict(params, "mandate_data")
        acceptance = mandate_data.get("customer_acceptance")
        if not isinstance(acceptance, dict):
            raise _missing("mandate_data[customer_acceptance]")
        kind = acceptance.get("type")
        base = "mandate_data[customer_acceptance]"
        if kind == "online":
            online = acceptance.get("online") or {}
            for name in ("ip_address", "user_agent"):
                if not isinstance(online, dict) or not online.get(name):
                    raise _missing(f"{base}[online][{name}]")
            return {
                "accepted_at": _opt_int(acceptance, "accepted_at") or self.now(),
                "online": {"ip_address": online["ip_address"], "user_agent": online["user_agent"]},
                "type": "online",
            }
        if kind == "offline":
            return {
                "accepted_at": _opt_int(acceptance, "accepted_at") or self.now(),
                "offline": {},
                "type": "offline",
            }
        raise _invalid(f"{base}[type]", "customer_acceptance[type] must be online or offline.")

    def _h_create_setup_intent(self, ctx: _Ctx) -> Obj:
        p = ctx.params
        state = self._state
        customer_id = _opt_str(p, "customer")
        if customer_id is not None:
            self._find("customer", customer_id, ctx.account, param="customer")
        types = self._payment_method_types(p)
        usage = _opt_str(p, "usage") or "off_session"
        if usage not in ("off_session", "on_session"):
            raise _invalid("usage", "usage must be off_session or on_session.")
        confirm = _bool(p, "confirm")
        metadata = _metadata(p)
        existing_pm_id = _opt_str(p, "payment_method")
        pm: Obj | None = None
        mandate: Obj | None = None
        if existing_pm_id is not None:
            pm = self._find("payment_method", existing_pm_id, ctx.account, param="payment_method")
        if confirm:
            if pm is None:
                data = _dict(p, "payment_method_data")
                if not data:
                    raise _missing("payment_method_data")
                pm = self._new_sepa_payment_method(ctx, data, customer_id)
            acceptance = self._mandate_acceptance(p)
            mandate = {
                "id": self._new_id("mandate"),
                "object": "mandate",
                "customer_acceptance": acceptance,
                "livemode": False,
                "multi_use": {},
                "on_behalf_of": None,
                "payment_method": pm["id"],
                "payment_method_details": {
                    "sepa_debit": {
                        "reference": "".join(self._rng.choices(string.ascii_uppercase + string.digits, k=16)),
                        "url": f"/_fake/mandates/{pm['id']}",
                    },
                    "type": "sepa_debit",
                },
                "status": "active",
                "type": "multi_use",
            }
        seti_id = self._new_id("seti")
        status = "succeeded" if confirm else ("requires_confirmation" if pm else "requires_payment_method")
        setup_intent: Obj = {
            "id": seti_id,
            "object": "setup_intent",
            "application": None,
            "automatic_payment_methods": None,
            "cancellation_reason": None,
            "client_secret": f"{seti_id}_secret_{''.join(self._rng.choices(_ALNUM, k=24))}",
            "created": self.now(),
            "customer": customer_id,
            "description": _opt_str(p, "description"),
            "flow_directions": None,
            "last_setup_error": None,
            "latest_attempt": self._new_id("setatt") if confirm else None,
            "livemode": False,
            "mandate": mandate["id"] if mandate else None,
            "metadata": metadata,
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": pm["id"] if pm else None,
            "payment_method_options": {"sepa_debit": {}},
            "payment_method_types": types,
            "single_use_mandate": None,
            "status": "requires_confirmation" if confirm else status,
            "usage": usage,
        }
        self._store(setup_intent, ctx.account)
        self._event("setup_intent.created", setup_intent, account=ctx.account, ctx=ctx)
        if pm is not None and mandate is not None:
            if pm["id"] not in state.objects:
                self._store(pm, ctx.account)
                self._event("payment_method.attached", pm, account=ctx.account, ctx=ctx)
            pm["sepa_debit"]["generated_from"]["setup_attempt"] = setup_intent["latest_attempt"]
            self._store(mandate, ctx.account)
            state.pm_mandate[pm["id"]] = mandate["id"]
            before = _copy(setup_intent)
            setup_intent["status"] = "succeeded"
            self._event("setup_intent.succeeded", setup_intent, account=ctx.account, before=before, ctx=ctx)
        return setup_intent

    def _h_create_payment_intent(self, ctx: _Ctx) -> Obj:
        p = ctx.params
        state = self._state
        amount = _amount(p)
        currency = _currency(p)
        metadata = _metadata(p)
        types = self._payment_method_types(p)
        confirm = _bool(p, "confirm")
        off_session = _bool(p, "off_session")
        customer_id = _opt_str(p, "customer")
        if customer_id is not None:
            self._find("customer", customer_id, ctx.account, param="customer")
        pm_id = _opt_str(p, "payment_method")
        pm = (
            None
            if pm_id is None
            else self._find("payment_method", pm_id, ctx.account, param="payment_method")
        )
        options = _dict(p, "payment_method_options")
        sepa_options = options.get("sepa_debit") if isinstance(options.get("sepa_debit"), dict) else {}
        if self.sepa_debit_max_cents is not None and amount > self.sepa_debit_max_cents:
            raise StripeError(
                400,
                f"Amount must be no more than {self.sepa_debit_max_cents} cents for sepa_debit payments.",
                code="amount_too_large",
                param="amount",
            )
        mandate: Obj | None = None
        if confirm:
            if pm is None:
                raise _missing("payment_method")
            if customer_id is not None and pm["customer"] != customer_id:
                raise StripeError(
                    400,
                    f"The provided PaymentMethod {pm['id']} does not belong to customer {customer_id}.",
                    code="payment_intent_invalid_parameter",
                    param="payment_method",
                )
            mandate_id = _opt_str(p, "mandate") or state.pm_mandate.get(pm["id"])
            if mandate_id is None:
                raise _missing("mandate")
            mandate = self._find("mandate", mandate_id, ctx.account, param="mandate")
            if mandate["status"] != "active" or mandate["payment_method"] != pm["id"]:
                raise StripeError(
                    400,
                    f"The mandate {mandate_id} is {mandate['status']} or not for payment method {pm['id']}.",
                    code="payment_intent_mandate_invalid",
                    param="mandate",
                )
        pi_id = self._new_id("pi")
        now = self.now()
        pi: Obj = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{pi_id}_secret_{''.join(self._rng.choices(_ALNUM, k=24))}",
            "confirmation_method": "automatic",
            "created": now,
            "currency": currency,
            "customer": customer_id,
            "description": _opt_str(p, "description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata,
            "next_action": None,
            "off_session": off_session,
            "on_behalf_of": None,
            "payment_method": pm["id"] if pm else None,
            "payment_method_options": {"sepa_debit": dict(sepa_options or {})},
            "payment_method_types": types,
            "processing": None,
            "setup_future_usage": _opt_str(p, "setup_future_usage"),
            "statement_descriptor": _opt_str(p, "statement_descriptor"),
            "status": "requires_confirmation" if pm else "requires_payment_method",
            "transfer_group": _opt_str(p, "transfer_group"),
        }
        self._store(pi, ctx.account)
        self._event("payment_intent.created", pi, account=ctx.account, ctx=ctx)
        if confirm and pm is not None and mandate is not None:
            charge_id = self._new_id("py")
            charge: Obj = {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "balance_transaction": None,
                "billing_details": _copy(pm["billing_details"]),
                "captured": True,
                "created": now,
                "currency": currency,
                "customer": customer_id,
                "description": pi["description"],
                "disputed": False,
                "failure_balance_transaction": None,
                "failure_code": None,
                "failure_message": None,
                "livemode": False,
                "metadata": dict(metadata),
                "outcome": None,
                "paid": False,
                "payment_intent": pi_id,
                "payment_method": pm["id"],
                "payment_method_details": {
                    "sepa_debit": {
                        "bank_code": pm["sepa_debit"]["bank_code"],
                        "branch_code": pm["sepa_debit"]["branch_code"],
                        "country": pm["sepa_debit"]["country"],
                        "fingerprint": pm["sepa_debit"]["fingerprint"],
                        "last4": pm["sepa_debit"]["last4"],
                        "mandate": mandate["id"],
                    },
                    "type": "sepa_debit",
                },
                "refunded": False,
                "refunds": {
                    "object": "list",
                    "data": [],
                    "has_more": False,
                    "total_count": 0,
                    "url": f"/v1/charges/{charge_id}/refunds",
                },
                "status": "pending",
                "transfer_group": pi["transfer_group"],
            }
            self._store(charge, ctx.account)
            before = _copy(pi)
            pi.update({"status": "processing", "latest_charge": charge_id})
            state.payment_intents.append(pi_id)
            if state.pi_failures_next:
                state.pi_failures[pi_id] = state.pi_failures_next.pop(0)
            self._event("payment_intent.processing", pi, account=ctx.account, before=before, ctx=ctx)
            self._event("charge.pending", charge, account=ctx.account, ctx=ctx)
        return pi

    def _h_create_refund(self, ctx: _Ctx) -> Obj:
        p = ctx.params
        state = self._state
        charge_id = _opt_str(p, "charge")
        pi_id = _opt_str(p, "payment_intent")
        if charge_id is None and pi_id is None:
            raise _missing("charge")
        if charge_id is None:
            pi = self._find("payment_intent", pi_id or "", ctx.account, param="payment_intent")
            charge_id = pi["latest_charge"]
            if charge_id is None:
                raise StripeError(
                    400, f"PaymentIntent {pi_id} has no charge to refund.", code="charge_not_refundable"
                )
        charge = self._find("charge", charge_id, ctx.account, param="charge")
        amount = _opt_amount(p)
        metadata = _metadata(p)
        remaining = charge["amount"] - charge["amount_refunded"]
        if charge["disputed"]:
            raise StripeError(400, f"Charge {charge_id} has been charged back.", code="charge_disputed")
        if charge["status"] != "succeeded":
            raise StripeError(
                400,
                f"Charge {charge_id} is {charge['status']}: it cannot be refunded.",
                code="charge_not_refundable",
            )
        if remaining == 0:
            raise StripeError(
                400, f"Charge {charge_id} has already been refunded.", code="charge_already_refunded"
            )
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise StripeError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
                code="amount_too_large",
                param="amount",
            )
        if state.balances.get(ctx.account, 0) < amount:
            raise StripeError(
                400,
                "You have insufficient available funds to refund this charge.",
                code="balance_insufficient",
            )
        refund_id = self._new_id("re")
        bt = self._add_bt(state, ctx.account, -amount, "refund", refund_id, None)
        refund: Obj = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": bt["id"],
            "charge": charge_id,
            "created": self.now(),
            "currency": charge["currency"],
            "metadata": metadata,
            "payment_intent": charge.get("payment_intent"),
            "reason": _opt_str(p, "reason"),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        self._store(refund, ctx.account)
        before = _copy(charge)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, _copy(refund))
        charge["refunds"]["total_count"] += 1
        self._event("refund.created", refund, account=ctx.account, ctx=ctx)
        self._event("charge.refunded", charge, account=ctx.account, before=before, ctx=ctx)
        return refund

    def _scoped_events(self, account: str | None) -> list[Obj]:
        return [e for e in self._state.events if e.get("account") == account]

    def _h_list_events(self, ctx: _Ctx) -> Obj:
        p = ctx.params
        items = self._scoped_events(ctx.account)
        wanted = _opt_str(p, "type")
        types = _str_list(p, "types")
        if wanted is not None:
            items = [e for e in items if fnmatch.fnmatchcase(e["type"], wanted)]
        if types is not None:
            items = [e for e in items if e["type"] in types]
        if p.get("delivery_success") not in (None, ""):
            delivered = _bool(p, "delivery_success")
            items = [e for e in items if (e["id"] not in self._state.pending) == delivered]
        items.reverse()
        return _list_body(items, p, "/v1/events")

    def _h_get_event(self, ctx: _Ctx) -> Obj:
        event = self._state.events_by_id.get(ctx.path["id"])
        if event is None or event.get("account") != ctx.account:
            raise _no_such("event", ctx.path["id"])
        return event


def main(argv: list[str] | None = None) -> None:
    """Run the fake until interrupted: ``python -m escompte.financing.stripe_fake --port 12111``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--platform-balance-cents", type=int, default=10_000_000_00)
    parser.add_argument("--webhook-url")
    parser.add_argument("--webhook-secret", default="whsec_test_fake")
    parser.add_argument("--auto-deliver", action="store_true")
    args = parser.parse_args(argv)
    fake = FakeStripe(
        host=args.host,
        port=args.port,
        platform_balance_cents=args.platform_balance_cents,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        auto_deliver=args.auto_deliver,
    )
    with fake:
        print(f"fake Stripe on {fake.base_url} (any sk_test_ key; controls under /_fake/)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
