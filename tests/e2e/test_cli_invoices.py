"""`telbill invoice ...` used as an operator would."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from telbill.cli.main import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from invoice_support import APRIL, build_world, call, ledger_debits  # noqa: E402

runner = CliRunner()


def invoke(db_url: str, *args: str) -> object:
    return runner.invoke(app, ["invoice", *args, "--database", db_url])


def test_operator_issues_lists_shows_prints_credits_and_collects_invoices(db_url, tmp_path):
    world = build_world(db_url, tmp_path)
    world.post_calls([call("a1", "+447700900001", 1200),
                      call("b1", "+447700900001", 600, org="bravo", user="bob")])  # fmt: skip
    march = (datetime(2026, 3, 1, tzinfo=UTC), APRIL)
    expected = ledger_debits(world.db, world.alpha.id, *march)
    alpha, bravo = str(world.alpha.id), str(world.bravo.id)
    world.db.dispose()

    issued = invoke(db_url, "run", alpha, "--month", "2026-03", "--json")
    assert issued.exit_code == 0, issued.output
    invoice = json.loads(issued.stdout)
    assert Decimal(invoice["total"]) == expected == Decimal("12")
    assert invoice["number"] == 1 and invoice["status"] == "paid"
    table = invoke(db_url, "show", str(invoice["id"]))
    assert table.exit_code == 0 and "United Kingdom (44)" in table.stdout
    assert "status paid" in table.stdout
    listed = invoke(db_url, "list", alpha, "--json")
    assert [i["id"] for i in json.loads(listed.stdout)] == [invoice["id"]]
    out = tmp_path / "inv.pdf"
    printed = invoke(db_url, "pdf", str(invoice["id"]), "--out", str(out))
    assert printed.exit_code == 0 and out.read_bytes().startswith(b"%PDF")

    note = invoke(db_url, "credit-note", str(invoice["id"]), "--line", "dropped call=2.40",
                  "--reason", "network fault")  # fmt: skip
    assert note.exit_code == 0, note.output
    assert "CN-1" in note.stdout and "credited to the wallet" in note.stdout

    refused = invoke(db_url, "pay", str(invoice["id"]), "1.00")
    assert refused.exit_code == 1 and "nothing is owed" in refused.stderr

    owed = json.loads(invoke(db_url, "run", bravo, "--month", "2026-03", "--json").stdout)
    assert owed["status"] == "issued" and Decimal(owed["amount_due"]) == Decimal("6")
    paid = invoke(db_url, "pay", str(owed["id"]), "6.00", "--method", "direct_debit",
                  "--idempotency-key", "dd-1")  # fmt: skip
    assert paid.exit_code == 0 and "is paid" in paid.stdout
    again = invoke(db_url, "pay", str(owed["id"]), "6.00", "--method", "direct_debit",
                   "--idempotency-key", "dd-1")  # fmt: skip
    assert again.exit_code == 0, again.output  # the same payment, not a second one


def test_bad_invoice_input_is_one_readable_line_and_exit_1(db_url, tmp_path):
    world = build_world(db_url, tmp_path)
    world.db.dispose()
    for args in (
        ["run", str(world.alpha.id), "--month", "2026-13"],
        ["show", "424242"],
        ["credit-note", "1", "--line", "no amount", "--reason", "x"],
        ["run"],
    ):
        result = invoke(db_url, *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error:") and "Traceback" not in result.stderr


def test_operator_sets_payment_terms_and_document_emails(db_url, tmp_path):
    world = build_world(db_url, tmp_path)
    world.db.dispose()
    bravo = str(world.bravo.id)
    changed = invoke(db_url, "settings", bravo, "--terms-days", "30", "--email", "ap@bravo.example")
    assert changed.exit_code == 0, changed.output
    assert "payment terms 30 days; documents: ap@bravo.example" in changed.stdout
    shown = json.loads(invoke(db_url, "settings", bravo, "--json").stdout)
    assert (shown["payment_terms_days"], shown["email_documents"]) == (30, True)
    stopped = invoke(db_url, "settings", bravo, "--no-email")
    assert "documents: not emailed" in stopped.stdout
    bad = invoke(db_url, "settings", bravo, "--email", "not-an-address")
    assert bad.exit_code == 1 and bad.stderr.startswith("error:")
