"""Eligibility: versioned policies, persisted decisions, and what they read besides the
SME's own data (financed invoices across every seller, declared related parties, a
per-company snapshot of bank and books figures)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from escompte.models.base import Base, created_at_column, id_column


class EligibilityPolicy(Base):
    """One version of the thresholds and limits decisions apply. Versions are never
    edited: a change is a new version, which the next decision uses."""

    __tablename__ = "eligibility_policies"
    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # validated by escompte.eligibility.policy.PolicySettings
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
    created_by_key_id: Mapped[str | None] = mapped_column(String(40))  # the admin key


class EligibilityDecision(Base):
    """An explained decision on one invoice, kept with everything it saw."""

    __tablename__ = "eligibility_decisions"
    __table_args__ = (
        CheckConstraint("max_amount_cents >= 0", name="max_amount_not_negative"),
        CheckConstraint("NOT eligible OR max_amount_cents > 0", name="eligible_has_amount"),
        CheckConstraint("max_duration_days BETWEEN 0 AND 366", name="max_duration_range"),
        CheckConstraint("risk_grade IN ('A', 'B', 'C', 'D', 'E')", name="risk_grade_known"),
        CheckConstraint("score BETWEEN 0 AND 100", name="score_range"),
        Index(None, "invoice_id", "id"),
        Index(None, "company_id", "id"),
    )

    id: Mapped[str] = id_column()
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    policy_version: Mapped[int] = mapped_column(ForeignKey("eligibility_policies.version"))
    eligible: Mapped[bool] = mapped_column(Boolean)
    max_amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    min_duration_days: Mapped[int] = mapped_column(Integer)
    max_duration_days: Mapped[int] = mapped_column(Integer)
    risk_grade: Mapped[str] = mapped_column(String(1))
    score: Mapped[int] = mapped_column(Integer)
    # {code: [effect, reason, figures?, hint?]}: what each check saw and concluded; the
    # treasurer's sentences (French, English) are written from these when shown. The JSON
    # columns are `json`, kept as written: nothing queries inside them but by key, and a
    # decision is written far more often than read, so `jsonb`'s binary form cost more
    # than it saved (docs/eligibility.md, Storage)
    checks: Mapped[dict[str, list[Any]]] = mapped_column(JSON)
    failed_checks: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    # {name: [value, points]}: the score's contributions (they add up to it)
    features: Mapped[dict[str, list[Any]]] = mapped_column(JSON)
    # [[code, check]]: what would change a refusal or a cap, worded from that check's figures
    counterfactuals: Mapped[list[list[str]]] = mapped_column(JSON)
    as_of_date: Mapped[date] = mapped_column(Date)
    data_as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # sha256 of every fact read, the policy version and the date: equal inputs, same decision
    inputs_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()


class FinancedFingerprint(Base):
    """An invoice financed somewhere on the platform, by its fingerprint (a hash of the
    debtor's SIREN, the normalised number, the amount and the issue date). The financing
    side writes a row when an advance goes live and sets ``released_at`` when it ends.

    Double-financing detection looks fingerprints up across every seller and partner;
    exposure limits sum ``outstanding_cents`` of live rows."""

    __tablename__ = "financed_fingerprints"
    __table_args__ = (
        CheckConstraint("outstanding_cents >= 0", name="outstanding_not_negative"),
        CheckConstraint("debtor_siren ~ '^[0-9]{9}$'", name="debtor_siren_format"),
        # an invoice is financed once platform-wide, whichever seller or partner presents it
        Index(
            "ix_financed_fingerprints_live_fingerprint",
            "fingerprint",
            unique=True,
            postgresql_where="released_at IS NULL",
            postgresql_include=["company_id", "invoice_id"],
        ),
        Index(
            "ix_financed_fingerprints_live_company",
            "company_id",
            postgresql_where="released_at IS NULL",
            postgresql_include=["outstanding_cents", "debtor_siren"],
        ),
        Index(
            "ix_financed_fingerprints_live_debtor",
            "debtor_siren",
            postgresql_where="released_at IS NULL",
            postgresql_include=["outstanding_cents", "company_id"],
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"))
    advance_id: Mapped[str | None] = mapped_column(String(40))  # set by the financing side
    debtor_siren: Mapped[str] = mapped_column(String(9))
    outstanding_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    financed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RelatedParty(Base):
    """A company declared as related to a seller (same group, shareholder, subsidiary…):
    its invoices on that company are not financed."""

    __tablename__ = "eligibility_related_parties"
    __table_args__ = (
        UniqueConstraint("company_id", "siren"),
        CheckConstraint("siren ~ '^[0-9]{9}$'", name="siren_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    siren: Mapped[str] = mapped_column(String(9))
    relation: Mapped[str] = mapped_column(String(40))  # same_group, shareholder, subsidiary, other
    created_at: Mapped[datetime] = created_at_column()
    created_by_key_id: Mapped[str | None] = mapped_column(String(40))


class CompanySnapshot(Base):
    """Per-company figures that are costly to aggregate (bank health over thousands of
    bank lines, the date the books run to), kept with the markers of the data they were
    computed from; recomputed as soon as a marker moves, the day changes or they age."""

    __tablename__ = "eligibility_company_snapshots"

    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    markers: Mapped[str] = mapped_column(String(400))
    as_of_date: Mapped[date] = mapped_column(Date)
    figures: Mapped[dict[str, Any]] = mapped_column(JSONB)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
