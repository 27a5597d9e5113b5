import json
from pathlib import Path

from fastapi.testclient import TestClient

from escompte.cli import render_openapi

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_committed_spec_is_what_the_app_serves(client: TestClient) -> None:
    served = client.get("/openapi.json").json()
    committed = json.loads(SPEC.read_text())
    assert served == committed, "openapi/openapi.json is stale: run `make openapi` and commit it"


def test_render_is_stable() -> None:
    assert render_openapi() == SPEC.read_text()


def test_every_v1_operation_documents_problems_and_security() -> None:
    spec = json.loads(SPEC.read_text())
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in ops.items():
            assert {"401", "422", "500"} <= op["responses"].keys(), (method, path)
            assert op.get("security"), (method, path)
            assert "application/problem+json" in op["responses"]["401"]["content"]
            if method == "post":
                names = [p["name"] for p in op.get("parameters", [])]
                assert "Idempotency-Key" in names, path
