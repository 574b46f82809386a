"""The compiled-tariff cache of `telbill quote` (adapters/db/tariff_cache.py).

A quote from the cache is the quote from the whole tariff, for every number; an entry is
keyed by tariff version (a new version, a later `--at`, a re-created database are never
answered from an older entry); a cache folder others could write is not used; a cached quote
neither loads the deck nor imports SQLAlchemy.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db_templates import sqlite_database
from telbill.adapters.db import tariff_cache
from telbill.adapters.db.engine import DEFAULT_DATABASE_URL, Database
from telbill.cli import rating as cli_rating
from telbill.cli.main import app
from telbill.domain.lookup import compile_tariff
from telbill.domain.tariffs import Direction, NumberType, RateRow, Service, Tariff, TariffSettings
from telbill.errors import NoRate
from telbill.services import cdr_rating
from telbill.services.quotes import (
    QuoteRequest,
    cached_quote_index,
    load_tariff_index,
    quote,
    quote_summary,
    remember_quote_index,
)

runner = CliRunner()
ASTPP_MAP = "rate=rate_per_minute,increment=increment_seconds,free_seconds=included_seconds"
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("TELBILL_CACHE_DIR", str(folder))
    return folder


def cli(url: str, *args: str) -> str:
    result = runner.invoke(app, ["-d", url, *args])
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def quoted(url: str, *args: str) -> dict:
    return json.loads(cli(url, "quote", *args, "--json"))


def priced(request: QuoteRequest, index) -> dict | str:
    try:
        return quote_summary(quote(request, index))
    except NoRate as exc:
        return f"no rate: {exc.message}"


def test_a_cached_quote_equals_the_quote_from_the_whole_tariff(
    tmp_path: Path, cache: Path, astpp_deck: Path
) -> None:
    url = sqlite_database(tmp_path / "q.db")
    cli(url, "tariff", "import", str(astpp_deck), "--name", "carrier", "--map", ASTPP_MAP)
    whole = load_tariff_index(Database(url), "carrier", at=AT)
    prefixes = [row.prefix for row in whole.tariff.rows]
    picker = random.Random(15)
    numbers = [
        "+" + p + "".join(picker.choice("0123456789") for _ in range(max(1, 13 - len(p))))
        for p in picker.sample(prefixes, 400)
    ]
    numbers += ["+999123", "+1", "12345", "+4915112345678", "0044 20 7946 0000"]
    remember_quote_index(url, "carrier", QuoteRequest("+1", AT), whole)
    for number in numbers:
        request = QuoteRequest(number, AT, duration_s=picker.randrange(0, 4000))
        index = cached_quote_index(url, "carrier", request)
        assert index is not None and len(index.tariff.rows) < 40
        assert priced(request, index) == priced(request, whole), number


def test_bands_dates_number_types_and_ties_are_chosen_as_by_the_whole_tariff(
    tmp_path: Path, cache: Path
) -> None:
    """Rows that compete for one number (bands, effective dates, number types, equal
    prefixes, the catch-all empty prefix) keep their order in a cached slice."""
    base = RateRow(prefix="44", rate=Decimal("0.10"), destination="UK")
    rows = [
        base,
        replace(base, prefix="", rate=Decimal("0.90"), destination="anywhere"),
        replace(base, prefix="447", rate=Decimal("0.20"), number_type=NumberType.MOBILE),
        replace(base, prefix="447", rate=Decimal("0.25"), destination="UK later",
                effective_from=datetime(2026, 3, 1, tzinfo=UTC)),
        replace(base, prefix="4479", rate=Decimal("0.05"), hours=(time(8), time(18))),
        replace(base, prefix="4479", rate=Decimal("0.06"), destination="second tie"),
        replace(base, prefix="4479", rate=Decimal("0.07"), destination="third tie"),
        replace(base, prefix="44", rate=Decimal("0.01"), service=Service.SMS),
        replace(base, prefix="44", rate=Decimal("0.02"), direction=Direction.INBOUND),
    ]  # fmt: skip
    tariff = Tariff("mix", TariffSettings(currency="USD"), tuple(rows), version=3)
    stamp = tariff_cache.VersionStamp("db", 1, "mix", 3, "2026-01-01 00:00:00.000000")
    header = {"name": "mix", "settings": tariff.settings, "version": 3}
    tariff_cache.write_slices(stamp, header, tariff.rows)
    whole = compile_tariff(tariff)
    for number in ("+447911123456", "+4479", "+447", "+4420", "+33123", "+4479123"):
        for at in (AT, datetime(2026, 2, 1, 20, tzinfo=UTC), datetime(2026, 3, 2, 3, tzinfo=UTC)):
            for service, direction in [
                (Service.VOICE, Direction.OUTBOUND), (Service.SMS, Direction.OUTBOUND),
                (Service.VOICE, Direction.INBOUND),
            ]:  # fmt: skip
                request = QuoteRequest(number, at, service=service, direction=direction)
                digits = number.lstrip("+")
                wanted = {""} | {digits[:n] for n in range(1, len(digits) + 1)}
                slices = tariff_cache.read_slices(stamp, wanted)
                assert slices is not None
                sliced = compile_tariff(
                    Tariff("mix", tariff.settings, tuple(r for _, r in slices.rows), version=3)
                )
                assert priced(request, sliced) == priced(request, whole), (number, at, service)


def test_a_new_version_is_quoted_from_its_own_rows(tmp_path: Path, cache: Path) -> None:
    url = sqlite_database(tmp_path / "q.db")
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,destination,rate\n44,UK,0.06\n")
    cli(url, "tariff", "import", str(deck), "--name", "retail")
    assert quoted(url, "--tariff", "retail", "--to", "+442071234567")["cost"] == "0.060000"
    assert quoted(url, "--tariff", "retail", "--to", "+442071234567")["tariff_version"] == 1
    deck.write_text("prefix,destination,rate\n44,UK,0.09\n")
    cli(url, "tariff", "import", str(deck), "--name", "retail")
    again = quoted(url, "--tariff", "retail", "--to", "+442071234567")
    assert (again["cost"], again["tariff_version"]) == ("0.090000", 2)
    assert len(list(cache.glob("*.sqlite"))) == 2


def test_a_quote_before_a_new_version_takes_effect_uses_the_old_one(
    tmp_path: Path, cache: Path
) -> None:
    url = sqlite_database(tmp_path / "q.db")
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,destination,rate\n44,UK,0.06\n")
    cli(url, "tariff", "import", str(deck), "--name", "retail")
    deck.write_text("prefix,destination,rate\n44,UK,0.09\n")
    later = ["--effective-from", "2030-01-01T00:00:00Z"]
    cli(url, "tariff", "import", str(deck), "--name", "retail", *later)
    for _ in range(2):  # the second time from the cache
        early = quoted(url, "--tariff", "retail", "--to", "+4420", "--at", "2029-12-31T23:59:00Z")
        late = quoted(url, "--tariff", "retail", "--to", "+4420", "--at", "2030-01-01T00:00:00Z")
        assert (early["cost"], late["cost"]) == ("0.060000", "0.090000")


def test_a_recreated_database_is_never_answered_from_the_old_entry(
    tmp_path: Path, cache: Path
) -> None:
    path = tmp_path / "q.db"
    deck = tmp_path / "deck.csv"
    for rate in ("0.06", "0.03"):
        path.unlink(missing_ok=True)
        url = sqlite_database(path)
        deck.write_text(f"prefix,destination,rate\n44,UK,{rate}\n")
        cli(url, "tariff", "import", str(deck), "--name", "retail")
        assert quoted(url, "--tariff", "retail", "--to", "+4420")["cost"] == f"{rate}0000"


def test_a_cache_folder_others_can_write_is_not_used(tmp_path: Path, cache: Path) -> None:
    cache.chmod(0o777)
    url = sqlite_database(tmp_path / "q.db")
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,destination,rate\n44,UK,0.06\n")
    cli(url, "tariff", "import", str(deck), "--name", "retail")
    assert quoted(url, "--tariff", "retail", "--to", "+4420")["cost"] == "0.060000"
    assert list(cache.iterdir()) == []


def test_a_cached_quote_loads_no_deck_and_no_sqlalchemy(tmp_path: Path, cache: Path) -> None:
    url = sqlite_database(tmp_path / "q.db")
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,destination,rate\n44,UK,0.06\n")
    cli(url, "tariff", "import", str(deck), "--name", "retail")
    script = (
        "import sys, atexit, json\n"
        "atexit.register(lambda: print('MODULES', json.dumps(sorted(sys.modules))))\n"
        "sys.argv = ['telbill', *sys.argv[1:]]\n"
        "from telbill.cli.main import main\n"
        "main()\n"
    )
    args = [sys.executable, "-c", script, "-d", url, "quote", "--tariff", "retail", "--to", "+44"]
    env = {**os.environ, "TELBILL_CACHE_DIR": str(cache)}
    runs = [subprocess.run(args, capture_output=True, text=True, env=env) for _ in range(2)]
    first, second = (set(json.loads(r.stdout.rsplit("MODULES", 1)[1])) for r in runs)
    assert all("cost 0.060000 USD" in r.stdout for r in runs), runs[1].stderr
    assert "sqlalchemy" in first
    # If this fails after a migration: adapters/db/tariff_cache.py reads only the `tariffs`
    # columns it knows (TARIFF_COLUMNS); check its version query and add the new column.
    assert "sqlalchemy" not in second, "the quote cache was not used"


def test_the_cli_defaults_equal_those_of_the_modules_they_mirror() -> None:
    assert cli_rating.DEFAULT_DATABASE_URL == DEFAULT_DATABASE_URL
    assert cli_rating.DEFAULT_CHUNK_SIZE == cdr_rating.DEFAULT_CHUNK_SIZE
