"""Fuzzing every CLI command with hostile arguments: never a traceback (issue 15).

Each command found in the CLI tree (except `serve` and `demo`, which serve forever, and the
network options) is run with values drawn from NUL bytes, lone surrogates, huge strings and
numbers, overflow dates, missing files and devices. Whatever it is given, a command ends with
exit 0, 1 (one `error:` line), 2 (usage) or 3 (no rate), and never an uncaught exception.

Derandomised (the same examples every run); TELBILL_FUZZ_FRESH=1 explores new ones and
TELBILL_FUZZ_EXAMPLES sets how many per command.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from db_templates import sqlite_database
from telbill.cli.main import COMMANDS, app, load_commands

FUZZ = settings(
    max_examples=int(os.environ.get("TELBILL_FUZZ_EXAMPLES", "6")),
    derandomize=not os.environ.get("TELBILL_FUZZ_FRESH"),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
SKIPPED_COMMANDS = {("serve",), ("demo",)}  # they serve until stopped
SKIPPED_OPTIONS = {"--stream", "--host", "--port", "--every"}  # network, run-forever loops
EXIT_CODES = {0, 1, 2, 3}

HOSTILE = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udcff\udcfe",
    "x" * 100_000,
    "9" * 5_000,
    "-1",
    "0",
    "1",
    "2",
    "99999999999999999999999",
    "1e999",
    "NaN",
    "-0.000001",
    "9223372036854.78",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0000-01",
    "9999-12",
    "2026-02-30",
    "+441234567890",
    "USD",
    "retail",
    "[bold red]x[/]",
    "%s%n{0}",
    "../../../../etc/passwd",
    "/dev/zero",
    "/dev/full",
    "/nonexistent/dir/file.csv",
    "Europe/" + "A" * 300,
    "key=value,=,==",
    "60/0",
    "\u202e\u0000\ufeff",
]
VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
)


def leaf_commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    def walk(path: tuple[str, ...], command: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                yield from walk((*path, name), child)
        elif path not in SKIPPED_COMMANDS:
            yield path, command

    for name, (module, _) in COMMANDS.items():
        yield from walk((name,), load_commands(module)[name])


LEAVES = dict(leaf_commands())


@st.composite
def invocations(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    """Arguments for the command at `path`: each parameter given a hostile value (options
    sometimes left out, required ones sometimes too)."""
    args: list[str] = [*path]
    for param in LEAVES[path].params:
        name = param.opts[0]
        if name in SKIPPED_OPTIONS or name == "--help":
            continue
        if param.param_type_name == "argument":
            count = 1 if param.nargs == 1 else draw(st.integers(0, 2))
            args += [draw(VALUES) for _ in range(count)]
            if count and not draw(st.integers(0, 9)):
                args.pop()  # a missing argument
        elif not draw(st.booleans()):
            continue
        elif param.is_flag:
            args.append(name)
        else:
            args += [name, draw(VALUES)]
    return args


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A migrated SQLite database with a provider, an organisation and a tariff."""
    folder = tmp_path_factory.mktemp("fuzz-cli")
    url = sqlite_database(folder / "fuzz.db")
    deck = folder / "retail.csv"
    deck.write_text("prefix,destination,rate\n44,UK,0.06\n1,US,0.01\n")
    runner = CliRunner()
    for args in (
        ["tariff", "import", str(deck), "--name", "retail"],
        ["account", "create", "--kind", "provider", "--name", "P", "--currency", "USD"],
        ["account", "create", "--kind", "organisation", "--name", "O", "--parent", "1"],
        ["topup", "2", "10.00", "--payment-ref", "fuzz"],
    ):
        result = runner.invoke(app, ["-d", url, *args])
        assert result.exit_code == 0, (args, result.output)
    return {"url": url, "folder": folder}


def run_hostile(world: dict[str, Any], args: list[str]) -> None:
    runner = CliRunner()
    with contextlib.chdir(world["folder"]):  # relative paths land in the test's folder
        result = runner.invoke(app, ["-d", world["url"], *args])
    shown = f"{args!r:.300}"
    assert isinstance(result.exception, SystemExit | None), (shown, result.exception)
    assert result.exit_code in EXIT_CODES, (shown, result.exit_code)
    assert "Traceback" not in result.output, shown
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        # one `error:` line; a deck's bad lines then "nothing imported"; a prompt with no
        # input (a password) "Aborted."
        endings = ("error:", "Aborted")
        said = any(line.startswith(endings) or "nothing imported" in line for line in lines)
        assert said, (shown, result.stderr[:300])


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_no_command_shows_a_traceback_for_hostile_arguments(
    world: dict[str, Any], path: tuple[str, ...]
) -> None:
    @FUZZ
    @given(args=invocations(path))
    def check(args: list[str]) -> None:
        run_hostile(world, args)

    check()


@pytest.mark.parametrize(
    "args",
    [
        ["quote", "--tariff", "retail", "--to", "+44", "--at", "0001-01-01T00:00:00+14:00"],
        ["quote", "--tariff", "retail", "--to", "\x00", "--duration", "99999999999999999999"],
        ["tariff", "import", "/nonexistent.csv", "--name", "\ud800"],
        ["report", "calls", "2", "--month", "0000-01"],
        ["report", "margin", "1", "--month", "9999-12"],
        ["sms", "segments", "\ud800"],
        ["account", "show", "99999999999999999999"],
        ["topup", "2", "1" + "0" * 10_000, "--payment-ref", "x"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_pinned_hostile_invocations_end_cleanly(world: dict[str, Any], args: list[str]) -> None:
    run_hostile(world, args)


def test_every_command_of_the_tree_is_fuzzed() -> None:
    assert ("sms", "segments") in LEAVES and ("tariff", "import") in LEAVES
    assert len(LEAVES) >= 50
