"""eligibility: policies and decisions, financed fingerprints, related parties, company snapshots

Seeds policy version 1 with the documented defaults (docs/eligibility.md). The values are
written here as they were on the day, on purpose: later changes are new versions.

Revision ID: b4e1ig1b1e01
Revises: a3c0nnect0r5
Create Date: 2026-11-26 23:56:24.984896
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b4e1ig1b1e01"
down_revision: str | None = "a3c0nnect0r5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Policy version 1: escompte.eligibility.policy.PolicySettings() on the day of this
# migration (a test checks they are still equal; when the defaults change, the new
# values go in as a new version, not here).
POLICY_V1 = {
    "currencies": ["EUR"],
    "min_amount_cents": 50000,
    "max_amount_cents": 50000000,
    "min_duration_days": 3,
    "max_duration_days": 120,
    "grace_days": 10,
    "debtor_limit_cents": 20000000,
    "seller_limit_cents": 50000000,
    "concentration_max_bps": 5000,
    "concentration_floor_cents": 10000000,
    "no_bank_cap_cents": 1000000,
    "approval_required_above_cents": 15000000,
    "bank_window_days": 90,
    "bank_max_incidents": 3,
    "bank_max_days_overdrawn": 30,
    "bank_snapshot_max_age_seconds": 900,
    "debtor_max_avg_days_late": 60,
    "debtor_max_unpaid_overdue_count": 5,
    "debtor_days_late_scale_days": 60,
    "debtor_history_full_count": 20,
    "require_books_match": True,
    "allow_public_sector_debtors": False,
    "weights": {
        "base": 60,
        "debtor_days_late": 20,
        "debtor_share_paid_late": 10,
        "debtor_unpaid_overdue": 15,
        "debtor_history": 8,
        "bank_balance_trend": 8,
        "bank_inflow_regularity": 8,
        "bank_incidents": 15,
        "bank_days_overdrawn": 12,
        "bank_not_connected": 6,
        "books_match": 6,
        "buyer_approved": 12,
        "due_date_estimated": 4,
    },
    "grades": {"A": 80, "B": 65, "C": 50, "D": 35},
    "worst_eligible_grade": "D",
}


def upgrade() -> None:
    op.create_table(
        "eligibility_policies",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_key_id", sa.String(length=40), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_eligibility_policies_version_positive")),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_eligibility_policies")),
    )
    op.create_table(
        "eligibility_company_snapshots",
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("markers", sa.String(length=400), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("figures", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_eligibility_company_snapshots_company_id_companies"),
        ),
        sa.PrimaryKeyConstraint("company_id", name=op.f("pk_eligibility_company_snapshots")),
    )
    op.create_table(
        "eligibility_related_parties",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("siren", sa.String(length=9), nullable=False),
        sa.Column("relation", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_key_id", sa.String(length=40), nullable=True),
        sa.CheckConstraint("siren ~ '^[0-9]{9}$'", name=op.f("ck_eligibility_related_parties_siren_format")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_eligibility_related_parties_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_related_parties")),
        sa.UniqueConstraint(
            "company_id", "siren", name=op.f("uq_eligibility_related_parties_company_id_siren")
        ),
    )
    op.create_table(
        "eligibility_decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("max_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("min_duration_days", sa.Integer(), nullable=False),
        sa.Column("max_duration_days", sa.Integer(), nullable=False),
        sa.Column("risk_grade", sa.String(length=1), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("checks", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("failed_checks", postgresql.ARRAY(sa.String(length=40)), nullable=False),
        sa.Column("features", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("counterfactuals", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("data_as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("inputs_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "risk_grade IN ('A', 'B', 'C', 'D', 'E')", name=op.f("ck_eligibility_decisions_risk_grade_known")
        ),
        sa.CheckConstraint(
            "NOT eligible OR max_amount_cents > 0", name=op.f("ck_eligibility_decisions_eligible_has_amount")
        ),
        sa.CheckConstraint(
            "max_amount_cents >= 0", name=op.f("ck_eligibility_decisions_max_amount_not_negative")
        ),
        sa.CheckConstraint(
            "max_duration_days BETWEEN 0 AND 366", name=op.f("ck_eligibility_decisions_max_duration_range")
        ),
        sa.CheckConstraint("score BETWEEN 0 AND 100", name=op.f("ck_eligibility_decisions_score_range")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_eligibility_decisions_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_eligibility_decisions_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["policy_version"],
            ["eligibility_policies.version"],
            name=op.f("fk_eligibility_decisions_policy_version_eligibility_policies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eligibility_decisions")),
    )
    op.create_index(
        op.f("ix_eligibility_decisions_company_id_id"),
        "eligibility_decisions",
        ["company_id", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_eligibility_decisions_invoice_id_id"),
        "eligibility_decisions",
        ["invoice_id", "id"],
        unique=False,
    )
    op.create_table(
        "financed_fingerprints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("advance_id", sa.String(length=40), nullable=True),
        sa.Column("debtor_siren", sa.String(length=9), nullable=False),
        sa.Column("outstanding_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("financed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "debtor_siren ~ '^[0-9]{9}$'", name=op.f("ck_financed_fingerprints_debtor_siren_format")
        ),
        sa.CheckConstraint(
            "outstanding_cents >= 0", name=op.f("ck_financed_fingerprints_outstanding_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_financed_fingerprints_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_financed_fingerprints_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_financed_fingerprints")),
    )
    op.create_index(
        "ix_financed_fingerprints_live_company",
        "financed_fingerprints",
        ["company_id"],
        unique=False,
        postgresql_where="released_at IS NULL",
        postgresql_include=["outstanding_cents", "debtor_siren"],
    )
    op.create_index(
        "ix_financed_fingerprints_live_debtor",
        "financed_fingerprints",
        ["debtor_siren"],
        unique=False,
        postgresql_where="released_at IS NULL",
        postgresql_include=["outstanding_cents", "company_id"],
    )
    op.create_index(
        "ix_financed_fingerprints_live_fingerprint",
        "financed_fingerprints",
        ["fingerprint"],
        unique=False,
        postgresql_where="released_at IS NULL",
        postgresql_include=["company_id", "invoice_id"],
    )
    policies = sa.table(
        "eligibility_policies",
        sa.column("version", sa.Integer()),
        sa.column("settings", postgresql.JSONB()),
        sa.column("note", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        policies,
        [
            {
                "version": 1,
                "settings": POLICY_V1,
                "note": "defaults (docs/eligibility.md)",
                "created_at": datetime(2026, 11, 27, tzinfo=UTC),
            }
        ],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_financed_fingerprints_live_fingerprint",
        table_name="financed_fingerprints",
        postgresql_where="released_at IS NULL",
        postgresql_include=["company_id", "invoice_id"],
    )
    op.drop_index(
        "ix_financed_fingerprints_live_debtor",
        table_name="financed_fingerprints",
        postgresql_where="released_at IS NULL",
        postgresql_include=["outstanding_cents", "company_id"],
    )
    op.drop_index(
        "ix_financed_fingerprints_live_company",
        table_name="financed_fingerprints",
        postgresql_where="released_at IS NULL",
        postgresql_include=["outstanding_cents", "debtor_siren"],
    )
    op.drop_table("financed_fingerprints")
    op.drop_index(op.f("ix_eligibility_decisions_invoice_id_id"), table_name="eligibility_decisions")
    op.drop_index(op.f("ix_eligibility_decisions_company_id_id"), table_name="eligibility_decisions")
    op.drop_table("eligibility_decisions")
    op.drop_table("eligibility_related_parties")
    op.drop_table("eligibility_company_snapshots")
    op.drop_table("eligibility_policies")
