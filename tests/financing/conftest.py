"""Financing runs for real: our API served by uvicorn on 127.0.0.1, the real ``stripe``
SDK talking HTTP to the local fake Stripe, which posts signed webhooks back to the API;
the database commits (every table emptied after each test)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from escompte.clock import FrozenClock
from escompte.db import make_session_factory
from escompte.financing.stripe_fake import FakeStripe
from escompte.models import PrincipalKind
from escompte.settings import Settings
from tests import factories as f
from tests.api.conftest import world  # noqa: F401
from tests.eligibility import builders as b
from tests.live import Server

WEBHOOK_SECRET = "whsec_test_escompte"
API_KEY = "sk_test_escompte"
IBAN = "FR1420041010050500013M02606"
PLATFORM_IBAN = "FR7630006000011234567890189"


@pytest.fixture(scope="session")
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        yield fake


@pytest.fixture
def stripe_fake(fake_stripe: FakeStripe) -> FakeStripe:
    fake_stripe.reset()
    fake_stripe.set_webhook(None, WEBHOOK_SECRET)
    return fake_stripe


@pytest.fixture
def pay_settings(db_url: str, stripe_fake: FakeStripe) -> Settings:
    return Settings(
        database_url=db_url,
        rate_limit_per_second=100_000,
        rate_limit_burst=100_000,
        stripe_api_key=API_KEY,
        stripe_api_base=stripe_fake.base_url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_timeout_seconds=2.0,
        platform_name="Escompte SAS",
        platform_iban=PLATFORM_IBAN,
        platform_bic="AGRIFRPP",
    )


@dataclass
class Env:
    clock: FrozenClock
    factory: sessionmaker[Session]
    fake: FakeStripe
    server: Server
    http: httpx.Client
    settings: Settings

    def session(self) -> Session:
        return self.factory()


@pytest.fixture
def env(
    committed_engine: Engine, pay_settings: Settings, clock: FrozenClock, stripe_fake: FakeStripe
) -> Iterator[Env]:
    server = Server(pay_settings, committed_engine, clock).start()
    stripe_fake.set_webhook(server.url + "/v1/webhooks/stripe", WEBHOOK_SECRET)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield Env(clock, make_session_factory(committed_engine), stripe_fake, server, http, pay_settings)
    server.stop()


@dataclass
class Seller:
    company_id: str
    debtor_id: str
    invoice_id: str
    key: str
    admin_key: str

    @property
    def headers(self) -> dict[str, str]:
        return f.auth(self.key)


def seller(
    env: Env,
    *,
    amount_cents: int = 1_200_000,
    days: int = 45,
    invoices: int = 1,
    partner_id: str | None = None,
) -> Seller:
    with env.session() as s, s.begin():
        sel = b.healthy_seller(s, env.clock, partner_id=partner_id)
        inv = [
            f.invoice(
                s,
                env.clock,
                company_id=sel.company.id,
                debtor_id=sel.debtor.id,
                amount_cents=amount_cents,
                days=days,
            )
            for _ in range(invoices)
        ]
        key = f.key(s, env.clock, kind=PrincipalKind.COMPANY, company_id=sel.company.id)
        admin = f.key(s, env.clock, kind=PrincipalKind.ADMIN)
        return Seller(sel.company.id, sel.debtor.id, inv[0].id, key, admin)


def set_up_payments(env: Env, who: Seller) -> dict[str, Any]:
    r = env.http.post(
        f"/v1/companies/{who.company_id}/payment-profile",
        headers=who.headers,
        json={"iban": IBAN, "mandate": {"ip_address": "203.0.113.7", "user_agent": "Mozilla/5.0"}},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def quote(
    env: Env, who: Seller, invoice_id: str | None = None, days: int = 30, **extra: Any
) -> dict[str, Any]:
    r = env.http.post(
        "/v1/quotes",
        headers=who.headers,
        json={"invoice": invoice_id or who.invoice_id, "duration_days": days, **extra},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def finance(env: Env, who: Seller, days: int = 30) -> dict[str, Any]:
    q = quote(env, who, days=days)
    r = env.http.post("/v1/advances", headers=who.headers, json={"quote": q["id"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


def advance(env: Env, who: Seller, advance_id: str) -> dict[str, Any]:
    r = env.http.get(f"/v1/advances/{advance_id}", headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def days(env: Env, n: int) -> None:
    env.clock.advance(timedelta(days=n))


class SmtpSink:
    """A real SMTP server on 127.0.0.1 keeping what it receives."""

    def __init__(self) -> None:
        from email import message_from_bytes
        from email.message import Message

        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd cannot start on port 0
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()
