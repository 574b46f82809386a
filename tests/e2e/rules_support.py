"""Helpers of the issue-17 billing-rule tests: the CLI driven as a provider would."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from telbill.cli.main import app

runner = CliRunner()


def run(db_url: str, *args: str, ok: bool = True) -> Result:
    """`telbill ARGS --database URL`; asserts exit 0 unless `ok` is False. The tariff
    commands read the database from TELBILL_DATABASE_URL only."""
    database = [] if args[0] == "tariff" else ["--database", db_url]
    env = {"TELBILL_DATABASE_URL": db_url, "COLUMNS": "200"}  # tables unwrapped
    result = runner.invoke(app, [*args, *database], env=env)
    if ok:
        assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


def run_json(db_url: str, *args: str) -> Any:
    return json.loads(run(db_url, *args, "--json").stdout)


def provider_and_org(db_url: str, org_name: str = "Alpha") -> tuple[str, str]:
    """A fresh database with provider "Acme" (USD, no VAT) and its organisation."""
    run(db_url, "init")
    provider = run_json(
        db_url, "account", "create", "--kind", "provider", "--name", "Acme", "--currency", "USD",
        "--vat-rate", "0",
    )  # fmt: skip
    org = run_json(
        db_url, "account", "create", "--kind", "organisation", "--name", org_name,
        "--parent", str(provider["id"]),
    )  # fmt: skip
    return str(provider["id"]), str(org["id"])


def spend(db_url: str, account: str, amount: str) -> None:
    """A debit of `amount` by the operator, then the scheduler's threshold check."""
    run(db_url, "adjust", account, f"-{amount}", "--reason", "usage")
    run(db_url, "notify", "check")


def event_types(db_url: str, account: str) -> list[str]:
    return [n["type"] for n in run_json(db_url, "notify", "list", account)]


RETAIL_DECK = (
    "prefix,destination,service,direction,rate,increment\n"
    "44,United Kingdom,voice,outbound,0.60,60/60\n"
    "1,United States,voice,outbound,0.12,1/1\n"
    "4420,Own SIP trunk (London),voice,outbound,0,1/1\n"
    "1,Inbound US,voice,inbound,0.01,1/1\n"
    "44,Inbound UK,voice,inbound,0.01,1/1\n"
)
CDR_HEADER = "id,account,user,direction,from,to,start,answer,end,service,segments\n"


def retail_world(db_url: str, tmp_path: Path, *, top_up: str | None = "10.00") -> dict[str, str]:
    """As a provider sets up: a deck imported, plan "retail" on organisation "alpha" (user
    "alice"), a 600 s call-time package "calls600" in the catalogue, `top_up` paid in."""
    provider, org = provider_and_org(db_url, org_name="alpha")
    user = run_json(
        db_url, "account", "create", "--kind", "user", "--name", "alice", "--parent", org
    )
    deck = tmp_path / "retail.csv"
    deck.write_text(RETAIL_DECK, encoding="utf-8")
    run(db_url, "tariff", "import", str(deck), "--name", "retail", "--currency", "USD",
        "--effective-from", "2020-01-01T00:00:00Z")  # fmt: skip
    run(db_url, "plan", "create", "retail", "--tariff", "retail")
    run(db_url, "plan", "assign", "--account", org, "--plan", "retail")
    run(db_url, "package", "create", provider, "--code", "calls600", "--unit", "s:call",
        "--amount", "600", "--price", "5.00")  # fmt: skip
    if top_up:
        run(db_url, "topup", org, top_up)
    return {"provider": provider, "org": org, "user": str(user["id"])}


def cdr_row(cdr_id: str, to: str, seconds: int, *, at: datetime | None = None) -> str:
    """A native CDR row of alice (organisation alpha): answered after 1 s, `seconds` long."""
    start = at or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    answer = start + timedelta(seconds=1)
    end = answer + timedelta(seconds=seconds)
    return (
        f"{cdr_id},alpha,alice,outbound,+15550001,{to},{start.isoformat()},"
        f"{answer.isoformat()},{end.isoformat()},voice,\n"
    )


def post_cdrs(db_url: str, tmp_path: Path, *rows: str) -> Any:
    path = tmp_path / f"cdrs-{len(list(tmp_path.iterdir()))}.csv"
    path.write_text(CDR_HEADER + "".join(rows), encoding="utf-8")
    return run_json(db_url, "cdr", "post", str(path), "--quiet")


def units_left(db_url: str, account: str, unit: str) -> Decimal:
    """What `telbill balance` shows available of `unit` (e.g. ``s:call``)."""
    balance = run_json(db_url, "balance", account)
    return sum((Decimal(u["available"]) for u in balance["units"] if u["unit"] == unit), Decimal(0))


def help_text(*args: str) -> str:
    """`telbill ARGS --help`, on a terminal wide enough that no help line wraps."""
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.stdout
