"""Settings, read from ``ESCOMPTE_*`` environment variables and validated at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """A setting is wrong; the message names it (e.g. ``ESCOMPTE_DATABASE_URL``)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCOMPTE_", extra="ignore")

    # Unset: an embedded PostgreSQL (pgserver) is started in ``data_dir``.
    database_url: str | None = None
    data_dir: Path = Path(".escompte")
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # An API request waiting longer than this for a lock gives up with a 503 (0: waits
    # for ever). Workers and commands are not bound by it.
    db_lock_timeout_ms: int = Field(default=10_000, ge=0, le=600_000)
    # /v1 requests an API process runs at once; the others wait their turn (api/slots.py).
    # Unset: 1 when PostgreSQL runs on this machine (embedded, a local address or a
    # socket), as its work then takes the same cores; 2 when it runs elsewhere.
    api_concurrency: int | None = Field(default=None, ge=1, le=200)
    # Seconds an API process may reuse an authenticated key without reading it again; a
    # change to any key reaches every process at its commit (escompte/access/key_cache.py).
    # 0: read the key on every request.
    api_key_cache_seconds: int = Field(default=60, ge=0, le=3600)

    # Keys created without an explicit mode get this one (esk_test_… / esk_live_…).
    key_mode: Literal["test", "live"] = "test"
    # If set, this exact admin key is registered at start-up (bootstrap for deployments).
    admin_api_key: str | None = None

    # Request bodies (file uploads included) above this are refused with 413 up front.
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024, le=4 * 1024**3)
    idempotency_ttl_hours: int = Field(default=24, ge=24, le=24 * 30)
    rate_limit_per_second: float = Field(default=50.0, gt=0, le=100_000)
    rate_limit_burst: int = Field(default=200, ge=1, le=1_000_000)

    stripe_api_key: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: str | None = None
    stripe_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Stripe caps one SEPA Direct Debit at 10,000 EUR unless it raised the limit
    sepa_debit_cap_cents: int = Field(default=1_000_000, ge=100, le=10**11)
    # the platform's own bank account: supplier (payables) advances leave it by SEPA
    # credit transfer (pain.001 files), the debtors of notified advances pay into it
    platform_name: str = Field(default="Escompte", min_length=1, max_length=70)
    platform_iban: str | None = None
    platform_bic: str | None = None
    smtp_url: str | None = None
    sms_url: str | None = None

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith("postgresql://"):
            value = value.replace("postgresql://", "postgresql+psycopg://", 1)
        if not value.startswith("postgresql+psycopg://"):
            raise ValueError("must be a PostgreSQL URL such as postgresql+psycopg://user@host:5432/dbname")
        return value

    @field_validator("admin_api_key")
    @classmethod
    def _admin_key(cls, value: str | None) -> str | None:
        if value and not (value.startswith("esk_live_") or value.startswith("esk_test_")):
            raise ValueError("must start with esk_live_ or esk_test_")
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters long")
        return value or None

    @field_validator("platform_iban")
    @classmethod
    def _iban(cls, value: str | None) -> str | None:
        if not value:
            return None
        from schwifty import IBAN
        from schwifty.exceptions import SchwiftyException

        try:
            return str(IBAN(value).compact)
        except SchwiftyException as exc:
            raise ValueError(f"not a valid IBAN: {exc}") from None

    @field_validator("stripe_api_base", "smtp_url", "sms_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and "://" not in value:
            raise ValueError("must be a URL with a scheme, e.g. http://127.0.0.1:12111")
        return value


def load_settings() -> Settings:
    """Build the settings; a wrong value raises SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "ESCOMPTE_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError("Invalid setting(s):\n  " + "\n  ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
