"""Events: what happened to an object, in order (advances today). Partners poll them
now; outgoing webhooks will carry the same objects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import select

from escompte.access.principal import visible_company_ids
from escompte.api.deps import PageDep, PrincipalDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.errors import NotFound
from escompte.ids import id_pattern
from escompte.models import Event
from escompte.schemas import ListResponse

router = APIRouter(tags=["events"], route_class=EscompteRoute)


class EventOut(BaseModel):
    id: str
    object: Literal["event"] = "event"
    type: str
    created_at: datetime
    company: str | None
    data: dict[str, Any]
    subject: dict[str, str]


def _out(e: Event) -> EventOut:
    return EventOut(
        id=e.id,
        type=e.type,
        created_at=e.created_at,
        company=e.company_id,
        data=e.data,
        subject={"object": e.object_type, "id": e.object_id},
    )


@router.get(
    "/v1/events",
    response_model=ListResponse[EventOut],
    summary="Events the key may see, oldest first (filter by object or type)",
)
def list_events(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    object_id: Annotated[
        str | None, Query(alias="object", pattern=r"^[a-z]{2,5}_[0-9A-HJKMNP-TV-Z]{26}$")
    ] = None,
    type: Annotated[str | None, Query(max_length=60, pattern=r"^[a-z_]+\.[a-z_.]+$")] = None,
) -> ListResponse[EventOut]:
    query = (
        select(Event)
        .where(visible_company_ids(principal, Event.company_id))
        .order_by(Event.id)
        .limit(page.limit + 1)
    )
    if page.starting_after:
        query = query.where(Event.id > page.starting_after)
    if object_id:
        query = query.where(Event.object_id == object_id)
    if type:
        query = query.where(Event.type == type)
    rows = list(session.execute(query).scalars())
    return ListResponse(data=[_out(e) for e in rows[: page.limit]], has_more=len(rows) > page.limit)


@router.get(
    "/v1/events/{event_id}", response_model=EventOut, responses=problem_responses(404), summary="An event"
)
def get_event(
    event_id: Annotated[str, Path(pattern=id_pattern("evt"))], session: SessionDep, principal: PrincipalDep
) -> EventOut:
    event = session.execute(
        select(Event).where(Event.id == event_id, visible_company_ids(principal, Event.company_id))
    ).scalar_one_or_none()
    if event is None:
        raise NotFound(f"No such event: {event_id}")
    return _out(event)
