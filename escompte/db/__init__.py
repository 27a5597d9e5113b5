"""Database access: one engine per process, sessions committed at the edge."""

from escompte.db.engine import driver, make_engine, make_session_factory, set_local

__all__ = ["driver", "make_engine", "make_session_factory", "set_local"]
