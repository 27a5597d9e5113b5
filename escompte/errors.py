"""Domain errors: typed refusals rendered as RFC 9457 problems by the API.

Domain code raises these; it never imports FastAPI. ``invariant`` guards programmer
errors and, unlike ``assert``, survives ``python -O``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class FieldError:
    field: str
    message: str
    code: str = "invalid"
    line: int | None = None  # for errors inside an uploaded file
    path: str | None = None  # XML path or JSON pointer inside an uploaded file


@dataclass
class DomainError(Exception):
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __str__(self) -> str:
        return self.detail


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class InvalidTransition(Conflict):
    code = "invalid_state_transition"
    title = "Invalid state transition"


class ValidationFailed(DomainError):
    status = 422
    code = "validation_error"
    title = "Validation failed"


class IdempotencyKeyReused(DomainError):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused"


class IdempotencyKeyInProgress(Conflict):
    code = "idempotency_key_in_progress"
    title = "Request in progress"


class FileRejected(DomainError):
    """An uploaded file is invalid; ``errors`` says what and where (line or path)."""

    status = 422
    code = "file_rejected"
    title = "File rejected"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class InvariantViolation(RuntimeError):
    pass


def invariant(condition: bool, why: str) -> None:
    if not condition:
        raise InvariantViolation(why)
