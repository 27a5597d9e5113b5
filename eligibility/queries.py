"""The reads behind a decision: everything the rules need, in as few statements as
possible, every part an index lookup.

- One invoice: ONE statement returns the invoice's, its seller's and its debtor's facts.
- A batch: three statements — the invoices, then their sellers, then their debtors —
  so that seller and debtor facts travel once, not once per invoice.

Each row is split into parts (``Parts``): the seller's, the debtor's, the invoice's. The
parts are what a decision's inputs fingerprint hashes, and what ``inputs.build_facts``
turns into ``Facts``.

The statements are built and compiled once per shape, then run on the driver connection:
building a statement this size with SQLAlchemy costs several milliseconds, far more than
PostgreSQL takes to answer it. Tenancy still comes from ``visible_company_ids``: the
statement is built for a stand-in principal whose ids are sentinels, replaced by the
caller's in the parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from psycopg import RawCursor
from psycopg.rows import dict_row
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session

from escompte.access.principal import Principal, visible_company_ids
from escompte.db import driver
from escompte.errors import invariant
from escompte.models import (
    BankAccount,
    BankBalance,
    BankTransaction,
    BookLine,
    Company,
    CompanySnapshot,
    DataImport,
    Debtor,
    DebtorBehaviour,
    EligibilityDecision,
    EligibilityPolicy,
    FinancedFingerprint,
    InsolvencyProceeding,
    Invoice,
    InvoiceLifecycleEvent,
    KeyMode,
    PrincipalKind,
    RegistryCompany,
    RelatedParty,
)
from escompte.values import value

OPEN_STATUSES = ("open", "partially_paid", "disputed")
RECEIVABLE_ACCOUNTS = "411%"  # customer receivables in the French chart of accounts
PAYABLE_ACCOUNTS = "401%"  # supplier payables (their invoices are credited there)
APPROVAL_CODES = (205, 214)

# A bank line that signals an incident: a rejected or unpaid direct debit, a returned
# payment, an incident fee. ISO 20022 sub-family codes in bank_code, French and English
# wording in the free text (case-insensitive).
INCIDENT_CODE_RE = r"(UPDD|RRTN|RJCT|ARET|NPAY|RPCR)"
INCIDENT_TEXT_RE = (
    r"(rejet|impay|retour (de )?(prlv|pr[eé]l[eè]vement|virement|effet|ch[eè]que)|"
    r"insuffisance de provision|commission d.intervention|frais d.incident|"
    r"unpaid|returned (direct )?(debit|payment)|chargeback)"
)

# the latest decision of an invoice, read with its facts (cache check, batch summaries)
LAST_DECISION_COLUMNS = (
    "last_decision_id",
    "last_fingerprint",
    "last_eligible",
    "last_max_amount_cents",
    "last_max_duration_days",
    "last_risk_grade",
    "last_score",
    "last_failed_checks",
    "last_created_at",
)
SNAPSHOT_COLUMNS = ("snap_markers", "snap_as_of", "snap_computed_at", "snap_figures")


def sql_invoice_fingerprint(siren: Any, number: Any, amount_cents: Any, issue_date: Any) -> Any:
    """The SQL twin of ``facts.invoice_fingerprint`` (sha256 hex of
    ``siren|NUMBER|amount|YYYY-MM-DD``)."""
    payload = func.concat_ws(
        "|",
        siren,
        func.upper(func.regexp_replace(number, "[^A-Za-z0-9]", "", "g")),
        cast(amount_cents, Text),
        func.to_char(issue_date, "YYYY-MM-DD"),
    )
    return func.encode(func.sha256(func.convert_to(payload, literal("UTF8"))), "hex")


# --- the statements ------------------------------------------------------------------------


def _latest_proceeding(siren: Any) -> Any:
    return (
        select(InsolvencyProceeding.kind, InsolvencyProceeding.judgment_date)
        .where(InsolvencyProceeding.siren == siren)
        .order_by(InsolvencyProceeding.judgment_date.desc(), InsolvencyProceeding.id.desc())
        .limit(1)
        .lateral()
    )


def _registry(siren: Any) -> Any:
    """The registry's row for this SIREN, a lateral lookup for each seller or debtor: as a
    plain join, the planner hashed the whole registry to find one seller."""
    r = RegistryCompany
    return (
        select(r.siren, r.active, r.ceased_on, r.legal_form, r.updated_at)
        .where(r.siren == siren)
        .limit(1)
        .lateral()
    )


def _live_outstanding(*conditions: ColumnElement[bool]) -> Any:
    return (
        select(func.coalesce(func.sum(FinancedFingerprint.outstanding_cents), 0))
        .where(FinancedFingerprint.released_at.is_(None), *conditions)
        .scalar_subquery()
    )


def _chosen(principal: Principal, *, by_ids: bool, after: bool, one: bool = False) -> Any:
    """The invoices asked about, visible to the caller, with their platform fingerprint.
    ``one``: a single invoice by id (a plain parameter, which plans as well generically
    as for any given id, so PostgreSQL keeps one plan for it)."""
    query = (
        select(
            Invoice.id.label("invoice_id"),
            Invoice.company_id,
            Invoice.debtor_id,
            case(
                (
                    Debtor.siren.is_not(None),
                    sql_invoice_fingerprint(
                        Debtor.siren, Invoice.number, Invoice.amount_cents, Invoice.issue_date
                    ),
                ),
            ).label("fingerprint"),
        )
        .join(Debtor, Debtor.id == Invoice.debtor_id)
        .where(visible_company_ids(principal, Invoice.company_id))
    )
    if one:
        return (
            query.where(Invoice.id == bindparam("id", None, type_=String))
            .cte("chosen")
            .prefix_with("MATERIALIZED")
        )
    if by_ids:
        query = query.where(Invoice.id == any_(bindparam("ids", None, type_=ARRAY(String))))
    else:
        query = query.where(
            Invoice.company_id == bindparam("company", None, type_=String), Invoice.status.in_(OPEN_STATUSES)
        )
    if after:
        query = query.where(Invoice.id > bindparam("after", None, type_=String))
    return (
        query.order_by(Invoice.id)
        .limit(bindparam("lim", None, type_=Integer))
        .cte("chosen")
        .prefix_with("MATERIALIZED")
    )


def _companies(company_ids: Any) -> Any:
    """The sellers' facts, and the markers of their data (imports, bank lines, balances)."""
    seller_proc = _latest_proceeding(Company.siren)
    seller_reg = _registry(Company.siren)
    balances = (
        select(func.count().label("n"), func.max(BankBalance.balance_date).label("latest"))
        .select_from(BankBalance)
        .join(BankAccount, BankAccount.id == BankBalance.bank_account_id)
        .where(BankAccount.company_id == Company.id)
        .lateral("bal")
    )
    imports = (
        select(
            func.count().label("n"),
            func.max(DataImport.created_at).label("created"),
            func.max(DataImport.finished_at).label("finished"),
        )
        .where(DataImport.company_id == Company.id)
        .lateral("imp")
    )
    return (
        select(
            Company.id.label("company_id"),
            Company.siren.label("seller_siren"),
            seller_reg.c.siren.label("seller_reg_siren"),
            seller_reg.c.active.label("seller_active"),
            seller_reg.c.ceased_on.label("seller_ceased_on"),
            seller_reg.c.updated_at.label("seller_reg_updated_at"),
            seller_proc.c.kind.label("seller_proceeding"),
            seller_proc.c.judgment_date.label("seller_proceeding_date"),
            _live_outstanding(FinancedFingerprint.company_id == Company.id).label("seller_outstanding"),
            # change markers: bank lines (ids grow with time), balances, imports
            select(func.max(BankTransaction.id))
            .where(BankTransaction.company_id == Company.id)
            .scalar_subquery()
            .label("m_btx"),
            balances.c.n.label("m_bal_count"),
            balances.c.latest.label("m_bal_date"),
            func.concat_ws(":", imports.c.n, imports.c.created, imports.c.finished).label("m_imports"),
            func.greatest(imports.c.created, imports.c.finished).label("imports_as_of"),
            CompanySnapshot.markers.label("snap_markers"),
            CompanySnapshot.as_of_date.label("snap_as_of"),
            CompanySnapshot.computed_at.label("snap_computed_at"),
            CompanySnapshot.figures.label("snap_figures"),
        )
        .select_from(Company)
        .outerjoin(seller_reg, true())
        .outerjoin(seller_proc, true())
        .join(balances, true())
        .join(imports, true())
        .outerjoin(CompanySnapshot, CompanySnapshot.company_id == Company.id)
        .where(Company.id.in_(company_ids))
        .cte("cf")
        .prefix_with("MATERIALIZED")
    )


