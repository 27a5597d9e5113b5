from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import InstrumentedAttribute

from escompte.models import Company, KeyMode, PrincipalKind


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, resolved from its API key."""

    kind: PrincipalKind
    key_id: str
    mode: KeyMode
    partner_id: str | None = None
    company_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind is PrincipalKind.ADMIN

    @property
    def scope(self) -> str:
        """The tenant this caller acts for (idempotency keys and rate limits are per scope)."""
        if self.kind is PrincipalKind.COMPANY:
            return f"{self.mode}:company:{self.company_id}"
        if self.kind is PrincipalKind.PARTNER:
            return f"{self.mode}:partner:{self.partner_id}"
        return f"{self.mode}:admin:{self.key_id}"


def visible_company_ids(
    principal: Principal, column: InstrumentedAttribute[Any] | ColumnElement[Any]
) -> ColumnElement[bool]:
    """A WHERE clause keeping only rows whose company ``column`` the caller may see.

    Admins see every company, a partner the companies it onboarded, a company itself.
    """
    if principal.kind is PrincipalKind.ADMIN:
        return true()
    if principal.kind is PrincipalKind.COMPANY:
        return column == principal.company_id
    return column.in_(select(Company.id).where(Company.partner_id == principal.partner_id))
