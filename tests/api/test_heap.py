"""A served API process moves the heap it built at start-up out of the cyclic garbage
collector's reach (ADR-019): full collections then walk only what requests left."""

from __future__ import annotations

import gc

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from escompte.api import app as app_module
from escompte.api.app import create_app
from escompte.settings import Settings


def test_a_served_app_freezes_its_start_up_heap_while_it_serves(settings: Settings, engine: Engine) -> None:
    app = create_app(settings, engine=engine, configure_logs=False)
    app.state.freeze_heap = True
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        # the modules, models, routes and schemas: far more than any request leaves
        assert gc.get_freeze_count() > 50_000
        assert client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() == 0  # handed back at shutdown


def test_an_app_from_create_app_leaves_the_collector_alone(settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(settings, engine=engine, configure_logs=False)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0


def test_escompte_serve_runs_the_app_that_freezes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from escompte import cli

    served: list[tuple[str, bool]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw["factory"])))
    cli._serve(settings, "127.0.0.1", 0, 1)
    module, name = served[0][0].split(":")
    assert served[0][1] is True
    monkeypatch.setattr(app_module, "create_app", FastAPI)
    assert getattr(__import__(module, fromlist=[name]), name)().state.freeze_heap is True
