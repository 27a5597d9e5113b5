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
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from escompte.access.principal import Principal
from escompte.db import driver
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


# Straight through the driver as prepared statements: every idempotent POST runs the
# claim and the completion, and SQLAlchemy's statement machinery cost more than both
# statements' work in PostgreSQL.
_CLAIM = (
    "INSERT INTO idempotency_keys (scope, key, request_hash, method, path, response_status,"
    " response_body, response_content_type, created_at)"
    " VALUES (%s, %s, %s, %s, %s, 0, ''::bytea, '', %s)"
    " ON CONFLICT (scope, key) DO NOTHING RETURNING id"
)
_EXISTING = (
    "SELECT id, request_hash, method, path, response_status, response_body,"
    " response_content_type, created_at FROM idempotency_keys WHERE scope = %s AND key = %s"
)
_COMPLETE = (
    "UPDATE idempotency_keys SET response_status = %s, response_body = %s,"
    " response_content_type = %s WHERE id = %s"
)


@dataclass(frozen=True, slots=True)
class _Existing:
    id: int
    request_hash: str
    method: str
    path: str
    response_status: int
    response_body: bytes
    response_content_type: str
    created_at: datetime


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
    with driver(session).cursor() as cur:
        cur.execute(_CLAIM, (principal.scope, key, fingerprint, method, path, now), prepare=True)
        claimed = cur.fetchone()
        if claimed is not None:
            return int(claimed[0]), None
        cur.execute(_EXISTING, (principal.scope, key), prepare=True)
        found = cur.fetchone()
    invariant(found is not None, "a key that conflicts exists (its row was waited for)")
    assert found is not None  # for the type checker
    existing = _Existing(*found)
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
    content_type = response.headers.get("content-type", "application/json")
    with driver(session).cursor() as cur:
        cur.execute(_COMPLETE, (response.status_code, body, content_type, record_id), prepare=True)


def purge_expired(session: Session, now: datetime, ttl: timedelta, batch: int = 10_000) -> int:
    """Delete keys older than ``ttl`` (bounded batch; the worker repeats)."""
    ids = select(IdempotencyRecord.id).where(IdempotencyRecord.created_at < now - ttl).limit(batch)
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
