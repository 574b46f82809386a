"""`telbill plan cost-tariff` and `telbill report margin` used as an operator would."""

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
from charging_support import START, add_tariff, build_world, cdr_line, write_cdrs  # noqa: E402
from test_charging_margin import carrier_rows  # noqa: E402

runner = CliRunner()


def test_margin_report_after_giving_the_plan_a_cost_tariff(db_url, tmp_path):
    world = build_world(db_url)
    add_tariff(world.db, "carrier", carrier_rows(), START - timedelta(days=1))
    base = ["--database", db_url]
    refused = runner.invoke(app, ["plan", "cost-tariff", "retail", *base])
    assert refused.exit_code == 1 and "--tariff" in refused.stderr
    set_it = runner.invoke(app, ["plan", "cost-tariff", "retail", "--tariff", "carrier", *base])
    assert set_it.exit_code == 0, set_it.output
    assert json.loads(set_it.stdout)["plan"]["cost_tariff"] == "carrier"
    created = runner.invoke(app, ["plan", "create", "wholesale", "--tariff", "retail",
                                  "--cost-tariff", "carrier", *base])  # fmt: skip
    assert created.exit_code == 0, created.output
    path = write_cdrs(tmp_path / "c.csv", [
        cdr_line("c1", "+447700900123", 61), cdr_line("c2", "+15551234567", 61),
    ])  # fmt: skip
    post_cdrs(world.db, read_cdr_file(path, "native"), clock=world.clock, source="t")
    world.db.dispose()
    args = ["report", "margin", str(world.provider.id), "--month", "2026-03", *base]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    total = json.loads(result.stdout)["totals"][0]
    # Revenue 1.20 + 0.122; carrier cost 0.80 + 0.055 (US 6/6); margin 0.467 = 35.3 %.
    assert (total["revenue"], total["cost"], total["margin"], total["margin_percent"]) == (
        "1.322000", "0.855000", "0.467000", "35.3",
    )
    assert total["unknown_cost_charges"] == 0
    out = tmp_path / "margin.csv"
    assert runner.invoke(app, [*args, "--csv", str(out)]).exit_code == 0
    with out.open(encoding="utf-8") as handle:
        rows = {r["destination"]: r for r in csv.DictReader(handle)}
    assert Decimal(rows["United Kingdom"]["margin"]) == Decimal("0.40")
    assert Decimal(rows["United States"]["cost"]) == Decimal("0.055")
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "margin 0.467000 (35.3 %)" in table.stdout
