"""Property-based API testing against the app's own OpenAPI spec: no server error and no
response that violates the spec, whatever the input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance
from schwifty import IBAN
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session
from stdnum import luhn
from stdnum.fr import siren as std_siren

from escompte.api.app import create_app
from escompte.clock import FrozenClock
from escompte.db import make_engine
from escompte.financing.stripe_fake import FakeStripe
from escompte.models import PrincipalKind
from escompte.settings import Settings
from tests import factories as f
from tests.schemathesis_helpers import auth_headers

_SIREN = st.integers(0, 99_999_999).map(lambda n: f"{n:08d}").map(lambda s: s + luhn.calc_check_digit(s))
_SIRET = (
    st.tuples(_SIREN, st.integers(1, 9999))
    .map(lambda t: f"{t[0]}{t[1]:04d}")
    .map(lambda s: s + luhn.calc_check_digit(s))
)
_IBAN = st.tuples(st.integers(10000, 99999), st.integers(0, 10**11 - 1)).map(
    lambda t: str(IBAN.generate("FR", bank_code=f"{t[0]}00001", account_code=f"{t[1]:011d}").compact)
)
# Checksummed identifiers cannot be expressed by a JSON Schema pattern: the spec names
# their format and the suite teaches Schemathesis to generate valid ones.
schemathesis.openapi.format("fr-siren", _SIREN)
schemathesis.openapi.format("fr-siret", _SIRET)
schemathesis.openapi.format("iban", _IBAN)
schemathesis.openapi.format("bic", st.sampled_from(["BNPAFRPP", "SOGEFRPP", "CRLYFRPPXXX"]))
schemathesis.openapi.format("eu-vat", _SIREN.map(lambda s: "FR" + std_siren.to_tva(s)))

# Payments answer for real: the real SDK against the local fake Stripe.
FAKE_STRIPE = FakeStripe(api_key="sk_test_schemathesis").start()
_SETTINGS = Settings(
    database_url="postgresql+psycopg://unused@localhost/unused",
    rate_limit_per_second=100_000,
    rate_limit_burst=100_000,
    stripe_api_key="sk_test_schemathesis",
    stripe_api_base=FAKE_STRIPE.base_url,
    stripe_webhook_secret="whsec_test_schemathesis",
    platform_iban="FR7630006000011234567890189",
)
# The app is built once (Schemathesis reads its spec at import); each test points its
# state at that test's rolled-back connection.
APP = create_app(_SETTINGS, engine=make_engine(_SETTINGS.database_url or ""), configure_logs=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
HEADERS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _bind_app(engine: Engine, connection: Connection, session: Session, clock: FrozenClock) -> Iterator[None]:
    APP.state.engine = engine
    APP.state.clock = clock
    APP.state.session_factory = lambda: Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    company = f.company(session, clock)
    f.invoice(
        session, clock, company_id=company.id, debtor_id=f.debtor(session, clock, company_id=company.id).id
    )
    HEADERS["Authorization"] = "Bearer " + f.key(session, clock, kind=PrincipalKind.ADMIN)
    session.commit()
    yield


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_spec(case: schemathesis.Case) -> None:
    # positive_data_acceptance is off: schema-valid bodies may still break rules no JSON
    # Schema states (a SIRET of another SIREN, a due date before the issue date) → 422.
    case.call_and_validate(headers=auth_headers(case, HEADERS), excluded_checks=[positive_data_acceptance])
