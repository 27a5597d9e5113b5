"""How amounts, dates and SIRENs read in the messages a treasurer sees (French, English)."""

from __future__ import annotations

from datetime import date

_MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _grouped(units: int, sep: str) -> str:
    return f"{units:,}".replace(",", sep)


def eur_fr(cents: int) -> str:
    """``3800000`` → ``"38 000,00 €"``."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{_grouped(units, ' ')},{rest:02d} €"


def eur_en(cents: int) -> str:
    """``3800000`` → ``"€38,000.00"``."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}€{_grouped(units, ',')}.{rest:02d}"


def money_fr(cents: int, currency: str) -> str:
    if currency == "EUR":
        return eur_fr(cents)
    units, rest = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{_grouped(units, ' ')},{rest:02d} {currency}"


def money_en(cents: int, currency: str) -> str:
    if currency == "EUR":
        return eur_en(cents)
    units, rest = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{currency} {_grouped(units, ',')}.{rest:02d}"


def date_fr(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def date_en(value: date) -> str:
    return f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}"


def siren(value: str) -> str:
    """``"732829320"`` → ``"732 829 320"``, as printed on Kbis extracts."""
    if len(value) != 9:
        return value
    return f"{value[:3]} {value[3:6]} {value[6:]}"


def pct_fr(bps: int) -> str:
    """Basis points as a French percentage: ``5000`` → ``"50 %"``, ``1250`` → ``"12,5 %"``."""
    return _pct(bps).replace(".", ",") + " %"


def pct_en(bps: int) -> str:
    """Basis points as a percentage: ``5000`` → ``"50%"``, ``1250`` → ``"12.5%"``."""
    return _pct(bps) + "%"


def _pct(bps: int) -> str:
    sign = "-" if bps < 0 else ""
    whole, rest = divmod(abs(bps), 100)
    if rest == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{rest:02d}".rstrip("0")


def days_fr(n: int) -> str:
    return f"{n} jour" if abs(n) < 2 else f"{n} jours"  # French: 0 and 1 are singular


def days_en(n: int) -> str:
    return f"{n} day" if abs(n) == 1 else f"{n} days"


def incidents_fr(n: int) -> str:
    return "aucun incident" if n == 0 else f"{n} incident" if n == 1 else f"{n} incidents"


def incidents_en(n: int) -> str:
    return "no incident" if n == 0 else f"{n} incident" if n == 1 else f"{n} incidents"
