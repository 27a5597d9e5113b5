from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from escompte.api.deps import ClockDep, PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.companies import service
from escompte.companies.schemas import DebtorCreate, DebtorOut, debtor_out
from escompte.ids import id_pattern
from escompte.schemas import ListResponse

router = APIRouter(prefix="/v1/debtors", tags=["debtors"], route_class=EscompteRoute)

DebtorId = Annotated[str, Path(pattern=id_pattern("dbt"))]


@router.post(
    "",
    status_code=201,
    response_model=DebtorOut,
    responses=problem_responses(403, 404, 409),
    summary="Register a counterparty of a company",
)
def create_debtor(
    body: DebtorCreate, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> DebtorOut:
    return debtor_out(service.create_debtor(session, clock, principal, body))


@router.get("", response_model=ListResponse[DebtorOut], summary="List visible debtors")
def list_debtors(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    company: Annotated[str | None, Query(pattern=id_pattern("cmp"))] = None,
) -> ListResponse[DebtorOut]:
    rows = service.list_debtors(
        session,
        principal,
        company_id=company,
        limit=page.limit + 1,
        starting_after=page.starting_after,
    )
    return ListResponse(data=[debtor_out(d) for d in rows[: page.limit]], has_more=len(rows) > page.limit)


@router.get(
    "/{debtor_id}",
    response_model=DebtorOut,
    responses=problem_responses(404),
    summary="Get a debtor",
)
def get_debtor(debtor_id: DebtorId, session: SessionDep, principal: PrincipalDep) -> DebtorOut:
    return debtor_out(service.get_debtor(session, principal, debtor_id))
