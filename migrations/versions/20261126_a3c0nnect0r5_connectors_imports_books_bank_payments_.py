"""connectors: imports, books, bank, payments, lifecycle, registries

Revision ID: a3c0nnect0r5
Revises: 91d39dce9eac
Create Date: 2026-11-26 23:38:47.594911
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a3c0nnect0r5"
down_revision: str | None = "91d39dce9eac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bank_accounts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_bank_accounts_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_accounts")),
        sa.UniqueConstraint("company_id", "iban", name=op.f("uq_bank_accounts_company_id_iban")),
    )
    op.create_table(
        "imports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "fec",
                "facturx",
                "cii",
                "ubl",
                "camt053",
                "ofx",
                "bank_csv",
                "lifecycle",
                "sirene",
                "bodacc",
                name="import_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                name="import_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("options", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("updated_count", sa.Integer(), nullable=False),
        sa.Column("unchanged_count", sa.Integer(), nullable=False),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("errors", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("duplicate_of", sa.String(length=40), nullable=True),
        sa.Column("progress_done", sa.BigInteger(), nullable=False),
        sa.Column("progress_total", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "created_count >= 0 AND updated_count >= 0 AND unchanged_count >= 0 AND error_count >= 0",
            name=op.f("ck_imports_counts_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_imports_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["imports.id"], name=op.f("fk_imports_duplicate_of_imports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_index(op.f("ix_imports_company_id_id"), "imports", ["company_id", "id"], unique=False)
    op.create_index(
        op.f("ix_imports_company_id_kind_content_sha256"),
        "imports",
        ["company_id", "kind", "content_sha256"],
        unique=False,
    )
    op.create_table(
        "bank_balances",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("bank_account_id", sa.String(length=40), nullable=False),
        sa.Column("balance_date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("import_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_bank_balances_bank_account_id_bank_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_bank_balances_import_id_imports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_balances")),
        sa.UniqueConstraint(
            "bank_account_id",
            "balance_date",
            "kind",
            name=op.f("uq_bank_balances_bank_account_id_balance_date_kind"),
        ),
    )
    op.create_table(
        "bank_transactions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("bank_account_id", sa.String(length=40), nullable=False),
        sa.Column("import_id", sa.String(length=40), nullable=True),
        sa.Column("external_id", sa.String(length=120), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("booking_date", sa.Date(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("counterparty_name", sa.String(length=200), nullable=True),
        sa.Column("counterparty_iban", sa.String(length=34), nullable=True),
        sa.Column("remittance_info", sa.Text(), nullable=True),
        sa.Column("structured_reference", sa.String(length=64), nullable=True),
        sa.Column("end_to_end_id", sa.String(length=64), nullable=True),
        sa.Column("bank_code", sa.String(length=40), nullable=True),
        sa.Column(
            "match_status",
            sa.Enum(
                "unmatched",
                "partially_matched",
                "matched",
                "ignored",
                name="match_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("matched_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_cents <> 0", name=op.f("ck_bank_transactions_amount_not_zero")),
        sa.CheckConstraint(
            "matched_cents >= 0 AND matched_cents <= abs(amount_cents)",
            name=op.f("ck_bank_transactions_matched_range"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_bank_transactions_bank_account_id_bank_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_transactions")),
        sa.UniqueConstraint(
            "bank_account_id", "fingerprint", name=op.f("uq_bank_transactions_bank_account_id_fingerprint")
        ),
    )
    op.create_index(
        op.f("ix_bank_transactions_company_id_id"), "bank_transactions", ["company_id", "id"], unique=False
    )
    op.create_index(
        "ix_bank_transactions_unmatched",
        "bank_transactions",
        ["company_id", "booking_date"],
        unique=False,
        postgresql_where="match_status IN ('unmatched', 'partially_matched') AND amount_cents > 0",
    )
    op.create_table(
        "book_lines",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("import_id", sa.String(length=40), nullable=False),
        sa.Column("journal_code", sa.String(length=20), nullable=False),
        sa.Column("journal_lib", sa.String(length=200), nullable=False),
        sa.Column("entry_num", sa.String(length=40), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("account_num", sa.String(length=40), nullable=False),
        sa.Column("account_lib", sa.String(length=200), nullable=False),
        sa.Column("aux_account_num", sa.String(length=40), nullable=True),
        sa.Column("aux_account_lib", sa.String(length=200), nullable=True),
        sa.Column("piece_ref", sa.String(length=64), nullable=False),
        sa.Column("piece_date", sa.Date(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("debit_cents", sa.BigInteger(), nullable=False),
        sa.Column("credit_cents", sa.BigInteger(), nullable=False),
        sa.Column("lettering", sa.String(length=20), nullable=True),
        sa.Column("lettering_date", sa.Date(), nullable=True),
        sa.Column("validation_date", sa.Date(), nullable=True),
        sa.Column("currency_amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_lines")),
    )
    op.create_index(
        op.f("ix_book_lines_company_id_aux_account_num_piece_ref"),
        "book_lines",
        ["company_id", "aux_account_num", "piece_ref"],
        unique=False,
        postgresql_where=sa.text("aux_account_num IS NOT NULL"),
    )
    op.create_index(
        op.f("ix_book_lines_company_id_journal_code_entry_num_line_no"),
        "book_lines",
        ["company_id", "journal_code", "entry_num", "line_no"],
        unique=True,
    )
    op.create_table(
        "debtor_behaviours",
        sa.Column("debtor_id", sa.String(length=40), nullable=False),
        sa.Column("paid_invoice_count", sa.Integer(), nullable=False),
        sa.Column("avg_days_late", sa.Numeric(precision=8, scale=2), nullable=False),
        sa.Column("p90_days_late", sa.Numeric(precision=8, scale=2), nullable=False),
        sa.Column("share_paid_late", sa.Numeric(precision=5, scale=4), nullable=False),
        sa.Column("unpaid_count", sa.Integer(), nullable=False),
        sa.Column("unpaid_overdue_cents", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["debtor_id"], ["debtors.id"], name=op.f("fk_debtor_behaviours_debtor_id_debtors")
        ),
        sa.PrimaryKeyConstraint("debtor_id", name=op.f("pk_debtor_behaviours")),
    )
    op.create_table(
        "import_file_chunks",
        sa.Column("import_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name=op.f("fk_import_file_chunks_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "seq", name=op.f("pk_import_file_chunks")),
    )
    op.create_table(
        "insolvency_proceedings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("announcement_id", sa.String(length=64), nullable=False),
        sa.Column("siren", sa.String(length=9), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("judgment_date", sa.Date(), nullable=False),
        sa.Column("court", sa.String(length=200), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("import_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_insolvency_proceedings_import_id_imports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insolvency_proceedings")),
        sa.UniqueConstraint("announcement_id", name=op.f("uq_insolvency_proceedings_announcement_id")),
    )
    op.create_index(
        op.f("ix_insolvency_proceedings_siren_judgment_date"),
        "insolvency_proceedings",
        ["siren", "judgment_date"],
        unique=False,
    )
    op.create_table(
        "registry_companies",
        sa.Column("siren", sa.String(length=9), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("ceased_on", sa.Date(), nullable=True),
        sa.Column("legal_form", sa.String(length=10), nullable=True),
        sa.Column("naf_code", sa.String(length=10), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=True),
        sa.Column("import_id", sa.String(length=40), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_registry_companies_import_id_imports")
        ),
        sa.PrimaryKeyConstraint("siren", name=op.f("pk_registry_companies")),
    )
    op.create_table(
        "invoice_lifecycle_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("import_id", sa.String(length=40), nullable=True),
        sa.Column("message_id", sa.String(length=120), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issuer_role", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_invoice_lifecycle_events_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_invoice_lifecycle_events_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lifecycle_events_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lifecycle_events")),
        sa.UniqueConstraint(
            "invoice_id",
            "message_id",
            "status_code",
            name=op.f("uq_invoice_lifecycle_events_invoice_id_message_id_status_code"),
        ),
    )
    op.create_index(
        op.f("ix_invoice_lifecycle_events_invoice_id_occurred_at"),
        "invoice_lifecycle_events",
        ["invoice_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "bank",
                "books",
                "lifecycle",
                "api",
                name="payment_source",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source_ref", sa.String(length=120), nullable=False),
        sa.Column("bank_transaction_id", sa.String(length=40), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("payer_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(
            ["bank_transaction_id"],
            ["bank_transactions.id"],
            name=op.f("fk_payments_bank_transaction_id_bank_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_payments_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "company_id", "source", "source_ref", name=op.f("uq_payments_company_id_source_source_ref")
        ),
    )
    op.create_index(op.f("ix_payments_company_id_id"), "payments", ["company_id", "id"], unique=False)
    op.create_table(
        "payment_allocations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_payment_allocations_amount_positive")),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_payment_allocations_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_payment_allocations_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_allocations")),
        sa.UniqueConstraint(
            "payment_id", "invoice_id", name=op.f("uq_payment_allocations_payment_id_invoice_id")
        ),
    )
    op.create_index(
        op.f("ix_payment_allocations_invoice_id"), "payment_allocations", ["invoice_id"], unique=False
    )
    op.add_column("debtors", sa.Column("aux_account_num", sa.String(length=40), nullable=True))
    op.alter_column("debtors", "siren", existing_type=sa.VARCHAR(length=9), nullable=True)
    op.create_unique_constraint(
        op.f("uq_debtors_company_id_aux_account_num"), "debtors", ["company_id", "aux_account_num"]
    )
    op.add_column(
        "invoices",
        sa.Column(
            "source",
            sa.Enum(
                "api",
                "fec",
                "facturx",
                "cii",
                "ubl",
                name="invoice_source",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            server_default="api",
            nullable=False,
        ),
    )
    op.add_column(
        "invoices",
        sa.Column(
            "document_type",
            sa.Enum(
                "invoice",
                "credit_note",
                name="document_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            server_default="invoice",
            nullable=False,
        ),
    )
    op.add_column(
        "invoices",
        sa.Column("due_date_estimated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("invoices", sa.Column("net_cents", sa.BigInteger(), nullable=True))
    op.add_column("invoices", sa.Column("vat_cents", sa.BigInteger(), nullable=True))
    op.add_column("invoices", sa.Column("payment_iban", sa.String(length=34), nullable=True))
    op.add_column("invoices", sa.Column("import_id", sa.String(length=40), nullable=True))
    op.add_column("invoices", sa.Column("lifecycle_status_code", sa.Integer(), nullable=True))
    op.add_column("invoices", sa.Column("lifecycle_status", sa.String(length=40), nullable=True))
    op.create_foreign_key(op.f("fk_invoices_import_id_imports"), "invoices", "imports", ["import_id"], ["id"])
    # bank lines the SME's books already record (created after both tables exist)
    op.add_column("bank_transactions", sa.Column("book_line_id", sa.BigInteger(), nullable=True))
    op.create_unique_constraint(
        op.f("uq_bank_transactions_book_line_id"), "bank_transactions", ["book_line_id"]
    )
    op.create_foreign_key(
        op.f("fk_bank_transactions_book_line_id_book_lines"),
        "bank_transactions",
        "book_lines",
        ["book_line_id"],
        ["id"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_bank_transactions_book_line_id_book_lines"), "bank_transactions", type_="foreignkey"
    )
    op.drop_constraint(op.f("uq_bank_transactions_book_line_id"), "bank_transactions", type_="unique")
    op.drop_column("bank_transactions", "book_line_id")
    op.drop_constraint(op.f("fk_invoices_import_id_imports"), "invoices", type_="foreignkey")
    op.drop_column("invoices", "lifecycle_status")
    op.drop_column("invoices", "lifecycle_status_code")
    op.drop_column("invoices", "import_id")
    op.drop_column("invoices", "payment_iban")
    op.drop_column("invoices", "vat_cents")
    op.drop_column("invoices", "net_cents")
    op.drop_column("invoices", "due_date_estimated")
    op.drop_column("invoices", "document_type")
    op.drop_column("invoices", "source")
    op.drop_constraint(op.f("uq_debtors_company_id_aux_account_num"), "debtors", type_="unique")
    op.alter_column("debtors", "siren", existing_type=sa.VARCHAR(length=9), nullable=False)
    op.drop_column("debtors", "aux_account_num")
    op.drop_index(op.f("ix_payment_allocations_invoice_id"), table_name="payment_allocations")
    op.drop_table("payment_allocations")
    op.drop_index(op.f("ix_payments_company_id_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_index(
        op.f("ix_invoice_lifecycle_events_invoice_id_occurred_at"), table_name="invoice_lifecycle_events"
    )
    op.drop_table("invoice_lifecycle_events")
    op.drop_table("registry_companies")
    op.drop_index(op.f("ix_insolvency_proceedings_siren_judgment_date"), table_name="insolvency_proceedings")
    op.drop_table("insolvency_proceedings")
    op.drop_table("import_file_chunks")
    op.drop_table("debtor_behaviours")
    op.drop_index(op.f("ix_book_lines_company_id_journal_code_entry_num_line_no"), table_name="book_lines")
    op.drop_index(op.f("ix_book_lines_company_id_aux_account_num_piece_ref"), table_name="book_lines")
    op.drop_table("book_lines")
    op.drop_index(
        "ix_bank_transactions_unmatched",
        table_name="bank_transactions",
        postgresql_where="match_status IN ('unmatched', 'partially_matched') AND amount_cents > 0",
    )
    op.drop_index(op.f("ix_bank_transactions_company_id_id"), table_name="bank_transactions")
    op.drop_table("bank_transactions")
    op.drop_table("bank_balances")
    op.drop_index(op.f("ix_imports_company_id_kind_content_sha256"), table_name="imports")
    op.drop_index(op.f("ix_imports_company_id_id"), table_name="imports")
    op.drop_table("imports")
    op.drop_table("bank_accounts")
