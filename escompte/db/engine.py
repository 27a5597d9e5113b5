from __future__ import annotations

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