def _debtors(debtor_ids: Any) -> Any:
    """The debtors' facts: registry, proceedings, behaviour, relation, exposure."""
    debtor_proc = _latest_proceeding(Debtor.siren)
    debtor_reg = _registry(Debtor.siren)
    live = FinancedFingerprint
    # live advances on the debtor's SIREN, all sellers, and this seller's part (none
    # without a SIREN: NULL matches nothing)
    exposure = (
        select(
            func.coalesce(func.sum(live.outstanding_cents), 0).label("debtor_outstanding"),
            func.coalesce(
                func.sum(live.outstanding_cents).filter(live.company_id == Debtor.company_id), 0
            ).label("seller_debtor_outstanding"),
        )
        .where(live.released_at.is_(None), live.debtor_siren == Debtor.siren)
        .lateral("exp")
    )
    return (
        select(
            Debtor.id.label("debtor_id"),
            Debtor.siren.label("debtor_siren"),
            Debtor.legal_name.label("debtor_name"),
            Debtor.aux_account_num.label("debtor_aux"),
            debtor_reg.c.siren.label("debtor_reg_siren"),
            debtor_reg.c.active.label("debtor_active"),
            debtor_reg.c.legal_form.label("debtor_legal_form"),
            debtor_reg.c.updated_at.label("debtor_reg_updated_at"),
            debtor_proc.c.kind.label("debtor_proceeding"),
            debtor_proc.c.judgment_date.label("debtor_proceeding_date"),
            DebtorBehaviour.paid_invoice_count.label("bh_paid"),
            DebtorBehaviour.avg_days_late.label("bh_avg_days_late"),
            DebtorBehaviour.share_paid_late.label("bh_share_late"),
            DebtorBehaviour.unpaid_count.label("bh_unpaid"),
            DebtorBehaviour.unpaid_overdue_cents.label("bh_unpaid_cents"),
            DebtorBehaviour.computed_at.label("bh_computed_at"),
            RelatedParty.relation.label("related_party"),
            exposure.c.debtor_outstanding,
            exposure.c.seller_debtor_outstanding,
        )
        .select_from(Debtor)
        .outerjoin(debtor_reg, true())
        .outerjoin(debtor_proc, true())
        .join(exposure, true())
        .outerjoin(DebtorBehaviour, DebtorBehaviour.debtor_id == Debtor.id)
        .outerjoin(
            RelatedParty,
            and_(RelatedParty.company_id == Debtor.company_id, RelatedParty.siren == Debtor.siren),
        )
        .where(Debtor.id.in_(debtor_ids))
        .cte("df")
        .prefix_with("MATERIALIZED")
    )


