"""Escompte: invoice-by-invoice receivables financing, with collections running alongside.

This package is the shared kernel (settings, database, money, clock, ids, errors, CLI)
and the namespace under which the product's folders are imported:
``escompte.api``, ``escompte.financing``, ``escompte.eligibility``,
``escompte.collections``, ``escompte.connectors`` and ``escompte.migrations``.
"""

__version__ = "0.1.0"

# Imported straight from a source checkout (the repository root on sys.path, e.g.
# `python -m pytest` or `python -c` run from the root), this package is the root's
# `escompte/` folder alone: extend its path with the root so `escompte.api`,
# `escompte.collections` … resolve to the root folders as they do once installed.
import os as _os

_ROOT = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_ROOT, "pyproject.toml")) and _ROOT not in __path__:
    __path__.append(_ROOT)
