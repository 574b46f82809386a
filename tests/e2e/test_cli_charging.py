"""The charging commands as an operator uses them: post a file, read the quarantine,
explain a charge, drive a session, rerate."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from telbill.cli.main import app
from telbill.services import accounts

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


def test_quarantine_commands_with_an_account_act_for_that_tenant_only(
    db_url: str, tmp_path: Path
) -> None:
    world = build_world(db_url)
    other = accounts.create_account(world.db, kind="provider", name="Zeta", currency="USD",
                                    idempotency_key="zeta", clock=world.clock)  # fmt: skip
    acme, zeta = str(world.provider.id), str(other.id)
    unknown = write_cdrs(tmp_path / "unknown.csv", [cdr_line("u1", "+447700900123", 60,
                                                             account="nobody")])  # fmt: skip
    run("cdr", "post", str(unknown), "--account", zeta, "--database", db_url, "--quiet")
    no_rate = write_cdrs(tmp_path / "no_rate.csv", [cdr_line("n1", "+861012345678", 60)])
    run("cdr", "post", str(no_rate), "--account", acme, "--database", db_url, "--quiet")
    run("cdr", "post", str(unknown), "--database", db_url, "--quiet")  # the platform's own

    def listed(*account: str) -> list[int]:
        out = run("cdr", "quarantine", "list", *account, "--database", db_url, "--json")
        return [item["id"] for item in json.loads(out)]

    (acme_row,), (zeta_row,) = listed("--account", acme), listed("--account", zeta)
    assert len(listed()) == 3 and acme_row != zeta_row
    assert listed("--account", str(world.org.id)) == [acme_row]  # the usage's organisation
    repost = ["cdr", "quarantine", "repost", str(zeta_row), "--account", acme]
    foreign = runner.invoke(app, [*repost, "--set", "account=alpha", "--database", db_url])
    assert foreign.exit_code != 0 and "not found" in foreign.output
    fixed = run("cdr", "quarantine", "repost", str(acme_row), "--account", acme,
                "--set", "to=+447700900123", "--database", db_url)  # fmt: skip
    assert "1 posted" in fixed


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


def test_operator_posts_a_cdr_file_with_two_workers_and_again_with_one(
    db_url: str, tmp_path: Path
) -> None:
    build_world(db_url).db.dispose()
    lines = [cdr_line(f"c{n}", "+15551234567", 30 + n) for n in range(7)]
    lines.append(cdr_line("c7", "+861012345678", 60))  # no rate: quarantined
    path = write_cdrs(tmp_path / "c.csv", lines)
    post = ["cdr", "post", str(path), "--database", db_url, "--chunk-size", "2", "--json"]
    first = json.loads(run(*post, "--workers", "2"))
    assert (first["records"], first["posted"], first["quarantined"]) == (8, 7, 1)
    again = json.loads(run(*post))
    assert (again["posted"], again["duplicates"]) == (0, 7)
    listed = json.loads(run("cdr", "quarantine", "list", "--database", db_url, "--json"))
    assert [row["line"] for row in listed] == [9]