def _invoices(chosen: Any) -> tuple[list[Any], list[Any]]:
    """The invoice-level columns and the laterals they come from."""
    e = InvoiceLifecycleEvent
    newest_first = (e.occurred_at.desc(), e.id.desc())
    # the latest lifecycle status and its amount, whether the buyer ever approved, and
    # the newest event (a marker): one pass over the invoice's few events
    lifecycle = (
        select(
            func.array_agg(aggregate_order_by(e.status_code, *newest_first), type_=ARRAY(Integer))[1].label(
                "lc_code"
            ),
            func.array_agg(aggregate_order_by(e.amount_cents, *newest_first), type_=ARRAY(BigInteger))[
                1
            ].label("lc_amount"),
            func.coalesce(func.bool_or(e.status_code.in_(APPROVAL_CODES)), False).label("approved_ever"),
            func.max(e.id).label("m_lifecycle"),
        )
        .where(e.invoice_id == chosen.c.invoice_id)
        .lateral("lc")
    )
    live = FinancedFingerprint
    same_seller = live.company_id == chosen.c.company_id
    financed = (
        select(
            func.count().filter(same_seller).label("financed_here"),
            func.count().filter(~same_seller).label("financed_elsewhere"),
        )
        .where(live.fingerprint == chosen.c.fingerprint, live.released_at.is_(None))
        .lateral("fin")
    )
    # the policy in force, and the id of the transaction that wrote it (a digest: a
    # version number reused after a rollback is another digest)
    policy = (
        select(
            EligibilityPolicy.version.label("policy_version"),
            literal_column("eligibility_policies.xmin::text").label("policy_digest"),
        )
        .order_by(EligibilityPolicy.version.desc())
        .limit(1)
        .lateral("pol")
    )
    d = EligibilityDecision
    latest_decision = (
        select(
            d.id.label("last_decision_id"),
            d.inputs_fingerprint.label("last_fingerprint"),
            d.eligible.label("last_eligible"),
            d.max_amount_cents.label("last_max_amount_cents"),
            d.max_duration_days.label("last_max_duration_days"),
            d.risk_grade.label("last_risk_grade"),
            d.score.label("last_score"),
            d.failed_checks.label("last_failed_checks"),
            d.created_at.label("last_created_at"),
        )
        .where(d.invoice_id == chosen.c.invoice_id)
        .order_by(d.id.desc())
        .limit(1)
        .lateral("ld")
    )

    columns = [
        Invoice.id.label("invoice_id"),
        Invoice.company_id,
        Invoice.debtor_id,
        Invoice.kind,
        Invoice.document_type,
        Invoice.status,
        Invoice.number,
        Invoice.issue_date,
        Invoice.due_date,
        Invoice.due_date_estimated,
        Invoice.amount_cents,
        Invoice.amount_paid_cents,
        Invoice.currency,
        Invoice.lifecycle_status_code,
        Invoice.updated_at.label("invoice_updated_at"),
        chosen.c.fingerprint,
        lifecycle.c.lc_code,
        lifecycle.c.lc_amount,
        lifecycle.c.approved_ever,
        lifecycle.c.m_lifecycle,
        financed.c.financed_here,
        financed.c.financed_elsewhere,
        policy.c.policy_version,
        policy.c.policy_digest,
        *latest_decision.c,
    ]
    return columns, [lifecycle, financed, policy, latest_decision]


