"""API keys: generated with 256 bits of entropy, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Select, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from escompte.access.key_cache import KeyCache
from escompte.access.principal import Principal, visible_company_ids
from escompte.clock import Clock
from escompte.errors import FieldError, Forbidden, NotFound, Unauthorized, ValidationFailed
from escompte.ids import new_id
from escompte.models import ApiKey, Company, KeyMode, Partner, PrincipalKind

KEY_PREFIXES = {KeyMode.LIVE: "esk_live_", KeyMode.TEST: "esk_test_"}
MAX_KEY_LENGTH = 200
# set in a session's ``info`` by what changes a key: the API clears its key cache at commit
KEYS_CHANGED = "escompte_keys_changed"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def generate_secret(mode: KeyMode) -> str:
    return KEY_PREFIXES[mode] + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str


def check_secret(secret: str | None) -> str:
    """Refuse what cannot be a key (missing, too long, no ``esk_`` prefix) without a lookup."""
    if not secret or len(secret) > MAX_KEY_LENGTH or not secret.startswith("esk_"):
        raise Unauthorized("A valid API key is required: Authorization: Bearer esk_…")
    return secret


def authenticate(session: Session, secret: str | None, cache: KeyCache | None = None) -> Principal:
    """Resolve a bearer secret to its principal; unknown or revoked keys are refused alike.
    With a ``cache``, a key it holds is not read again (escompte/access/key_cache.py)."""
    key_hash = hash_key(check_secret(secret))
    if cache is not None:
        known = cache.get(key_hash)
        if known is not None:
            return known
        generation = cache.generation
    row = session.execute(
        select(ApiKey.id, ApiKey.kind, ApiKey.mode, ApiKey.partner_id, ApiKey.company_id).where(
            ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("This API key is unknown or has been revoked.")
    principal = Principal(
        kind=row.kind,
        key_id=row.id,
        mode=row.mode,
        partner_id=row.partner_id,
        company_id=row.company_id,
    )
    if cache is not None:
        cache.put(key_hash, principal, generation)
    return principal


def create_key(
    session: Session,
    clock: Clock,
    *,
    kind: PrincipalKind,
    mode: KeyMode,
    partner_id: str | None = None,
    company_id: str | None = None,
    description: str | None = None,
    secret: str | None = None,
    actor: Principal | None = None,
) -> CreatedKey:
    """Create a key. ``actor`` None means the operator's command line (trusted).

    Admins create any key; a partner creates keys for the companies it onboarded;
    a company cannot create keys.
    """
    partner_making_company_key = (
        actor is not None and actor.kind is PrincipalKind.PARTNER and kind is PrincipalKind.COMPANY
    )
    if actor is not None and not actor.is_admin and not partner_making_company_key:
        raise Forbidden(
            "Only admins create admin and partner keys; partners create company keys for their own companies."
        )
    if kind is PrincipalKind.ADMIN:
        if partner_id or company_id:
            raise ValidationFailed(
                "An admin key belongs to no partner or company.",
                [FieldError("kind", "admin keys take neither partner nor company")],
            )
    elif kind is PrincipalKind.PARTNER:
        if not partner_id or company_id:
            raise ValidationFailed(
                "A partner key needs a partner (and no company).",
                [FieldError("partner", "required for a partner key")],
            )
        if session.get(Partner, partner_id) is None:
            raise NotFound(f"No such partner: {partner_id}", [FieldError("partner", "not found")])
    else:
        if not company_id:
            raise ValidationFailed(
                "A company key needs a company.",
                [FieldError("company", "required for a company key")],
            )
        query = select(Company).where(Company.id == company_id)
        if actor is not None:
            query = query.where(visible_company_ids(actor, Company.id))
        company = session.execute(query).scalar_one_or_none()
        if company is None:
            raise NotFound(f"No such company: {company_id}", [FieldError("company", "not found")])
        partner_id = None
    if secret is None:
        secret = generate_secret(mode)
    elif not secret.startswith(KEY_PREFIXES[mode]):
        raise ValidationFailed(f"A {mode} key must start with {KEY_PREFIXES[mode]}")
    key = ApiKey(
        id=new_id("key"),
        kind=kind,
        mode=mode,
        key_hash=hash_key(secret),
        display_prefix=secret[:16],
        description=description,
        partner_id=partner_id,
        company_id=company_id,
        created_at=clock.now(),
    )
    session.add(key)
    session.flush()
    return CreatedKey(key=key, secret=secret)


def ensure_key(session: Session, clock: Clock, secret: str, kind: PrincipalKind) -> None:
    """Register a key given by the operator (ESCOMPTE_ADMIN_API_KEY) if it is new."""
    mode = KeyMode.LIVE if secret.startswith(KEY_PREFIXES[KeyMode.LIVE]) else KeyMode.TEST
    # ON CONFLICT: several processes starting together with the same key must all succeed.
    session.execute(
        insert(ApiKey)
        .values(
            id=new_id("key"),
            kind=kind,
            mode=mode,
            key_hash=hash_key(secret),
            display_prefix=secret[:16],
            description="bootstrap key from settings",
            created_at=clock.now(),
        )
        .on_conflict_do_nothing(index_elements=["key_hash"])
    )


def _visible_keys(principal: Principal | None) -> Select[ApiKey]:
    query = select(ApiKey)
    if principal is None or principal.is_admin:
        return query
    if principal.kind is PrincipalKind.COMPANY:
        return query.where(ApiKey.company_id == principal.company_id)
    return query.where(
        (ApiKey.partner_id == principal.partner_id) | visible_company_ids(principal, ApiKey.company_id)  # type: ignore[arg-type]
    )


def get_key(session: Session, principal: Principal | None, key_id: str) -> ApiKey:
    key = session.execute(_visible_keys(principal).where(ApiKey.id == key_id)).scalar_one_or_none()
    if key is None:
        raise NotFound(f"No such API key: {key_id}")
    return key


def list_keys(
    session: Session, principal: Principal, *, limit: int, starting_after: str | None
) -> list[ApiKey]:
    query = _visible_keys(principal)
    if starting_after:
        query = query.where(ApiKey.id < starting_after)
    return list(session.execute(query.order_by(ApiKey.id.desc()).limit(limit)).scalars())


def revoke_key(session: Session, clock: Clock, principal: Principal | None, key_id: str) -> ApiKey:
    """Revoke a key (idempotent: revoking a revoked key keeps its first revocation time)."""
    key = get_key(session, principal, key_id)
    session.execute(
        update(ApiKey).where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None)).values(revoked_at=clock.now())
    )
    session.refresh(key)
    session.info[KEYS_CHANGED] = True  # this process forgets its keys at the commit
    return key


def create_partner(session: Session, clock: Clock, name: str) -> Partner:
    partner = Partner(id=new_id("prt"), name=name, created_at=clock.now())
    session.add(partner)
    session.flush()
    return partner


def get_partner(session: Session, principal: Principal, partner_id: str) -> Partner:
    partner = session.get(Partner, partner_id)
    visible = principal.is_admin or (
        principal.kind is PrincipalKind.PARTNER and principal.partner_id == partner_id
    )
    if partner is None or not visible:
        raise NotFound(f"No such partner: {partner_id}")
    return partner


def list_partners(
    session: Session, principal: Principal, *, limit: int, starting_after: str | None
) -> list[Partner]:
    query = select(Partner)
    if not principal.is_admin:
        query = query.where(Partner.id == (principal.partner_id or ""))
    if starting_after:
        query = query.where(Partner.id < starting_after)
    return list(session.execute(query.order_by(Partner.id.desc()).limit(limit)).scalars())
