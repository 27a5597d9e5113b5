"""Events: what happened to an object, in order, for statements and outgoing webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index(None, "object_id", "id"), Index(None, "company_id", "id"))

    id: Mapped[str] = id_column()
    type: Mapped[str] = mapped_column(String(60))  # e.g. advance.disbursed
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()
