"""`telbill notify ...` and `telbill receipt pdf` used as an operator would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telbill.cli.main import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from notify_support import webhook_receiver  # noqa: E402

runner = CliRunner()


def run(db_url: str, *args: str, ok: bool = True):
    result = runner.invoke(app, [*args, "--database", db_url])
    if ok:
        assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


def run_json(db_url: str, *args: str):
    return json.loads(run(db_url, *args, "--json").stdout)


@pytest.fixture
def org(db_url):
    run(db_url, "init")
    provider = run_json(
        db_url, "account", "create", "--kind", "provider", "--name", "Acme", "--currency", "USD",
        "--vat-rate", "0.2",
    )  # fmt: skip
    org = run_json(
        db_url, "account", "create", "--kind", "organisation", "--name", "Alpha",
        "--parent", str(provider["id"]),
    )  # fmt: skip
    return str(org["id"])


def test_thresholds_are_shown_and_set_from_the_cli(db_url, org):
    shown = run_json(db_url, "notify", "thresholds", org)
    assert (shown["spend_days"], shown["is_default"]) == (2, True)
    changed = run_json(
        db_url, "notify", "thresholds", org, "--level", "3", "--level", "1", "--no-spend"
    )
    assert changed["fixed_levels"] == ["3.000000", "1.000000"]
    assert changed["spend_days"] is None
    bad = run(db_url, "notify", "thresholds", org, "--level", "abc", ok=False)
    assert bad.exit_code == 1 and "invalid_input" in bad.stderr


def test_low_balance_notification_listed_read_and_delivered_to_a_webhook(db_url, org):
    run(db_url, "topup", org, "1.00")
    run(db_url, "adjust", org, "-0.70", "--reason", "usage")
    with webhook_receiver() as receiver:
        hook = run_json(db_url, "notify", "webhook", "add", org, receiver.url)
        assert hook["secret"].startswith("whsec_")
        assert "secret" not in run_json(db_url, "notify", "webhook", "list", org)[0]
        run(db_url, "notify", "check")
        listed = run_json(db_url, "notify", "list", org)
        # The top-up's own receipt notification comes first; then the crossing of 0.50.
        assert [n["type"] for n in listed] == ["topup.receipt", "balance.low"]
        report = run_json(db_url, "notify", "deliver")
        assert report["delivered"] == 1, report
    assert json.loads(receiver.requests[0]["body"])["type"] == "balance.low"
    assert "marked 2" in run(db_url, "notify", "read", org, "--all").stdout
    assert run_json(db_url, "notify", "list", org, "--unread") == []


def test_receipt_pdf_is_written_to_a_file(db_url, org, tmp_path):
    receipt = run_json(db_url, "topup", org, "24.00")
    out = tmp_path / "r.pdf"
    run(db_url, "receipt", "pdf", str(receipt["id"]), "--out", str(out))
    assert out.read_bytes().startswith(b"%PDF")
    missing = run(db_url, "receipt", "pdf", "9999", "--out", str(out), ok=False)
    assert missing.exit_code == 1 and "not_found" in missing.stderr
