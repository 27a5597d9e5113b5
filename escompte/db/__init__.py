"""Database access: one engine per process, sessions committed at the edge."""

from escompte.db.engine import make_engine, make_session_factory

__all__ = ["make_engine", "make_session_factory"]
