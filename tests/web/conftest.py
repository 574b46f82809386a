"""Fixtures of the dashboard tests: one seeded business per module and database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_world import WebWorld, build_web_world, drop_pg_database, new_pg_database

from db_templates import sqlite_database
from telbill.api.app import create_app


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def web_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebWorld]:
    """The seeded business (see web_world.py), once per test module and database; tests
    that change it measure differences, not absolute values."""
    tmp = tmp_path_factory.mktemp("web")
    name = None
    if request.param == "sqlite":
        url = sqlite_database(tmp / "web.db")
    else:
        name, url = new_pg_database()
    world = build_web_world(url, tmp)
    try:
        yield world
    finally:
        world.db.dispose()
        if name:
            drop_pg_database(name)


@pytest.fixture
def client(web_world: WebWorld) -> Iterator[TestClient]:
    app = create_app(web_world.url, clock=web_world.clock)
    with TestClient(app) as test_client:
        yield test_client
    app.state.db.dispose()


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path
