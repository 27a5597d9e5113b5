from __future__ import annotations

from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def max_connections(pool_size: int) -> int:
    """Connections an engine made with ``pool_size`` may hold at once."""
    return 2 * pool_size


def make_engine(url: str, *, pool_size: int = 10, lock_timeout_ms: int = 0) -> Engine:
    """``lock_timeout_ms``: a statement waiting longer for a lock fails (0: no limit)."""
    connect_args: dict[str, object] = {"connect_timeout": 10, "application_name": "escompte"}
    if lock_timeout_ms:
        connect_args["options"] = f"-c lock_timeout={lock_timeout_ms}"
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_connections(pool_size) - pool_size,
        pool_pre_ping=False,  # a round trip per checkout; connections are recycled instead
        pool_recycle=1800,
        pool_timeout=10,
        connect_args=connect_args,
    )
    # A flush inserting a few rows of one table without RETURNING sends one INSERT with
    # several VALUES rather than psycopg's executemany, which enters and leaves pipeline
    # mode for each batch: for the two payment operations of an acceptance that round
    # trip cost more than the rows (SQLAlchemy's "insertmanyvalues").
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def driver(session: Session) -> Any:
    """The psycopg connection under the session's transaction, for the hot paths'
    statements sent straight through the driver."""
    return session.connection().connection.driver_connection


def _begin(raw: Any) -> str:
    """The ``BEGIN`` psycopg sends for this connection's transaction characteristics
    (a pooled connection can carry an explicit isolation level: SQLAlchemy sets the
    default one back on a connection that was used in autocommit)."""
    parts = ["BEGIN"]
    if raw.isolation_level is not None:
        parts.append("ISOLATION LEVEL " + psycopg.IsolationLevel(raw.isolation_level).name.replace("_", " "))
    if raw.read_only is not None:
        parts.append("READ ONLY" if raw.read_only else "READ WRITE")
    if raw.deferrable is not None:
        parts.append("DEFERRABLE" if raw.deferrable else "NOT DEFERRABLE")
    return " ".join(parts)


def set_local(session: Session, setting: str) -> None:
    """``SET LOCAL <setting>`` (a constant, e.g. ``"plan_cache_mode = force_generic_plan"``)
    for the rest of the session's transaction.

    If that transaction has not reached the server yet, it is opened by the same round
    trip (``BEGIN …; SET LOCAL …`` in one message, the ``BEGIN`` psycopg would have
    sent) instead of psycopg's own ``BEGIN`` followed by the ``SET``: psycopg then sees a
    transaction in progress and sends no ``BEGIN`` of its own. Inside an open
    transaction, or in autocommit, the ``SET`` is sent on its own."""
    raw = driver(session)
    statement = f"SET LOCAL {setting}"
    if raw.pgconn.transaction_status == pq.TransactionStatus.IDLE and not raw.autocommit:
        result = raw.pgconn.exec_(f"{_begin(raw)}; {statement}".encode())
        if result.status != pq.ExecStatus.COMMAND_OK:  # raised as psycopg raises its own
            if raw.pgconn.status == pq.ConnStatus.BAD:
                raise psycopg.OperationalError(result.get_error_message(raw.info.encoding))
            raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
        return
    with raw.cursor() as cur:
        cur.execute(statement)
