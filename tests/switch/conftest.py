"""A real switch for the tests: SIPp -> Kamailio (telbill.cfg) -> `telbill serve`, once per
database (SQLite, PostgreSQL) per test module (the world: switch_world.py).

Kamailio and SIPp come from Debian (`make test` installs them). Without them the tests skip;
with CI=true they fail.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import db_templates

sys.path.insert(0, str(Path(__file__).resolve().parent))
from switch_stack import SwitchStack  # noqa: E402
from switch_world import Switch, build_catalogue, require_switch_tools  # noqa: E402


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def switch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Switch]:
    """telbill + Kamailio + a SIPp callee on a database of their own (per module and DB)."""
    require_switch_tools()
    run_dir = tmp_path_factory.mktemp(f"switch-{request.param}")
    name = None
    if request.param == "sqlite":
        url = db_templates.sqlite_database(run_dir / "telbill.db")
    else:
        db_templates.require_postgres()
        name, url = db_templates.new_pg_database()
    catalogue = build_catalogue(url)
    stack = SwitchStack(run_dir, url, catalogue.provider_id)
    try:
        stack.start()
        yield Switch(stack, catalogue)
    finally:
        left = stack.stop()
        catalogue.db.dispose()
        if name is not None:
            db_templates.drop_pg_database(name)
    assert not left, f"processes still alive after stop: {left}"
