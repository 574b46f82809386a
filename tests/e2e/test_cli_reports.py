"""`telbill report calls|counters` used as an operator would."""

from __future__ import annotations

import csv
import json
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.cli.main import app
from telbill.services.charging import post_cdrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from charging_support import build_world, cdr_line, paid, write_cdrs  # noqa: E402

runner = CliRunner()


def test_report_calls_as_json_and_csv_add_up_to_the_wallet_debit(db_url, tmp_path):
    world = build_world(db_url)
    before = paid(world)
    path = write_cdrs(tmp_path / "c.csv", [
        cdr_line("c1", "+447700900123", 61), cdr_line("c2", "+15551234567", 42),
    ])  # fmt: skip
    post_cdrs(world.db, read_cdr_file(path, "native"), clock=world.clock, source="t")
    debited = before - paid(world)
    world.db.dispose()
    args = ["report", "calls", str(world.org.id), "--month", "2026-03", "--database", db_url]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert Decimal(report["totals"][0]["cost"]) == debited
    out = tmp_path / "calls.csv"
    result = runner.invoke(app, [*args, "--csv", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["number"] for r in rows] == ["+447700900123", "+15551234567"]
    assert sum(Decimal(r["cost"]) for r in rows) == debited
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "total USD: 2 calls" in table.stdout
    counters = runner.invoke(app, ["report", "counters", str(world.org.id), "--json",
                                   "--database", db_url])  # fmt: skip
    assert counters.exit_code == 0, counters.output


def test_report_of_an_unknown_account_is_one_readable_error(db_url):
    world = build_world(db_url)
    world.db.dispose()
    result = runner.invoke(app, ["report", "calls", "999999", "--month", "2026-03",
                                 "--database", db_url])  # fmt: skip
    assert result.exit_code == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_report_counters_by_campaign_as_table_json_and_csv_and_one_campaign(db_url, tmp_path):
    from telbill.services import campaigns

    world = build_world(db_url)
    dialer = campaigns.start_campaign(world.db, world.org.id, "dialer", clock=world.clock)
    at = world.clock.now()
    rows = "".join(
        f"{cdr},alpha,alice,+15551234567,{at.isoformat()},{at.isoformat()},"
        f"{(at + timedelta(seconds=seconds)).isoformat()},{campaign}\n"
        for cdr, seconds, campaign in (("d1", 60, "dialer"), ("d2", 30, "dialer"), ("x", 15, ""))
    )
    path = tmp_path / "c.csv"
    path.write_text("id,account,user,to,start,answer,end,campaign\n" + rows, encoding="utf-8")
    post_cdrs(world.db, read_cdr_file(path, "native"), clock=world.clock, source="t")
    world.db.dispose()
    month = at.strftime("%Y-%m")
    args = ["report", "counters", str(world.org.id), "--by-campaign", "--month", month,
            "--database", db_url]  # fmt: skip
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)["items"]
    assert [(i["campaign_id"], i["calls"], i["voice_s"]) for i in items] == [
        (dialer.id, 2, 90), (None, 1, 15),
    ]  # fmt: skip
    out = tmp_path / "by-campaign.csv"
    assert runner.invoke(app, [*args, "--csv", str(out)]).exit_code == 0
    with out.open(encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["name"], r["calls"], r["minutes"]) for r in table] == [
        ("dialer", "2", "1.50"), ("(no campaign)", "1", "0.25"),
    ]  # fmt: skip
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0 and "dialer" in shown.stdout and "1.50" in shown.stdout
    own = runner.invoke(app, ["report", "campaign", str(dialer.id), "--month", month, "--json",
                              "--database", db_url])  # fmt: skip
    assert own.exit_code == 0, own.output
    assert (json.loads(own.stdout)["calls"], json.loads(own.stdout)["voice_s"]) == (2, 90)
    missing = runner.invoke(app, ["report", "campaign", "999999", "--database", db_url])
    assert missing.exit_code == 1 and "error:" in missing.stderr
