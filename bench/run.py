"""Benchmark of the API platform: throughput and latency of a few endpoints, each as a
ratio to GET /healthz measured in the same run. See bench/README.md.

    .venv/bin/python bench/run.py [--duration 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # installed with pgserver
from sqlalchemy import make_url, select

from escompte import demo
from escompte.clock import SystemClock
from escompte.db import embedded, make_engine, make_session_factory
from escompte.db.migrate import upgrade
from escompte.models import Debtor, Invoice

RESULTS = Path(__file__).resolve().parent / "results" / "foundation.json"
WORKERS = 2
MAX_SECONDS = 20.0  # hard cap per endpoint, whatever --duration says
MAX_REQUESTS = 200_000  # count cap per endpoint
HOST = "127.0.0.1"


class BenchError(Exception):
    """A failure with a message meant for the person running the benchmark."""


@dataclass(frozen=True)
class Seeded:
    url: str
    company_key: str
    invoice_id: str
    debtor_id: str


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    build: Callable[[int], Call]  # request number -> request (built outside the timing)
    status: int = 200
    replayed: bool = False  # expect the Idempotent-Replayed header


@dataclass
class Result:
    name: str
    label: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu_pct: float  # the load generator's CPU, % of one core
    machine_cpu_pct: float  # all cores, server + PostgreSQL + load generator
    ratio_to_healthz: float = 0.0


# --- setup -----------------------------------------------------------------------------


def seed_database(url: str) -> Seeded:
    upgrade(url)
    clock = SystemClock()
    engine = make_engine(url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            demo.seed(session, clock)
            keys = demo.demo_keys(session, clock)
            session.commit()
            invoice_id = session.scalars(
                select(Invoice.id).where(Invoice.company_id == keys.company_id).limit(1)
            ).one()
            debtor_id = session.scalars(
                select(Debtor.id).where(Debtor.company_id == keys.company_id).limit(1)
            ).one()
    finally:
        engine.dispose()
    return Seeded(url, keys.company, invoice_id, debtor_id)


def stop_database(data_dir: Path) -> None:
    # Imported late, as embedded.start does: pgserver reads XDG_RUNTIME_DIR at import.
    pgserver = importlib.import_module("pgserver")
    # The handle embedded.start opened; closing the last one stops the server.
    pgserver.get_server(data_dir.resolve() / "pg").cleanup()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
    return port


@dataclass(frozen=True)
class Server:
    port: int
    workers: tuple[psutil.Process, ...]


@contextmanager
def api_server(database_url: str, log_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "ESCOMPTE_DATABASE_URL": database_url,
        "ESCOMPTE_LOG_LEVEL": "WARNING",
        "ESCOMPTE_RATE_LIMIT_PER_SECOND": "100000",  # the setting's maximum
        "ESCOMPTE_RATE_LIMIT_BURST": "1000000",
    }
    command = [str(Path(sys.executable).parent / "escompte"), "serve",
               "--host", HOST, "--port", str(port), "--workers", str(WORKERS)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    workers: tuple[psutil.Process, ...] = ()
    try:
        workers = wait_ready(proc, port, log_path)
        yield Server(port, workers)
    finally:
        proc.terminate()  # uvicorn stops its workers
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            for process in (*workers, psutil.Process(proc.pid)):
                process.kill()
            proc.wait()


def wait_ready(
    proc: subprocess.Popen[bytes], port: int, log_path: Path
) -> tuple[psutil.Process, ...]:
    """Wait for /healthz, then for every worker process to hold the listening socket."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the API exited with code {proc.returncode}:\n{tail(log_path)}")
        try:
            healthy = httpx.get(f"http://{HOST}:{port}/healthz", timeout=1,
                                trust_env=False).status_code == 200
        except httpx.TransportError:
            healthy = False
        if healthy:
            workers = tuple(
                child for child in psutil.Process(proc.pid).children()
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                       for c in child.net_connections("tcp"))
            )
            if len(workers) == WORKERS:
                return workers
        time.sleep(0.2)
    raise BenchError(f"the API was not ready within 60 s:\n{tail(log_path)}")


