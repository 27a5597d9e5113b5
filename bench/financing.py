"""Benchmark of financing: quotes and advance acceptances over HTTP, each against the same
server's GET /healthz and GET /v1/companies/{id} measured in the same run.

    .venv/bin/python bench/financing.py [--sellers 50] [--invoices 5500] [--concurrency 32]

Sellers made eligible as the financing tests make them (``healthy_seller``), each with a
payment profile set up through the API against the local fake Stripe (run in this
process), and their open invoices spread over them. The exposure limits of the
eligibility policy are raised (admin, through the API) so that no acceptance is refused
or capped for exposure. The API runs as ``escompte serve --workers 2``, on
ESCOMPTE_DATABASE_URL's server (in a scratch database, dropped at the end) if set, else
on an embedded PostgreSQL.

Phases, after a warm-up of 500 quotes and acceptances (the history the measured phases
find) and an ANALYZE (``settle``: the statistics autovacuum keeps on a database in use,
so that PostgreSQL plans the lookups of quotes, advances and operations as index scans
rather than as the scans of the few rows these tables held at first): the two
baselines; one quote per invoice (``POST /v1/quotes``, 30 days), each with a new
eligibility decision; one acceptance per quote (``POST /v1/advances``, its own
``Idempotency-Key``), each re-deciding eligibility, writing the advance and its financed
fingerprint, calling the fake Stripe (transfer, then payout)
through the ``stripe`` SDK and posting to the ledger; the baselines again. Quotes and
acceptances are measured with ``--concurrency`` clients, then with a single client (the
unloaded latency). Then the ledger is checked (postings sum to zero, no transaction
unbalanced) and the fake's counters (one transfer and one payout per advance), and the
fake alone is loaded from another process to show what it can serve. Targets (financing
issue): quote p99 < 30 ms; acceptances >= 200 advances/s. Writes
bench/results/financing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import importlib
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # installed with pgserver
from sqlalchemy import create_engine, func, make_url, select, text

BENCH_DIR = Path(__file__).resolve().parent
# bench/run.py; the repository's tests/ (the builders), ahead of site-packages, where a
# dependency installs a package named ``tests`` too
for folder in (BENCH_DIR, BENCH_DIR.parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from run import (  # noqa: E402  (bench/run.py: the load client and server helpers)
    HOST,
    WORKERS,
    BenchError,
    Call,
    Connection,
    CpuMeter,
    Reply,
    Server,
    api_server,
    encode,
    local_postmaster,
    speed_line,
    speed_probe,
    spread,
    stop_database,
    tail,
)

RESULTS = BENCH_DIR / "results" / "financing.json"
TARGET_QUOTE_P99_MS = 30.0
TARGET_ADVANCES_PER_S = 200.0
BASELINE_SECONDS = 2.0  # per baseline row, before and after the financing phases
WARM_UP_SECONDS = 0.5  # per baseline row
# quotes and acceptances made before measuring, not counted: the history the measured
# phases find, analyzed (``settle``)
WARM_UP_ADVANCES = 500
ONE_CLIENT_ADVANCES = 100  # quotes, then acceptances, by a single client: the unloaded latency
FEW_CLIENTS = 4  # quotes at a moderate load too: where p99 stands short of saturation
FEW_CLIENT_QUOTES = 400
# quotes arriving at random (Poisson) at a steady rate, a share of what 32 clients got:
# the latency a partner sees at a given load, queueing for a connection included
PACED_SHARES = (0.5, 0.75)
PACED_QUOTES = 1000  # per share
PACED_CONNECTIONS = 64
FAKE_ALONE_SECONDS = 3.0
STRIPE_KEY = "sk_test_escompte_bench"
WEBHOOK_SECRET = "whsec_test_escompte_bench"
IBAN = "FR1420041010050500013M02606"
PLATFORM_BALANCE_CENTS = 10**13  # covers every advance and the fake-alone transfers
RAISED_LIMITS = {  # the policy's maxima: exposure never refuses nor caps an acceptance
    "debtor_limit_cents": 100_000_000_000,
    "seller_limit_cents": 100_000_000_000,
    "concentration_max_bps": 10_000,
}


# --- the database ----------------------------------------------------------------------------


@contextmanager
def database(tmp: Path) -> Iterator[tuple[str, psutil.Process | None]]:
    """A database URL, and PostgreSQL's postmaster when it runs here (for its CPU time).

    With ESCOMPTE_DATABASE_URL: a scratch database on that server, dropped at the end.
    Without: an embedded PostgreSQL in ``tmp``, stopped at the end."""
    from escompte.db import embedded
    from escompte.settings import Settings

    configured = Settings(database_url=os.environ.get("ESCOMPTE_DATABASE_URL")).database_url
    if configured:
        name = f"bench_financing_{os.getpid()}"
        embedded.ensure_database(configured, name)
        try:
            url = make_url(configured).set(database=name).render_as_string(hide_password=False)
            yield url, local_postmaster(url)
        finally:
            engine = create_engine(configured, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            except Exception as exc:  # the figures are printed already; say what is left
                print(f"bench: could not drop the scratch database {name}: {exc}", file=sys.stderr)
            finally:
                engine.dispose()
        return
    url = embedded.start(tmp, database="bench_financing")
    server = importlib.import_module("pgserver").get_server(tmp.resolve() / "pg")
    try:
        yield url, local_postmaster(url)
    finally:
        stop_database(tmp)
        # pgserver's exit hook would take its lock again under XDG_RUNTIME_DIR, which
        # embedded.start pointed into ``tmp``: it would recreate a folder there once
        # ``tmp`` is deleted
        atexit.unregister(server._cleanup)


@dataclass(frozen=True)
class Seller:
    company_id: str
    key: str


@dataclass(frozen=True)
class Seeded:
    sellers: list[Seller]
    invoices: list[tuple[str, int]]  # (invoice id, index of its seller)
    admin_key: str
    seconds: float


def seed(url: str, sellers: int, invoices: int) -> Seeded:
    """Eligible sellers and their open invoices, written through the services as the
    financing tests write them (tests/eligibility/builders.py, tests/factories.py)."""
    from escompte.clock import SystemClock
    from escompte.db import make_engine, make_session_factory
    from escompte.db.migrate import upgrade
    from escompte.models import PrincipalKind
    from tests import factories as f
    from tests.eligibility import builders as b

    started = time.perf_counter()
    upgrade(url)
    clock = SystemClock()
    rnd = random.Random(20261204)
    engine = make_engine(url, pool_size=1)
    try:
        with make_session_factory(engine)() as session, session.begin():
            made: list[tuple[Seller, str]] = []
            for n in range(sellers):
                seller = b.healthy_seller(session, clock, name=f"Vendeur {n:03d} SAS")
                key = f.key(session, clock, kind=PrincipalKind.COMPANY, company_id=seller.company.id)
                made.append((Seller(seller.company.id, key), seller.debtor.id))
            rows = []
            for n in range(invoices):
                who = n % sellers
                invoice = f.invoice(
                    session,
                    clock,
                    company_id=made[who][0].company_id,
                    debtor_id=made[who][1],
                    number=f"FA-{n:06d}",
                    amount_cents=rnd.randint(2_000, 15_000) * 100,
                    days=45,
                )
                rows.append((invoice.id, who))
            admin = f.key(session, clock, kind=PrincipalKind.ADMIN)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return Seeded([s for s, _ in made], rows, admin, time.perf_counter() - started)


def finish_deferred(url: str, stripe_base: str) -> int:
    """Disburse the advances whose transfer or payout the rail deferred (Stripe
    unavailable: a connection error or a 5xx), with the same idempotency keys, as the
    recovery sweep would; returns how many there were."""
    from escompte.clock import SystemClock
    from escompte.db import make_engine, make_session_factory
    from escompte.financing import rails, service
    from escompte.models import Advance, AdvanceStatus, OperationKind, OperationStatus, PaymentOperation

    sent = select(PaymentOperation.advance_id).where(
        PaymentOperation.kind == OperationKind.PAYOUT, PaymentOperation.status != OperationStatus.PENDING
    )
    half_done = select(Advance.id).where(
        Advance.status.in_((AdvanceStatus.ACCEPTED, AdvanceStatus.DISBURSING)), Advance.id.not_in(sent)
    )
    rail = rails.StripeRail(STRIPE_KEY, stripe_base)
    engine = make_engine(url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            advance_ids = list(session.scalars(half_done))
            session.rollback()
            for advance_id in advance_ids:
                service.disburse(session, SystemClock(), rail, advance_id)
                session.commit()
    finally:
        engine.dispose()
    return len(advance_ids)


def check_books(url: str) -> dict[str, Any]:
    """What the acceptances left: the ledger balanced, one disbursement per advance."""
    from escompte.db import make_engine, make_session_factory
    from escompte.financing import ledger
    from escompte.models import Advance, EligibilityDecision, LedgerPosting, LedgerTransaction

    engine = make_engine(url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            query = select(Advance.status, func.count()).group_by(Advance.status)
            statuses = {status: count for status, count in session.execute(query)}
            return {
                "advances": sum(statuses.values()),
                "advance_statuses": {str(getattr(k, "value", k)): v for k, v in statuses.items()},
                "eligibility_decisions": session.execute(
                    select(func.count()).select_from(EligibilityDecision)
                ).scalar_one(),
                "ledger_transactions": session.execute(
                    select(func.count()).select_from(LedgerTransaction)
                ).scalar_one(),
                "disbursements": session.execute(
                    select(func.count()).where(LedgerTransaction.kind == "disbursement")
                ).scalar_one(),
                "postings_sum_cents": int(
                    session.execute(select(func.coalesce(func.sum(LedgerPosting.amount_cents), 0)))
                    .scalar_one()
                ),
                "trial_balance": ledger.trial_balance(session),
                "unbalanced_transactions": len(ledger.unbalanced_transactions(session)),
            }
    finally:
        engine.dispose()


# --- CPU: where the time goes ----------------------------------------------------------------


# --- load ------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    label: str
    clients: int
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def cut(self, percent: int) -> float:
        if len(self.latencies) < 2:
            return math.nan
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[percent - 1] * 1000

    def summary(self) -> dict[str, Any]:
        def number(value: float, digits: int) -> float | None:  # JSON has no NaN
            return None if math.isnan(value) else round(value, digits)

        per_request = {
            f"{k}_ms_per_request": number(v / self.requests * 1000, 3) if self.requests else None
            for k, v in self.cpu.items()
        }
        return {
            "name": self.name,
            "label": self.label,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": number(self.cut(50), 2),
            "p95_ms": number(self.cut(95), 2),
            "p99_ms": number(self.cut(99), 2),
            "cpu_seconds": {k: number(v, 3) for k, v in self.cpu.items()},
            **per_request,
        }


Check = Callable[[Call, Reply], None]


async def _drive(
    server: Server,
    calls: Iterator[Call],
    concurrency: int,
    check: Check,
    seconds: float | None,
    row: Row | None,
    meter: CpuMeter | None,
) -> None:
    """Send ``calls`` over ``concurrency`` keep-alive connections spread over the workers,
    each sending its next call as soon as the previous answer arrives, until the calls run
    out (or ``seconds`` pass). Latencies go to ``row`` when given."""
    connections = await spread(server, concurrency)
    deadline = math.inf if seconds is None else time.perf_counter() + seconds
    latencies: list[float] = []

    async def user(connection: Connection) -> None:
        while time.perf_counter() < deadline:
            call = next(calls, None)
            if call is None:
                return
            request = encode(call)
            started = time.perf_counter()
            reply = await connection.send(request)
            latencies.append(time.perf_counter() - started)
            check(call, reply)

    before = meter.snapshot() if meter else None
    started = time.perf_counter()
    try:
        await asyncio.gather(*(user(c) for c in connections))
    finally:
        for connection in connections:
            await connection.close()
    elapsed = time.perf_counter() - started
    if row is not None:
        row.latencies += latencies
        row.seconds += elapsed
        if meter is not None and before is not None:
            spent = CpuMeter.spent(before, meter.snapshot())
            row.cpu = {k: round(row.cpu.get(k, 0.0) + v, 3) for k, v in spent.items()}


async def _drive_paced(
    server: Server, calls: list[Call], rate: float, check: Check, row: Row, meter: CpuMeter
) -> None:
    """Send ``calls`` at ``rate`` a second, at random (exponential) intervals, each on the
    first idle one of ``PACED_CONNECTIONS`` keep-alive connections. A call's latency runs
    from the moment it was due, so that waiting for a connection, when the server falls
    behind, counts (no coordinated omission)."""
    connections = await spread(server, PACED_CONNECTIONS)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)
    intervals = random.Random(20261127)
    latencies: list[float] = []

    async def one(call: Call, due: float) -> None:
        connection = await idle.get()
        reply = await connection.send(encode(call))
        latencies.append(time.perf_counter() - due)
        idle.put_nowait(connection)
        check(call, reply)

    before = meter.snapshot()
    started = due = time.perf_counter()
    tasks = []
    try:
        for call in calls:
            due += intervals.expovariate(rate)
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(call, due)))
        await asyncio.gather(*tasks)
    finally:
        for connection in connections:
            await connection.close()
    row.seconds += time.perf_counter() - started
    row.latencies += latencies
    spent = CpuMeter.spent(before, meter.snapshot())
    row.cpu = {k: round(row.cpu.get(k, 0.0) + v, 3) for k, v in spent.items()}


def drive(
    server: Server,
    calls: Iterator[Call],
    concurrency: int,
    check: Check,
    *,
    seconds: float | None = None,
    row: Row | None = None,
    meter: CpuMeter | None = None,
) -> None:
    asyncio.run(_drive(server, calls, concurrency, check, seconds, row, meter))


def expect(status: int, then: Callable[[Call, dict[str, Any]], None] | None = None) -> Check:
    def check(call: Call, reply: Reply) -> None:
        if reply.status != status:
            raise BenchError(
                f"{call.method} {call.path}: expected {status}, got {reply.status}: "
                f"{reply.body[:400].decode(errors='replace')}"
            )
        if then is not None:
            then(call, json.loads(reply.body))

    return check


def forever(call: Call) -> Iterator[Call]:
    while True:
        yield call


# --- the fake Stripe alone ------------------------------------------------------------------


def _form(pairs: list[tuple[str, str]]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(pairs).encode()


def _stripe_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = {
        "Host": f"{HOST}:{port}",
        "Authorization": f"Bearer {STRIPE_KEY}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
        **headers,
    }
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    return f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode() + body


async def _load_fake(port: int, account: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """Transfer + payout pairs, as an acceptance makes them, as fast as the fake answers."""
    pairs: list[float] = []
    issued = 0
    deadline = time.perf_counter() + seconds

    async def user(connection: Connection) -> None:
        nonlocal issued
        while time.perf_counter() < deadline:
            n = issued
            issued += 1
            meta = [("metadata[advance]", f"adv_fake{n}"), ("metadata[company]", "cmp_fake")]
            transfer = _form(
                [("amount", "100"), ("currency", "eur"), ("destination", account),
                 ("transfer_group", f"adv_fake{n}"), *meta]
            )
            payout = _form([("amount", "100"), ("currency", "eur"), ("method", "standard"), *meta])
            started = time.perf_counter()
            for path, body, headers in (
                ("/v1/transfers", transfer, {"Idempotency-Key": f"bench:fake:transfer:{n}"}),
                ("/v1/payouts", payout, {"Idempotency-Key": f"bench:fake:payout:{n}",
                                         "Stripe-Account": account}),
            ):
                reply = await connection.send(_stripe_request(port, path, body, headers))
                if reply.status != 200:
                    raise BenchError(f"fake Stripe {path}: {reply.status} {reply.body[:300]!r}")
            pairs.append(time.perf_counter() - started)

    connections = [Connection(port) for _ in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(user(c) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        await connection.close()
    cuts = statistics.quantiles(pairs, n=100, method="inclusive")
    return {
        "pairs": len(pairs),
        "seconds": round(elapsed, 3),
        "pairs_per_s": round(len(pairs) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
    }


def fake_alone(port: int, account: str, concurrency: int, fake_thread_id: int) -> dict[str, Any]:
    """Load the fake from a child process (the load generator must not share the fake's
    interpreter lock); returns its pairs/s and the fake thread's CPU per pair."""
    me = psutil.Process()

    def fake_cpu() -> float:
        return float(sum(t.user_time + t.system_time for t in me.threads() if t.id == fake_thread_id))

    command = [sys.executable, str(Path(__file__).resolve()), "--drive-fake", str(port), account,
               "--concurrency", str(concurrency)]
    before = fake_cpu()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BenchError(f"loading the fake Stripe alone failed: {done.stderr[-800:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    figures["fake_cpu_ms_per_pair"] = round((fake_cpu() - before) / max(1, figures["pairs"]) * 1000, 3)
    return figures


# --- the run ---------------------------------------------------------------------------------


def set_up(port: int, seeded: Seeded) -> float:
    """Raise the exposure limits; a payment profile for every seller (through the API)."""
    started = time.perf_counter()
    base = f"http://{HOST}:{port}"
    with httpx.Client(base_url=base, timeout=60, trust_env=False) as http:
        r = http.post(
            "/v1/eligibility/policy",
            headers={"Authorization": f"Bearer {seeded.admin_key}"},
            json={"settings": RAISED_LIMITS, "note": "bench: exposure limits out of the way"},
        )
        if r.status_code != 201:
            raise BenchError(f"POST /v1/eligibility/policy: {r.status_code} {r.text[:300]}")
        for seller in seeded.sellers:
            r = http.post(
                f"/v1/companies/{seller.company_id}/payment-profile",
                headers={"Authorization": f"Bearer {seller.key}"},
                json={"iban": IBAN, "mandate": {"ip_address": "203.0.113.7", "user_agent": "bench"}},
            )
            if r.status_code != 201:
                raise BenchError(f"POST payment-profile: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - started


def quote_calls(seeded: Seeded, invoices: list[tuple[str, int]]) -> Iterator[Call]:
    for invoice_id, who in invoices:
        key = seeded.sellers[who].key
        yield Call("POST", "/v1/quotes", {"Authorization": f"Bearer {key}"},
                   {"invoice": invoice_id, "duration_days": 30})


def advance_calls(quotes: list[tuple[str, str]]) -> Iterator[Call]:
    for quote_id, key in quotes:
        yield Call("POST", "/v1/advances",
                   {"Authorization": f"Bearer {key}", "Idempotency-Key": f"bench-accept-{quote_id}"},
                   {"quote": quote_id})


def settle(url: str) -> None:
    """ANALYZE, as autovacuum does once a table has grown: the warm-up wrote the first
    quotes, decisions, advances and postings into tables that were empty, and the plans
    PostgreSQL keeps per connection for their lookups (foreign-key checks among them)
    were made for a table of a few rows, a sequential scan. Analyzing invalidates them;
    the measured phases run as on a database that has statistics, as in production."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def phases(
    server: Server, seeded: Seeded, meter: CpuMeter, concurrency: int, url: str
) -> tuple[dict[str, Row], int]:
    first = seeded.sellers[0]
    healthz = Call("GET", "/healthz", {})
    company = Call("GET", f"/v1/companies/{first.company_id}", {"Authorization": f"Bearer {first.key}"})
    ok = expect(200)
    rows = {
        "healthz": Row("healthz", "GET /healthz (baseline)", concurrency),
        "get_company": Row("get_company", "GET /v1/companies/{id} (baseline)", concurrency),
        "quote": Row("quote", "POST /v1/quotes", concurrency),
        **{f"quote_paced_{share:g}": Row(f"quote_paced_{share:g}", "POST /v1/quotes (steady rate)", 0)
           for share in PACED_SHARES},
        "quote_few": Row("quote_few", f"POST /v1/quotes ({FEW_CLIENTS} clients)", FEW_CLIENTS),
        "quote_1": Row("quote_1", "POST /v1/quotes (1 client)", 1),
        "advance": Row("advance", "POST /v1/advances", concurrency),
        "advance_1": Row("advance_1", "POST /v1/advances (1 client)", 1),
    }
    quotes: list[tuple[str, str]] = []

    def quoted(call: Call, body: dict[str, Any]) -> None:
        quotes.append((body["id"], call.headers["Authorization"].removeprefix("Bearer ")))

    def accepted(call: Call, body: dict[str, Any]) -> None:
        # accepted: the rail found Stripe unavailable before the transfer (finish_deferred)
        if body.get("status") not in ("disbursing", "accepted"):
            raise BenchError(f"advance {body.get('id')}: status {body.get('status')}, expected disbursing")

    warm = seeded.invoices[:WARM_UP_ADVANCES]
    alone = seeded.invoices[WARM_UP_ADVANCES : WARM_UP_ADVANCES + ONE_CLIENT_ADVANCES]
    few = seeded.invoices[WARM_UP_ADVANCES + ONE_CLIENT_ADVANCES :][:FEW_CLIENT_QUOTES]
    paced = seeded.invoices[WARM_UP_ADVANCES + ONE_CLIENT_ADVANCES + len(few) :][
        : PACED_QUOTES * len(PACED_SHARES)
    ]
    measured = seeded.invoices[WARM_UP_ADVANCES + ONE_CLIENT_ADVANCES + len(few) + len(paced) :]
    print("warming up (baselines, quotes, acceptances)…", file=sys.stderr)
    drive(server, forever(healthz), concurrency, ok, seconds=WARM_UP_SECONDS)
    drive(server, forever(company), concurrency, ok, seconds=WARM_UP_SECONDS)
    drive(server, quote_calls(seeded, warm), concurrency, expect(201, quoted))
    drive(server, advance_calls(quotes), concurrency, expect(201, accepted))
    quotes.clear()
    settle(url)

    def baselines(when: str) -> None:
        print(f"baselines ({when})…", file=sys.stderr)
        drive(server, forever(healthz), concurrency, ok, seconds=BASELINE_SECONDS,
              row=rows["healthz"], meter=meter)
        drive(server, forever(company), concurrency, ok, seconds=BASELINE_SECONDS,
              row=rows["get_company"], meter=meter)

    baselines("before")
    print(f"{len(measured):,} quotes, {concurrency} clients…", file=sys.stderr)
    drive(server, quote_calls(seeded, measured), concurrency, expect(201, quoted),
          row=rows["quote"], meter=meter)
    for n, share in enumerate(PACED_SHARES):
        rate, row = rows["quote"].rps * share, rows[f"quote_paced_{share:g}"]
        row.label = f"POST /v1/quotes ({rate:.0f}/s steady)"
        calls = list(quote_calls(seeded, paced[n * PACED_QUOTES : (n + 1) * PACED_QUOTES]))
        print(f"{len(calls):,} quotes arriving at {rate:.0f}/s…", file=sys.stderr)
        asyncio.run(_drive_paced(server, calls, rate, expect(201), row, meter))
    print(f"{len(few):,} quotes, {FEW_CLIENTS} clients…", file=sys.stderr)
    drive(server, quote_calls(seeded, few), FEW_CLIENTS, expect(201, quoted),
          row=rows["quote_few"], meter=meter)
    print(f"{len(alone):,} quotes, 1 client…", file=sys.stderr)
    many, quotes[:] = list(quotes), []
    drive(server, quote_calls(seeded, alone), 1, expect(201, quoted), row=rows["quote_1"], meter=meter)
    print(f"{len(many):,} acceptances, {concurrency} clients…", file=sys.stderr)
    drive(server, advance_calls(many), concurrency, expect(201, accepted),
          row=rows["advance"], meter=meter)
    print(f"{len(quotes):,} acceptances, 1 client…", file=sys.stderr)
    drive(server, advance_calls(quotes), 1, expect(201, accepted), row=rows["advance_1"], meter=meter)
    baselines("after")
    return rows, len(warm)


def run(sellers: int, invoices: int, concurrency: int) -> dict[str, Any]:
    from escompte.financing.stripe_fake import FakeStripe

    load_before = os.getloadavg()[0]
    probe_before = speed_probe()
    with tempfile.TemporaryDirectory(prefix="escompte-bench-fin-") as tmp:
        data_dir = Path(tmp)
        print("starting PostgreSQL, migrating, seeding sellers and invoices…", file=sys.stderr)
        with database(data_dir) as (url, postmaster):
            seeded = seed(url, sellers, invoices)
            print(f"seeded in {seeded.seconds:.1f} s", file=sys.stderr)
            fake = FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET,
                              platform_balance_cents=PLATFORM_BALANCE_CENTS).start()
            try:
                assert fake._thread is not None and fake._thread.native_id is not None
                fake_thread_id = fake._thread.native_id
                os.environ.update({  # read by the API processes `escompte serve` starts
                    "ESCOMPTE_STRIPE_API_KEY": STRIPE_KEY,
                    "ESCOMPTE_STRIPE_API_BASE": fake.base_url,
                    "ESCOMPTE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                    "ESCOMPTE_DB_POOL_SIZE": str(-(-concurrency // WORKERS) + 4),
                    "ESCOMPTE_DATA_DIR": str(data_dir / "data"),
                    "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "metrics"),
                })
                (data_dir / "metrics").mkdir()
                log = data_dir / "api.log"
                with api_server(url, log) as server:
                    try:
                        setup_s = set_up(server.port, seeded)
                        meter = CpuMeter(server, postmaster, fake_thread_id)
                        rows, warm = phases(server, seeded, meter, concurrency, url)
                    except BenchError as exc:
                        raise BenchError(f"{exc}\nAPI log:\n{tail(log, 40)}") from None
                print("checking the ledger and the fake Stripe…", file=sys.stderr)
                deferred = finish_deferred(url, fake.base_url)
                books = check_books(url)
                performed = {
                    "transfers": fake.performed[("POST", "/v1/transfers")],
                    "payouts": fake.performed[("POST", "/v1/payouts")],
                    "transfer_calls": fake.calls[("POST", "/v1/transfers")],
                    "payout_calls": fake.calls[("POST", "/v1/payouts")],
                }
                print("loading the fake Stripe alone…", file=sys.stderr)
                account = fake.objects("account")[0]["id"]
                alone = fake_alone(fake.port, account, concurrency, fake_thread_id)
            finally:
                fake.stop()
    return {
        "rows": rows,
        "warm_up_advances": warm,
        "deferred": deferred,
        "seed_s": round(seeded.seconds, 1),
        "setup_s": round(setup_s, 1),
        "books": books,
        "stripe": performed,
        "fake_alone": alone,
        "embedded": postmaster is not None,
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "speed_probe_ms": {"before": probe_before, "after": speed_probe()},
    }


# --- report ----------------------------------------------------------------------------------


def report(
    figures: dict[str, Any], sellers: int, invoices: int, concurrency: int
) -> tuple[dict[str, Any], bool]:
    rows: dict[str, Row] = figures["rows"]
    healthz, company = rows["healthz"].rps, rows["get_company"].rps
    quote, few, adv = rows["quote"], rows["quote_few"], rows["advance"]
    print(
        f"\nEscompte financing — {WORKERS} workers, {concurrency} concurrent clients, {os.cpu_count()} "
        f"CPUs; {sellers} sellers, {invoices:,} invoices ({figures['warm_up_advances']} quoted and "
        f"accepted in the warm-up); baselines measured {BASELINE_SECONDS:g} s before and "
        f"{BASELINE_SECONDS:g} s after the financing rows\n"
    )
    header = (f"{'row':<36} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
              f" {'x healthz':>10} {'x company':>10}")
    print(header)
    print("-" * len(header))
    for row in rows.values():
        ratios = (f"{row.rps / healthz:>10.3f} {row.rps / company:>10.3f}" if row.clients == concurrency
                  else f"{'-':>10} {'-':>10}")
        print(f"{row.label:<36} {row.requests:>8} {row.rps:>8.0f} {row.cut(50):>8.2f} {row.cut(95):>8.2f}"
              f" {row.cut(99):>8.2f} {ratios}")
    print("\nCPU per request, ms (API: both workers; client: the load generator; machine: every core,"
          " kernel included):")
    header = (f"{'row':<36} {'API':>7} {'Postgres':>9} {'fake Stripe':>12} {'client':>7} {'machine':>8}"
              f" {'machine busy':>13}")
    print(header)
    print("-" * len(header))
    for row in rows.values():
        per = {k: v / row.requests * 1000 for k, v in row.cpu.items()}
        busy = row.cpu["machine"] / row.seconds / (os.cpu_count() or 1) * 100
        pg = "n/a" if math.isnan(per["postgres"]) else f"{per['postgres']:.2f}"
        print(f"{row.label:<36} {per['api']:>7.2f} {pg:>9} {per['fake_stripe']:>12.2f}"
              f" {per['client']:>7.2f} {per['machine']:>8.2f} {busy:>12.0f}%")
    alone = figures["fake_alone"]
    print(
        f"\nfake Stripe during the acceptances: {adv.cpu['fake_stripe'] / adv.seconds * 100:.0f}% of one "
        f"core ({adv.cpu['fake_stripe'] / adv.requests * 1000:.2f} ms per advance, for its transfer and "
        f"payout); alone, loaded from another process over {concurrency} connections: "
        f"{alone['pairs_per_s']:.0f} transfer+payout pairs/s (p99 {alone['p99_ms']:.1f} ms a pair, "
        f"{alone['fake_cpu_ms_per_pair']:.2f} ms of its CPU a pair)"
    )
    books, stripe = figures["books"], figures["stripe"]
    total = books["advances"]
    accepted = adv.requests + rows["advance_1"].requests + figures["warm_up_advances"]
    statuses = ", ".join(f"{k} {v:,}" for k, v in books["advance_statuses"].items())
    print(
        f"advances: {total:,} ({statuses}); eligibility decisions made: {books['eligibility_decisions']:,} "
        f"(quotes and acceptances); ledger: {books['ledger_transactions']:,} transactions, "
        f"{books['disbursements']:,} disbursements, postings sum {books['postings_sum_cents']} cents, "
        f"{books['unbalanced_transactions']} unbalanced; fake Stripe performed {stripe['transfers']:,} "
        f"transfers and {stripe['payouts']:,} payouts ({stripe['transfer_calls']:,} and "
        f"{stripe['payout_calls']:,} requests)"
    )
    if figures["deferred"]:
        print(f"disbursements the rail deferred (Stripe unavailable to the SDK: a connection error "
              f"or a 5xx): {figures['deferred']}; finished after the run with the same idempotency "
              "keys, as the recovery sweep would")
    print(f"seeding {figures['seed_s']} s, payment profiles {figures['setup_s']} s; machine load average "
          f"(1 min) before the run {figures['load_average']['before']} (above ~0.5, other work shares "
          "the cores)")
    print(speed_line(figures["speed_probe_ms"]))
    targets = {
        f"quote p99 < {TARGET_QUOTE_P99_MS:g} ms at {concurrency} clients ({quote.cut(99):.1f} ms)":
            quote.cut(99) < TARGET_QUOTE_P99_MS,
        f"acceptances >= {TARGET_ADVANCES_PER_S:g} advances/s at {concurrency} clients ({adv.rps:.0f}/s)":
            adv.rps >= TARGET_ADVANCES_PER_S,
    }
    checks = {
        "ledger balanced: postings sum to 0, no transaction unbalanced": books["postings_sum_cents"] == 0
        and books["unbalanced_transactions"] == 0
        and set(books["trial_balance"].values()) <= {0},
        "one disbursement posted per advance": books["disbursements"] == total,
        "every acceptance answered 201, every advance disbursing at the end": total == accepted
        and books["advance_statuses"].get("disbursing") == total,
        "fake Stripe: exactly one transfer and one payout per advance": stripe["transfers"] == total
        and stripe["payouts"] == total,
    }
    print()
    for name, met in targets.items():
        print(f"  {'PASS' if met else 'MISS'}  {name}")
    for name, met in checks.items():
        print(f"  {'ok  ' if met else 'FAIL'}  {name}")
    steady = "; ".join(
        f"{share:.0%} of the {concurrency}-client rate ({row.rps:.0f}/s), p99 {row.cut(99):.1f} ms"
        for share in PACED_SHARES
        for row in [rows[f"quote_paced_{share:g}"]]
    )
    print(f"  (the issue names no load for quotes: arriving at random at a steady {steady}; at "
          f"{FEW_CLIENTS} clients, {few.rps:.0f} quotes/s, p99 {few.cut(99):.1f} ms; at 1 client p99 "
          f"{rows['quote_1'].cut(99):.1f} ms)")
    # A quote does all a one-SELECT read does and more, so it is served at most as fast;
    # and n clients in a closed loop wait n / throughput on average (Little's law).
    print(f"  (at {concurrency} clients a quote's mean latency is at least {concurrency} ÷ the "
          f"company read's rate ({company:.0f}/s) = {concurrency / company * 1000:.1f} ms, and "
          f"was {concurrency / quote.rps * 1000:.1f} ms)")
    document = {
        "benchmark": "financing",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "settings": {"workers": WORKERS, "concurrency": concurrency, "sellers": sellers,
                     "invoices": invoices, "warm_up_advances": figures["warm_up_advances"],
                     "baseline_s": BASELINE_SECONDS, "embedded_postgres": figures["embedded"]},
        "baselines": {"healthz_rps": round(healthz, 1), "get_company_rps": round(company, 1)},
        "results": [row.summary() | {"clients": row.clients,
                                     "ratio_to_healthz": round(row.rps / healthz, 3),
                                     "ratio_to_get_company": round(row.rps / company, 3)}
                    for row in rows.values()],
        "fake_stripe_alone": alone,
        "books": books,
        "stripe": stripe,
        "deferred_acceptances": figures["deferred"],
        "seed_s": figures["seed_s"],
        "setup_s": figures["setup_s"],
        "load_average_1min": figures["load_average"],
        "targets": targets,
        "checks": checks,
    }
    return document, all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sellers", type=int, default=50,
                        help="eligible sellers, each with a payment profile")
    parser.add_argument("--invoices", type=int, default=5500,
                        help="open invoices spread over the sellers: one quote and one acceptance each")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--drive-fake", nargs=2, metavar=("PORT", "ACCOUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive_fake:  # the child process of fake_alone()
        port, account = args.drive_fake
        print(json.dumps(asyncio.run(_load_fake(int(port), account, args.concurrency, FAKE_ALONE_SECONDS))))
        return 0
    paced = PACED_QUOTES * len(PACED_SHARES)
    least = WARM_UP_ADVANCES + ONE_CLIENT_ADVANCES + FEW_CLIENT_QUOTES + paced + args.concurrency
    if args.sellers < 1 or args.concurrency < 1 or args.invoices < least:
        parser.error(f"--sellers and --concurrency >= 1, --invoices >= {least}")
    try:
        figures = run(args.sellers, args.invoices, args.concurrency)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        reason = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        print(f"bench: failed: {reason}", file=sys.stderr)
        return 1
    document, consistent = report(figures, args.sellers, args.invoices, args.concurrency)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    print(f"\nresults written to {RESULTS}")
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
