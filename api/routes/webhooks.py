"""Payment rail in: Stripe's webhooks, signature-verified, each event applied once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader

from escompte.api.deps import ClockDep, SessionDep
from escompte.api.problems import problem_responses
from escompte.api.routing import EscompteRoute
from escompte.financing import rails, webhooks
from escompte.financing.exceptions import PaymentsUnavailable

router = APIRouter(tags=["webhooks"], route_class=EscompteRoute)

stripe_signature_header = APIKeyHeader(
    name="Stripe-Signature",
    scheme_name="StripeSignature",
    auto_error=False,
    description="Stripe's HMAC-SHA256 signature of the raw body with the endpoint's secret "
    "(ESCOMPTE_STRIPE_WEBHOOK_SECRET), verified by the stripe SDK.",
)


@router.post(
    "/v1/webhooks/stripe",
    responses=problem_responses(400, 503),
    summary="Stripe events (signature verified; duplicates and unknown objects change nothing)",
    description="Answers 200 with what was done (`handled: …`, `ignored: …`, `duplicate: …`); a bad "
    "or missing signature is a 400. Events are applied by re-reading the object from Stripe, "
    "so order does not matter.",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}
    },
)
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    stripe_signature: Annotated[str | None, Depends(stripe_signature_header)] = None,
) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    payload = await request.body()
    settings = request.app.state.settings
    event = webhooks.verify(payload, stripe_signature, settings.stripe_webhook_secret)
    try:
        rail = rails.from_settings(settings)
    except rails.RailNotConfigured as exc:
        raise PaymentsUnavailable(exc.message) from None
    try:
        first, outcome = await run_in_threadpool(webhooks.receive, session, clock, rail, event)
    except rails.RailUnavailable as exc:
        # re-reading the object from Stripe failed: nothing is kept, Stripe sends it again
        raise PaymentsUnavailable(f"Stripe did not answer while applying the event ({exc.code}).") from None
    return {"received": True, "event": event.get("id"), "duplicate": not first, "outcome": outcome}