# The invoice's receivable lines in the books: by (company, auxiliary account, piece)
# when the debtor's account is known — an index lookup — else by (company, piece), which
# scans the company's part of that index. Only one branch runs (its first condition is a
# one-time filter). Written as SQL over the statement's names: chosen, invoices, df.
_BOOK_MATCH = text(
    """
    SELECT count(*) AS book_lines, coalesce(sum(b.amount), 0) AS book_debit
    FROM (
        SELECT debit_cents AS amount FROM book_lines
        WHERE invoices.kind = 'receivable' AND df.debtor_aux IS NOT NULL AND company_id = chosen.company_id
          AND aux_account_num = df.debtor_aux AND piece_ref = invoices.number
          AND account_num LIKE :receivable
        UNION ALL
        SELECT debit_cents FROM book_lines
        WHERE invoices.kind = 'receivable' AND df.debtor_aux IS NULL AND company_id = chosen.company_id
          AND piece_ref = invoices.number AND account_num LIKE :receivable
        UNION ALL
        SELECT credit_cents FROM book_lines
        WHERE invoices.kind = 'payable' AND company_id = chosen.company_id
          AND piece_ref = invoices.number AND account_num LIKE :payable
          AND (df.debtor_aux IS NULL OR aux_account_num = df.debtor_aux)
    ) b
    """
).bindparams(receivable=RECEIVABLE_ACCOUNTS, payable=PAYABLE_ACCOUNTS)


