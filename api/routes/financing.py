"""Financing: the pricing grid, quotes, advances (accept, repay, extend, statement) and
each SME's payment profile (payout account and SEPA mandate)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from escompte.api.deps import ClockDep, PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.concurrency import waiting_elsewhere
from escompte.financing import rails, service, statements
from escompte.financing.exceptions import PaymentsUnavailable
from escompte.financing.schemas import (
    AdvanceIn,
    AdvanceOut,
    EscalationIn,
    ExtendIn,
    GridIn,
    GridOut,
    PaymentFileOut,
    PaymentProfileIn,
    PaymentProfileOut,
    QuoteIn,
    QuoteOut,
    RepaymentIn,
    RepaymentOut,
    StatementOut,
    advance_out,
    grid_out,
    payment_file_out,
    profile_out,
    quote_out,
    repayment_out,
)
from escompte.ids import id_pattern
from escompte.models import AdvanceStatus
from escompte.schemas import ListResponse

router = APIRouter(tags=["financing"], route_class=EscompteRoute)

# before the money reached the SME nothing is owed yet (fees count from then)
NOT_STARTED = (AdvanceStatus.ACCEPTED, AdvanceStatus.DISBURSING, AdvanceStatus.DISBURSEMENT_FAILED)

QuoteId = Annotated[str, Path(pattern=id_pattern("qte"))]
AdvanceId = Annotated[str, Path(pattern=id_pattern("adv"))]
CompanyId = Annotated[str, Path(pattern=id_pattern("cmp"))]


def _rail(request: Request) -> rails.StripeRail:
    try:
        return rails.from_settings(request.app.state.settings)
    except rails.RailNotConfigured as exc:
        raise PaymentsUnavailable(exc.message) from None


def _cap(request: Request) -> int:
    return int(request.app.state.settings.sepa_debit_cap_cents)


@router.get("/v1/pricing/grid", response_model=GridOut, summary="The pricing grid in force")
def get_grid(session: SessionDep, clock: ClockDep, principal: PrincipalDep) -> GridOut:
    return grid_out(service.current_grid(session, clock))


@router.post(
    "/v1/pricing/grid",
    status_code=201,
    response_model=GridOut,
    responses=problem_responses(403),
    summary="Change the daily rates: a new grid version, used by the next quote (admin)",
)
def create_grid(body: GridIn, session: SessionDep, clock: ClockDep, principal: PrincipalDep) -> GridOut:
    return grid_out(service.create_grid(session, clock, principal, body.settings, body.note))


@router.post(
    "/v1/quotes",
    status_code=201,
    response_model=QuoteOut,
    responses=problem_responses(404, 409),
    summary="Price the financing of an invoice: daily rate, fee to maturity, per extra day, total",
    description="The invoice's eligibility is decided (or the cached decision reused) first; "
    "an ineligible invoice is a 409 `not_eligible` naming the failed checks.",
)
def create_quote(body: QuoteIn, session: SessionDep, clock: ClockDep, principal: PrincipalDep) -> QuoteOut:
    quote = service.create_quote(
        session,
        clock,
        principal,
        invoice_id=body.invoice,
        amount_cents=body.amount.amount if body.amount else None,
        duration_days=body.duration_days,
    )
    return quote_out(quote, clock.now())


@router.get(
    "/v1/quotes/{quote_id}", response_model=QuoteOut, responses=problem_responses(404), summary="A quote"
)
def get_quote(quote_id: QuoteId, session: SessionDep, clock: ClockDep, principal: PrincipalDep) -> QuoteOut:
    return quote_out(service.get_quote(session, principal, quote_id), clock.now())


def _advance_out(session: SessionDep, advance: object) -> AdvanceOut:
    from escompte.models import Advance

    assert isinstance(advance, Advance)
    started = advance.status not in NOT_STARTED
    return advance_out(advance, service.owed(session, advance) if started else None)


@router.post(
    "/v1/advances",
    status_code=201,
    response_model=AdvanceOut,
    responses=problem_responses(404, 409, 503),
    summary="Accept a quote: eligibility re-checked, the advance created, the money sent",
    description="Exactly one live advance per invoice: a concurrent or repeated acceptance is a "
    "409 (`invoice_already_financed`, `quote_already_accepted`, `eligibility_changed`). The "
    "advance is committed before the payment provider is called; its status says how far the "
    "money went (`disbursing`: payout sent; `accepted`: the provider did not answer, retried "
    "automatically with the same idempotency keys).",
)
def create_advance(
    body: AdvanceIn, request: Request, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> AdvanceOut:
    rail = _rail(request)
    advance_id = service.accept(session, clock, principal, body.quote, supplier_iban=body.supplier_iban)
    # Write-ahead: the advance exists before any money moves; a crash from here on is
    # finished by the recovery sweep or the provider's webhook, with the same keys.
    with waiting_elsewhere():  # the commit waits on the disk: the slot serves another request
        session.commit()
    advance = service.disburse(session, clock, rail, advance_id)
    return _advance_out(session, advance)


@router.get("/v1/advances", response_model=ListResponse[AdvanceOut], summary="Advances, oldest first")
def list_advances(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    company: Annotated[str | None, Query(pattern=id_pattern("cmp"))] = None,
    status: AdvanceStatus | None = None,
) -> ListResponse[AdvanceOut]:
    rows, has_more = service.list_advances(
        session,
        principal,
        limit=page.limit,
        starting_after=page.starting_after,
        company_id=company,
        status=status,
    )
    return ListResponse(data=[_advance_out(session, a) for a in rows], has_more=has_more)


@router.get(
    "/v1/advances/{advance_id}",
    response_model=AdvanceOut,
    responses=problem_responses(404),
    summary="An advance",
)
def get_advance(advance_id: AdvanceId, session: SessionDep, principal: PrincipalDep) -> AdvanceOut:
    return _advance_out(session, service.get_advance(session, principal, advance_id))


@router.post(
    "/v1/advances/{advance_id}/repayments",
    status_code=201,
    response_model=ListResponse[RepaymentOut],
    responses=problem_responses(403, 404, 409, 503),
    summary="Repay early (SEPA debit now), or record money received on the collection account",
    description="Money received pays late interest first, then fees, then principal; any surplus is "
    "owed back to the SME. A debit above the SEPA cap is split into several debits.",
)
def create_repayment(
    advance_id: AdvanceId,
    body: RepaymentIn,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
) -> ListResponse[RepaymentOut]:
    if body.method == "sepa_debit":
        rail: rails.StripeRail | None = _rail(request)
    else:  # the surplus goes back to the SME through the rail when it is configured
        try:
            rail = rails.from_settings(request.app.state.settings)
        except rails.RailNotConfigured:
            rail = None
    if body.method == "collection_account" and body.amount is None:
        from escompte.errors import FieldError, ValidationFailed

        raise ValidationFailed(
            "Say how much was received on the collection account.",
            [FieldError("amount", "required for collection_account", code="missing")],
        )
    rows = service.repay(
        session,
        clock,
        rail,
        principal,
        advance_id,
        method=body.method,
        amount_cents=body.amount.amount if body.amount else None,
        cap_cents=_cap(request),
    )
    return ListResponse(data=[repayment_out(r) for r in rows], has_more=False)


@router.get(
    "/v1/advances/{advance_id}/repayments",
    response_model=ListResponse[RepaymentOut],
    responses=problem_responses(404),
    summary="An advance's repayments",
)
def list_repayments(
    advance_id: AdvanceId, session: SessionDep, principal: PrincipalDep
) -> ListResponse[RepaymentOut]:
    from sqlalchemy import select

    from escompte.models import Repayment

    advance = service.get_advance(session, principal, advance_id)
    rows = session.execute(
        select(Repayment).where(Repayment.advance_id == advance.id).order_by(Repayment.id)
    ).scalars()
    return ListResponse(data=[repayment_out(r) for r in rows], has_more=False)


@router.post(
    "/v1/advances/{advance_id}/extend",
    response_model=AdvanceOut,
    responses=problem_responses(404, 409),
    summary="Lengthen an advance (120 days in total at most), at the same daily rate",
)
def extend_advance(
    advance_id: AdvanceId, body: ExtendIn, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> AdvanceOut:
    return _advance_out(session, service.extend(session, clock, principal, advance_id, body.additional_days))


@router.post(
    "/v1/advances/{advance_id}/escalations",
    response_model=AdvanceOut,
    responses=problem_responses(403, 404, 409),
    summary="Move an unpaid advance through collection: in collections, defaulted, written off (admin)",
    description="overdue → `in_collections` → `defaulted` (a provision for everything owed) → "
    "`written_off` (what is still owed booked as a loss, the provision released). Fees and late "
    "interest are brought up to date first. Any other order is a 409 `invalid_state_transition`; "
    "a defaulted advance repaid after all releases its provision.",
)
def escalate_advance(
    advance_id: AdvanceId, body: EscalationIn, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> AdvanceOut:
    advance = service.escalate(session, clock, principal, advance_id, AdvanceStatus(body.status), body.reason)
    return _advance_out(session, advance)


@router.get(
    "/v1/advances/{advance_id}/statement",
    responses={
        200: {
            "description": "The statement: JSON, or an HTML document with `Accept: text/html`.",
            "content": {"application/json": {"schema": {"type": "object"}}, "text/html": {}},
        },
        **problem_responses(404),
    },
    summary="What was lent, the fee of each day, what was repaid, what is owed",
)
def get_statement(
    advance_id: AdvanceId, request: Request, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> Response:
    import json

    advance = service.get_advance(session, principal, advance_id)
    data = statements.statement(session, clock, advance)
    if "text/html" in request.headers.get("accept", ""):
        return Response(statements.render_html(session, data), media_type="text/html")
    return Response(json.dumps(data), media_type="application/json")


@router.post(
    "/v1/companies/{company_id}/payment-profile",
    status_code=201,
    response_model=PaymentProfileOut,
    responses=problem_responses(402, 404, 503),
    summary="Set up an SME's payouts (its IBAN) and SEPA Direct Debit mandate for repayments",
)
def create_payment_profile(
    company_id: CompanyId,
    body: PaymentProfileIn,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
) -> PaymentProfileOut:
    profile = service.set_up_payments(
        session,
        clock,
        _rail(request),
        principal,
        company_id,
        iban=body.iban,
        holder=body.account_holder_name,
        ip_address=body.mandate.ip_address,
        user_agent=body.mandate.user_agent,
    )
    return profile_out(profile)


@router.get(
    "/v1/companies/{company_id}/payment-profile",
    response_model=PaymentProfileOut,
    responses=problem_responses(404),
    summary="An SME's payout account and mandate",
)
def get_payment_profile(
    company_id: CompanyId, session: SessionDep, principal: PrincipalDep
) -> PaymentProfileOut:
    return profile_out(service.get_profile(session, principal, company_id))


@router.post(
    "/v1/payment-files",
    status_code=201,
    response_model=PaymentFileOut,
    responses=problem_responses(403, 409, 503),
    summary="Gather the ordered supplier transfers into a SEPA credit transfer file (pain.001) for the bank",
)
def create_payment_file(
    request: Request, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> PaymentFileOut:
    return payment_file_out(
        service.create_payment_file(session, clock, request.app.state.settings, principal)
    )


@router.get(
    "/v1/payment-files/{file_id}",
    responses={
        200: {"description": "The pain.001.001.03 XML.", "content": {"application/xml": {}}},
        **problem_responses(403, 404),
    },
    summary="Download a payment file",
)
def get_payment_file(
    file_id: Annotated[str, Path(pattern=id_pattern("pmf"))], session: SessionDep, principal: PrincipalDep
) -> Response:
    from escompte.errors import Forbidden, NotFound
    from escompte.models import PaymentFile

    if not principal.is_admin:
        raise Forbidden("Only the back-office reads payment files.")
    file = session.get(PaymentFile, file_id)
    if file is None:
        raise NotFound(f"No such payment file: {file_id}")
    return Response(
        file.content,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{file.id}.xml"'},
    )


@router.post(
    "/v1/platform/bank-statements",
    response_model=StatementOut,
    responses=problem_responses(403, 413),
    summary="The platform account's camt.053: confirms (or returns) the supplier transfers it shows",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/xml": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def platform_statement(
    request: Request, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> StatementOut:
    from starlette.concurrency import run_in_threadpool

    content = await request.body()
    result = await run_in_threadpool(service.apply_bank_statement, session, clock, principal, content)
    return StatementOut(
        confirmed=result.confirmed,
        returned=result.returned,
        unknown=result.unknown,
        mismatched=result.mismatched,
    )
