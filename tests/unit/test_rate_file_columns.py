"""`telbill rate` read columnar: the rated file is byte for byte the one the per-row path
writes, for any mix of good, odd and bad lines; bad lines keep their line numbers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from telbill.adapters.formats.cdr_columns import (
    NativeColumnsReader,
    may_span_lines,
    split_ranges,
)
from telbill.domain.lookup import compile_tariff
from telbill.domain.tariffs import (
    Direction,
    Increment,
    RateRow,
    RowError,
    Service,
    Tariff,
    TariffSettings,
)
from telbill.services.cdr_rate_files import rate_cdr_file
from telbill.services.cdr_rating import VersionedRater, VersionSpec

START = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # Europe's clocks change that night
SECOND_VERSION = START + timedelta(hours=5)


def _tariff(version: int, uk: str) -> Tariff:
    return Tariff(
        name="t",
        version=version,
        settings=TariffSettings(currency="EUR", decimals=4),
        rows=(
            RateRow("44", "UK, mainland", Decimal(uk)),
            RateRow("447", 'UK "mobile"', Decimal("0.0725"), increment=Increment(30, 6)),
            RateRow("4420", "London", Decimal("0.0073"), connect_fee=Decimal("0.015"),
                    increment=Increment(1, 1), free_seconds=5, min_seconds=30),
            RateRow("33", "France", Decimal("0.02"), increment=Increment(15, 15)),
            RateRow("1", "NANP", Decimal("0.005")),
            RateRow("1", "NANP", Decimal("0.007"), effective_from=START + timedelta(hours=2)),
            RateRow("44", "UK in", Decimal("0.001"), direction=Direction.INBOUND),
            RateRow("44", "UK sms", Decimal("0.04"), service=Service.SMS),
            RateRow("49", "Germany", Decimal("0.011"), decimals=2, rounding="ROUND_UP"),
        ),
    )  # fmt: skip


def _rater() -> VersionedRater:
    versions = [
        VersionSpec(1, START - timedelta(days=1), lambda: compile_tariff(_tariff(1, "0.013"))),
        VersionSpec(2, SECOND_VERSION, lambda: compile_tariff(_tariff(2, "0.017"))),
    ]
    return VersionedRater(versions, batch_min=1)


HEADER = "id,account,user,direction,from,to,start,answer,end,duration,service,text,speech_seconds\n"


def _stamp(moment: datetime, rng: random.Random, naive_ok: bool = True) -> str:
    shape = rng.choice(["+00:00"] * 6 + ["Z", "+02:00", "-05:30", "naive", "space", "fraction"])
    if shape == "naive" and naive_ok:
        return moment.replace(tzinfo=None).isoformat()
    if shape == "space":
        return moment.isoformat(" ")
    if shape == "fraction":
        return (moment + timedelta(microseconds=250_000)).isoformat()
    if shape == "Z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if shape in {"+02:00", "-05:30"}:
        sign = 1 if shape[0] == "+" else -1
        hours, minutes = int(shape[1:3]), int(shape[4:6])
        zone = timedelta(hours=hours, minutes=minutes) * sign
        from datetime import timezone

        return moment.astimezone(timezone(zone)).isoformat()
    return moment.isoformat()


def _line(n: int, rng: random.Random) -> str:
    numbers = ["+447700900123", "+442071234567", "0033123456789", "15551234567",
               "+4930123456", "+861012345678", "101", "+44 20 7946 0000", "abc", "+",
               "+1555123456789012", "00", "+33612345678"]  # fmt: skip
    begin = START + timedelta(seconds=rng.randint(0, 6 * 3600))
    answer = begin + timedelta(seconds=rng.choice([0, 1, 3, 5]))
    end = answer + timedelta(seconds=rng.choice([0, 1, 29, 30, 31, 59, 61, 600, 3599, 7200]))
    fields = {
        "id": f"c{n}", "account": rng.choice(["acme", "ac me", "", "Zürich"]),
        "user": rng.choice(["alice", ""]), "direction": rng.choice(
            ["outbound"] * 12 + ["inbound", "inbound", "", "Outbound", "sideways"]),
        "from": "+3314", "to": rng.choice(numbers), "start": _stamp(begin, rng),
        "answer": _stamp(answer, rng) if rng.random() > 0.2 else "",
        "end": _stamp(end, rng) if rng.random() > 0.03 else "",
        "duration": "", "service": rng.choice(["", "voice"] * 10 + ["sms", "Voice", "fax"]),
        "text": rng.choice(["", "hi"] * 20 + ["a,b"]),
        "speech_seconds": rng.choice(["", "", "0"] * 5 + ["7"]),
    }  # fmt: skip
    if rng.random() < 0.15:
        fields["duration"] = str(rng.choice([0, 30, 61, 10**10]))
        if rng.random() < 0.5:
            fields["end"] = ""
    twist = rng.random()
    if twist < 0.03:
        fields["id"] = rng.choice(["", " c", "c "])
    elif twist < 0.05:
        fields["start"] = rng.choice(["not-a-time", "2026-02-30T10:00:00Z", "2026-03-28T24:00:00"])
    values = list(fields.values())
    if twist > 0.97:
        values.append("extra")
    elif twist > 0.95:
        values = values[:-2]
    text = ",".join(f'"{v}"' if "," in v else v for v in values)
    if 0.94 < twist <= 0.95:
        text = " , , ," if twist < 0.945 else ""
    ending = "\r\n" if rng.random() < 0.1 else "\n"
    return text + ending


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes((HEADER + "".join(lines)).encode("utf-8"))
    return path


def _both(tmp_path: Path, path: Path, timezone: str | None = None) -> tuple[bytes, bytes]:
    columns, rows = tmp_path / "columns.csv", tmp_path / "rows.csv"
    by_columns = rate_cdr_file(path, _rater(), columns, timezone=timezone, chunk_size=37)
    by_rows = rate_cdr_file(path, _rater(), rows, timezone=timezone, columnar=False,
                            chunk_size=37)  # fmt: skip
    assert by_columns == by_rows
    return columns.read_bytes(), rows.read_bytes()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("timezone", [None, "Europe/Paris"])
def test_rated_file_read_as_columns_is_byte_for_byte_the_per_row_one(
    tmp_path: Path, seed: int, timezone: str | None
) -> None:
    rng = random.Random(seed)
    path = _write(tmp_path / "cdrs.csv", [_line(n, rng) for n in range(1500)])
    by_columns, by_rows = _both(tmp_path, path, timezone)
    assert by_columns == by_rows
    assert by_columns.count(b"\r\n") > 1000


def test_blocks_split_anywhere_rate_the_same(tmp_path: Path) -> None:
    rng = random.Random(9)
    path = _write(tmp_path / "cdrs.csv", [_line(n, rng) for n in range(400)])
    reader = NativeColumnsReader(path, block_bytes=777)
    lines = [line for block in reader.blocks() for line in block.line.tolist()]
    assert lines == sorted(lines) and len(lines) > 100
    whole = NativeColumnsReader(path)
    assert lines == [line for block in whole.blocks() for line in block.line.tolist()]


def test_a_record_spanning_lines_sends_the_rest_of_the_file_per_row(tmp_path: Path) -> None:
    rng = random.Random(5)
    lines = [_line(n, rng) for n in range(300)]
    lines[150] = 'c150,acme,alice,outbound,+3314,+447700900123,2026-03-28T22:00:00Z,,' \
                 '2026-03-28T22:00:00Z,,sms,"two\nlines",\n'
    path = _write(tmp_path / "cdrs.csv", lines)
    by_columns, by_rows = _both(tmp_path, path)
    assert by_columns == by_rows
    assert may_span_lines(path)  # so workers do not cut it at line ends


def test_bad_lines_are_named_by_their_line_and_the_file_goes_on(tmp_path: Path) -> None:
    good = "c{n},acme,alice,outbound,+3314,+447700900123,2026-03-28T22:00:00Z,,"
    good += "2026-03-28T22:00:09Z,,voice,,\n"
    lines = [good.format(n=n) for n in range(6)]
    lines[1] = "c1,acme,short\n"
    lines[3] = good.format(n=3).replace("22:00:09", "25:00:09")
    path = tmp_path / "cdrs.csv"
    path.write_bytes(HEADER.encode() + b"".join(line.encode() for line in lines)
                     + b"c9,acme,\xff\xfe,outbound\n" + b"c10,a\x00b,x\n"
                     + good.format(n=11).encode()
                     + good.format(n=12).replace("2026-03-28T22:00:00Z,,",
                                                 "9999-12-31T23:59:59-01:00,,").encode()
                     )  # fmt: skip
    out = tmp_path / "out.csv"
    totals = rate_cdr_file(path, _rater(), out)
    assert (totals.records, totals.errors) == (10, 5)
    rows = out.read_text(encoding="utf-8").splitlines()
    assert "line 3: expected 13 columns" in rows[2]
    assert "line 5: end: not an ISO 8601 time" in rows[4]
    assert rows[7].startswith("c9,acme,\ufffd\ufffd,outbound,") and "line 8: not UTF-8" in rows[7]
    assert "line 9: expected 13 columns" in rows[8]  # a NUL is a character like any other
    assert rows[-2].startswith("c11,") and rows[-2].endswith(",")
    assert rows[-1].startswith("c12,") and "line 11: start must lie between" in rows[-1]


def test_two_workers_write_the_file_one_process_writes(tmp_path: Path) -> None:
    rng = random.Random(4)
    path = _write(tmp_path / "cdrs.csv", [_line(n, rng) for n in range(500)])
    whole = tmp_path / "whole.csv"
    rate_cdr_file(path, _rater(), whole)
    parts = []
    for k, span in enumerate(split_ranges(path, 3)):
        part = tmp_path / f"part{k}.csv"
        rate_cdr_file(path, _rater(), part, byte_range=span, header=False)
        parts.append(part.read_bytes())
    header, _, body = whole.read_bytes().partition(b"\r\n")
    assert b"".join(parts) == body
    assert not may_span_lines(path)


@pytest.mark.parametrize("timezone", [None, "America/New_York"])
def test_usage_text_built_from_columns_is_the_usage_text_of_the_event(
    tmp_path: Path, timezone: str | None
) -> None:
    """The text kept with a charge and hashed for idempotency: the same bytes whether the
    call was read as columns or as a `UsageEvent` (durations, naive times, blanks)."""
    from telbill.adapters.formats.cdr_native import read_native_cdrs
    from telbill.services.charging import usage_text
    from telbill.services.charging_columns import plain_calls, usage_texts

    rng = random.Random(11)
    path = _write(tmp_path / "cdrs.csv", [_line(n, rng) for n in range(1500)])
    with path.open(encoding="utf-8", newline="") as handle:
        events = {
            record.line: record for record in read_native_cdrs(handle, timezone=timezone)
            if not isinstance(record, RowError)
        }  # fmt: skip
    compared = 0
    for whole in NativeColumnsReader(path, timezone=timezone).blocks():
        block = whole.take(plain_calls(whole))
        texts = usage_texts(block, np.arange(len(block)), [], np.zeros(0, np.int64))
        for line, text in zip(block.line.tolist(), texts.to_pylist(), strict=True):
            assert text == usage_text(events[line]), line
            compared += 1
    assert compared > 100
