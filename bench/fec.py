"""Benchmark of the FEC import: a generated FEC of N lines imported end to end, against a
raw PostgreSQL COPY of the same rows measured in the same run.

    .venv/bin/python bench/fec.py [--lines 1000000] [--repeat 1]

Starts an embedded PostgreSQL in a temporary folder and writes the FEC on disk
(``escompte.connectors.samples.fec.synthetic_chunks``: sales, purchases, lettered bank
entries, payroll; untimed). Each run creates and migrates a new database with a new
company (a company's first FEC, as on a fresh server), then times:

- the baseline: ``COPY … FROM STDIN`` of the file's lines as they are (tab separated,
  header left out) into a plain table of 18 text columns without index, and its commit;
- the import: ``import_fec`` through a real ImportContext streaming the file from disk —
  read, check, COPY into book_lines, derive invoices, counterparties and payments — and
  its commit;
- for reading the figures, not a target: the same rows the import stored, copied
  straight into book_lines (its indexes and foreign keys) and rolled back: the floor
  any import into that table has.

Medians are printed and written to bench/results/fec.json; peak memory is the resident
set sampled every 10 ms during the import.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from memory import PeakRss  # bench/memory.py (scripts run from bench/)
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from escompte.clock import SystemClock
from escompte.connectors.base import ImportContext
from escompte.connectors.fec import BOOK_COLUMNS, import_fec
from escompte.connectors.samples.fec import FEC_COLUMNS, fec_filename, synthetic_chunks
from escompte.db import embedded, make_engine, make_session_factory
from escompte.db.migrate import upgrade
from escompte.ids import new_id
from escompte.models import BookLine, Company, DataImport, ImportKind, ImportStatus, Invoice, Payment

RESULTS = Path(__file__).resolve().parent / "results" / "fec.json"
TARGET_RATIO = 2.0
MAX_RSS_MB = 300
SIREN = "732829320"
CHUNK = 1 << 20


class BenchError(Exception):
    """A failure with a message meant for the person running the benchmark."""


def write_fec(path: Path, lines: int) -> int:
    size = 0
    with path.open("wb") as out:
        for chunk in synthetic_chunks(lines):
            out.write(chunk)
            size += len(chunk)
    return size


def file_chunks(path: Path, skip_header: bool) -> Iterator[bytes]:
    with path.open("rb") as stream:
        if skip_header:
            stream.readline()
        while chunk := stream.read(CHUNK):
            yield chunk


def raw_copy(session: Session, statement: str, chunks: Iterator[bytes]) -> None:
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk in chunks:
            copy.write(chunk)


def run_baseline(session: Session, path: Path) -> float:
    """The file's rows as they are, COPY'd into 18 text columns, and the commit."""
    session.execute(text("DROP TABLE IF EXISTS bench_fec_raw"))
    session.execute(text(f"CREATE TABLE bench_fec_raw ({', '.join(f'{c} text' for c in FEC_COLUMNS)})"))
    session.commit()
    started = time.perf_counter()
    raw_copy(session, "COPY bench_fec_raw FROM STDIN", file_chunks(path, skip_header=True))
    session.commit()
    seconds = time.perf_counter() - started
    rows = session.execute(text("SELECT count(*) FROM bench_fec_raw")).scalar_one()
    session.execute(text("DROP TABLE bench_fec_raw"))
    session.commit()
    if rows < 1:
        raise BenchError("the baseline copied no row")
    return seconds


def new_company(session: Session, siren: str = SIREN) -> Company:
    company = Company(
        id=new_id("cmp"),
        legal_name="Banc d'essai SAS",
        siren=siren,
        contact_email="bench@example.org",
        created_at=SystemClock().now(),
    )
    session.add(company)
    session.flush()
    return company


def new_import(session: Session, company: Company, path: Path, size: int) -> DataImport:
    data_import = DataImport(
        id=new_id("imp"),
        company_id=company.id,
        kind=ImportKind.FEC,
        status=ImportStatus.RUNNING,
        filename=path.name,
        content_sha256="0" * 64,
        size_bytes=size,
        options={},
        created_at=SystemClock().now(),
    )
    session.add(data_import)
    session.flush()
    return data_import


def run_import(session: Session, company_id: str, path: Path, size: int) -> dict[str, Any]:
    """One import of the file on disk through a real ImportContext, timed with its commit."""
    clock = SystemClock()
    company = session.get(Company, company_id)
    if company is None:
        raise BenchError("the company vanished")
    data_import = new_import(session, company, path, size)
    session.commit()
    read_until: list[float] = []

    def derive_starts(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not read_until and statement.startswith("ANALYZE fec_tiers"):
            read_until.append(time.perf_counter())  # lines stored: the derivation begins

    def open_stream() -> IO[bytes]:
        return path.open("rb")

    memory = PeakRss()
    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", derive_starts)
    try:
        with memory.watch():
            started = time.perf_counter()
            ctx = ImportContext(
                session=session,
                clock=clock,
                company=company,
                data_import=data_import,
                open_stream=open_stream,
                size_bytes=size,
                options={},
            )
            with session.begin_nested():
                outcome = import_fec(ctx)
            session.commit()
            seconds = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", derive_starts)
    return {
        "seconds": seconds,
        "read_copy_s": (read_until[0] - started) if read_until else seconds,
        "counts": outcome.counts,
        "import_id": data_import.id,
        "rss_before_mb": memory.before / 2**20,
        "rss_peak_mb": memory.peak / 2**20,
    }


def run_floor(session: Session, import_id: str, folder: Path) -> float:
    """The rows the import stored, COPY'd straight into book_lines for another company
    (same indexes, same foreign keys), then rolled back (no commit timed)."""
    company = new_company(session, siren="552100554")
    data_import = new_import(session, company, folder / "floor", 0)
    rows = folder / "book_lines.copy"
    driver = session.connection().connection.driver_connection
    with (
        rows.open("wb") as out,
        driver.cursor() as cursor,
        cursor.copy(
            f"COPY (SELECT {BOOK_COLUMNS}, fiscal_year_end, '{company.id}', '{data_import.id}' "
            f"FROM book_lines WHERE import_id = '{import_id}') TO STDOUT"
        ) as copy,
    ):
        for block in copy:
            out.write(block)
    started = time.perf_counter()
    raw_copy(
        session,
        f"COPY book_lines ({BOOK_COLUMNS}, fiscal_year_end, company_id, import_id) FROM STDIN",
        file_chunks(rows, skip_header=False),
    )
    seconds = time.perf_counter() - started
    session.rollback()
    rows.unlink()
    return seconds


def one_run(
    url: str, path: Path, size: int, folder: Path
) -> tuple[float, dict[str, Any], float, dict[str, int]]:
    """Baseline, import and floor on a freshly migrated database (a company's first FEC)."""
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            company_id = new_company(session).id
            session.commit()
            baseline = run_baseline(session, path)
            imported = run_import(session, company_id, path, size)
            floor = run_floor(session, imported["import_id"], folder)
            stored = {
                name: session.execute(select(func.count()).select_from(model)).scalar_one()
                for name, model in (("book_lines", BookLine), ("invoices", Invoice), ("payments", Payment))
            }
    finally:
        engine.dispose()
    return baseline, imported, floor, stored


def bench(lines: int, repeat: int, say: Callable[[str], None]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="escompte-bench-fec-") as tmp:
        folder = Path(tmp)
        say("starting PostgreSQL…")
        embedded.start(folder, database="postgres")
        try:
            path = folder / fec_filename(SIREN, datetime(2025, 12, 31).date())
            say(f"writing a FEC of {lines:,} lines…")
            size = write_fec(path, lines)
            file_lines = sum(chunk.count(b"\n") for chunk in file_chunks(path, skip_header=True))
            runs: list[dict[str, Any]] = []
            baselines: list[float] = []
            floors: list[float] = []
            for run in range(1, repeat + 1):
                say(f"run {run}/{repeat}: new database, raw COPY, import, COPY straight into book_lines…")
                baseline, imported, floor, stored = one_run(
                    embedded.start(folder, database=f"bench_fec_{run}"), path, size, folder
                )
                baselines.append(baseline)
                runs.append(imported)
                floors.append(floor)
                if stored["book_lines"] != file_lines:
                    raise BenchError(
                        f"the import stored {stored['book_lines']:,} book lines, the file has {file_lines:,}"
                    )
        finally:
            embedded.stop(folder)
    import_s = statistics.median(r["seconds"] for r in runs)
    baseline_s = statistics.median(baselines)
    return {
        "benchmark": "fec",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {"lines": lines, "repeat": repeat},
        "file_lines": file_lines,
        "file_mb": round(size / 1e6, 1),
        "stored": stored,
        "counts": runs[-1]["counts"],
        "baseline": "COPY FROM STDIN of the file's lines as they are into a plain table of 18 text columns",
        "baseline_s": round(baseline_s, 3),
        "import_s": round(import_s, 3),
        "import_read_copy_s": round(statistics.median(r["read_copy_s"] for r in runs), 3),
        "ratio": round(import_s / baseline_s, 2),
        "target_ratio": TARGET_RATIO,
        "book_lines_copy_floor_s": round(statistics.median(floors), 3),
        "rows_per_s": round(file_lines / import_s),
        "baseline_rows_per_s": round(file_lines / baseline_s),
        "peak_rss_mb": round(max(r["rss_peak_mb"] for r in runs), 1),
        "rss_before_import_mb": round(runs[0]["rss_before_mb"], 1),
        "max_rss_process_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": {
            "import_s": [round(r["seconds"], 3) for r in runs],
            "baseline_s": [round(b, 3) for b in baselines],
            "book_lines_copy_floor_s": [round(f, 3) for f in floors],
        },
    }


def report(result: dict[str, Any]) -> None:
    counts = result["counts"]
    print(
        f"\nFEC import — {result['file_lines']:,} lines ({result['file_mb']} MB), "
        f"median of {result['settings']['repeat']} run(s), {result['machine']['cpus']} CPUs\n"
    )
    print(
        f"derived: {counts.get('invoices', 0):,} invoices, {counts.get('debtors', 0):,} counterparties, "
        f"{counts.get('payments', 0):,} payments\n"
    )
    rows = [
        (
            "raw COPY of the file's rows, 18 text columns (baseline)",
            f"{result['baseline_s']:8.3f} s {result['baseline_rows_per_s']:>10,} rows/s",
        ),
        (
            "import end to end (read, check, COPY, derive, commit)",
            f"{result['import_s']:8.3f} s {result['rows_per_s']:>10,} rows/s",
        ),
        (
            "  of which reading, checking and COPY (book lines, 411/401 lines)",
            f"{result['import_read_copy_s']:8.3f} s",
        ),
        ("same rows COPY'd straight into book_lines (floor)", f"{result['book_lines_copy_floor_s']:8.3f} s"),
        ("ratio import / baseline", f"{result['ratio']:8.2f} x  (target {result['target_ratio']:.0f} x)"),
        (
            "peak RSS during the import",
            f"{result['peak_rss_mb']:8.0f} MB (limit {MAX_RSS_MB} MB; "
            f"{result['rss_before_import_mb']:.0f} MB before)",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=1_000_000, help="FEC lines (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; medians are reported (default 1)")
    args = parser.parse_args()
    if not 1_000 <= args.lines <= 5_000_000 or not 1 <= args.repeat <= 10:
        parser.error("--lines must be in 1,000 … 5,000,000 and --repeat in 1 … 10")
    try:
        result = bench(args.lines, args.repeat, lambda m: print(m, file=sys.stderr))
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
