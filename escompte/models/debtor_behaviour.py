from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, Numeric
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base


class DebtorBehaviour(Base):
    """How a debtor pays, computed from matched payment history (reconciliation)."""

    __tablename__ = "debtor_behaviours"

    debtor_id: Mapped[str] = mapped_column(ForeignKey("debtors.id"), primary_key=True)
    paid_invoice_count: Mapped[int] = mapped_column(Integer)
    avg_days_late: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    p90_days_late: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    share_paid_late: Mapped[Decimal] = mapped_column(Numeric(5, 4))  # 0..1
    unpaid_count: Mapped[int] = mapped_column(Integer)  # open and past due
    unpaid_overdue_cents: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
