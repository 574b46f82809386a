"""The CLI's one error boundary: whatever a command raises ends as one line on stderr.

`run_inside_boundary` wraps every command (the root group's `invoke`): usage errors and
explicit exits keep their codes (2 for usage, 3 where a command documents it); any other
error prints ``error: <reason>`` (one line, control characters escaped) and exits 1. With the
global `--debug` the error propagates with its traceback instead.

Cheap to import (no SQLAlchemy, no Rich): it runs on every command, `--help` included.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from typer import BadParameter
from typer._click.globals import get_current_context
from typer.exceptions import Abort, Exit, TyperException

from telbill.errors import TelbillError

T = TypeVar("T")

EXIT_ERROR = 1
MAX_MESSAGE_CHARS = 2000
DATABASE_ENV = "TELBILL_DATABASE_URL"
_PASS_THROUGH = (TyperException, Abort, Exit, SystemExit, KeyboardInterrupt, GeneratorExit)


def run_inside_boundary(ctx: Any, command: Callable[[], T]) -> T:
    """Run the root group's `invoke`; turn any error into one stderr line and exit 1."""
    try:
        return command()
    except _PASS_THROUGH:
        raise
    except BrokenPipeError:
        raise  # a reader that stopped early (`| head`): Typer exits 1 quietly
    except BaseException as exc:
        if debugging(ctx):
            raise
        report(exc)
        raise Exit(EXIT_ERROR) from None


def debugging(ctx: Any = None) -> bool:
    """True when the global `--debug` was given (tracebacks wanted)."""
    if ctx is None:
        ctx = get_current_context(silent=True)
    if ctx is None:
        return False
    return bool(ctx.find_root().params.get("debug"))


def report(exc: BaseException) -> None:
    """Print ``error: <reason>`` for `exc` on stderr (one line)."""
    write_error_line(describe(exc))


def write_error_line(message: str) -> None:
    line = f"error: {one_line(message)}\n"
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed or full: the exit code still tells
        pass


def one_line(text: str) -> str:
    """`text` as one printable line: controls and lone surrogates escaped, length capped."""
    text = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"... ({len(text)} characters)"
    return text


def describe(exc: BaseException) -> str:
    """A user's reason for `exc` (the traceback is for `--debug`)."""
    if isinstance(exc, TelbillError):
        return f"{exc.message} ({exc.code})"
    database = _database_reason(exc)
    if database is not None:
        return database
    if isinstance(exc, UnicodeDecodeError):
        if bytes(exc.object[:2]) in (b"\xff\xfe", b"\xfe\xff"):
            return "input is UTF-16 text: save the file as UTF-8"
        bad = exc.object[exc.start : exc.start + 1].hex()
        return (
            f"input is not UTF-8 text (byte 0x{bad} at offset {exc.start}): save the file as UTF-8"
        )
    if isinstance(exc, UnicodeEncodeError):
        return f"text cannot be written as {exc.encoding}: {exc.reason}"
    pool = sys.modules.get("concurrent.futures.process")
    if pool is not None and isinstance(exc, pool.BrokenProcessPool):
        return (
            "a worker process ended abruptly (killed or out of memory); its part was not "
            "finished: run the command again (a replay charges nothing twice)"
        )
    csv_module = sys.modules.get("csv")
    if csv_module is not None and isinstance(exc, csv_module.Error):
        return f"CSV file: {exc}"
    if isinstance(exc, OSError):
        return _os_reason(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (is the input file too large?)"
    if isinstance(exc, RecursionError):
        return "input nested too deeply"
    detail = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {detail} (run with --debug for the traceback)"


def _os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    return f"{reason}: {' -> '.join(names)}" if names else reason


def _database_reason(exc: BaseException) -> str | None:
    """Database errors (only when SQLAlchemy is loaded: a command that never opened a
    database cannot raise one)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    orig = getattr(exc, "orig", None)
    text = (str(orig) if orig is not None else str(exc)).strip().splitlines() or [""]
    first = text[0]
    if isinstance(exc, sa_exc.OperationalError | sa_exc.ProgrammingError) and (
        "no such table" in first or "does not exist" in first
    ):
        return f"database is not initialised ({first}); run `telbill init`"
    return f"database error: {first}"


def use_database(ctx: Any, url: str) -> None:
    """Make `url` the database of this invocation (the global `--database`): commands and
    the processes they start read it from TELBILL_DATABASE_URL; restored when it ends."""
    if "\x00" in url or not url.isprintable() or len(url) > 4096:
        raise BadParameter("not a database URL", ctx=ctx, param_hint="'--database'")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise BadParameter("not UTF-8 text", ctx=ctx, param_hint="'--database'") from None
    previous = os.environ.get(DATABASE_ENV)
    os.environ[DATABASE_ENV] = url

    def restore() -> None:
        if previous is None:
            os.environ.pop(DATABASE_ENV, None)
        else:
            os.environ[DATABASE_ENV] = previous

    ctx.call_on_close(restore)
