"""`telbill switch register | list | push` as an operator runs them."""

from __future__ import annotations

import json
import uuid

from typer.testing import CliRunner

from telbill.adapters.db.engine import Database
from telbill.cli.main import app
from telbill.services import accounts
from telbill.services.clock import SystemClock

runner = CliRunner()


def _provider(url: str) -> int:
    db = Database(url)
    created = accounts.create_account(
        db, kind="provider", name="acme", currency="USD", idempotency_key=uuid.uuid4().hex,
        clock=SystemClock(),
    )  # fmt: skip
    db.dispose()
    return created.id


def test_an_operator_registers_a_kamailio_lists_it_and_pushes_nothing_pending(
    db_url: str,
) -> None:
    provider = _provider(db_url)
    rpc = "http://127.0.0.1:5071/RPC"
    base = ["--database", db_url]
    added = runner.invoke(
        app, ["switch", "register", "--account", str(provider), "--rpc-url", rpc, *base]
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["switch", "list", "--json", *base])
    assert listed.exit_code == 0, listed.output
    (switch,) = json.loads(listed.stdout)
    assert (switch["account_id"], switch["rpc_url"], switch["kind"]) == (provider, rpc, "kamailio")
    pushed = runner.invoke(app, ["switch", "push", *base], terminal_width=200)
    assert pushed.exit_code == 0 and "0 disconnects pushed" in pushed.stdout


def test_a_switch_without_an_http_rpc_url_or_account_is_refused_with_one_error_line(
    db_url: str,
) -> None:
    provider = _provider(db_url)
    base = ["--database", db_url]
    for account, url in ((provider, "127.0.0.1:5071"), (provider + 999, "http://10.0.0.7/RPC")):
        done = runner.invoke(
            app, ["switch", "register", "--account", str(account), "--rpc-url", url, *base]
        )
        assert done.exit_code == 1, done.output
        assert done.output.startswith("error:")
    listed = runner.invoke(app, ["switch", "list", "--json", *base])
    assert json.loads(listed.stdout) == []
