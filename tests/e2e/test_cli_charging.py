"""The charging commands as an operator uses them: post a file, read the quarantine,
explain a charge, drive a session, rerate."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from telbill.cli.main import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from charging_support import START, build_world, cdr_line, write_cdrs  # noqa: E402

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_operator_posts_a_cdr_file_twice_and_reads_what_happened(
    db_url: str, tmp_path: Path
) -> None:
    world = build_world(db_url)
    path = write_cdrs(tmp_path / "c.csv", [
        cdr_line("c1", "+447700900123", 61), cdr_line("c2", "+861012345678", 60),
    ])  # fmt: skip
    first = json.loads(run("cdr", "post", str(path), "--database", db_url, "--json"))
    assert (first["posted"], first["quarantined"]) == (1, 1)
    again = run("cdr", "post", str(path), "--database", db_url, "--quiet")
    assert "0 posted, 1 already posted" in again
    listed = json.loads(run("cdr", "quarantine", "list", "--database", db_url, "--json"))
    assert listed[0]["line"] == 3 and listed[0]["reason"].startswith("no_rate")
    explained = run("charge", "explain", "1", "--database", db_url)
    assert "matched prefix 44" in explained and "1.2" in explained
    period = ["--from", (START - timedelta(hours=1)).isoformat(),
              "--to", (START + timedelta(hours=1)).isoformat()]  # fmt: skip
    rerated = run("rerate", "--account", str(world.org.id), *period, "--database", db_url)
    assert "0 changed" in rerated


def test_operator_tests_a_dial_plan_with_session_commands(db_url: str) -> None:
    world = build_world(db_url)
    answer = json.loads(run("session", "authorize", "--account", str(world.user.id),
                            "--to", "+447700900123", "--database", db_url))  # fmt: skip
    assert answer["allowed"] and answer["max_seconds"] == 960
    ended = json.loads(run("session", "end", str(answer["session_id"]), "--duration", "61",
                           "--database", db_url))  # fmt: skip
    assert ended["charged"] == "1.200000"
    result = runner.invoke(app, ["session", "end", str(answer["session_id"]), "--duration",
                                 "99", "--database", db_url])  # fmt: skip
    assert result.exit_code == 1 and "idempotency" in result.output.lower()
