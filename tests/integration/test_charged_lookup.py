"""The already-charged lookup of CDR posting (`adapters/db/charged.py`): right answers on
both databases, and on PostgreSQL a plan whose cost does not grow with the table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from charging_support import START, World, build_world
from sqlalchemy import BigInteger, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from telbill.adapters.db import bulk
from telbill.adapters.db.charged import (
    _PG_CHARGED,
    _SQLITE_BATCH,
    _sqlite_charged,
    charged_pairs,
    charged_usage_hashes,
)
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
    _store(world, world.org.id, [f"c{n}" for n in range(0, 20_000, 2)], ("call",))
    explain = text(f"EXPLAIN {_PG_CHARGED.text}").bindparams(
        bindparam("account_ids", type_=ARRAY(BigInteger)),
        bindparam("cdr_ids", type_=ARRAY(String)),
    )
    wanted = [
        (account_id, f"c{n}")
        for n in range(0, 20_000, 4)
        for account_id in (world.user.id, world.org.id)
    ]
    with world.db.engine.connect() as conn:
        analysed = conn.execute(
            text("SELECT count(*) FROM pg_stat_user_tables WHERE relid = 'charges'::regclass"
                 " AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)")
        ).scalar()  # fmt: skip
        plan = "\n".join(
            line[:200]
            for line in conn.execute(
                explain, {"account_ids": [a for a, _ in wanted],
                          "cdr_ids": [c for _, c in wanted]},
            ).scalars()
        )  # fmt: skip
    if analysed:
        pytest.skip("autovacuum analysed charges already: not the case under test")
    assert "uq_charges_cdr_leg" in plan, plan
    index_conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert any("account_id" in line and "cdr_id" in line for line in index_conditions), plan
    assert "Filter" not in plan, plan
    assert "Hash" not in plan, plan


def test_one_lookup_for_many_accounts_matches_pairs_only(world: World) -> None:
    _store(world, world.user.id, [f"u{n}" for n in range(600)] + ["both"], ("call", "speech"))
    _store(world, world.org.id, [f"o{n}" for n in range(600)] + ["both"], ("call",))
    user, org = world.user.id, world.org.id
    wanted = [
        (user, "u0"), (user, "u599"), (org, "o1"), (org, "o599"),
        (user, "both"), (org, "both"),
        (user, "o1"), (org, "u0"),  # charged, but to the other account
        (user, "u0"), (org, "o1"),  # duplicates
        (user, "missing"), (org + user + 1_000, "u0"),
    ]  # fmt: skip
    with world.db.engine.connect() as conn:
        found = charged_pairs(conn, wanted)
        assert charged_pairs(conn, []) == {}
        by_account = charged_usage_hashes(conn, org, ["o1", "u0", "both", "o1"])
    assert found == {
        (user, "u0"): "hash-u0", (user, "u599"): "hash-u599",
        (org, "o1"): "hash-o1", (org, "o599"): "hash-o599",
        (user, "both"): "hash-both", (org, "both"): "hash-both",
    }  # fmt: skip
    assert by_account == {"o1": "hash-o1", "both": "hash-both"}


def test_lookup_spanning_several_sqlite_batches(world: World) -> None:
    count = _SQLITE_BATCH + 7
    _store(world, world.user.id, [f"c{n}" for n in range(0, count, 2)], ("call",))
    wanted = [(world.user.id, f"c{n}") for n in range(count)]
    wanted += [(world.org.id, f"c{n}") for n in range(count)]
    with world.db.engine.connect() as conn:
        found = charged_pairs(conn, wanted)
    assert found == {(world.user.id, f"c{n}"): f"hash-c{n}" for n in range(0, count, 2)}


def test_sqlite_lookup_probes_the_unique_index_per_pair(world: World) -> None:
    if world.db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite plan")
    with world.db.engine.connect() as conn:
        plan = [
            row[-1]
            for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {_sqlite_charged(3)}", (1, "a", 2, "b", 1, "c")
            )
        ]
    joined = "\n".join(plan)
    # The unique constraint's index is SQLite's autoindex; no other index of charges
    # starts with (account_id, cdr_id).
    assert any(
        line.startswith("SEARCH charges USING INDEX") and "(account_id=? AND cdr_id=?)" in line
        for line in plan
    ), joined
    assert not any(line.startswith("SCAN charges") for line in plan), joined
