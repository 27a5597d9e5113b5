"""Alembic environment and versions (imported as ``escompte.migrations``)."""
