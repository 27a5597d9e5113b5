from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Identity, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base


class RegistryCompany(Base):
    """A company as the SIRENE register last described it (imported extract)."""

    __tablename__ = "registry_companies"

    siren: Mapped[str] = mapped_column(String(9), primary_key=True)
    legal_name: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean)
    ceased_on: Mapped[date | None] = mapped_column(Date)
    legal_form: Mapped[str | None] = mapped_column(String(10))  # catégorie juridique
    naf_code: Mapped[str | None] = mapped_column(String(10))  # activité principale
    created_on: Mapped[date | None] = mapped_column(Date)
    import_id: Mapped[str | None] = mapped_column(ForeignKey("imports.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InsolvencyProceeding(Base):
    """A collective proceeding published in the BODACC (sauvegarde, redressement,
    liquidation judiciaire, plan, clôture …)."""

    __tablename__ = "insolvency_proceedings"
    __table_args__ = (Index(None, "siren", "judgment_date"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # the BODACC announcement id: a re-import changes nothing
    announcement_id: Mapped[str] = mapped_column(String(64), unique=True)
    siren: Mapped[str] = mapped_column(String(9))
    # sauvegarde | redressement | liquidation | plan | cloture | other
    kind: Mapped[str] = mapped_column(String(20))
    judgment_date: Mapped[date] = mapped_column(Date)
    court: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(500))
    import_id: Mapped[str | None] = mapped_column(ForeignKey("imports.id"))
