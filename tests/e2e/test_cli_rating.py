"""The rating commands as a user runs them: quote, sms segments, explain, rate.

The ASTPP deck (36,205 prefixes, 6/6 increments) is imported once through the tariff import
service; a small native tariff adds SMS rows. Expected figures are computed from the deck's
own rows in the test, not typed in.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telbill.adapters.db.engine import Database, migrate
from telbill.adapters.formats.tariff_csv import read_tariff_csv
from telbill.cli.main import app
from telbill.domain.tariffs import RowError, TariffSettings
from telbill.services.tariffs import import_tariff

LONDON = "+442071234567"
SMS_TARIFF = """prefix,destination,service,direction,rate,increment
44,United Kingdom,voice,outbound,0.013,60/60
44,United Kingdom,sms,outbound,0.04,
44,United Kingdom,sms,inbound,0.01,
"""

runner = CliRunner()


def _import(db: Database, name: str, lines: Iterator[str] | io.StringIO, **mapping: str) -> None:
    parsed = read_tariff_csv(lines, column_map=mapping or None)
    rows = (item if isinstance(item, RowError) else item.row for item in parsed)
    import_tariff(db, name, rows, TariffSettings(currency="USD"), now=datetime.now(UTC))


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, astpp_deck: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('rating') / 'telbill.db'}"
    migrate(url)
    db = Database(url)
    with astpp_deck.open(newline="") as handle:
        _import(
            db, "astpp", handle,
            rate="rate_per_minute", increment="increment_seconds",
            free_seconds="included_seconds",
        )  # fmt: skip
    _import(db, "retail", io.StringIO(SMS_TARIFF, newline=""))
    db.dispose()
    yield url


def astpp_row(astpp_deck: Path, prefix: str) -> dict[str, str]:
    with astpp_deck.open(newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["prefix"] == prefix)


def longest_astpp_prefix(astpp_deck: Path, number: str) -> str:
    with astpp_deck.open(newline="") as handle:
        prefixes = {row["prefix"] for row in csv.DictReader(handle)}
    digits = number.lstrip("+")
    return next(digits[:n] for n in range(len(digits), 0, -1) if digits[:n] in prefixes)


def run(database: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--database", database])
    return result.exit_code, result.stdout, result.stderr


def expected_cost(rate: str, billed_s: int) -> str:
    exact = Decimal(rate) * billed_s / 60
    return str(exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def test_quote_json_prices_a_call_by_the_longest_prefix_of_the_deck(
    database: str, astpp_deck: Path
) -> None:
    code, out, _ = run(database, "quote", "--tariff", "astpp", "--to", LONDON,
                       "--duration", "61", "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    prefix = longest_astpp_prefix(astpp_deck, LONDON)
    row = astpp_row(astpp_deck, prefix)
    billed = -(-61 // int(row["increment_seconds"])) * int(row["increment_seconds"])
    assert data["prefix"] == prefix and data["destination"] == row["destination"]
    assert data["billed_seconds"] == billed
    assert Decimal(data["rate"]) == Decimal(row["rate_per_minute"])
    assert data["cost"] == expected_cost(row["rate_per_minute"], billed)
    assert data["currency"] == "USD" and isinstance(data["cost"], str)
    assert data["increment"] == f"{row['increment_seconds']}/{row['increment_seconds']}"
    assert Decimal(data["connect_fee"]) == Decimal(row["connect_fee"])


def test_quote_text_shows_price_and_breakdown(database: str) -> None:
    code, out, _ = run(database, "quote", "--tariff", "retail", "--to", LONDON,
                       "--duration", "61")  # fmt: skip
    assert code == 0
    assert "cost 0.026000 USD" in out  # 61 s at 0.013/min on 60/60 bills two minutes
    assert "billed as 120 s" in out and "60/60" in out


def test_quote_of_an_sms_counts_segments_and_encoding(database: str) -> None:
    text = "x" * 161  # two GSM-7 segments
    code, out, _ = run(database, "quote", "--tariff", "retail", "--to", LONDON,
                       "--service", "sms", "--text", text, "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert (data["segments"], data["encoding"]) == (2, "GSM-7")
    assert data["cost"] == "0.080000"
    code, out, _ = run(database, "quote", "--tariff", "retail", "--to", LONDON,
                       "--service", "sms", "--text", "Привет", "--json")  # fmt: skip
    data = json.loads(out)
    assert (data["segments"], data["encoding"]) == (1, "UCS-2")


def test_inbound_sms_is_priced_per_message_by_the_inbound_row(database: str) -> None:
    code, out, _ = run(database, "quote", "--tariff", "retail", "--to", LONDON,
                       "--service", "sms", "--direction", "inbound", "--text", "y" * 400,
                       "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out)["cost"] == "0.010000"


def test_quote_without_a_matching_rate_exits_3_with_one_line(database: str) -> None:
    code, out, err = run(database, "quote", "--tariff", "retail", "--to", "+33142000000")
    assert code == 3
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "no_rate" in err


def test_quote_of_an_unknown_tariff_is_a_clear_error(database: str) -> None:
    code, _, err = run(database, "quote", "--tariff", "nope", "--to", LONDON)
    assert code == 1 and "nope" in err and "Traceback" not in err


def test_sms_segments_json_reports_ucs2_for_emoji() -> None:
    result = runner.invoke(app, ["sms", "segments", "hi 😀", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["encoding"] == "UCS-2" and data["segments"] == 1
    assert data["chars_per_segment"] == 70 and data["units"] == 5


def test_sms_segments_text_counts_a_long_gsm_message() -> None:
    result = runner.invoke(app, ["sms", "segments", "a" * 307])
    assert result.exit_code == 0
    assert "GSM-7: 3 segment(s), 153 per segment" in result.stdout


def test_explain_prints_each_step_of_the_arithmetic(database: str) -> None:
    code, out, _ = run(database, "explain", "--tariff", "retail", "--to", LONDON,
                       "--duration", "61")  # fmt: skip
    assert code == 0
    assert "matched prefix 44" in out and "billed 120 s" in out and "0.026000" in out


def test_explain_renders_a_stored_charge_like_a_fresh_one(
    database: str, tmp_path: Path
) -> None:
    _, quoted, _ = run(database, "quote", "--tariff", "retail", "--to", LONDON,
                       "--duration", "61", "--json")  # fmt: skip
    stored = tmp_path / "charge.json"
    stored.write_text(json.dumps(json.loads(quoted)["charges"][0]))
    _, fresh, _ = run(database, "explain", "--tariff", "retail", "--to", LONDON,
                      "--duration", "61")  # fmt: skip
    code, replayed, _ = run(database, "explain", "--charge-json", str(stored))
    assert code == 0 and replayed == fresh


def test_rate_writes_every_input_column_plus_rated_columns_and_goes_past_a_bad_row(
    database: str, astpp_deck: Path, tmp_path: Path
) -> None:
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "id,account,user,direction,from,to,start,answer,end\n"
        f"c1,acme,alice,outbound,+3314,{LONDON},2026-01-05T10:00:00Z,"
        "2026-01-05T10:00:05Z,2026-01-05T10:01:06Z\n"
        f"c2,acme,alice,outbound,+3314,{LONDON},half past ten,,2026-01-05T10:01:06Z\n"
        "c3,acme,alice,outbound,+3314,+0000000000,2026-01-05T10:00:00Z,"
        "2026-01-05T10:00:05Z,2026-01-05T10:01:06Z\n"
        f"c4,acme,bob,outbound,+3314,{LONDON},2026-01-05T10:00:00Z,,2026-01-05T10:01:06Z\n"
    )
    out = tmp_path / "rated.csv"
    code, _, err = run(database, "rate", str(cdrs), "--tariff", "astpp", "--out", str(out))
    assert code == 0, err
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["c1", "c2", "c3", "c4"]
    assert list(rows[0])[:9] == ["id", "account", "user", "direction", "from", "to",
                                 "start", "answer", "end"]  # fmt: skip
    row = astpp_row(astpp_deck, longest_astpp_prefix(astpp_deck, LONDON))
    billed = -(-61 // int(row["increment_seconds"])) * int(row["increment_seconds"])
    assert rows[0]["cost"] == expected_cost(row["rate_per_minute"], billed)
    assert rows[0]["billed_seconds"] == str(billed) and rows[0]["error"] == ""
    assert "line 3" in rows[1]["error"] and "start" in rows[1]["error"]
    assert rows[2]["error"].startswith("no_rate")
    assert rows[3]["cost"] == "0.000000" and rows[3]["error"] == ""  # unanswered
    assert "rated 2 of 4 record(s), 2 error(s)" in err
    parts = tmp_path / "rated-by-2.csv"
    code, _, err = run(database, "rate", str(cdrs), "--tariff", "astpp", "--out", str(parts),
                       "--workers", "2")  # fmt: skip
    assert code == 0, err
    assert parts.read_bytes() == out.read_bytes()
    assert "rated 2 of 4 record(s), 2 error(s)" in err


@pytest.mark.parametrize("chunk_size", ["1", "3", "5000"])
def test_rated_costs_do_not_depend_on_chunking(
    database: str, tmp_path: Path, chunk_size: str
) -> None:
    cdrs = tmp_path / "master.csv"
    lines = []
    for n in range(7):
        answer = f"2026-01-05 10:00:0{n}" if n % 3 else ""
        disposition = "ANSWERED" if answer else "NO ANSWER"
        lines.append(
            f'"acme","100{n}","0044207123456{n}","ctx","","SIP/a","SIP/b","Dial","x",'
            f'"2026-01-05 10:00:00","{answer}","2026-01-05 10:0{n}:30","{30 + 60 * n}",'
            f'"{30 + 60 * n - n if answer else 0}","{disposition}","DOCUMENTATION","u{n}",""'
        )
    cdrs.write_text("\n".join(lines) + "\n")
    out = tmp_path / f"rated-{chunk_size}.csv"
    code, _, err = run(database, "rate", str(cdrs), "--tariff", "retail", "--format",
                       "asterisk", "--out", str(out), "--chunk-size", chunk_size)  # fmt: skip
    assert code == 0, err
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7 and all(r["error"] == "" for r in rows)
    reference = tmp_path / "reference.csv"
    run(database, "rate", str(cdrs), "--tariff", "retail", "--format", "asterisk",
        "--out", str(reference), "--chunk-size", "1")  # fmt: skip
    assert out.read_text() == reference.read_text()


def test_rate_of_a_missing_file_is_a_clear_error(database: str, tmp_path: Path) -> None:
    code, _, err = run(database, "rate", str(tmp_path / "nope.csv"), "--tariff", "astpp",
                       "--out", str(tmp_path / "o.csv"))  # fmt: skip
    assert code == 1 and "not found" in err


def test_rate_reads_freeswitch_json_lines_and_csv(database: str, tmp_path: Path) -> None:
    variables = {
        "uuid": "j1", "accountcode": "acme", "caller_id_number": "1001",
        "destination_number": LONDON, "start_epoch": "1767610800",
        "answer_epoch": "1767610804", "end_epoch": "1767610865", "billsec": "61",
    }  # fmt: skip
    jsonl = tmp_path / "cdr.jsonl"
    jsonl.write_text(json.dumps({"variables": variables}) + "\n{broken\n")
    fs_csv = tmp_path / "Master.csv"
    fs_csv.write_text(
        f'"Alice","1001","{LONDON}","default","2026-01-05 11:00:00","2026-01-05 11:00:04",'
        '"2026-01-05 11:01:05","65","61","NORMAL_CLEARING","a1b2","","acme","PCMU","PCMU"\n'
    )
    for source in (jsonl, fs_csv):
        out = tmp_path / f"{source.stem}.rated.csv"
        code, _, err = run(database, "rate", str(source), "--tariff", "retail",
                           "--format", "freeswitch", "--out", str(out))  # fmt: skip
        assert code == 0, err
        with out.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows[0]["cost"] == "0.026000" and rows[0]["billed_seconds"] == "120"
        if source is jsonl:
            assert rows[1]["error"].startswith("invalid_input") and "line 2" in rows[1]["error"]


def test_rate_prices_each_call_by_the_tariff_version_in_force_at_its_start(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'versions.db'}"
    migrate(url)
    db = Database(url)
    for rate, since in (("0.010", datetime(2026, 1, 1, tzinfo=UTC)),
                        ("0.020", datetime(2026, 3, 1, tzinfo=UTC))):  # fmt: skip
        parsed = read_tariff_csv(
            io.StringIO(f"prefix,destination,rate,increment\n44,UK,{rate},60/60\n", newline="")
        )
        rows = (item if isinstance(item, RowError) else item.row for item in parsed)
        import_tariff(db, "uk", rows, TariffSettings(currency="USD"),
                      now=datetime.now(UTC), effective_from=since)  # fmt: skip
    db.dispose()
    cdrs = tmp_path / "cdrs.csv"
    header = "id,account,user,direction,from,to,start,answer,end\n"
    body = "".join(
        f"{cdr_id},acme,alice,outbound,+3314,{LONDON},{day}T10:00:00Z,{day}T10:00:00Z,"
        f"{day}T10:02:00Z\n"
        for cdr_id, day in (("dec", "2025-12-31"), ("feb", "2026-02-28"), ("mar", "2026-03-01"))
    )
    cdrs.write_text(header + body)
    out = tmp_path / "rated.csv"
    code, _, err = run(url, "rate", str(cdrs), "--tariff", "uk", "--out", str(out))
    assert code == 0, err
    with out.open(newline="") as handle:
        rated = {row["id"]: row for row in csv.DictReader(handle)}
    assert "no tariff version in force" in rated["dec"]["error"]
    assert rated["feb"]["cost"] == expected_cost("0.010", 120)
    assert rated["mar"]["cost"] == expected_cost("0.020", 120)
    assert rated["feb"]["rate"] != rated["mar"]["rate"]
