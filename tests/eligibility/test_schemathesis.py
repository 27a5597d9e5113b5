"""The eligibility routes against their own OpenAPI spec: no server error, no response
that violates the spec, whatever the input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session
from stdnum import luhn

from escompte.api.app import create_app
from escompte.clock import FrozenClock
from escompte.db import make_engine
from escompte.models import PrincipalKind
from escompte.settings import Settings
from tests import factories as f
from tests.eligibility import builders as b
from tests.schemathesis_helpers import auth_headers

schemathesis.openapi.format(
    "fr-siren",
    st.integers(0, 99_999_999).map(lambda n: f"{n:08d}").map(lambda s: s + luhn.calc_check_digit(s)),
)

_SETTINGS = Settings(
    database_url="postgresql+psycopg://unused@localhost/unused",
    rate_limit_per_second=100_000,
    rate_limit_burst=100_000,
)
APP = create_app(_SETTINGS, engine=make_engine(_SETTINGS.database_url or ""), configure_logs=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex="eligib")
HEADERS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _bind_app(engine: Engine, connection: Connection, session: Session, clock: FrozenClock) -> Iterator[None]:
    APP.state.engine = engine
    APP.state.clock = clock
    APP.state.session_factory = lambda: Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    seller = b.healthy_seller(session, clock)
    f.invoice(session, clock, company_id=seller.company.id, debtor_id=seller.debtor.id)
    HEADERS["Authorization"] = "Bearer " + f.key(session, clock, kind=PrincipalKind.ADMIN)
    session.commit()
    yield


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_eligibility_routes_conform_to_their_spec(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=auth_headers(case, HEADERS), excluded_checks=[positive_data_acceptance])
