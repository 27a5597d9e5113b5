"""Eligibility: explained decisions on invoices, in real time; the policy they apply."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from escompte.api.deps import ClockDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.eligibility import service
from escompte.eligibility.schemas import (
    BatchIn,
    BatchOut,
    DecisionOut,
    Lang,
    PolicyIn,
    PolicyOut,
    RelatedPartyIn,
    RelatedPartyOut,
    batch_json,
    cached_decision_json,
    decision_json,
    policy_out,
    related_party_out,
)
from escompte.ids import id_pattern
from escompte.schemas import ListResponse

router = APIRouter(tags=["eligibility"], route_class=EscompteRoute)

InvoiceId = Annotated[str, Path(pattern=id_pattern("inv"))]
DecisionId = Annotated[str, Path(pattern=id_pattern("eld"))]
CACHE_HEADER = "Eligibility-Cache"


def _lang(accept_language: str | None) -> Lang:
    """French when the caller prefers it (``Accept-Language: fr``), else English."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return "fr" if first.startswith("fr") else "en"


AcceptLanguage = Annotated[
    str | None,
    Header(max_length=200, description="fr for French messages in `message`; English otherwise."),
]


@router.post(
    "/v1/invoices/{invoice_id}/eligibility",
    response_model=DecisionOut,
    responses={
        200: {
            "description": "The decision.",
            "headers": {
                CACHE_HEADER: {
                    "description": "hit: nothing the decision read has changed, it is returned "
                    "again; miss: a new decision was made.",
                    "schema": {"type": "string", "enum": ["hit", "miss"]},
                },
                "Content-Language": {
                    "description": "The language of `message`.",
                    "schema": {"type": "string"},
                },
            },
        },
        **problem_responses(404),
    },
    summary="Decide whether an invoice can be financed, up to how much, for how long, and why",
    description="Returns the latest decision when nothing it read has changed (header "
    "`Eligibility-Cache: hit`), otherwise a new persisted decision (`miss`).",
)
def decide_invoice(
    invoice_id: InvoiceId,
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
    accept_language: AcceptLanguage = None,
) -> Response:
    lang = _lang(accept_language)
    decided = service.decide(session, clock, principal, invoice_id)
    body = cached_decision_json(decided.decision_id, lang)
    if body is None:
        decision = decided.decision or service.get_decision(session, principal, decided.decision_id)
        body = decision_json(decision, lang)
    return Response(
        body,
        media_type="application/json",
        headers={CACHE_HEADER: "hit" if decided.reused else "miss", "Content-Language": lang},
    )


@router.get(
    "/v1/eligibility-decisions/{decision_id}",
    response_model=DecisionOut,
    responses=problem_responses(404),
    summary="Read a decision again, exactly as it was made",
)
def get_decision(
    decision_id: DecisionId,
    session: SessionDep,
    principal: PrincipalDep,
    accept_language: AcceptLanguage = None,
) -> Response:
    lang = _lang(accept_language)
    decision = service.get_decision(session, principal, decision_id)  # tenancy first
    body = cached_decision_json(decision.id, lang) or decision_json(decision, lang)
    return Response(body, media_type="application/json", headers={"Content-Language": lang})


@router.post(
    "/v1/eligibility/batch",
    response_model=BatchOut,
    responses=problem_responses(403, 404),
    summary="Decide many invoices: a list (up to 10,000) or a company's open invoices",
)
def decide_batch(body: BatchIn, session: SessionDep, clock: ClockDep, principal: PrincipalDep) -> Response:
    result = service.decide_batch(
        session,
        clock,
        principal,
        company_id=body.company,
        invoice_ids=body.invoices,
        starting_after=body.starting_after,
    )
    body_json = batch_json([(i.summary, i.reused) for i in result.items], result.has_more)
    return Response(body_json, media_type="application/json")


@router.get("/v1/eligibility/policy", response_model=PolicyOut, summary="The eligibility policy in force")
def get_policy(session: SessionDep, clock: ClockDep, principal: PrincipalDep) -> PolicyOut:
    return policy_out(service.current_policy(session, clock))


@router.post(
    "/v1/eligibility/policy",
    status_code=201,
    response_model=PolicyOut,
    responses=problem_responses(403, 409),
    summary="Change thresholds and limits: a new policy version, used by the next decision (admin)",
)
def create_policy(body: PolicyIn, session: SessionDep, clock: ClockDep, principal: PrincipalDep) -> PolicyOut:
    return policy_out(service.create_policy(session, clock, principal, body.settings, body.note))


@router.post(
    "/v1/eligibility/related-parties",
    status_code=201,
    response_model=RelatedPartyOut,
    responses=problem_responses(404),
    summary="Declare a company related to a seller (its invoices on it are not financed)",
)
def declare_related_party(
    body: RelatedPartyIn, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> RelatedPartyOut:
    return related_party_out(
        service.declare_related_party(
            session, clock, principal, company_id=body.company, siren=body.siren, relation=body.relation
        )
    )


@router.get(
    "/v1/eligibility/related-parties",
    response_model=ListResponse[RelatedPartyOut],
    responses=problem_responses(404),
    summary="The companies declared related to a seller",
)
def list_related_parties(
    session: SessionDep,
    principal: PrincipalDep,
    company: Annotated[str | None, Query(pattern=id_pattern("cmp"))] = None,
) -> ListResponse[RelatedPartyOut]:
    rows = service.list_related_parties(session, principal, company)
    return ListResponse(data=[related_party_out(r) for r in rows], has_more=False)
