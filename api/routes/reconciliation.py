"""Reconciliation: the queue of unexplained bank credits, running the matching for a
company, matching a credit by hand, and the payment behaviour it teaches per debtor."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from escompte.api.deps import ClockDep, PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.companies import service as companies
from escompte.connectors import reconciliation
from escompte.connectors.behaviour import behaviour_of
from escompte.ids import id_pattern
from escompte.models import BankTransaction, DebtorBehaviour, MatchStatus
from escompte.schemas import InputModel, ListResponse, Money, MoneyIn, Resource, money, ref

router = APIRouter(tags=["reconciliation"], route_class=EscompteRoute)

CompanyId = Annotated[str, Path(pattern=id_pattern("cmp"))]
DebtorId = Annotated[str, Path(pattern=id_pattern("dbt"))]
TransactionId = Annotated[str, Path(pattern=id_pattern("btx"))]


# --- shapes ---------------------------------------------------------------------------


class Counterparty(BaseModel):
    name: str | None = Field(description="The payer's name as the bank shows it.")
    iban: str | None


class AllocationOut(BaseModel):
    invoice: str
    amount: Money


class BankCreditOut(Resource):
    object: Literal["bank_transaction"] = "bank_transaction"
    company: str
    bank_account: str
    booking_date: date
    value_date: date | None
    amount: Money
    matched: Money = Field(description="Allocated to invoices so far.")
    remaining: Money = Field(description="Not yet explained by any invoice.")
    counterparty: Counterparty
    remittance_info: str | None
    structured_reference: str | None
    end_to_end_id: str | None
    match_status: MatchStatus
    allocations: list[AllocationOut]


class AllocationIn(InputModel):
    invoice: ref("inv", "A receivable invoice of the credit's company.")  # type: ignore[valid-type]
    amount: MoneyIn = Field(description="At most the invoice's amount due.")


class ManualMatch(InputModel):
    allocations: list[AllocationIn] = Field(
        min_length=1,
        max_length=reconciliation.MAX_MANUAL_ALLOCATIONS,
        description="Their sum is at most what remains of the credit.",
    )


class ReconciliationRunOut(BaseModel):
    object: Literal["reconciliation_run"] = "reconciliation_run"
    company: str
    credits_examined: int = Field(description="Open credits looked at (unmatched or partially matched).")
    credits_newly_allocated: int
    matched: int = Field(description="Examined credits now fully allocated.")
    partially_matched: int
    unmatched: int = Field(description="Examined credits left in the back-office queue.")
    payments_created: int
    allocations_created: int
    allocated: list[Money] = Field(description="Allocated by this run, per currency.")
    invoices_updated: int
    by_rule: dict[str, int] = Field(
        description="Credits per deciding rule: reference, amount_payer, several_invoices."
    )
    booked: int = Field(description="Credits the SME's books already record (linked to their FEC bank line).")
    cashed: int = Field(
        description='Credits an e-invoicing "cashed" status already recorded (linked to that payment, '
        "not allocated again)."
    )


class DebtorBehaviourOut(BaseModel):
    object: Literal["debtor_behaviour"] = "debtor_behaviour"
    debtor: str
    paid_invoice_count: int
    avg_days_late: Decimal = Field(description="Mean days late of paid invoices (0.01 day).")
    p90_days_late: Decimal = Field(description="Nearest-rank 90th percentile of days late.")
    share_paid_late: Decimal = Field(description="Share of paid invoices paid after their due date, 0..1.")
    unpaid_count: int = Field(description="Open or partially paid invoices past their due date.")
    unpaid_overdue: Money = Field(description="What remains due on them.")
    computed_at: datetime


def _credit_out(t: BankTransaction, allocations: list[tuple[str, int]]) -> BankCreditOut:
    return BankCreditOut(
        id=t.id,
        created_at=t.created_at,
        company=t.company_id,
        bank_account=t.bank_account_id,
        booking_date=t.booking_date,
        value_date=t.value_date,
        amount=money(t.amount_cents, t.currency),
        matched=money(t.matched_cents, t.currency),
        remaining=money(max(0, t.amount_cents - t.matched_cents), t.currency),
        counterparty=Counterparty(name=t.counterparty_name, iban=t.counterparty_iban),
        remittance_info=t.remittance_info,
        structured_reference=t.structured_reference,
        end_to_end_id=t.end_to_end_id,
        match_status=t.match_status,
        allocations=[AllocationOut(invoice=i, amount=money(c, t.currency)) for i, c in allocations],
    )


def _behaviour_out(b: DebtorBehaviour) -> DebtorBehaviourOut:
    return DebtorBehaviourOut(
        debtor=b.debtor_id,
        paid_invoice_count=b.paid_invoice_count,
        avg_days_late=Decimal(b.avg_days_late).quantize(Decimal("0.01")),
        p90_days_late=Decimal(b.p90_days_late).quantize(Decimal("0.01")),
        share_paid_late=Decimal(b.share_paid_late).quantize(Decimal("0.0001")),
        unpaid_count=b.unpaid_count,
        unpaid_overdue=money(b.unpaid_overdue_cents, "EUR"),  # EUR only (ADR-006)
        computed_at=b.computed_at,
    )


# --- routes ---------------------------------------------------------------------------


@router.get(
    "/v1/reconciliation/unmatched",
    response_model=ListResponse[BankCreditOut],
    summary="The back-office queue: credits not (fully) explained by invoices",
)
def list_unmatched(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    company: Annotated[str | None, Query(pattern=id_pattern("cmp"))] = None,
) -> ListResponse[BankCreditOut]:
    rows = reconciliation.list_unmatched(
        session, principal, company_id=company, limit=page.limit + 1, starting_after=page.starting_after
    )
    shown = rows[: page.limit]
    allocations = reconciliation.allocations_of(session, shown)
    return ListResponse(
        data=[_credit_out(t, allocations[t.id]) for t in shown], has_more=len(rows) > page.limit
    )


@router.post(
    "/v1/companies/{company_id}/reconciliation",
    response_model=ReconciliationRunOut,
    responses=problem_responses(404),
    summary="Match the company's open bank credits with its open invoices now",
)
def run_reconciliation(
    company_id: CompanyId, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> ReconciliationRunOut:
    company = companies.get_company(session, principal, company_id)
    stats = reconciliation.reconcile(session, clock, company.id)
    return ReconciliationRunOut(
        company=company.id,
        credits_examined=stats.credits_examined,
        credits_newly_allocated=stats.credits_newly_allocated,
        matched=stats.matched,
        partially_matched=stats.partially_matched,
        unmatched=stats.unmatched,
        payments_created=stats.payments_created,
        allocations_created=stats.allocations_created,
        allocated=[money(c, cur) for cur, c in sorted(stats.allocated_cents.items())],
        invoices_updated=stats.invoices_updated,
        by_rule=dict(sorted(stats.by_rule.items())),
        booked=stats.booked,
        cashed=stats.cashed,
    )


@router.post(
    "/v1/bank-transactions/{transaction_id}/match",
    response_model=BankCreditOut,
    responses=problem_responses(404, 409),
    summary="Allocate a bank credit to invoices by hand",
)
def match_transaction(
    transaction_id: TransactionId,
    body: ManualMatch,
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
) -> BankCreditOut:
    txn = reconciliation.match_manually(
        session,
        clock,
        principal,
        transaction_id,
        [
            reconciliation.ManualAllocation(a.invoice, a.amount.amount, a.amount.currency)
            for a in body.allocations
        ],
    )
    return _credit_out(txn, reconciliation.allocations_of(session, [txn])[txn.id])


@router.get(
    "/v1/debtors/{debtor_id}/behaviour",
    response_model=DebtorBehaviourOut,
    responses=problem_responses(404),
    tags=["debtors"],
    summary="How a debtor pays: days late, share paid late, overdue",
)
def get_behaviour(
    debtor_id: DebtorId, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> DebtorBehaviourOut:
    debtor = companies.get_debtor(session, principal, debtor_id)
    return _behaviour_out(behaviour_of(session, clock, debtor.id))