def _book_match() -> Any:
    return _BOOK_MATCH.columns(column("book_lines", Integer), column("book_debit", BigInteger)).lateral("bm")


def _one_statement(principal: Principal) -> Any:
    chosen = _chosen(principal, by_ids=True, after=False, one=True)
    companies = _companies(select(chosen.c.company_id))
    debtors = _debtors(select(chosen.c.debtor_id))
    columns, laterals = _invoices(chosen)
    books = _book_match()
    query = (
        select(
            *columns,
            books.c.book_lines,
            books.c.book_debit,
            *[c for c in companies.c if c.name != "company_id"],
            *[c for c in debtors.c if c.name != "debtor_id"],
        )
        .select_from(chosen)
        .join(Invoice, Invoice.id == chosen.c.invoice_id)
        .join(companies, companies.c.company_id == chosen.c.company_id)
        .join(debtors, debtors.c.debtor_id == chosen.c.debtor_id)
    )
    for lateral in [*laterals, books]:
        query = query.outerjoin(lateral, true())
    return query


def _invoices_statement(principal: Principal, by_ids: bool, after: bool) -> Any:
    chosen = _chosen(principal, by_ids=by_ids, after=after)
    columns, laterals = _invoices(chosen)
    query = select(*columns).select_from(chosen).join(Invoice, Invoice.id == chosen.c.invoice_id)
    for lateral in laterals:
        query = query.outerjoin(lateral, true())
    return query.order_by(chosen.c.invoice_id)


def _companies_statement() -> Any:
    companies = _companies(select(func.unnest(bindparam("company_ids", None, type_=ARRAY(String)))))
    return select(*companies.c)


def _debtors_statement() -> Any:
    debtors = _debtors(select(func.unnest(bindparam("debtor_ids", None, type_=ARRAY(String)))))
    return select(*debtors.c)


# --- compiled once, run on the driver connection --------------------------------------------

