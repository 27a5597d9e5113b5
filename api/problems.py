"""RFC 9457 problem details: every error the API returns has this shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemFieldError(BaseModel):
    field: str = Field(description="Dotted path of the failing field, e.g. amount.currency.")
    message: str
    code: str
    line: int | None = Field(default=None, description="Line of an uploaded file.")
    path: str | None = Field(default=None, description="XML path / JSON pointer in an uploaded file.")


class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI identifying the kind of problem.")
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ProblemFieldError] = Field(default_factory=list)


def problem_type(code: str) -> str:
    return f"urn:escompte:problem:{code}"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    request_id: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
        "errors": errors or [],
    }
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_DESCRIPTIONS = {
    400: "The request could not be read.",
    401: "Missing, unknown or revoked API key.",
    402: "The payment provider refused (its code is in `provider_code`).",
    403: "The key may not do this.",
    404: "No such object, or not visible to this key.",
    409: "Conflicts with the current state (duplicate, illegal state transition).",
    413: "The request body is larger than the limit.",
    422: "Invalid input; `errors[]` names each failing field.",
    429: "Too many requests; retry after the delay in Retry-After.",
    500: "Unexpected error (logged with the request id).",
    503: (
        "Not ready or busy: the database or the payment provider does not answer, payments are not "
        "configured, every database connection is busy, or another operation holds the same data "
        "(retry after Retry-After)."
    ),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {
            "description": _DESCRIPTIONS[s],
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for s in statuses
    }
