"""Idempotency-Key on POST: the key is recorded in the same transaction as the
operation, with the response to replay.

- Same key, same request (method, path, canonical JSON body) → the first response is
  replayed (status and body) with ``Idempotent-Replayed: true``; nothing runs again.
- Same key, another request → 422 ``idempotency_key_reused``.
- Two concurrent requests with one key: the second waits on the first's uncommitted row
  (unique index), then replays its response — the operation runs once.
- A request that fails (4xx/5xx) rolls back with its key, so a retry runs afresh and
  a failed call leaves no state behind.
Keys are scoped per principal (``Principal.scope``) and kept ``ESCOMPTE_IDEMPOTENCY_TTL_HOURS``
(at least 24 h) before the worker purges them.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from starlette.responses import Response

from escompte.access.principal import Principal
from escompte.errors import (
    FieldError,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    ValidationFailed,
    invariant,
)
from escompte.models import IdempotencyRecord

HEADER = "Idempotency-Key"
# a record committed without its response for this long belongs to a request that died
ABANDONED_AFTER = timedelta(seconds=60)
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY_RE = re.compile(KEY_PATTERN)
_BOUNDARY = re.compile(r"multipart/[\w-]+;.*boundary=(\"?[^\";]+\"?)", re.IGNORECASE)


def check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces.",
            [FieldError(HEADER, "1-255 printable ASCII characters")],
        )
    return key


def request_fingerprint(method: str, path: str, body: bytes, content_type: str = "") -> str:
    """What makes two requests "the same": method, path and the body — JSON compared as
    canonical JSON, multipart with its (random) boundary taken out, anything else as bytes."""
    boundary = _BOUNDARY.search(content_type or "")
    if boundary:
        canonical = body.replace(boundary.group(1).strip('"').encode("latin-1"), b"--boundary--")
    else:
        try:
            canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
        except (ValueError, UnicodeDecodeError):
            canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def begin(
    session: Session,
    principal: Principal,
    key: str,
    method: str,
    path: str,
    body: bytes,
    now: datetime,
    ttl: timedelta,
    content_type: str = "",
) -> tuple[int | None, Response | None]:
    """Claim the key for this request, or return the response to replay.

    Returns (record id to complete, None) for a fresh key, (None, response) for a replay.
    """
    fingerprint = request_fingerprint(method, path, body, content_type)
    values = dict(
        scope=principal.scope,
        key=key,
        request_hash=fingerprint,
        method=method,
        path=path,
        response_status=0,
        response_body=b"",
        response_content_type="",
        created_at=now,
    )
    record_id = session.execute(
        insert(IdempotencyRecord)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyRecord.id)
    ).scalar_one_or_none()
    if record_id is not None:
        return record_id, None
    existing = session.execute(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == principal.scope, IdempotencyRecord.key == key
        )
    ).scalar_one()
    if existing.created_at < now - ttl:
        # Expired but not purged yet: the key is free again.
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == existing.id))
        return begin(session, principal, key, method, path, body, now, ttl, content_type)
    if existing.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"This Idempotency-Key was already used for another request "
            f"({existing.method} {existing.path} with a different body). "
            "Use a new key for a new request.",
            [FieldError(HEADER, "already used with a different request", code="reused")],
        )
    if existing.response_status == 0:
        # Committed without a response: a request that commits part of its work before
        # calling a payment provider (POST /v1/advances) is still running, or died.
        if existing.created_at < now - ABANDONED_AFTER:
            session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == existing.id))
            return begin(session, principal, key, method, path, body, now, ttl, content_type)
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key is still being processed; retry in a few seconds.",
            [FieldError(HEADER, "in progress", code="in_progress")],
        )
    return None, Response(
        content=existing.response_body,
        status_code=existing.response_status,
        media_type=existing.response_content_type,
        headers={"Idempotent-Replayed": "true"},
    )


def complete(session: Session, record_id: int, response: Response) -> None:
    body = getattr(response, "body", None)
    invariant(isinstance(body, bytes), "idempotent responses must have a buffered body")
    session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id)
        .values(
            response_status=response.status_code,
            response_body=body,
            response_content_type=response.headers.get("content-type", "application/json"),
        )
    )


def purge_expired(session: Session, now: datetime, ttl: timedelta, batch: int = 10_000) -> int:
    """Delete keys older than ``ttl`` (bounded batch; the worker repeats)."""
    ids = select(IdempotencyRecord.id).where(IdempotencyRecord.created_at < now - ttl).limit(batch)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