_TENANT_COMPANY = "__eligibility_tenant_company__"
_TENANT_PARTNER = "__eligibility_tenant_partner__"


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement in PostgreSQL's own placeholders (``$1``…), with the names of its
    parameters in their order and their compiled values (constants, tenancy sentinels).
    Sent through a raw cursor, it is not parsed again on each call: psycopg re-parses
    statements longer than 4 KiB every time, which cost an eighth of a decision."""

    sql: str
    names: tuple[str, ...]
    params: dict[str, Any]


_NAMED = re.compile(r"%\((\w+)\)s|%%")


def _native(sql: str) -> tuple[str, tuple[str, ...]]:
    """``%(name)s`` → ``$n`` (one number per name), ``%%`` → ``%``."""
    names: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return "%"
        return f"${names.setdefault(m.group(1), len(names) + 1)}"

    return _NAMED.sub(number, sql), tuple(names)


def _stand_in(kind: PrincipalKind) -> Principal:
    return Principal(
        kind=kind,
        key_id="-",
        mode=KeyMode.TEST,
        company_id=_TENANT_COMPANY if kind is PrincipalKind.COMPANY else None,
        partner_id=_TENANT_PARTNER if kind is PrincipalKind.PARTNER else None,
    )


@lru_cache(maxsize=32)
def _compiled(
    shape: str, kind: PrincipalKind | None = None, by_ids: bool = False, after: bool = False
) -> _Compiled:
    if shape == "one":
        assert kind is not None
        stmt = _one_statement(_stand_in(kind))
    elif shape == "invoices":
        assert kind is not None
        stmt = _invoices_statement(_stand_in(kind), by_ids, after)
    elif shape == "companies":
        stmt = _companies_statement()
    else:
        stmt = _debtors_statement()
    dialect = psycopg_dialect()  # type: ignore[no-untyped-call]
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    sql, names = _native(compiled.string)
    return _Compiled(sql, names, dict(compiled.params))


def _run(
    session: Session, compiled: _Compiled, principal: Principal | None, **values: Any
) -> list[dict[str, Any]]:
    params = dict(compiled.params)
    if principal is not None:
        tenant = {_TENANT_COMPANY: principal.company_id, _TENANT_PARTNER: principal.partner_id}
        params = {k: tenant.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
        invariant(
            not any(isinstance(v, str) and v in tenant for v in params.values()),
            "every tenancy sentinel is replaced by the caller's id",
        )
    params.update(values)
    with RawCursor(driver(session), row_factory=dict_row) as cur:
        # prepared from the first call on
        cur.execute(compiled.sql, [params[n] for n in compiled.names], prepare=True)
        rows: list[dict[str, Any]] = cur.fetchall()
        return rows


@dataclass(frozen=True, slots=True)
class Parts:
    """What one statement told about a set of invoices: the invoices' rows (with their
    latest decision), and their sellers' and debtors' rows by id."""

    invoices: list[dict[str, Any]]
    companies: dict[str, dict[str, Any]]
    debtors: dict[str, dict[str, Any]]


@lru_cache(maxsize=1)
def _names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of the seller's and the debtor's columns (to split a one-invoice row)."""
    return (
        tuple(c.name for c in _companies(select(literal("x"))).c),
        tuple(c.name for c in _debtors(select(literal("x"))).c),
    )


def read_one(session: Session, principal: Principal, invoice_id: str) -> Parts | None:
    """Everything one decision reads, in one statement (None: no such visible invoice)."""
    rows = _run(session, _compiled("one", principal.kind), principal, id=invoice_id)
    if not rows:
        return None
    row = rows[0]
    company_names, debtor_names = _names()
    company = {n: row.pop(n) for n in company_names if n != "company_id"}
    company["company_id"] = row["company_id"]
    debtor = {n: row.pop(n) for n in debtor_names if n != "debtor_id"}
    debtor["debtor_id"] = row["debtor_id"]
    return Parts([row], {row["company_id"]: company}, {row["debtor_id"]: debtor})


def read_many(
    session: Session,
    principal: Principal,
    *,
    invoice_ids: Sequence[str] | None = None,
    company_id: str | None = None,
    starting_after: str | None = None,
    limit: int,
) -> Parts:
    """A batch: the invoices (by ids, or a company's open ones after ``starting_after``,
    by id), then their sellers' and debtors' facts: three statements."""
    by_ids = invoice_ids is not None
    invoices = _run(
        session,
        _compiled("invoices", principal.kind, by_ids, starting_after is not None),
        principal,
        ids=list(invoice_ids) if invoice_ids is not None else None,
        company=company_id,
        after=starting_after,
        lim=limit,
    )
    if not invoices:
        return Parts([], {}, {})
    company_ids = sorted({r["company_id"] for r in invoices})
    debtor_ids = sorted({r["debtor_id"] for r in invoices})
    companies = _run(session, _compiled("companies"), None, company_ids=company_ids)
    debtors = _run(session, _compiled("debtors"), None, debtor_ids=debtor_ids)
    return Parts(
        invoices,
        {r["company_id"]: r for r in companies},
        {r["debtor_id"]: r for r in debtors},
    )


