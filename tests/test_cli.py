"""The command line, run as a real process against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from escompte.access.keys import hash_key
from escompte.models import ApiKey, Company

BIN = Path(sys.executable).parent / "escompte"


def _run(db_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "ESCOMPTE_DATABASE_URL": db_url,
        "ESCOMPTE_LOG_FORMAT": "console",
        **(env or {}),
    }
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_keys_create_prints_only_the_key(db_url: str, committed_engine: Engine) -> None:
    r = _run(db_url, "keys", "create", "--kind", "admin")
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("esk_test_") and "\n" not in secret
    with Session(committed_engine) as s:
        key = s.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).scalar_one()
        assert key.kind == "admin"
    revoked = _run(db_url, "keys", "revoke", key.id)
    assert revoked.returncode == 0, revoked.stderr
    with Session(committed_engine) as s:
        assert s.get(ApiKey, key.id).revoked_at is not None  # type: ignore[union-attr]


def test_keys_create_refuses_bad_input_readably(db_url: str, committed_engine: Engine) -> None:
    r = _run(db_url, "keys", "create", "--kind", "root")
    assert r.returncode == 2 and "--kind must be" in r.stderr and r.stdout == ""
    r = _run(db_url, "keys", "create", "--kind", "company", "--company", "cmp_nope")
    assert r.returncode == 2 and "No such company" in r.stderr
    r = _run(db_url, "keys", "create", "--kind", "company")
    assert r.returncode == 2 and "needs a company" in r.stderr


def test_wrong_setting_is_named_at_start(db_url: str) -> None:
    r = _run(db_url, "keys", "create", "--kind", "admin", env={"ESCOMPTE_DATABASE_URL": "mysql://x"})
    assert r.returncode == 2
    assert "ESCOMPTE_DATABASE_URL" in r.stderr


def test_demo_seeds_once_and_prints_keys(db_url: str, committed_engine: Engine, tmp_path: Path) -> None:
    r = _run(db_url, "demo", "--no-serve", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "http://127.0.0.1:8000/docs" in r.stdout
    assert "esk_test_" in r.stdout
    with Session(committed_engine) as s:
        companies = s.execute(select(Company)).scalars().all()
    assert len(companies) == 3
    # the fake Stripe's objects, which the seeded rows name, are kept for the next run
    [state] = tmp_path.glob("demo-stripe-*.pickle")
    again = _run(db_url, "demo", "--no-serve", "--data-dir", str(tmp_path))
    assert again.returncode == 0
    assert "starts empty" not in again.stderr
    with Session(committed_engine) as s:
        assert len(s.execute(select(Company)).scalars().all()) == 3
    state.unlink()
    lost = _run(db_url, "demo", "--no-serve", "--data-dir", str(tmp_path))
    assert lost.returncode == 0 and "the fake Stripe starts empty" in lost.stderr


def test_openapi_command_writes_the_spec(tmp_path: Path, db_url: str) -> None:
    out = tmp_path / "spec.json"
    r = _run(db_url, "openapi", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["info"]["title"] == "Escompte API"


def test_keys_list_and_mode(db_url: str, committed_engine: Engine) -> None:
    live = _run(db_url, "keys", "create", "--kind", "admin", "--mode", "live")
    assert live.returncode == 0 and live.stdout.startswith("esk_live_")
    listed = _run(db_url, "keys", "list")
    assert listed.returncode == 0
    assert live.stdout.strip()[:16] in listed.stdout
    assert live.stdout.strip() not in listed.stdout
    bad = _run(db_url, "keys", "create", "--kind", "admin", "--mode", "prod")
    assert bad.returncode == 2 and "--mode" in bad.stderr


def test_two_workers_run_and_sweep(db_url: str, committed_engine: Engine) -> None:
    """`escompte worker` runs for real; two at once are fine; the purge sweep runs at start."""
    import time
    from datetime import UTC, datetime, timedelta

    from escompte.models import IdempotencyRecord

    with Session(committed_engine) as s, s.begin():
        s.add(
            IdempotencyRecord(
                scope="test:company:x",
                key="expired",
                request_hash="h",
                method="POST",
                path="/v1/x",
                response_status=201,
                response_body=b"{}",
                response_content_type="application/json",
                created_at=datetime.now(UTC) - timedelta(days=3),
            )
        )
    env = {**os.environ, "ESCOMPTE_DATABASE_URL": db_url}
    workers = [
        subprocess.Popen(
            [str(BIN), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        remaining = 1
        while remaining and time.monotonic() < deadline:
            time.sleep(0.3)
            with Session(committed_engine) as s:
                remaining = len(s.execute(select(IdempotencyRecord)).scalars().all())
        assert remaining == 0
        assert all(w.poll() is None for w in workers), "a worker exited"
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(10)
