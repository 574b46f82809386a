"""Issue 17, rule 9: a low-balance alert fires when the balance drops BELOW its level.

0.50 left at a 0.50 level does not warn; 0.49 does. A provider may give a level the mode
``at_or_below`` instead (``--level 0.30:at_or_below``), and then reaching it warns.
"""

from __future__ import annotations

from rules_support import event_types, provider_and_org, run, run_json, spend


def test_default_low_balance_alert_fires_below_the_level_not_at_it(db_url):
    _, org = provider_and_org(db_url)
    run(db_url, "topup", org, "1.00")
    spend(db_url, org, "0.50")
    assert "balance.low" not in event_types(db_url, org)  # exactly 0.50 left
    spend(db_url, org, "0.01")
    assert event_types(db_url, org).count("balance.low") == 1  # 0.49 is below


def test_level_in_at_or_below_mode_fires_when_the_balance_reaches_it(db_url):
    _, org = provider_and_org(db_url)
    shown = run_json(
        db_url, "notify", "thresholds", org, "--level", "0.30:at_or_below", "--level", "0.20",
        "--no-spend",
    )  # fmt: skip
    assert shown["fixed_levels"] == ["0.300000", "0.200000"]
    assert shown["fixed_modes"] == ["at_or_below", "below"]
    run(db_url, "topup", org, "1.00")
    spend(db_url, org, "0.70")  # 0.30 left: reaches 0.30
    spend(db_url, org, "0.10")  # 0.20 left: at 0.20, not below it
    low = [n for n in run_json(db_url, "notify", "list", org) if n["type"] == "balance.low"]
    assert [(n["payload"]["level"], n["payload"]["mode"]) for n in low] == [
        ("0.300000", "at_or_below")
    ]
    table = run(db_url, "notify", "thresholds", org).stdout
    assert "0.300000 (at or below)" in table and "0.200000 (below)" in table


def test_threshold_mode_that_does_not_exist_is_refused_and_changes_nothing(db_url):
    _, org = provider_and_org(db_url)
    bad = run(db_url, "notify", "thresholds", org, "--level", "0.30:under", ok=False)
    assert bad.exit_code == 1 and "at_or_below" in bad.stderr
    assert run_json(db_url, "notify", "thresholds", org)["is_default"] is True
