"""Benchmark of the camt.053 import: a generated statement of N entries imported end to
end, against a raw PostgreSQL COPY of the same rows measured in the same run.

    .venv/bin/python bench/camt053.py [--entries 100000] [--version 001.08] [--repeat 3]

Starts an embedded PostgreSQL in a temporary folder, applies the migrations, creates a
company, writes the statement (``escompte.connectors.samples.bank``) and stores it as an
import (1 MiB chunks, untimed: that is the upload). Each run then times the camt.053
handler streaming the file back from PostgreSQL, and its commit; the bank tables are
emptied between runs. The baseline is ``COPY … FROM STDIN`` of exactly the rows the
import stored (read back with ``COPY … TO STDOUT``), as text, into a plain table with
text columns and no index, and its commit. Also measured: libxml2 alone reading the file
(iterparse with nothing done per entry), a floor for any lxml-based reader. Medians of
the runs are printed and written to bench/results/camt053.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # installed with pgserver
from lxml import etree  # type: ignore[import-untyped]
from memory import PeakRss  # bench/memory.py (scripts run from bench/)
from sqlalchemy import text
from sqlalchemy.orm import Session

from escompte.clock import SystemClock
from escompte.connectors import service as imports
from escompte.connectors.bank import accounts
from escompte.connectors.bank.camt053 import import_camt053
from escompte.connectors.base import ImportContext
from escompte.connectors.samples.bank import SampleBalance, SampleStatement, camt053_chunks, synthetic_entries
from escompte.db import embedded, make_engine, make_session_factory
from escompte.db.migrate import upgrade
from escompte.ids import new_id
from escompte.models import Company, DataImport, ImportKind, ImportStatus

RESULTS = Path(__file__).resolve().parent / "results" / "camt053.json"
IBAN = "FR7630006000011234567890189"
TARGET_RATIO = 2.0
COLUMNS = (
    "id, company_id, bank_account_id, import_id, external_id, fingerprint, source, booking_date, value_date, "
    "amount_cents, currency, counterparty_name, counterparty_iban, remittance_info, structured_reference, "
    "end_to_end_id, bank_code, match_status, matched_cents, created_at"
)


class BenchError(Exception):
    """A failure with a message meant for the person running the benchmark."""


class CpuClock:
    """CPU seconds used by this process and by the session's PostgreSQL backend: a
    measure that another program's load on the machine does not inflate the way it
    inflates wall time."""

    def __init__(self, session: Session) -> None:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        self._backend = psutil.Process(pid)
        self.python_s = 0.0
        self.postgres_s = 0.0

    def _backend_cpu(self) -> float:
        times = self._backend.cpu_times()
        return float(times.user + times.system)

    @contextmanager
    def measure(self) -> Iterator[None]:
        python, postgres = time.process_time(), self._backend_cpu()
        try:
            yield
        finally:
            self.python_s = time.process_time() - python
            self.postgres_s = self._backend_cpu() - postgres


def write_statement(path: Path, entries: int, version: str) -> int:
    statement = SampleStatement(
        account_iban=IBAN,
        entries=synthetic_entries(entries),  # streamed, never a list
        balances=[SampleBalance("OPBD", date(2026, 1, 1), 0), SampleBalance("CLBD", date(2026, 12, 31), 1)],
        account_name="Compte courant",
    )
    size = 0
    with path.open("wb") as out:
        for chunk in camt053_chunks([statement], version):
            out.write(chunk)
            size += len(chunk)
    return size


def setup(session: Session, path: Path) -> tuple[str, str]:
    """A company and the stored file; returns (company id, import id)."""
    clock = SystemClock()
    company = Company(
        id=new_id("cmp"),
        legal_name="Banc d'essai SAS",
        siren="732829320",
        contact_email="bench@example.org",
        created_at=clock.now(),
    )
    session.add(company)
    session.flush()
    with path.open("rb") as stream:
        data_import = imports.receive(
            session,
            clock,
            None,
            company_id=company.id,
            filename=path.name,
            stream=stream,
            kind=ImportKind.CAMT053,
        )
    session.commit()
    return company.id, data_import.id


def run_import(session: Session, company_id: str, import_id: str) -> dict[str, Any]:
    """One import, as the worker runs it (file streamed back from PostgreSQL), timed with
    its commit; the time spent in the final insert is reported apart."""
    clock = SystemClock()
    company = session.get(Company, company_id)
    data_import = session.get(DataImport, import_id)
    assert company is not None and data_import is not None
    data_import.status = ImportStatus.RUNNING
    session.commit()
    finish = accounts.BankWriter.finish
    spent: dict[str, float] = {}

    def timed_finish(self: accounts.BankWriter, **kwargs: Any) -> accounts.StoreResult:
        started = time.perf_counter()
        try:
            return finish(self, **kwargs)
        finally:
            spent["finish_s"] = time.perf_counter() - started

    accounts.BankWriter.finish = timed_finish  # type: ignore[method-assign]
    memory = PeakRss()
    cpu = CpuClock(session)
    try:
        with memory.watch(), cpu.measure():
            started = time.perf_counter()
            ctx = ImportContext(
                session=session,
                clock=clock,
                company=company,
                data_import=data_import,
                open_stream=lambda: imports.open_stored(session, import_id),
                size_bytes=data_import.size_bytes,
                options={},
            )
            with session.begin_nested():
                outcome = import_camt053(ctx)
            session.commit()
            seconds = time.perf_counter() - started
    finally:
        accounts.BankWriter.finish = finish  # type: ignore[method-assign]
    return {
        "seconds": seconds,
        "finish_s": spent.get("finish_s", 0.0),
        "created": outcome.counts.get("bank_transactions", 0),
        "cpu_python_s": cpu.python_s,
        "cpu_postgres_s": cpu.postgres_s,
        "rss_before_mb": memory.before / 2**20,
        "rss_peak_mb": memory.peak / 2**20,
    }


def empty_bank_tables(session: Session) -> None:
    session.execute(text("TRUNCATE bank_transactions, bank_balances, bank_accounts CASCADE"))
    session.commit()


def stored_rows(session: Session) -> bytes:
    raw = session.connection().connection.driver_connection
    buffer = io.BytesIO()
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY (SELECT {COLUMNS} FROM bank_transactions ORDER BY id) TO STDOUT") as copy,
    ):
        for block in copy:
            buffer.write(block)
    session.commit()
    return buffer.getvalue()


def run_baseline(session: Session, rows: bytes) -> tuple[float, float]:
    """Raw COPY of the same rows, as text, into a plain table, and its commit; returns
    (wall seconds, CPU seconds of this process and the backend)."""
    session.execute(text("DROP TABLE IF EXISTS bench_raw_copy"))
    columns = ", ".join(f"{name.strip()} text" for name in COLUMNS.split(","))
    session.execute(text(f"CREATE TABLE bench_raw_copy ({columns})"))
    session.commit()
    raw = session.connection().connection.driver_connection
    cpu = CpuClock(session)
    with cpu.measure():
        started = time.perf_counter()
        with raw.cursor() as cursor, cursor.copy(f"COPY bench_raw_copy ({COLUMNS}) FROM STDIN") as copy:
            for offset in range(0, len(rows), 1 << 20):
                copy.write(rows[offset : offset + (1 << 20)])
        session.commit()
        seconds = time.perf_counter() - started
    session.execute(text("DROP TABLE bench_raw_copy"))
    session.commit()
    return seconds, cpu.python_s + cpu.postgres_s


def parse_only(path: Path, version: str) -> float:
    """libxml2 reading the file through lxml iterparse, nothing done per entry."""
    tag = f"{{urn:iso:std:iso:20022:tech:xsd:camt.053.{version}}}Ntry"
    started = time.perf_counter()
    with path.open("rb") as stream:
        for _, element in etree.iterparse(
            stream, events=("end",), tag=tag, resolve_entities=False, no_network=True, load_dtd=False
        ):
            element.clear(keep_tail=True)
            parent = element.getparent()
            while element.getprevious() is not None:
                del parent[0]
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench(entries: int, version: str, repeat: int, say: Callable[[str], None]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="escompte-bench-camt-") as tmp:
        folder = Path(tmp)
        say("starting PostgreSQL and migrating…")
        url = embedded.start(folder, database="bench_camt")
        try:
            upgrade(url)
            engine = make_engine(url, pool_size=1)
            path = folder / "statement.xml"
            say(f"writing a camt.053.{version} statement of {entries:,} entries…")
            size = write_statement(path, entries, version)
            with make_session_factory(engine)() as session:
                company_id, import_id = setup(session, path)
                imports_runs: list[dict[str, Any]] = []
                baselines: list[float] = []
                baseline_cpus: list[float] = []
                parses: list[float] = []
                for run in range(1, repeat + 1):
                    say(f"run {run}/{repeat}: import…")
                    if run > 1:
                        empty_bank_tables(session)
                    imports_runs.append(run_import(session, company_id, import_id))
                    say(f"run {run}/{repeat}: raw COPY of the same rows…")
                    rows = stored_rows(session)
                    seconds, cpu_s = run_baseline(session, rows)
                    del rows  # not to weigh on the next run's memory
                    baselines.append(seconds)
                    baseline_cpus.append(cpu_s)
                    parses.append(parse_only(path, version))
                stored = imports_runs[-1]["created"]
            engine.dispose()
        finally:
            embedded.stop(folder)
    import_s = median([r["seconds"] for r in imports_runs])
    baseline_s = median(baselines)
    return {
        "benchmark": "camt053",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {"entries": entries, "version": version, "repeat": repeat},
        "file_mb": round(size / 1e6, 1),
        "transactions_stored": stored,
        "baseline": "COPY FROM STDIN of the stored rows as text into a plain table with text columns",
        "baseline_s": round(baseline_s, 3),
        "import_s": round(import_s, 3),
        "ratio": round(import_s / baseline_s, 1),
        "target_ratio": TARGET_RATIO,
        "cpu": {
            "baseline_s": round(median(baseline_cpus), 3),
            "import_python_s": round(median([r["cpu_python_s"] for r in imports_runs]), 3),
            "import_postgres_s": round(median([r["cpu_postgres_s"] for r in imports_runs]), 3),
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "final_insert_s": round(median([r["finish_s"] for r in imports_runs]), 3),
        "xml_parse_only_s": round(median(parses), 3),
        "peak_rss_mb": round(max(r["rss_peak_mb"] for r in imports_runs), 1),
        "rss_before_import_mb": round(min(r["rss_before_mb"] for r in imports_runs), 1),
        "rss_growth_mb": round(max(r["rss_peak_mb"] - r["rss_before_mb"] for r in imports_runs), 1),
        "runs": {
            "import_s": [round(r["seconds"], 3) for r in imports_runs],
            "baseline_s": [round(b, 3) for b in baselines],
        },
        "max_rss_process_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"\ncamt.053 import — {result['settings']['entries']:,} entries "
        f"({result['transactions_stored']:,} transactions, {result['file_mb']} MB, "
        f"camt.053.{result['settings']['version']}), median of {result['settings']['repeat']} run(s), "
        f"{result['machine']['cpus']} CPUs\n"
    )
    rows = [
        ("raw COPY of the same rows (baseline)", f"{result['baseline_s']:.3f} s"),
        ("import end to end (parse, check, stage, insert, commit)", f"{result['import_s']:.3f} s"),
        ("  of which waiting for the last batches to be inserted", f"{result['final_insert_s']:.3f} s"),
        ("CPU, baseline (client + PostgreSQL)", f"{result['cpu']['baseline_s']:.3f} s"),
        (
            "CPU, import: Python / PostgreSQL",
            f"{result['cpu']['import_python_s']:.3f} s / {result['cpu']['import_postgres_s']:.3f} s",
        ),
        ("libxml2 alone reading the file (a floor)", f"{result['xml_parse_only_s']:.3f} s"),
        ("ratio import / baseline", f"{result['ratio']:.1f}x (target {result['target_ratio']:.0f}x)"),
        (
            "peak RSS during the import",
            f"{result['peak_rss_mb']:.0f} MB (+{result['rss_growth_mb']:.0f} MB over the process before it)",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(
        f"\nload average at the end: {', '.join(str(x) for x in result['load_average'])} "
        "(other programs running at the same time make wall times noisy)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=100_000, help="statement entries (default 100,000)")
    parser.add_argument("--version", default="001.08", help="camt.053 version, 001.02 … 001.08")
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are reported (default 3)")
    args = parser.parse_args()
    if not 1 <= args.entries <= 2_000_000 or not 1 <= args.repeat <= 10:
        parser.error("--entries must be in 1 … 2,000,000 and --repeat in 1 … 10")
    try:
        result = bench(args.entries, args.version, args.repeat, lambda m: print(m, file=sys.stderr))
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        reason = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        print(f"bench: failed: {reason}", file=sys.stderr)
        return 1
    report(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
