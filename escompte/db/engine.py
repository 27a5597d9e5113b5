from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def max_connections(pool_size: int) -> int:
    """Connections an engine made with ``pool_size`` may hold at once."""
    return 2 * pool_size


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_connections(pool_size) - pool_size,
        pool_pre_ping=False,  # a round trip per checkout; connections are recycled instead
        pool_recycle=1800,
        pool_timeout=10,
        connect_args={"connect_timeout": 10, "application_name": "escompte"},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
