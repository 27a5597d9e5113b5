from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from escompte.api.deps import ClockDep, PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.companies import service
from escompte.companies.schemas import CompanyCreate, CompanyOut, company_out
from escompte.ids import id_pattern
from escompte.schemas import ListResponse

router = APIRouter(prefix="/v1/companies", tags=["companies"], route_class=EscompteRoute)

CompanyId = Annotated[str, Path(pattern=id_pattern("cmp"))]


@router.post(
    "",
    status_code=201,
    response_model=CompanyOut,
    responses=problem_responses(403, 404, 409),
    summary="Onboard an SME",
)
def create_company(
    body: CompanyCreate, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> CompanyOut:
    return company_out(service.create_company(session, clock, principal, body))


@router.get("", response_model=ListResponse[CompanyOut], summary="List visible companies")
def list_companies(session: SessionDep, principal: PrincipalDep, page: PageDep) -> ListResponse[CompanyOut]:
    rows = service.list_companies(
        session, principal, limit=page.limit + 1, starting_after=page.starting_after
    )
    return ListResponse(data=[company_out(c) for c in rows[: page.limit]], has_more=len(rows) > page.limit)


@router.get(
    "/{company_id}",
    response_model=CompanyOut,
    responses=problem_responses(404),
    summary="Get a company",
)
def get_company(company_id: CompanyId, session: SessionDep, principal: PrincipalDep) -> CompanyOut:
    return company_out(service.get_company(session, principal, company_id))
