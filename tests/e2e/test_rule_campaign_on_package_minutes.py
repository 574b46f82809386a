"""Issue 17, rule 5: a campaign may start on call-time package minutes with no money (a
positive balance includes minute balances); with neither it is refused. And the campaign
commands' CLI: `--json`, a human line without it, a help line on each."""

from __future__ import annotations

from rules_support import help_text, retail_world, run, run_json, units_left


def test_campaign_starts_on_package_minutes_with_zero_money(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path, top_up="5.00")
    run(db_url, "package", "buy", ids["org"], "calls600")  # all 5.00 of it: money 0
    assert run_json(db_url, "balance", ids["org"])["units"][0]["available"] == "0.000000"
    assert units_left(db_url, ids["org"], "s:call") == 600
    started = run_json(db_url, "campaign", "start", "--account", ids["org"], "--name", "bot")
    assert started["status"] == "running"


def test_campaign_without_money_or_minutes_is_refused(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path, top_up=None)
    refused = run(db_url, "campaign", "start", "--account", ids["org"], "--name", "bot", ok=False)
    assert refused.exit_code == 1 and "call-time package seconds" in refused.stderr


def test_campaign_commands_print_a_line_or_json_and_each_has_a_help_line(db_url, tmp_path):
    ids = retail_world(db_url, tmp_path)
    line = run(db_url, "campaign", "start", "--account", ids["org"], "--name", "spring").stdout
    assert "campaign 1 'spring'" in line and "running" in line
    paused = run_json(db_url, "campaign", "pause", "1")
    assert (paused["status"], paused["paused_reason"]) == ("paused", "by_user")
    assert "stopped" in run(db_url, "campaign", "stop", "1").stdout
    listing = help_text("campaign")
    for command in ("start", "pause", "resume", "stop"):
        row = next(r for r in listing.splitlines() if f" {command} " in r)
        assert len(row.split(command, 1)[1].strip(" │")) > 10, row  # a help line follows
