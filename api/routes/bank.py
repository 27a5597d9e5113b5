from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from escompte.api.deps import ClockDep, PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.connectors.bank import push
from escompte.connectors.bank.schemas import (
    BalanceCounts,
    BankAccountOut,
    BankTransactionBatch,
    BankTransactionBatchOut,
    BankTransactionOut,
    bank_account_out,
    bank_transaction_out,
)
from escompte.ids import id_pattern
from escompte.models import MatchStatus
from escompte.schemas import ListResponse

router = APIRouter(tags=["bank"], route_class=EscompteRoute)

CompanyId = Annotated[str, Path(pattern=id_pattern("cmp"))]
TransactionId = Annotated[str, Path(pattern=id_pattern("btx"))]


@router.post(
    "/v1/companies/{company_id}/bank-transactions",
    status_code=201,
    response_model=BankTransactionBatchOut,
    responses=problem_responses(404),
    summary="Push bank transactions and balances (aggregator batch, at most 1,000 transactions)",
)
def push_bank_transactions(
    company_id: CompanyId,
    body: BankTransactionBatch,
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
) -> BankTransactionBatchOut:
    outcome = push.push_transactions(session, clock, principal, company_id, body)
    result = outcome.result
    return BankTransactionBatchOut(
        bank_account=outcome.bank_account_id,
        created=result.created,
        unchanged=result.unchanged,
        known_from_other_sources=result.known_from_other_sources,
        transactions=outcome.transaction_ids,
        balances=BalanceCounts(
            created=result.balances_created,
            updated=result.balances_updated,
            unchanged=result.balances_unchanged,
        ),
    )


@router.get(
    "/v1/companies/{company_id}/bank-transactions",
    response_model=ListResponse[BankTransactionOut],
    responses=problem_responses(404),
    summary="List a company's bank transactions, newest first",
)
def list_bank_transactions(
    company_id: CompanyId,
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    match_status: MatchStatus | None = None,
    bank_account: Annotated[str | None, Query(pattern=id_pattern("bac"))] = None,
) -> ListResponse[BankTransactionOut]:
    rows = push.list_transactions(
        session,
        principal,
        company_id,
        match_status=match_status,
        bank_account_id=bank_account,
        limit=page.limit + 1,
        starting_after=page.starting_after,
    )
    return ListResponse(
        data=[bank_transaction_out(t) for t in rows[: page.limit]], has_more=len(rows) > page.limit
    )


@router.get(
    "/v1/bank-transactions/{transaction_id}",
    response_model=BankTransactionOut,
    responses=problem_responses(404),
    summary="Get a bank transaction",
)
def get_bank_transaction(
    transaction_id: TransactionId, session: SessionDep, principal: PrincipalDep
) -> BankTransactionOut:
    return bank_transaction_out(push.get_transaction(session, principal, transaction_id))


@router.get(
    "/v1/companies/{company_id}/bank-accounts",
    response_model=ListResponse[BankAccountOut],
    responses=problem_responses(404),
    summary="List a company's bank accounts with their latest balance",
)
def list_bank_accounts(
    company_id: CompanyId, session: SessionDep, principal: PrincipalDep, page: PageDep
) -> ListResponse[BankAccountOut]:
    rows = push.list_accounts(
        session, principal, company_id, limit=page.limit + 1, starting_after=page.starting_after
    )
    return ListResponse(
        data=[bank_account_out(a, b) for a, b in rows[: page.limit]], has_more=len(rows) > page.limit
    )
