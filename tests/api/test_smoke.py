from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from escompte.clock import FrozenClock
from escompte.models import PrincipalKind
from tests import factories as f


def test_list_companies_with_admin_key(client: TestClient, session: Session, clock: FrozenClock) -> None:
    c = f.company(session, clock)
    secret = f.key(session, clock, kind=PrincipalKind.ADMIN)
    session.commit()
    r = client.get("/v1/companies", headers=f.auth(secret))
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["data"]] == [c.id]
