"""CDR files are read as bytes: a bad line (not UTF-8, a NUL, an impossible time, a huge
column) is quarantined with its line and reason, and every good line of the file posts
(issue 15, finding 3: one latin-1 byte in a 21-row file charged 0 of its 20 good CDRs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from charging_support import (  # noqa: F401  (fixture)
    NATIVE_HEADER,
    World,
    cdr_line,
    retail_rows,
    world_fixture,
)

from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.services import charging
from telbill.services.charging_columns import post_cdr_file_columns
from telbill.services.reconcile import reconcile

GOOD = 20
# (what is wrong, the bad line's bytes from a good one, a word of the reason)
BAD_LINES = [
    ("latin-1 byte", lambda line: line.replace(b",alice,", b",alic\xe9,"), "UTF-8"),
    ("NUL", lambda line: line.replace(b",alice,", b",ali\x00ce,"), "NUL"),
    ("year 1", lambda line: line.replace(b"2026-", b"0001-", 1), "start"),
    ("huge column", lambda line: line.replace(b",alice,", b"," + b"a" * 1_000_000 + b","), "CSV"),
    ("long id", lambda line: b"x" * 201 + line[line.index(b",") :], "id"),
]


def _file(tmp_path: Path, spoil: object) -> Path:
    lines = [cdr_line(f"c{n}", "+15551234567", 30 + n).encode() for n in range(GOOD + 1)]
    lines[7] = spoil(lines[7])  # type: ignore[operator]
    path = tmp_path / "cdrs.csv"
    path.write_bytes(NATIVE_HEADER.encode() + b"".join(lines))
    return path


def _check(world: World, summary: charging.PostSummary, reason: str) -> None:
    assert (summary.posted, summary.quarantined) == (GOOD, 1), summary
    [problem] = summary.problems
    assert problem["line"] == 9 and reason in problem["reason"], problem
    [row] = charging.list_quarantine(world.db)
    assert row.line == 9 and reason in row.reason
    assert reconcile(world.db).ok


@pytest.mark.parametrize(
    ("spoil", "reason"), [b[1:] for b in BAD_LINES], ids=[b[0] for b in BAD_LINES]
)
def test_a_bad_line_of_a_file_read_per_row_is_quarantined_and_the_others_post(
    world: World, tmp_path: Path, spoil: object, reason: str
) -> None:
    path = _file(tmp_path, spoil)
    records = read_cdr_file(path, "native")
    _check(world, charging.post_cdrs(world.db, records, clock=world.clock, source="f"), reason)


@pytest.mark.parametrize(
    ("spoil", "reason"), [b[1:] for b in BAD_LINES], ids=[b[0] for b in BAD_LINES]
)
def test_a_bad_line_of_a_file_read_as_columns_is_quarantined_and_the_others_post(
    world: World, tmp_path: Path, spoil: object, reason: str
) -> None:
    path = _file(tmp_path, spoil)
    summary = post_cdr_file_columns(world.db, path, clock=world.clock, source="f", chunk_size=8)
    _check(world, summary, reason)


def test_a_latin1_byte_in_an_asterisk_file_is_refused_by_line(tmp_path: Path) -> None:
    row = (b"acme,1001,0044207123,ctx,clid,chan,dchan,Dial,data,2026-01-05 10:00:00,"
           b"2026-01-05 10:00:05,2026-01-05 10:01:06,66,61,ANSWERED,DOCUMENTATION\n")  # fmt: skip
    path = tmp_path / "Master.csv"
    path.write_bytes(row + row.replace(b"Dial", b"Di\xe4l") + row)
    first, bad, last = read_cdr_file(path, "asterisk")
    assert (first.line, bad.line, last.line) == (1, 2, 3)
    assert isinstance(bad, charging.RowError) and "lastapp: not UTF-8" in bad.reason, bad
