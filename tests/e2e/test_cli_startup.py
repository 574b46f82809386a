"""How the `telbill` command starts: lazy areas, one registration table, a global --database.

The import boundary is a rule (what a command loads), not a timing: the CPU figures live in
benchmarks/cli_startup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from telbill.cli import main as cli_main
from telbill.cli.main import COMMANDS, app, load_commands

runner = CliRunner()


def modules_after(*args: str) -> set[str]:
    """The modules a fresh `telbill ARGS` process has imported when it exits."""
    script = (
        "import atexit, json, sys\n"
        "dump = lambda: sys.__stderr__.write('MODULES' + json.dumps(sorted(sys.modules)))\n"
        "atexit.register(dump)\n"
        "sys.argv = ['telbill', *sys.argv[1:]]\n"
        "from telbill.cli.main import main\n"
        "main()\n"
    )
    env = {**os.environ, "TELBILL_DATABASE_URL": "sqlite:///:memory:"}
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=120
    )
    return set(json.loads(done.stderr.rsplit("MODULES", 1)[1]))


def heavy(modules: set[str]) -> set[str]:
    roots = {"sqlalchemy", "fpdf", "fontTools", "pyarrow", "numpy", "fastapi", "alembic"}
    return {name for name in modules if name.split(".")[0] in roots}


def test_help_imports_no_area_module_and_no_database_library() -> None:
    modules = modules_after("--help")
    assert heavy(modules) == set()
    assert not {name for name in modules if name.startswith("telbill.services")}


def test_sms_segments_imports_neither_sqlalchemy_nor_fpdf() -> None:
    modules = modules_after("sms", "segments", "hello")
    assert heavy(modules) == set()


def test_quote_does_not_import_the_pdf_renderer() -> None:
    modules = modules_after("quote", "--tariff", "none", "--to", "+441234")
    assert "sqlalchemy" in modules  # it did open the database
    assert not {name for name in modules if name.split(".")[0] in {"fpdf", "fontTools"}}


def test_every_command_an_area_registers_has_its_line_in_the_registration_table() -> None:
    registered: dict[str, str] = {}
    for module_name in dict.fromkeys(
        [*cli_main.COMMAND_MODULES, *(m for m, _ in COMMANDS.values())]
    ):
        for name in load_commands(module_name):
            registered[name] = module_name
    assert registered == {name: module for name, (module, _) in COMMANDS.items()}


def test_top_level_help_lists_every_command_of_the_table() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name, (_, line) in COMMANDS.items():
        assert name in result.stdout and line[:30] in result.stdout


def test_database_is_accepted_before_the_command(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'top.db'}"
    assert runner.invoke(app, ["--database", url, "init"]).exit_code == 0
    created = runner.invoke(
        app,
        [
            "--database",
            url,
            "account",
            "create",
            "--kind",
            "provider",
            "--name",
            "Acme",
            "--currency",
            "USD",
            "--json",
        ],
    )
    assert created.exit_code == 0, created.output
    account_id = str(json.loads(created.stdout)["id"])
    listed = runner.invoke(app, ["-d", url, "account", "list", account_id, "--json"])
    assert [a["name"] for a in json.loads(listed.stdout)] == ["Acme"]
    assert (
        runner.invoke(app, ["--database", url, "tariff", "list", "--json"]).stdout.strip() == "[]"
    )
    assert os.environ.get("TELBILL_DATABASE_URL") != url  # nothing leaks past the command


def test_a_commands_own_database_option_wins_over_the_global_one(tmp_path) -> None:
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    for url in (first, second):
        assert runner.invoke(app, ["--database", url, "init"]).exit_code == 0
    made = ["account", "create", "--kind", "provider", "--name", "OnlyInB", "--currency", "USD"]
    made += ["--database", second]
    assert runner.invoke(app, ["--database", first, *made]).exit_code == 0
    in_b = runner.invoke(app, ["--database", first, "account", "show", "1", "-d", second])
    in_a = runner.invoke(app, ["--database", first, "account", "show", "1"])
    assert in_b.exit_code == 0 and "OnlyInB" in in_b.stdout
    assert in_a.exit_code == 1 and "not found" in in_a.stderr


def test_fpdf_is_imported_only_when_a_pdf_is_made() -> None:
    for args in (("invoice", "list", "1"), ("notify", "list", "1"), ("balance", "1")):
        assert not {m for m in modules_after(*args) if m.split(".")[0] == "fpdf"}, args
