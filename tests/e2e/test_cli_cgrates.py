"""`telbill tariff import --format cgrates` as a user runs it: --skip-bad, --dry-run, and
CGRateS's matching rules surviving storage (quote after import)."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telbill.cli.main import app

CGRATES = Path(__file__).resolve().parents[1] / "data" / "cgrates"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TELBILL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return CliRunner()


def run(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def imported_names(cli: CliRunner) -> list[str]:
    code, out, err = run(cli, "tariff", "list", "--json")
    assert code == 0, err
    return [v["name"] for v in json.loads(out)]


def test_skip_bad_imports_every_profile_it_can_and_lists_the_rest(cli: CliRunner) -> None:
    code, _, err = run(
        cli, "tariff", "import", str(CGRATES / "bad"), "--format", "cgrates", "--skip-bad"
    )
    assert code == 0, err
    assert imported_names(cli) == ["t:call:a"]
    assert "t:call:b not imported" in err and "t:call:d not imported" in err
    assert "Rates.csv line 6:" in err


def test_dry_run_reports_what_would_be_imported_and_writes_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    code, out, err = run(
        cli, "tariff", "import", str(CGRATES / "constructs"), "--format", "cgrates", "--dry-run"
    )
    assert code == 0, err
    assert "would import acme:call:main: 6 rates" in out
    assert not (tmp_path / "cli.db").exists()  # no database opened, nothing written


def test_dry_run_of_a_bad_folder_exits_1_and_lists_every_bad_line(cli: CliRunner) -> None:
    code, out, err = run(
        cli, "tariff", "import", str(CGRATES / "bad"), "--format", "cgrates", "--dry-run",
        "--json",
    )  # fmt: skip
    assert code == 1
    report = json.loads(out)
    assert report["would_import"] == []
    assert {"line": 6, "source": "Rates.csv"}.items() <= report["errors"][1].items()


def test_imported_cgrates_tariff_keeps_plus_49_apart_from_49_after_storage(
    cli: CliRunner,
) -> None:
    code, _, err = run(cli, "tariff", "import", str(CGRATES / "constructs"), "--format", "cgrates")
    assert code == 0, err
    code, out, err = run(cli, "tariff", "show", "acme:call:main", "--json")
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert (settings["number_match"], settings["free_extensions"]) == ("exact", False)
    quotes = {}
    for number in ("+4930123456", "4930123456"):
        code, out, err = run(
            cli, "quote", "--tariff", "acme:call:main", "--to", number, "--duration", "61",
            "--json",
        )  # fmt: skip
        assert code == 0, err
        quotes[number] = json.loads(out)["cost"]
    # 120 s x 0.6/60; 120 s x 0.3/60 + 0.1
    assert quotes == {"+4930123456": "1.2000", "4930123456": "0.7000"}


def test_short_unmatched_number_of_a_cgrates_tariff_is_no_rate(cli: CliRunner) -> None:
    code, _, err = run(cli, "tariff", "import", str(CGRATES / "constructs"), "--format", "cgrates")
    assert code == 0, err
    code, _, err = run(
        cli, "quote", "--tariff", "acme:call:main", "--to", "2001", "--duration", "5"
    )
    assert code == 3, err


def test_quote_and_explain_show_the_parts_of_a_call_over_the_evening_boundary(
    cli: CliRunner,
) -> None:
    code, _, err = run(cli, "tariff", "import", str(CGRATES / "retail"), "--format", "cgrates")
    assert code == 0, err
    call = ("--tariff", "acme.com:call:*any", "--to", "+493012345678", "--duration", "61",
            "--at", "2026-03-04T18:59:30Z")  # fmt: skip
    code, out, err = run(cli, "quote", *call)
    assert code == 0, err
    # 60 s peak at 0.012/min, 60 s off-peak at 0.006/min, 0.05 connect fee
    assert "cost 0.0680" in out
    assert "split at band changes: 60 s at 0.012 + 60 s at 0.006 per minute" in out
    code, out, err = run(cli, "explain", *call)
    assert code == 0, err
    assert "band part from 60 s: 60 s at 0.006" in out


def test_rate_file_on_a_cgrates_tariff_keeps_plus_49_and_voicemail_apart(
    cli: CliRunner, tmp_path: Path
) -> None:
    code, _, err = run(cli, "tariff", "import", str(CGRATES / "constructs"), "--format", "cgrates")
    assert code == 0, err
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "id,account,user,direction,from,to,start,answer,end\n"
        "c1,acme,a,outbound,+3314,+4930123456,2026-03-04T10:00:00Z,"
        "2026-03-04T10:00:00Z,2026-03-04T10:01:01Z\n"
        "c2,acme,a,outbound,+3314,4930123456,2026-03-04T10:00:00Z,"
        "2026-03-04T10:00:00Z,2026-03-04T10:01:01Z\n"
        "c3,acme,a,outbound,+3314,voicemail,2026-03-04T10:00:00Z,"
        "2026-03-04T10:00:00Z,2026-03-04T10:00:30Z\n"
    )
    out = tmp_path / "rated.csv"
    code, _, err = run(cli, "rate", str(cdrs), "--tariff", "acme:call:main", "--out", str(out))
    assert code == 0, err
    with out.open(newline="") as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    # 61 s on 60/60: 120 s x 0.6/60; 120 s x 0.3/60 + 0.1; voicemail free
    assert [Decimal(rows[i]["cost"]) for i in ("c1", "c2", "c3")] == [
        Decimal("1.2"),
        Decimal("0.7"),
        Decimal(0),
    ]


def test_quote_of_data_bytes_on_an_imported_data_profile(cli: CliRunner) -> None:
    code, _, err = run(cli, "tariff", "import", str(CGRATES / "units"), "--format", "cgrates")
    assert code == 0, err
    code, out, err = run(
        cli, "quote", "--tariff", "acme:data:*any", "--to", "+4930123456", "--service", "data",
        "--units", "1000000", "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    # 98 increments of 10240 bytes at 0.1 per 1048576 bytes, rounded up at 6 decimals
    assert (summary["cost"], summary["billed_units"], summary["unit"]) == (
        "0.095704",
        1_003_520,
        "B:data",
    )


def test_band_rule_option_overrides_the_cgrates_split(cli: CliRunner) -> None:
    code, _, err = run(
        cli, "tariff", "import", str(CGRATES / "retail"), "--format", "cgrates",
        "--band-rule", "price_at_start",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run(
        cli, "quote", "--tariff", "acme.com:call:*any", "--to", "+493012345678",
        "--duration", "61", "--at", "2026-03-04T18:59:30Z",
    )  # fmt: skip
    assert code == 0, err
    assert "cost 0.0740" in out  # 120 s at the peak 0.012/min + 0.05, not split