def local_postmaster(url: str) -> psutil.Process | None:
    """PostgreSQL's postmaster when the server of ``url`` runs on this machine and we may
    see it (for its CPU time); None otherwise."""
    parsed = make_url(url)
    port = parsed.port or 5432
    socket_dir = parsed.query.get("host")
    with suppress(psutil.Error, OSError, ValueError, IndexError):
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):  # its lock file names it
            lock = Path(socket_dir) / f".s.PGSQL.{port}.lock"
            return psutil.Process(int(lock.read_text().split()[0]))
        if parsed.host in (None, "", "localhost", "127.0.0.1", "::1"):
            for conn in psutil.net_connections("tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                    return psutil.Process(conn.pid)
    return None


def speed_probe() -> float:
    """Milliseconds this machine takes for a fixed piece of pure-Python work, the best of
    five. The same code's figures differ by a factor of two to three from one VM to the
    next, and a VM's own speed drifts: figures are compared through this probe (and the
    baselines measured in the same run), not as they are."""

    def work() -> int:
        total, seen = 0, {}
        for i in range(200_000):
            total += i * i % 7
            seen[i & 1023] = i
        return total + len(seen)

    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def speed_line(probe: dict[str, float]) -> str:
    return (
        f"machine speed probe (fixed pure-Python work, lower is faster): {probe['before']} ms before "
        f"the run, {probe['after']} ms after"
    )


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass
class CpuMeter:
    """CPU seconds spent by the API workers, PostgreSQL (when local), the fake Stripe's
    thread (when it runs in this process) and the load generator (this process less the
    fake) over one phase."""

    server: Server
    postmaster: psutil.Process | None
    fake_thread_id: int | None = None

    def snapshot(self) -> dict[str, Any]:
        me = psutil.Process()
        fake = (
            0.0
            if self.fake_thread_id is None
            else sum(t.user_time + t.system_time for t in me.threads() if t.id == self.fake_thread_id)
        )
        postgres: dict[int, float] = {}
        if self.postmaster is not None:
            for process in (self.postmaster, *self.postmaster.children()):
                with suppress(psutil.NoSuchProcess):
                    postgres[process.pid] = _cpu(process)
        machine = psutil.cpu_times()  # guest time is counted in user already; steal is not ours
        busy = machine.user + machine.nice + machine.system + getattr(machine, "irq", 0.0)
        return {
            "api": sum(_cpu(worker) for worker in self.server.workers),
            "postgres": postgres,
            "fake": fake,
            "bench": _cpu(me),
            "busy": busy + getattr(machine, "softirq", 0.0),
        }

    @staticmethod
    def spent(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        postgres = sum(max(0.0, t - before["postgres"].get(pid, 0.0)) for pid, t in after["postgres"].items())
        fake = after["fake"] - before["fake"]
        spent = {
            "api": after["api"] - before["api"],
            "postgres": postgres if after["postgres"] else math.nan,
            "fake_stripe": fake,
            "client": after["bench"] - before["bench"] - fake,
            "machine": after["busy"] - before["busy"],
        }
        return {k: round(v, 3) for k, v in spent.items()}


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- load ------------------------------------------------------------------------------


def scenarios(seeded: Seeded) -> list[Scenario]:
    auth = {"Authorization": f"Bearer {seeded.company_key}"}
    today = SystemClock().today()

    def invoice_body(number: str) -> dict[str, Any]:
        return {
            "counterparty": seeded.debtor_id, "kind": "receivable", "number": number,
            "issue_date": today.isoformat(),
            "due_date": (today + timedelta(days=30)).isoformat(),
            "amount": {"amount": 125_000, "currency": "EUR"},
        }

    def create(n: int) -> Call:
        return Call("POST", "/v1/invoices", {**auth, "Idempotency-Key": f"bench-create-{n}"},
                    invoice_body(f"BENCH-{n:07d}"))

    def replay(_: int) -> Call:
        return Call("POST", "/v1/invoices", {**auth, "Idempotency-Key": "bench-replay"},
                    invoice_body("BENCH-REPLAY"))

    return [
        Scenario("healthz", "GET /healthz (baseline)", lambda _: Call("GET", "/healthz", {})),
        Scenario("get_invoice", "GET /v1/invoices/{id}",
                 lambda _: Call("GET", f"/v1/invoices/{seeded.invoice_id}", auth)),
        Scenario("list_invoices", "GET /v1/invoices?limit=20",
                 lambda _: Call("GET", "/v1/invoices?limit=20", auth)),
        Scenario("create_invoice", "POST /v1/invoices (new key)", create, status=201),
        Scenario("replay_invoice", "POST /v1/invoices (replay)", replay, status=201,
                 replayed=True),
    ]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Connection:
    """A minimal HTTP/1.1 keep-alive client: httpx.AsyncClient spends far more CPU per
    request than the API does on /healthz once 32 requests share its pool (encode/httpx#3215),
    which would make the baseline measure the client instead of the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def open(self) -> int:
        """Connect; returns the local port, which names the connection on the server side."""
        self.streams = await asyncio.open_connection(HOST, self.port)
        port: int = self.streams[1].get_extra_info("sockname")[1]
        return port

    async def send(self, request: bytes) -> Reply:
        if self.streams is None:
            await self.open()
        assert self.streams is not None
        reader, writer = self.streams
        writer.write(request)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in head[1:] if line)}
        if "content-length" not in headers:
            raise BenchError(f"response without Content-Length: {head[0]}")
        body = await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(int(head[0].split(" ", 2)[1]), headers, body)

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def spread(server: Server, count: int) -> list[Connection]:
    """Open ``count`` keep-alive connections, as many on each worker (±1), listed in
    turn by worker (the first on one worker, the second on the next, …).

    The workers share one listening socket and whichever wakes first accepts: a burst of
    connections often lands all on one worker, which would measure one worker, not two.
    The order matters to a caller that takes its connections in turn (a paced load): in
    worker order, every run of ``count / workers`` requests would go to a single worker
    while the others idle.
    """
    quota = -(-count // len(server.workers))
    kept: dict[int, list[Connection]] = {worker.pid: [] for worker in server.workers}
    deadline = time.monotonic() + 30
    while (missing := count - sum(map(len, kept.values()))) > 0:
        if time.monotonic() > deadline:
            raise BenchError(f"could not spread {count} connections over the workers: "
                             f"{ {pid: len(c) for pid, c in kept.items()} }")
        fresh = [Connection(server.port) for _ in range(missing)]
        ports = {await connection.open(): connection for connection in fresh}
        owners: dict[int, int] = {}
        for _ in range(200):  # until every worker has accepted its share (≤ 2 s)
            owners = {c.raddr.port: worker.pid for worker in server.workers
                      for c in worker.net_connections("tcp") if c.raddr and c.raddr.port in ports}
            if len(owners) == len(ports):
                break
            await asyncio.sleep(0.01)
        for port, connection in ports.items():
            owner = owners.get(port)
            if owner is not None and len(kept[owner]) < quota:
                kept[owner].append(connection)
            else:
                await connection.close()
    return [connection for turn in itertools.zip_longest(*kept.values()) for connection in turn
            if connection is not None]


def encode(call: Call) -> bytes:
    body = b"" if call.body is None else json.dumps(call.body).encode()
    headers = {"Host": HOST, **call.headers, "Content-Length": str(len(body))}
    if call.body is not None:
        headers["Content-Type"] = "application/json"
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"{call.method} {call.path} HTTP/1.1\r\n{head}\r\n".encode() + body


def check(scenario: Scenario, reply: Reply) -> None:
    replayed = reply.headers.get("idempotent-replayed") == "true"
    if reply.status != scenario.status or replayed != scenario.replayed:
        raise BenchError(
            f"{scenario.label}: expected {scenario.status}"
            f"{' (replayed)' if scenario.replayed else ''}, got {reply.status}"
            f"{' (replayed)' if replayed else ''}: {reply.body[:300].decode(errors='replace')}"
        )


async def measure(server: Server, scenario: Scenario, concurrency: int, duration: float) -> Result:
    connections = await spread(server, concurrency)
    if scenario.replayed:  # the first creation, which the measured requests replay
        reply = await connections[0].send(encode(scenario.build(0)))
        check(replace(scenario, replayed=False), reply)
    latencies: list[float] = []
    issued = 0
    deadline = time.perf_counter() + duration

    async def user(connection: Connection) -> None:
        nonlocal issued
        while issued < MAX_REQUESTS and time.perf_counter() < deadline:
            request = encode(scenario.build(issued))
            issued += 1
            started = time.perf_counter()
            reply = await connection.send(request)
            latencies.append(time.perf_counter() - started)
            check(scenario, reply)

    psutil.cpu_percent()
    cpu, started = time.process_time(), time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.gather(*(user(c) for c in connections)), MAX_SECONDS)
    except TimeoutError:
        raise BenchError(f"{scenario.label}: still running after {MAX_SECONDS:.0f} s") from None
    finally:
        for connection in connections:
            await connection.close()
    seconds = time.perf_counter() - started
    client_cpu = (time.process_time() - cpu) / seconds * 100
    machine_cpu = psutil.cpu_percent()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Result(
        scenario.name, scenario.label, len(latencies), round(seconds, 3),
        round(len(latencies) / seconds, 1), round(cuts[49] * 1000, 2), round(cuts[98] * 1000, 2),
        round(client_cpu), round(machine_cpu),
    )


# --- report ----------------------------------------------------------------------------


def report(results: list[Result], concurrency: int, duration: float) -> dict[str, Any]:
    baseline = results[0].rps
    for result in results:
        result.ratio_to_healthz = round(result.rps / baseline, 3)
    by_name = {r.name: r for r in results}
    replay_vs_create = round(by_name["replay_invoice"].rps / by_name["create_invoice"].rps, 2)

    header = (f"{'endpoint':<30} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x healthz':>10}"
              f" {'requests':>9} {'client CPU':>11} {'machine CPU':>12}")
    print(f"\nEscompte API platform — {WORKERS} workers, {concurrency} concurrent clients, "
          f"{duration:g} s per endpoint, {os.cpu_count()} CPUs\n")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.label:<30} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
              f" {r.ratio_to_healthz:>10.3f} {r.requests:>9} {r.client_cpu_pct:>10.0f}%"
              f" {r.machine_cpu_pct:>11.0f}%")
    print(f"\nreplay / first creation throughput: {replay_vs_create:.2f}x")
    return {
        "benchmark": "foundation",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "settings": {"workers": WORKERS, "concurrency": concurrency, "duration_s": duration,
                     "max_s": MAX_SECONDS, "max_requests": MAX_REQUESTS},
        "baseline": "healthz",
        "results": [asdict(r) for r in results],
        "replay_vs_create": replay_vs_create,
    }


def run(concurrency: int, duration: float) -> None:
    with tempfile.TemporaryDirectory(prefix="escompte-bench-") as tmp:
        data_dir = Path(tmp)
        print("starting PostgreSQL, migrating, seeding the demo data…", file=sys.stderr)
        url = embedded.start(data_dir, database="escompte_bench")
        try:
            seeded = seed_database(url)
            with api_server(seeded.url, data_dir / "api.log") as server:
                results = []
                for scenario in scenarios(seeded):
                    print(f"measuring {scenario.label}…", file=sys.stderr)
                    results.append(asyncio.run(measure(server, scenario, concurrency, duration)))
        finally:
            stop_database(data_dir)
    document = report(results, concurrency, duration)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results written to {RESULTS}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0,
                        help=f"seconds per endpoint (capped at {MAX_SECONDS:.0f})")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    args = parser.parse_args()
    if not 0 < args.duration <= MAX_SECONDS or args.concurrency < 1:
        parser.error(f"--duration must be in (0, {MAX_SECONDS:.0f}] and --concurrency >= 1")
    try:
        run(args.concurrency, args.duration)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        reason = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        print(f"bench: failed: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
