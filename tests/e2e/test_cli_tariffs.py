"""`telbill tariff ...` as a user runs it: import decks, see bad lines, list, show, diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telbill.cli.main import app

DATA = Path(__file__).resolve().parents[1] / "data"
ASTPP_MAP = "rate=rate_per_minute,increment=increment_seconds,free_seconds=included_seconds"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TELBILL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return CliRunner()


def run(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["tariff", *args])
    return result.exit_code, result.stdout, result.stderr


def test_astpp_deck_imports_through_map_and_lists(cli: CliRunner, astpp_deck: Path) -> None:
    code, out, err = run(cli, "import", str(astpp_deck), "--name", "astpp", "--map", ASTPP_MAP)
    assert code == 0, err
    assert "36205 rates" in out
    code, out, _ = run(cli, "list", "--json")
    [listed] = json.loads(out)
    assert (listed["name"], listed["version"], listed["rows"]) == ("astpp", 1, 36_205)
    assert len(listed["source"]["sha256"]) == 64


def test_bad_deck_reports_every_bad_line_and_imports_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,rate\n49,0.01\n33,abc\n44,0.02\n4x,0.1\n")
    code, _, err = run(cli, "import", str(deck), "--name", "retail")
    assert code != 0
    assert "line 3: rate" in err and "line 5: prefix" in err
    assert "nothing imported" in err
    code, out, _ = run(cli, "list", "--json")
    assert json.loads(out) == []


def test_skip_bad_imports_the_rest_and_still_lists_the_bad_lines(
    cli: CliRunner, tmp_path: Path
) -> None:
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,rate\n49,0.01\n33,abc\n")
    code, out, err = run(cli, "import", str(deck), "--name", "retail", "--skip-bad", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["rows"] == 1 and payload["skipped"][0]["line"] == 3


def test_versions_and_diff_show_what_changed(cli: CliRunner, tmp_path: Path) -> None:
    v1, v2 = tmp_path / "v1.csv", tmp_path / "v2.csv"
    v1.write_text("prefix,destination,rate\n49,Germany,0.01\n44,UK,0.02\n")
    v2.write_text("prefix,destination,rate\n49,Germany,0.015\n33,France,0.03\n")
    for deck in (v1, v2):
        assert run(cli, "import", str(deck), "--name", "retail")[0] == 0
    code, out, _ = run(cli, "versions", "retail", "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]
    code, out, _ = run(cli, "diff", "retail", "--json")
    diff = json.loads(out)
    assert [r["prefix"] for r in diff["added"]] == ["33"]
    assert [r["prefix"] for r in diff["removed"]] == ["44"]
    assert diff["changed"][0]["before"]["rate"] == "0.01"
    assert diff["changed"][0]["after"]["rate"] == "0.015"


def test_show_gives_settings_and_rates_as_decimal_strings(
    cli: CliRunner, tmp_path: Path
) -> None:
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,rate,increment\n49,0.012345678,30/6\n")
    args = ("--currency", "EUR", "--increment", "1/1", "--decimals", "4", "--rounding", "up")
    assert run(cli, "import", str(deck), "--name", "retail", *args)[0] == 0
    code, out, _ = run(cli, "show", "retail", "--json")
    shown = json.loads(out)
    assert shown["currency"] == "EUR"
    assert shown["settings"]["default_increment"] == "1/1"
    assert shown["settings"]["rounding"] == "ROUND_UP"
    assert shown["rates"][0]["rate"] == "0.012345678"
    assert shown["rates"][0]["increment"] == "30/6"


def test_twilio_pricing_file_imports_one_rate_per_prefix(
    cli: CliRunner, tmp_path: Path
) -> None:
    deck = tmp_path / "twilio.csv"
    deck.write_text(
        "ISO,Country,Description,Price / min,Origination Prefixes,Destination Prefixes\n"
        'DE,Germany,Germany - Mobile,0.0850,,"4915,4916"\n'
    )
    code, out, err = run(cli, "import", str(deck), "--name", "tw", "--format", "twilio")
    assert code == 0, err
    assert "2 rates" in out


def test_cgrates_folder_imports_one_tariff_per_rating_profile(cli: CliRunner) -> None:
    code, out, err = run(cli, "import", str(DATA / "cgrates" / "retail"), "--format", "cgrates")
    assert code == 0, err
    code, out, _ = run(cli, "list", "--json")
    names = [v["name"] for v in json.loads(out)]
    assert names == ["acme.com:call:*any", "acme.com:call:vip", "acme.com:call:wholesale"]


def test_bad_cgrates_folder_names_file_and_line(cli: CliRunner) -> None:
    code, _, err = run(cli, "import", str(DATA / "cgrates" / "bad"), "--format", "cgrates")
    assert code != 0
    assert "Rates.csv line 6:" in err and "nothing imported" in err


def test_unknown_tariff_is_a_one_line_error(cli: CliRunner) -> None:
    code, _, err = run(cli, "show", "nope")
    assert code == 1 and "no tariff 'nope'" in err
