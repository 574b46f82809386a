"""Helpers every CLI module shares: the database option, error handling, JSON and tables.

Errors a user can cause end the command with exit code 1 and one readable line on stderr
(``error: <reason>``), never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from telbill.cli.boundary import debugging, describe, one_line
from telbill.errors import TelbillError
from telbill.jsonable import to_jsonable

if TYPE_CHECKING:
    from rich.console import Console

    from telbill.adapters.db.engine import Database

    console: Console  # made on first use, see `__getattr__`
    err_console: Console

P = ParamSpec("P")
R = TypeVar("R")


_CONSOLES: dict[str, Console] = {}


def _console(name: str) -> Console:
    """`console` (stdout) or `err_console` (stderr), made on first use: commands that print
    no table never import Rich."""
    if name not in _CONSOLES:
        from rich.console import Console

        _CONSOLES[name] = Console(stderr=name == "err_console")
    return _CONSOLES[name]


def __getattr__(name: str) -> Any:  # `from telbill.cli.common import console` (PEP 562)
    if name in ("console", "err_console"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="Database URL (default: TELBILL_DATABASE_URL or sqlite:///telbill.db).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise (exit code 1)."""
    from rich.markup import escape

    _console("err_console").print(
        f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code=1)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures (telbill's and the database's) into one stderr line and exit
    code 1; anything else goes on to the boundary of `cli.main` (which does the same)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if debugging() or not expected_error(exc):
                raise
            raise fail(describe(exc)) from None

    return wrapper


def expected_error(exc: BaseException) -> bool:
    """True for telbill's own errors and the database's (reported without a traceback)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return isinstance(exc, TelbillError) or (
        sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError)
    )


def open_db(url: str | None) -> Database:
    from telbill.adapters.db.engine import Database, database_url

    return Database(url or database_url())


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2) + "\n")


__all__ = [
    "DatabaseOption",
    "JsonOption",
    "console",
    "err_console",
    "fail",
    "handle_errors",
    "open_db",
    "print_json",
    "to_jsonable",
]
