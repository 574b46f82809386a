"""Bad input to the CLI ends in one `error:` line and exit 1, never a traceback (issue 15, 6).

Files that are not UTF-8, a NUL in a deck, `--out` to a folder or a full disk, a worker process
killed under `--workers`, and endless inputs (`/dev/zero`) all stop with a reason; `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db_templates import sqlite_database
from telbill.cli.main import app

runner = CliRunner()
DECK = "prefix,destination,rate\n44,UK,0.06\n1,US,0.01\n"
CDRS = "id,account,to,start,duration\nc1,1,+441234567,2026-03-02T09:00:00Z,61\n"


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A migrated SQLite database with the tariff `retail`."""
    url = sqlite_database(tmp_path / "errors.db")
    deck = tmp_path / "retail.csv"
    deck.write_text(DECK)
    imported = runner.invoke(app, ["-d", url, "tariff", "import", str(deck), "--name", "retail"])
    assert imported.exit_code == 0, imported.output
    return url


def fails_with_one_line(result, *, code: int = 1) -> str:
    """The `error:` line of a failed run (asserting there is exactly one and no traceback)."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_latin1_deck_is_one_error_line_naming_the_encoding(db: str, tmp_path: Path) -> None:
    deck = tmp_path / "latin1.csv"
    deck.write_bytes(b"prefix,destination,rate\n44,Fran\xe7e,0.06\n")
    result = runner.invoke(app, ["-d", db, "tariff", "import", str(deck), "--name", "l"])
    assert "not UTF-8" in fails_with_one_line(result)


def test_a_utf16_deck_is_named_as_utf16(db: str, tmp_path: Path) -> None:
    deck = tmp_path / "utf16.csv"
    deck.write_bytes(DECK.encode("utf-16"))
    result = runner.invoke(app, ["-d", db, "tariff", "import", str(deck), "--name", "u"])
    assert "UTF-16" in fails_with_one_line(result)


def test_a_nul_in_a_deck_is_reported_by_line_and_nothing_is_imported(
    db: str, tmp_path: Path
) -> None:
    deck = tmp_path / "nul.csv"
    deck.write_bytes(b"prefix,destination,rate\n44,UK,0.06\n33,F\x00R,0.0\x002\n")
    result = runner.invoke(app, ["-d", db, "tariff", "import", str(deck), "--name", "n"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "line 3" in result.stderr and "nothing imported" in result.stderr
    listed = runner.invoke(app, ["-d", db, "tariff", "list", "--json"])
    assert '"n"' not in listed.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["tariff", "import", "/dev/zero", "--name", "z"],
        ["cdr", "post", "/dev/zero"],
        ["rate", "/dev/zero", "--tariff", "retail", "--out", "OUT"],
        ["number", "import", "/dev/zero", "--provider", "1"],
        ["explain", "--charge-json", "/dev/zero"],
    ],
    ids=["tariff-import", "cdr-post", "rate", "number-import", "explain"],
)
def test_an_endless_device_is_refused_at_once(db: str, tmp_path: Path, args: list[str]) -> None:
    args = [str(tmp_path / "out.csv") if arg == "OUT" else arg for arg in args]
    result = runner.invoke(app, ["-d", db, *args])
    assert "not a regular file" in fails_with_one_line(result)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["tariff", "import", "FILE", "--name", "z"], "longer than"),
        (["number", "import", "FILE", "--provider", "1"], "longer than"),
        (["cdr", "post", "FILE"], "field larger than field limit"),
        (["rate", "FILE", "--tariff", "retail", "--out", "OUT"], "field larger than field limit"),
    ],
    ids=["tariff-import", "number-import", "cdr-post", "rate"],
)
def test_a_file_of_one_endless_line_stops_at_the_line_limit(
    db: str, tmp_path: Path, args: list[str], reason: str
) -> None:
    zeros = tmp_path / "zeros.csv"
    zeros.write_bytes(b"\0" * (3 << 20))
    named = {"FILE": str(zeros), "OUT": str(tmp_path / "out.csv")}
    result = runner.invoke(app, ["-d", db, *(named.get(arg, arg) for arg in args)])
    assert reason in fails_with_one_line(result)


def test_out_to_a_folder_is_refused_before_any_work(db: str, tmp_path: Path) -> None:
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(CDRS)
    result = runner.invoke(
        app, ["-d", db, "rate", str(cdrs), "--tariff", "retail", "--out", str(tmp_path)]
    )
    assert "is a folder" in fails_with_one_line(result)


def test_out_to_a_full_disk_is_one_error_line(db: str, tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(CDRS)
    result = runner.invoke(
        app, ["-d", db, "rate", str(cdrs), "--tariff", "retail", "--out", "/dev/full"]
    )
    assert "No space left on device" in fails_with_one_line(result)


def test_a_missing_file_is_named(db: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    for args in (["tariff", "import", str(missing), "--name", "x"], ["cdr", "post", str(missing)]):
        assert "not found" in fails_with_one_line(runner.invoke(app, ["-d", db, *args]))


def test_debug_shows_the_traceback_instead_of_one_line(db: str, tmp_path: Path) -> None:
    deck = tmp_path / "latin1.csv"
    deck.write_bytes(b"prefix,rate\n44,\xe9\n")
    result = runner.invoke(app, ["--debug", "-d", db, "tariff", "import", str(deck), "--name", "l"])
    assert isinstance(result.exception, UnicodeDecodeError)


def test_a_database_that_cannot_be_opened_is_one_error_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    result = runner.invoke(app, ["-d", url, "balance", "1"])
    assert "database error" in fails_with_one_line(result)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def _worker_of(pid: int) -> int | None:
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            return child
    return None


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_worker_process_is_one_error_line(db: str, tmp_path: Path) -> None:
    cdrs = tmp_path / "cdrs.csv"
    with cdrs.open("w") as out:
        out.write("id,account,to,start,duration\n")
        for n in range(200_000):
            out.write(f"c{n},1,+4412345{n % 1000:03d},2026-03-02T09:00:00Z,{n % 600}\n")
    command = [sys.executable, "-m", "telbill", "-d", db, "rate", str(cdrs), "--tariff"]
    command += ["retail", "--out", str(tmp_path / "rated.csv"), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    worker = None
    while worker is None and process.poll() is None and time.monotonic() < deadline:
        worker = _worker_of(process.pid)
        time.sleep(0.01)
    assert worker is not None, "the worker process was never seen"
    os.kill(worker, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stdout + stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "worker process ended abruptly" in line
