"""The already-charged lookup of CDR posting (`adapters/db/charged.py`): right answers on
both databases, and on PostgreSQL a plan whose cost does not grow with the table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from charging_support import START, World, build_world
from sqlalchemy import String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from telbill.adapters.db import bulk
from telbill.adapters.db.charged import _PG_CHARGED, charged_usage_hashes
from telbill.adapters.db.charging_tables import charges

COLUMNS = (
    "cdr_id", "leg", "revision", "account_id", "payer_id", "service", "direction",
    "amount_micros", "currency", "unit", "billed_units", "package_units", "explanation",
    "usage_hash", "occurred_at", "created_at",
)  # fmt: skip


@pytest.fixture(name="world")
def world_fixture(db_url: str) -> Iterator[World]:
    built = build_world(db_url)
    yield built
    built.db.dispose()


def _store(world: World, account_id: int, cdr_ids: list[str], legs: tuple[str, ...]) -> None:
    with world.db.transaction() as conn:
        at = bulk.timestamp_param(conn)(START)
        rows = [
            (cdr_id, leg, 0, account_id, world.org.id, "voice", "outbound", 1, "USD",
             "s:call", 60, 0, "{}", f"hash-{cdr_id}", at, at)
            for cdr_id in cdr_ids for leg in legs
        ]  # fmt: skip
        bulk.insert_rows(conn, charges, COLUMNS, rows)


def test_lookup_finds_the_wanted_cdrs_of_that_account_only(world: World) -> None:
    _store(world, world.user.id, [f"c{n}" for n in range(1_200)], ("call", "speech"))
    _store(world, world.org.id, ["c5000"], ("call",))
    wanted = ["c0", "c599", "c1199", "c1200", "c5000", "missing"]
    with world.db.engine.connect() as conn:
        found = charged_usage_hashes(conn, world.user.id, wanted)
        assert charged_usage_hashes(conn, world.org.id, []) == {}
    assert found == {"c0": "hash-c0", "c599": "hash-c599", "c1199": "hash-c1199"}


@pytest.mark.postgres
def test_pg_lookup_probes_the_unique_index_by_cdr_id_on_a_table_never_analysed(
    world: World,
) -> None:
    if world.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL plan")
    _store(world, world.user.id, [f"c{n}" for n in range(20_000)], ("call",))
    explain = text(f"EXPLAIN {_PG_CHARGED.text}").bindparams(
        bindparam("cdr_ids", type_=ARRAY(String))
    )
    with world.db.engine.connect() as conn:
        analysed = conn.execute(
            text("SELECT count(*) FROM pg_stat_user_tables WHERE relid = 'charges'::regclass"
                 " AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)")
        ).scalar()  # fmt: skip
        plan = "\n".join(
            line[:200]
            for line in conn.execute(
                explain, {"cdr_ids": [f"c{n}" for n in range(0, 20_000, 4)],
                          "account_id": world.user.id},
            ).scalars()
        )  # fmt: skip
    if analysed:
        pytest.skip("autovacuum analysed charges already: not the case under test")
    assert "uq_charges_cdr_leg" in plan, plan
    index_conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert any("cdr_id" in line for line in index_conditions), plan
    assert "Filter" not in plan, plan
