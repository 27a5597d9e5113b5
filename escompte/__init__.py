"""Escompte: invoice-by-invoice receivables financing, with collections running alongside.

This package is the shared kernel (settings, database, money, clock, ids, errors, CLI)
and the namespace under which the product's folders are imported:
``escompte.api``, ``escompte.financing``, ``escompte.eligibility``,
``escompte.collections``, ``escompte.connectors`` and ``escompte.migrations``.
"""

__version__ = "0.1.0"
