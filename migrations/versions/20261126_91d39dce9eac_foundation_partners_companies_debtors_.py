"""foundation: partners, companies, debtors, invoices, api keys, idempotency, jobs

Revision ID: 91d39dce9eac
Revises:
Create Date: 2026-11-26 23:17:59.588008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "91d39dce9eac"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        sa.Column("response_content_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False)
    op.create_index(op.f("ix_idempotency_keys_scope_key"), "idempotency_keys", ["scope", "key"], unique=True)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                name="job_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name=op.f("ck_jobs_attempts_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        "ix_jobs_due", "jobs", ["run_at"], unique=False, postgresql_where="status IN ('queued', 'running')"
    )
    op.create_table(
        "partners",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
    )
    op.create_table(
        "companies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("siren", sa.String(length=9), nullable=False),
        sa.Column("siret", sa.String(length=14), nullable=True),
        sa.Column("vat_number", sa.String(length=20), nullable=True),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("contact_email", sa.String(length=254), nullable=False),
        sa.Column("address_line1", sa.String(length=200), nullable=True),
        sa.Column("address_line2", sa.String(length=200), nullable=True),
        sa.Column("postal_code", sa.String(length=16), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("siren ~ '^[0-9]{9}$'", name=op.f("ck_companies_siren_format")),
        sa.CheckConstraint(
            "siret IS NULL OR left(siret, 9) = siren", name=op.f("ck_companies_siret_of_siren")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_companies_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint(
            "partner_id",
            "siren",
            name=op.f("uq_companies_partner_id_siren"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(op.f("ix_companies_partner_id_id"), "companies", ["partner_id", "id"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "admin",
                "partner",
                "company",
                name="principal_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "mode",
            sa.Enum("test", "live", name="key_mode", native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("display_prefix", sa.String(length=24), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("partner_id", sa.String(length=40), nullable=True),
        sa.Column("company_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(kind = 'admin' AND partner_id IS NULL AND company_id IS NULL) OR (kind = 'partner' AND partner_id IS NOT NULL AND company_id IS NULL) OR (kind = 'company' AND company_id IS NOT NULL)",
            name=op.f("ck_api_keys_owner_matches_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_api_keys_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_api_keys_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_company_id"), "api_keys", ["company_id"], unique=False)
    op.create_index(op.f("ix_api_keys_partner_id"), "api_keys", ["partner_id"], unique=False)
    op.create_table(
        "debtors",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("siren", sa.String(length=9), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("vat_number", sa.String(length=20), nullable=True),
        sa.Column("contact_email", sa.String(length=254), nullable=True),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("siren ~ '^[0-9]{9}$'", name=op.f("ck_debtors_siren_format")),
        sa.CheckConstraint(
            "payment_terms_days BETWEEN 0 AND 365", name=op.f("ck_debtors_payment_terms_days_range")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_debtors_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debtors")),
        sa.UniqueConstraint("company_id", "siren", name=op.f("uq_debtors_company_id_siren")),
    )
    op.create_index(op.f("ix_debtors_company_id_id"), "debtors", ["company_id", "id"], unique=False)
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("debtor_id", sa.String(length=40), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "receivable",
                "payable",
                name="invoice_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "partially_paid",
                "paid",
                "disputed",
                "cancelled",
                name="invoice_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_invoices_currency_format")),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_invoices_amount_positive")),
        sa.CheckConstraint(
            "amount_paid_cents >= 0 AND amount_paid_cents <= amount_cents",
            name=op.f("ck_invoices_amount_paid_range"),
        ),
        sa.CheckConstraint("due_date >= issue_date", name=op.f("ck_invoices_due_after_issue")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_invoices_company_id_companies")
        ),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"], name=op.f("fk_invoices_debtor_id_debtors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint(
            "company_id", "debtor_id", "number", name=op.f("uq_invoices_company_id_debtor_id_number")
        ),
    )
    op.create_index(op.f("ix_invoices_company_id_id"), "invoices", ["company_id", "id"], unique=False)
    op.create_index(op.f("ix_invoices_debtor_id"), "invoices", ["debtor_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_invoices_debtor_id"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_company_id_id"), table_name="invoices")
    op.drop_table("invoices")
    op.drop_index(op.f("ix_debtors_company_id_id"), table_name="debtors")
    op.drop_table("debtors")
    op.drop_index(op.f("ix_api_keys_partner_id"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_company_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index(op.f("ix_companies_partner_id_id"), table_name="companies")
    op.drop_table("companies")
    op.drop_table("partners")
    op.drop_index("ix_jobs_due", table_name="jobs", postgresql_where="status IN ('queued', 'running')")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_idempotency_keys_scope_key"), table_name="idempotency_keys")
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
