"""API keys and partners."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import Field

from escompte.access import keys as service
from escompte.api.deps import ClockDep, PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.errors import Forbidden
from escompte.ids import id_pattern
from escompte.models import ApiKey, KeyMode, Partner, PrincipalKind
from escompte.schemas import InputModel, ListResponse, Resource, ref, text

router = APIRouter(tags=["access"], route_class=EscompteRoute)

KeyId = Annotated[str, Path(pattern=id_pattern("key"))]
PartnerId = Annotated[str, Path(pattern=id_pattern("prt"))]


class ApiKeyCreate(InputModel):
    kind: PrincipalKind
    mode: KeyMode | None = Field(default=None, description="test or live; default per deployment.")
    partner: ref("prt", "For partner keys.") | None = None  # type: ignore[valid-type]
    company: ref("cmp", "For company keys.") | None = None  # type: ignore[valid-type]
    description: text(200) | None = None  # type: ignore[valid-type]


class ApiKeyOut(Resource):
    object: Literal["api_key"] = "api_key"
    kind: PrincipalKind
    mode: KeyMode
    display_prefix: str = Field(description="The first characters of the key, to recognise it.")
    description: str | None
    partner: str | None
    company: str | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="The key itself. Shown only in this response.")


class PartnerCreate(InputModel):
    name: text(200)  # type: ignore[valid-type]


class PartnerOut(Resource):
    object: Literal["partner"] = "partner"
    name: str


def _key_out(k: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=k.id,
        created_at=k.created_at,
        kind=k.kind,
        mode=k.mode,
        display_prefix=k.display_prefix,
        description=k.description,
        partner=k.partner_id,
        company=k.company_id,
        revoked_at=k.revoked_at,
    )


def _partner_out(p: Partner) -> PartnerOut:
    return PartnerOut(id=p.id, created_at=p.created_at, name=p.name)


@router.post(
    "/v1/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=problem_responses(403, 404),
    summary="Create an API key (shown once)",
)
def create_api_key(
    body: ApiKeyCreate, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> ApiKeyCreated:
    created = service.create_key(
        session,
        clock,
        kind=body.kind,
        mode=body.mode or principal.mode,
        partner_id=body.partner,
        company_id=body.company,
        description=body.description,
        actor=principal,
    )
    return ApiKeyCreated(**_key_out(created.key).model_dump(), secret=created.secret)


@router.get("/v1/api-keys", response_model=ListResponse[ApiKeyOut], summary="List API keys")
def list_api_keys(session: SessionDep, principal: PrincipalDep, page: PageDep) -> ListResponse[ApiKeyOut]:
    rows = service.list_keys(session, principal, limit=page.limit + 1, starting_after=page.starting_after)
    return ListResponse(data=[_key_out(k) for k in rows[: page.limit]], has_more=len(rows) > page.limit)


@router.get(
    "/v1/api-keys/{key_id}",
    response_model=ApiKeyOut,
    responses=problem_responses(404),
    summary="Get an API key",
)
def get_api_key(key_id: KeyId, session: SessionDep, principal: PrincipalDep) -> ApiKeyOut:
    return _key_out(service.get_key(session, principal, key_id))


@router.post(
    "/v1/api-keys/{key_id}/revoke",
    response_model=ApiKeyOut,
    responses=problem_responses(404),
    summary="Revoke an API key (immediately)",
)
def revoke_api_key(key_id: KeyId, session: SessionDep, clock: ClockDep, principal: PrincipalDep) -> ApiKeyOut:
    return _key_out(service.revoke_key(session, clock, principal, key_id))


@router.post(
    "/v1/partners",
    status_code=201,
    response_model=PartnerOut,
    responses=problem_responses(403),
    summary="Register a partner platform (admin)",
)
def create_partner(
    body: PartnerCreate, session: SessionDep, clock: ClockDep, principal: PrincipalDep
) -> PartnerOut:
    if not principal.is_admin:
        raise Forbidden("Only admins register partners.")
    return _partner_out(service.create_partner(session, clock, body.name))


@router.get("/v1/partners", response_model=ListResponse[PartnerOut], summary="List partners")
def list_partners(session: SessionDep, principal: PrincipalDep, page: PageDep) -> ListResponse[PartnerOut]:
    rows = service.list_partners(session, principal, limit=page.limit + 1, starting_after=page.starting_after)
    return ListResponse(data=[_partner_out(p) for p in rows[: page.limit]], has_more=len(rows) > page.limit)


@router.get(
    "/v1/partners/{partner_id}",
    response_model=PartnerOut,
    responses=problem_responses(404),
    summary="Get a partner",
)
def get_partner(partner_id: PartnerId, session: SessionDep, principal: PrincipalDep) -> PartnerOut:
    return _partner_out(service.get_partner(session, principal, partner_id))
