"""Helpers every CLI module shares: the database option, error handling, JSON and tables.

Errors a user can cause end the command with exit code 1 and one readable line on stderr
(``error: <reason>``), never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from telbill.adapters.db.engine import Database, database_url
from telbill.errors import TelbillError
from telbill.jsonable import to_jsonable

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one stderr line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TelbillError as exc:
            raise fail(f"{exc.message} ({exc.code})") from None
        except (OperationalError, ProgrammingError) as exc:
            text = str(exc.orig).splitlines()[0] if exc.orig else str(exc).splitlines()[0]
            if "no such table" in text or "does not exist" in text:
                raise fail(f"database is not initialised ({text}); run `telbill init`") from None
            raise fail(f"database error: {text}") from None
        except SQLAlchemyError as exc:
            raise fail(f"database error: {str(exc).splitlines()[0]}") from None

    return wrapper


def open_db(url: str | None) -> Database:
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
