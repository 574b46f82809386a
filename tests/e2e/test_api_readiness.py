"""Liveness and readiness (issue 15 finding 7): `/healthz` says the process answers, even with
its database down; `/readyz` says it can serve: database reachable and schema at the newest
revision, a 503 problem otherwise."""

from __future__ import annotations

from fastapi.testclient import TestClient

from telbill.adapters.db.engine import migrate
from telbill.api.app import create_app

# Nothing listens on port 1: the connection is refused at once.
DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"


def test_readiness_is_ok_on_a_reachable_database_at_the_newest_revision(db_url: str):
    with TestClient(create_app(db_url)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_a_dead_database_is_not_ready_but_the_process_is_alive():
    with TestClient(create_app(DEAD_POSTGRES)) as client:
        ready = client.get("/readyz")
        alive = client.get("/healthz")
    assert ready.status_code == 503
    assert ready.headers["content-type"].startswith("application/problem+json")
    problem = ready.json()
    assert problem["code"] == "not_ready" and "not reachable" in problem["detail"]
    assert "postgres@" not in ready.text  # the URL is not shown to whoever asks
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}


def test_an_unmigrated_database_is_not_ready_until_it_is_migrated(empty_db_url: str):
    with TestClient(create_app(empty_db_url)) as client:
        before = client.get("/readyz")
        migrate(empty_db_url)
        after = client.get("/readyz")
    assert before.status_code == 503 and "telbill init" in before.json()["detail"]
    assert after.status_code == 200