@value
class BookMatch:
    lines: int
    debit_cents: int


_BOOK_MATCHES = """
    WITH wanted AS (
        SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:companies AS text[]),
                             CAST(:auxes AS text[]), CAST(:numbers AS text[]))
               AS w(invoice_id, company_id, aux, number)
    )
    SELECT w.invoice_id, count(b.id) AS lines, coalesce(sum(b.{amount}), 0) AS debit
    FROM wanted w
    JOIN book_lines b
      ON b.company_id = w.company_id AND b.piece_ref = w.number
     AND (w.aux IS NULL OR b.aux_account_num = w.aux)
     AND b.account_num LIKE :accounts
    GROUP BY w.invoice_id
"""
# customers' invoices are debited to 411, suppliers' credited to 401
_BOOK_SIDES = {
    "receivable": ("debit_cents", RECEIVABLE_ACCOUNTS),
    "payable": ("credit_cents", PAYABLE_ACCOUNTS),
}


def book_matches(
    session: Session, invoices: Iterable[tuple[str, str, str | None, str, str]]
) -> dict[str, BookMatch]:
    """Book lines of many invoices at once — (invoice id, company id, debtor's auxiliary
    account or None, number, kind) — in one pass per kind over the companies' customer
    (411, debit) or supplier (401, credit) lines."""
    by_kind: dict[str, list[tuple[str, str, str | None, str, str]]] = {}
    for row in invoices:
        by_kind.setdefault(row[4], []).append(row)
    matches: dict[str, BookMatch] = {}
    for kind, rows in by_kind.items():
        amount, accounts = _BOOK_SIDES[kind]
        result = session.execute(
            text(_BOOK_MATCHES.format(amount=amount)),
            {
                "ids": [r[0] for r in rows],
                "companies": [r[1] for r in rows],
                "auxes": [r[2] for r in rows],
                "numbers": [r[3] for r in rows],
                "accounts": accounts,
            },
        )
        matches.update({r.invoice_id: BookMatch(int(r.lines), int(r.debit)) for r in result})
    return matches


# --- the company snapshot (bank health, books) -----------------------------------------------


