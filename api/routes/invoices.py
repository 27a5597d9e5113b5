from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from escompte.api.deps import ClockDep, PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.ids import id_pattern
from escompte.invoices import service
from escompte.invoices.schemas import InvoiceCreate, InvoiceOut, invoice_out
from escompte.models import InvoiceKind, InvoiceStatus
from escompte.schemas import ListResponse

router = APIRouter(prefix="/v1/invoices", tags=["invoices"], route_class=EscompteRoute)

InvoiceId = Annotated[str, Path(pattern=id_pattern("inv"))]


@router.post(
    "",
    status_code=201,
    response_model=InvoiceOut,
    responses=problem_responses(404, 409),
    summary="Create an invoice",
)
def create_invoice(
    body: InvoiceCreate, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> InvoiceOut:
    return invoice_out(service.create_invoice(session, clock, principal, body))


@router.get("", response_model=ListResponse[InvoiceOut], summary="List visible invoices")
def list_invoices(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    company: Annotated[str | None, Query(pattern=id_pattern("cmp"))] = None,
    counterparty: Annotated[str | None, Query(pattern=id_pattern("dbt"))] = None,
    kind: InvoiceKind | None = None,
    status: InvoiceStatus | None = None,
    eligible: Annotated[
        bool | None,
        Query(
            description="Filter on the latest eligibility decision, as it still holds: an invoice "
            "paid, cancelled or financed since that decision is not eligible. Undecided invoices "
            "match neither; `POST /v1/eligibility/batch` decides a company's open invoices first."
        ),
    ] = None,
) -> ListResponse[InvoiceOut]:
    rows = service.list_invoices(
        session,
        principal,
        company_id=company,
        counterparty_id=counterparty,
        kind=kind,
        status=status,
        eligible=eligible,
        limit=page.limit + 1,
        starting_after=page.starting_after,
    )
    return ListResponse(data=[invoice_out(i) for i in rows[: page.limit]], has_more=len(rows) > page.limit)


@router.get(
    "/{invoice_id}",
    response_model=InvoiceOut,
    responses=problem_responses(404),
    summary="Get an invoice",
)
def get_invoice(invoice_id: InvoiceId, session: SessionDep, principal: PrincipalDep) -> InvoiceOut:
    return invoice_out(service.get_invoice(session, principal, invoice_id))


@router.post(
    "/{invoice_id}/cancel",
    response_model=InvoiceOut,
    responses=problem_responses(404, 409),
    summary="Cancel an open or disputed invoice",
)
def cancel_invoice(
    invoice_id: InvoiceId, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> InvoiceOut:
    return invoice_out(service.cancel_invoice(session, clock, principal, invoice_id))
