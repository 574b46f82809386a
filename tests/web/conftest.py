"""Fixtures of the dashboard tests: one seeded business per module and database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_world import WebWorld, build_web_world, drop_pg_schema, new_pg_schema

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
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'web.db'}"
    else:
        schema, url = new_pg_schema()
    world = build_web_world(url, tmp)
    try:
        yield world
    finally:
        world.db.dispose()
        if schema:
            drop_pg_schema(schema)


@pytest.fixture
def client(web_world: WebWorld) -> Iterator[TestClient]:
    app = create_app(web_world.url, clock=web_world.clock)
    with TestClient(app) as test_client:
        yield test_client
    app.state.db.dispose()


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path