def snapshot_figures(session: Session, company_id: str, today: date, window_days: int) -> dict[str, Any]:
    """Bank health over ``window_days`` up to ``today`` and how far the books run.

    A few aggregates over the company's bank lines, balances and book lines; costly
    with tens of thousands of lines, hence kept in ``eligibility_company_snapshots``."""
    start = today - timedelta(days=window_days - 1)
    weeks = -(-window_days // 7)
    tx = session.execute(
        text(
            """
            SELECT count(*) FILTER (WHERE in_window) AS n,
                   coalesce(sum(amount_cents) FILTER (WHERE in_window AND amount_cents > 0), 0) AS inflow,
                   coalesce(-sum(amount_cents) FILTER (WHERE in_window AND amount_cents < 0), 0) AS outflow,
                   count(DISTINCT (booking_date - CAST(:start AS date)) / 7)
                       FILTER (WHERE in_window AND amount_cents > 0) AS weeks_in,
                   count(*) FILTER (WHERE in_window AND (
                       coalesce(bank_code, '') ~* :code_re OR coalesce(remittance_info, '') ~* :text_re
                   )) AS incidents,
                   max(booking_date) FILTER (WHERE booking_date <= :today) AS last_booking
            FROM (SELECT *, booking_date BETWEEN :start AND :today AS in_window
                  FROM bank_transactions WHERE company_id = :company) t
            """
        ),
        {
            "company": company_id,
            "start": start,
            "today": today,
            "code_re": INCIDENT_CODE_RE,
            "text_re": INCIDENT_TEXT_RE,
        },
    ).one()
    accounts = int(
        session.execute(select(func.count()).where(BankAccount.company_id == company_id)).scalar_one()
    )
    # the latest closing balance of each account on or before today: the anchor from
    # which daily balances are rebuilt with the bank lines
    anchors = session.execute(
        text(
            """
            SELECT DISTINCT ON (b.bank_account_id) b.bank_account_id, b.balance_date, b.amount_cents
            FROM bank_balances b JOIN bank_accounts a ON a.id = b.bank_account_id
            WHERE a.company_id = :company AND b.balance_date <= :today
            ORDER BY b.bank_account_id, b.balance_date DESC,
                     (b.kind IN ('CLBD', 'CLAV', 'ITBD')) DESC, b.kind
            """
        ),
        {"company": company_id, "today": today},
    ).all()
    days_overdrawn: int | None = None
    balance_start: int | None = None
    balance_end: int | None = None
    if anchors:
        earliest = min([start, *(a.balance_date for a in anchors)])
        flows = session.execute(
            text(
                """
                SELECT bank_account_id, booking_date, sum(amount_cents) AS net
                FROM bank_transactions
                WHERE company_id = :company AND bank_account_id = ANY(:accounts)
                  AND booking_date > :earliest AND booking_date <= :today
                GROUP BY bank_account_id, booking_date
                """
            ),
            {
                "company": company_id,
                "accounts": [a.bank_account_id for a in anchors],
                "earliest": earliest,
                "today": today,
            },
        ).all()
        daily = daily_balances(
            {a.bank_account_id: (a.balance_date, int(a.amount_cents)) for a in anchors},
            [(f.bank_account_id, f.booking_date, int(f.net)) for f in flows],
            start,
            today,
        )
        days_overdrawn = sum(1 for amount in daily if amount < 0)
        balance_start, balance_end = daily[0], daily[-1]
    books = session.execute(
        select(func.max(BookLine.entry_date)).where(BookLine.company_id == company_id)
    ).scalar_one_or_none()
    connected = int(tx.n) > 0 or bool(anchors and any(a.balance_date >= start for a in anchors))
    return {
        "bank": {
            "connected": connected,
            "window_days": window_days,
            "accounts": accounts,
            "transactions": int(tx.n),
            "last_booking_date": tx.last_booking.isoformat() if tx.last_booking else None,
            "inflow_cents": int(tx.inflow),
            "outflow_cents": int(tx.outflow),
            "weeks_with_inflow": int(tx.weeks_in),
            "weeks_in_window": weeks,
            "incidents": int(tx.incidents),
            "days_overdrawn": days_overdrawn,
            "balance_start_cents": balance_start,
            "balance_end_cents": balance_end,
        },
        "books_as_of": books.isoformat() if books else None,
    }


def daily_balances(
    anchors: dict[str, tuple[date, int]],
    flows: list[tuple[str, date, int]],
    start: date,
    today: date,
) -> list[int]:
    """The company's total end-of-day balance for each day from ``start`` to ``today``,
    rebuilt for each account from its anchor (a known balance on a date) and its net
    flows per day: before the anchor, later flows are taken back; after it, added."""
    days = (today - start).days + 1
    totals = [0] * days
    per_account: dict[str, dict[date, int]] = {}
    for account, day, net in flows:
        per_account.setdefault(account, {})[day] = net
    for account, (anchor_day, anchor_amount) in anchors.items():
        nets = per_account.get(account, {})
        # balance at the end of ``day`` = anchor + flows after the anchor up to ``day``
        # (or minus the flows after ``day`` up to the anchor, for days before it)
        balance_on: dict[date, int] = {anchor_day: anchor_amount}
        running = anchor_amount
        day = anchor_day
        while day > start:
            running -= nets.get(day, 0)
            day -= timedelta(days=1)
            balance_on[day] = running
        running, day = anchor_amount, anchor_day
        while day < today:
            day += timedelta(days=1)
            running += nets.get(day, 0)
            balance_on[day] = running
        for i in range(days):
            totals[i] += balance_on[start + timedelta(days=i)]
    return totals
