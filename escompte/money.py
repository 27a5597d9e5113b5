"""Money: integer minor units with an ISO currency; rates are Decimal; rounding explicit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

SUPPORTED_CURRENCIES = frozenset({"EUR"})


class CurrencyMismatch(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Money:
    amount_cents: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount_cents, int) or isinstance(self.amount_cents, bool):
            raise TypeError("Money amounts are integer cents")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_cents + other.amount_cents, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_cents - other.amount_cents, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_cents, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount_cents < other.amount_cents

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount_cents <= other.amount_cents

    @classmethod
    def zero(cls, currency: str = "EUR") -> Money:
        return cls(0, currency)


def round_cents(value: Decimal) -> int:
    """Round a Decimal amount of cents to a whole cent, half away from zero (half-up).

    The one rounding helper for money: never ``round()``, which rounds half to even.
    """
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_cents(amount_cents: int, currency: str = "EUR") -> str:
    """1234567 → "12,345.67 EUR" (for messages; exact, no float)."""
    sign = "-" if amount_cents < 0 else ""
    units, cents = divmod(abs(amount_cents), 100)
    return f"{sign}{units:,}.{cents:02d} {currency}"
