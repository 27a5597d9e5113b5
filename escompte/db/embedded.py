"""The embedded PostgreSQL (``pgserver``) used when ``ESCOMPTE_DATABASE_URL`` is unset.

Several processes (``serve``, ``worker``, ``keys create``) share one server in one data
folder; pgserver counts the processes using it and the last one out stops it. A process
killed with -9 leaves a stale entry behind: ``escompte db stop`` stops the server anyway.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

_servers: dict[Path, Any] = {}


def _prepare(data_dir: Path) -> Path:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    run_dir = data_dir / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(run_dir))
    return data_dir


def start(data_dir: Path, database: str = "escompte") -> str:
    """Start (or join) the embedded server and return a SQLAlchemy URL to ``database``."""
    data_dir = _prepare(data_dir)
    pg_dir = data_dir / "pg"
    import pgserver  # imported late: it reads XDG_RUNTIME_DIR at import time

    server = _servers.get(pg_dir)
    if server is None:
        server = pgserver.get_server(str(pg_dir), cleanup_mode="stop")  # type: ignore[attr-defined]
        _servers[pg_dir] = server
    uri: str = server.get_uri()
    base = uri.replace("postgresql://", "postgresql+psycopg://", 1)
    ensure_database(base, database)
    return base.replace("/postgres?", f"/{database}?", 1)


def ensure_database(server_url: str, database: str) -> None:
    """Create ``database`` on the server of ``server_url`` if it does not exist."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()


def stop(data_dir: Path) -> bool:
    """Stop the embedded server of ``data_dir`` even if stale process ids remain."""
    data_dir = _prepare(data_dir)
    pg_dir = data_dir / "pg"
    if not (pg_dir / "postmaster.pid").exists():
        return False
    import pgserver

    pgserver.pg_ctl(  # type: ignore[attr-defined]
        ["-w", "stop", "-m", "fast"], pgdata=pg_dir, user="pgserver"
    )
    handles = pg_dir / ".handle_pids.json"
    if handles.exists():
        handles.unlink()
    return True


def resolve_database_url(configured: str | None, data_dir: Path) -> str:
    """The configured URL, or one to the embedded server started in ``data_dir``."""
    if configured:
        return configured
    return start(data_dir)
