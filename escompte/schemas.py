"""Pydantic types shared by every resource: text, dates, identifiers, money, lists.

Constraints live in the types so the OpenAPI spec states them (Schemathesis checks it).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from escompte.ids import id_pattern
from escompte.money import SUPPORTED_CURRENCIES

# Printable text: no control characters (PostgreSQL refuses NUL; logs and letters hate
# the rest), no leading/trailing blanks.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


def text(max_length: int, min_length: int = 1) -> Any:
    return Annotated[
        str,
        StringConstraints(
            min_length=min_length, max_length=max_length, pattern=_PRINTABLE, strip_whitespace=True
        ),
    ]


def _iso_date_only(value: Any) -> Any:
    if not isinstance(value, str) and not isinstance(value, date):
        raise ValueError("must be a date written as YYYY-MM-DD")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a date written as YYYY-MM-DD") from None
    return value


def _plausible_date(value: date) -> date:
    if not (date(2000, 1, 1) <= value <= date(2100, 12, 31)):
        raise ValueError("must be between 2000-01-01 and 2100-12-31")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_only), AfterValidator(_plausible_date)]


def ref(prefix: str, description: str) -> Any:
    """A reference to another object by its prefixed id."""
    return Annotated[str, Field(pattern=id_pattern(prefix), description=description)]


# --- money ---------------------------------------------------------------------------

MAX_AMOUNT_CENTS = 100_000_000_000  # 1 bn EUR: far above any SME invoice


def _supported_currency(value: str) -> str:
    if value not in SUPPORTED_CURRENCIES:
        raise ValueError(f"currency {value} is not supported; Escompte handles EUR only for now")
    return value


Currency = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code. Only EUR is supported for now."),
    AfterValidator(_supported_currency),
]


class MoneyIn(BaseModel):
    """An amount in minor units (cents) with its currency."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, le=MAX_AMOUNT_CENTS, description="Amount in cents, > 0.")
    currency: Currency


class Money(BaseModel):
    amount: int = Field(description="Amount in cents.")
    currency: str = Field(pattern=r"^[A-Z]{3}$")


def money(amount_cents: int, currency: str) -> Money:
    return Money(amount=amount_cents, currency=currency)


# --- resources and lists --------------------------------------------------------------


class Resource(BaseModel):
    id: str
    object: str
    created_at: datetime


T = TypeVar("T")


class ListResponse(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


class InputModel(BaseModel):
    """Base of request bodies: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")
