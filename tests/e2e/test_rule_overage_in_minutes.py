"""Issue 17, rule 6 (voice-bot model): minutes a call uses beyond the package are owed in
minutes, not billed as money, and the next package bought pays them first; buying it is not
refused, since the money balance was never taken below zero by that overage."""

from __future__ import annotations

from rules_support import cdr_row, post_cdrs, retail_world, run, run_json, units_left


def money(db_url: str, account: str) -> str:
    return run_json(db_url, "balance", account)["units"][0]["available"]


def test_overage_is_owed_in_minutes_and_taken_from_the_next_package(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path, top_up="10.00")
    run(db_url, "package", "overage", ids["org"], "--unit", "s:call")
    run(db_url, "package", "buy", ids["org"], "calls600")  # 5.00
    assert money(db_url, ids["org"]) == "5.000000"
    posted = post_cdrs(db_url, tmp_path, cdr_row("long", "+447700900123", 660))  # 11 min
    assert posted["charged"] == {"USD": "0.000000"}  # no money for the 60 s beyond
    assert money(db_url, ids["org"]) == "5.000000"
    assert units_left(db_url, ids["org"], "s:call") == -60  # owed in seconds
    run(db_url, "package", "buy", ids["org"], "calls600")  # the last 5.00: not refused
    assert money(db_url, ids["org"]) == "0.000000"
    assert units_left(db_url, ids["org"], "s:call") == 540  # 600 less the 60 owed
    assert "ledger reconciles" in run(db_url, "reconcile").stdout


def test_without_minute_overage_the_calls_beyond_the_package_cost_money(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path, top_up="10.00")
    run(db_url, "package", "buy", ids["org"], "calls600")
    post_cdrs(db_url, tmp_path, cdr_row("long", "+447700900123", 660))
    assert money(db_url, ids["org"]) == "4.400000"  # the 11th minute at 0.60
    assert units_left(db_url, ids["org"], "s:call") == 0
