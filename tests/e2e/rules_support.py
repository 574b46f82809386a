"""Helpers of the issue-17 billing-rule tests: the CLI driven as a provider would."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner, Result

from telbill.cli.main import app

runner = CliRunner()


def run(db_url: str, *args: str, ok: bool = True) -> Result:
    """`telbill ARGS --database URL`; asserts exit 0 unless `ok` is False."""
    result = runner.invoke(app, [*args, "--database", db_url])
    if ok:
        assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


def run_json(db_url: str, *args: str) -> Any:
    return json.loads(run(db_url, *args, "--json").stdout)


def provider_and_org(db_url: str) -> tuple[str, str]:
    """A fresh database with provider "Acme" (USD, no VAT) and its organisation "Alpha"."""
    run(db_url, "init")
    provider = run_json(
        db_url, "account", "create", "--kind", "provider", "--name", "Acme", "--currency", "USD",
        "--vat-rate", "0",
    )  # fmt: skip
    org = run_json(
        db_url, "account", "create", "--kind", "organisation", "--name", "Alpha",
        "--parent", str(provider["id"]),
    )  # fmt: skip
    return str(provider["id"]), str(org["id"])


def spend(db_url: str, account: str, amount: str) -> None:
    """A debit of `amount` by the operator, then the scheduler's threshold check."""
    run(db_url, "adjust", account, f"-{amount}", "--reason", "usage")
    run(db_url, "notify", "check")


def event_types(db_url: str, account: str) -> list[str]:
    return [n["type"] for n in run_json(db_url, "notify", "list", account)]
