"""Tariffs and charging plans per provider through the CLI (`--provider ID`), on SQLite and
PostgreSQL: a provider's import never touches another provider's tariff of the same name,
and no command with `--provider` lists, shows, quotes or changes another provider's objects."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telbill.adapters.db.engine import Database
from telbill.cli.main import app
from telbill.services import accounts, plans
from telbill.services.clock import ManualClock

A_DECK = "prefix,destination,rate,increment\n44,United Kingdom,0.06,60/60\n"
B_DECK = "prefix,destination,rate,increment\n44,United Kingdom,9.99,60/60\n"
UK = "+447700900123"


@pytest.fixture
def world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Providers A and B, an organisation under A; decks written to files."""
    monkeypatch.setenv("TELBILL_DATABASE_URL", db_url)
    db = Database(db_url)
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    ids: dict[str, int] = {}
    try:
        for name, kind, parent in (("a", "provider", None), ("b", "provider", None),
                                   ("aorg", "organisation", "a")):  # fmt: skip
            ids[name] = accounts.create_account(
                db, kind=kind, name=name, parent_id=ids.get(parent or ""), clock=clock,
                idempotency_key=name, **({"currency": "USD"} if parent is None else {}),
            ).id  # fmt: skip
    finally:
        db.dispose()
    (tmp_path / "a.csv").write_text(A_DECK)
    (tmp_path / "b.csv").write_text(B_DECK)
    return ids


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def imported(path: Path, name: str, provider: int, *extra: str) -> None:
    code, _, err = run("tariff", "import", path, "--name", name, "--provider", provider, *extra)
    assert code == 0, err


def quote_cost(tariff: str, provider: int | None) -> tuple[int, str]:
    scope = () if provider is None else ("--provider", provider)
    code, out, err = run("quote", "--tariff", tariff, "--to", UK, "--duration", 60, "--json",
                         *scope)  # fmt: skip
    return code, json.loads(out)["cost"] if code == 0 else err


def test_a_providers_import_never_changes_another_providers_tariff_of_the_same_name(
    world, tmp_path
):
    imported(tmp_path / "a.csv", "retail", world["a"])
    imported(tmp_path / "b.csv", "retail", world["b"])
    assert quote_cost("retail", world["a"]) == (0, "0.060000")
    assert quote_cost("retail", world["b"]) == (0, "9.990000")
    for provider in (world["a"], world["b"]):
        code, out, _ = run("tariff", "versions", "retail", "--provider", provider, "--json")
        assert code == 0 and [v["version"] for v in json.loads(out)] == [1]
    code, out, _ = run("tariff", "list", "--json")  # the operator's own catalogue: empty
    assert code == 0 and json.loads(out) == []


def test_with_provider_no_command_reads_another_providers_tariffs(world, tmp_path):
    imported(tmp_path / "a.csv", "a-only", world["a"])
    imported(tmp_path / "a.csv", "a-cost", world["a"], "--cost")
    b = world["b"]
    for name in ("a-only", "a-cost"):
        for command in (("versions", name), ("show", name), ("diff", name)):
            code, out, err = run("tariff", *command, "--provider", b)
            assert code == 1 and err.startswith("error: ") and "United Kingdom" not in out
        code, message = quote_cost(name, b)
        assert code == 1 and "no tariff" in message
    code, out, _ = run("tariff", "list", "--provider", b, "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run("tariff", "list", "--provider", world["a"], "--json")
    assert sorted((t["name"], t["purpose"]) for t in json.loads(out)) == [
        ("a-cost", "cost"), ("a-only", "retail")
    ]  # fmt: skip


def test_with_provider_no_plan_command_uses_or_changes_another_providers_catalogue(
    world, tmp_path
):
    imported(tmp_path / "a.csv", "retail", world["a"])
    code, _, err = run("plan", "create", "standard", "--tariff", "retail", "--provider", world["a"])
    assert code == 0, err
    code, _, err = run("plan", "assign", "--account", world["aorg"], "--plan", "standard",
                       "--provider", world["a"])  # fmt: skip
    assert code == 0, err
    b = world["b"]
    refused = [
        ("plan", "create", "mine", "--tariff", "retail", "--provider", b),  # A's tariff
        ("plan", "assign", "--account", world["aorg"], "--plan", "standard", "--provider", b),
        ("plan", "cost-tariff", "standard", "--clear", "--provider", b),
        ("tariff", "list", "--provider", world["aorg"]),  # not a provider
    ]
    for args in refused:
        code, _, err = run(*args)
        assert code == 1 and err.startswith("error: "), (args, err)
    code, out, _ = run("plan", "list", "--provider", b)
    assert code == 0 and json.loads(out) == []
    code, out, _ = run("plan", "list", "--provider", world["a"])
    assert code == 0 and [(p["name"], p["shared"]) for p in json.loads(out)] == [
        ("standard", False)
    ]
    # A's customer is still priced with A's tariff.
    db = Database(os.environ["TELBILL_DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            record = plans.plan_for(conn, world["aorg"])
        assert (record.name, record.owner_id, record.tariff_ref) == (
            "standard", world["a"], (world["a"], "retail")
        )  # fmt: skip
    finally:
        db.dispose()


def test_offline_rating_with_provider_uses_only_that_providers_tariff(world, tmp_path):
    imported(tmp_path / "a.csv", "retail", world["a"])
    imported(tmp_path / "b.csv", "retail", world["b"])
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "id,account,user,direction,from,to,start,answer,end,service,segments\n"
        f"c1,aorg,,outbound,+15550001,{UK},2026-03-01T09:00:00+00:00,"
        "2026-03-01T09:00:01+00:00,2026-03-01T09:01:01+00:00,voice,\n"
    )
    for provider, cost in ((world["a"], "0.06"), (world["b"], "9.99")):
        out = tmp_path / f"rated-{provider}.csv"
        code, _, err = run("rate", cdrs, "--tariff", "retail", "--out", out, "--provider", provider)
        assert code == 0, err
        assert f"total {cost}" in err, err
    code, _, err = run("rate", cdrs, "--tariff", "retail", "--out", tmp_path / "op.csv")
    assert code == 1 and "no tariff" in err  # the operator's catalogue has no "retail"
