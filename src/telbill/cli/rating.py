"""CLI commands of the rating area: quote, rate (offline), explain (`sms` is in cli/sms.py).

Thin: parse, load the tariff, call the rating services, render. Errors end with one readable
line on stderr and a non-zero exit: 3 when no rate matches (so scripts can tell "not
priced" from a failure), 1 for any other telbill error. Tariffs are read from the database at
``--database`` / TELBILL_DATABASE_URL (imported with ``telbill tariff import``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer

from telbill.adapters.formats.cdr_common import CDR_FORMATS, parse_timestamp
from telbill.cli.common import expected_error, fail, handle_errors, open_db
from telbill.cli.files import input_path, output_path
from telbill.domain.money import format_amount
from telbill.domain.tariffs import Direction, Service
from telbill.errors import InvalidInput, NoRate
from telbill.services.quotes import (
    QuoteRequest,
    cached_quote_index,
    load_tariff_index,
    quote,
    quote_summary,
    remember_quote_index,
    render_explanation,
)

# Imports stay light (no SQLAlchemy, numpy or Rich at import): `quote` answers from the
# compiled-tariff cache without them; `rate` imports its pipeline when it runs.
DEFAULT_DATABASE_URL = "sqlite:///telbill.db"  # as adapters.db.engine (a test keeps them equal)
DEFAULT_CHUNK_SIZE = 5_000  # as services.cdr_rating (a test keeps them equal)

EXIT_ERROR = 1
EXIT_NO_RATE = 3

DatabaseOption = typer.Option(
    None,
    "--database",
    "-d",
    envvar="TELBILL_DATABASE_URL",
    help="Database URL (default: TELBILL_DATABASE_URL or sqlite:///telbill.db).",
    show_default=False,
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("quote")(quote_command)
    app.command("rate")(rate_command)
    app.command("explain")(explain_command)


# --- plumbing ---------------------------------------------------------------------------


def _reraise(exc: BaseException) -> NoReturn:
    raise exc


@contextmanager
def _errors_as_exit() -> Iterator[None]:
    """One readable line on stderr, no traceback: exit 3 for no rate, else 1 (as every
    other command, through `cli.common.handle_errors`)."""
    try:
        yield
    except NoRate as exc:
        fail(f"{exc.message} ({exc.code})")
        raise typer.Exit(EXIT_NO_RATE) from None
    except Exception as exc:
        if not expected_error(exc):
            raise
        handle_errors(_reraise)(exc)


def _tariff_index(
    name: str, database: str | None, at: datetime | None = None, provider: int | None = None
) -> Any:
    """Load tariff `name` (the version in force `at`, else the newest) as a rate index, from
    the catalogue of `provider` (its own and the operator's shared; None: the operator's)."""
    from telbill.services.tariffs import provider_viewer

    db = open_db(database)
    try:
        return load_tariff_index(db, name, at=at, viewer=provider_viewer(db, provider))
    finally:
        db.dispose()


def _quote_index(
    name: str, database: str | None, request: QuoteRequest, provider: int | None = None
) -> Any:
    """The index that prices `request`: from the on-disk compiled-tariff cache when it holds
    the version in force (no SQLAlchemy, no deck loaded), else loaded, compiled and cached.
    The cache holds the operator's catalogue; a `provider`'s view is always read."""
    if provider is not None:
        return _tariff_index(name, database, request.at, provider)
    url = database or os.environ.get("TELBILL_DATABASE_URL") or DEFAULT_DATABASE_URL
    index = cached_quote_index(url, name, request)
    if index is None:
        index = _tariff_index(name, database, request.at)
        remember_quote_index(url, name, request, index)
    return index


def _parse_choice(kind: type[Service] | type[Direction], value: str, option: str) -> Any:
    try:
        return kind(value.strip().lower())
    except ValueError as exc:
        choices = ", ".join(item.value for item in kind)
        raise InvalidInput(f"{option}: {value!r} is not one of {choices}") from exc


def _quote_request(
    to: str,
    from_: str | None,
    service: str,
    direction: str,
    duration: int | None,
    text: str | None,
    at: str | None,
    units: int | None = None,
) -> QuoteRequest:
    when = parse_timestamp(at, "--at") if at else datetime.now(UTC)
    return QuoteRequest(
        to_number=to,
        at=when,
        service=_parse_choice(Service, service, "--service"),
        direction=_parse_choice(Direction, direction, "--direction"),
        from_number=from_,
        duration_s=duration,
        text=text,
        units=units,
    )


TariffOption = typer.Option(..., "--tariff", help="Tariff name.")
ToOption = typer.Option(..., "--to", help="Called number (E.164, 00-international or digits).")
FromOption = typer.Option(None, "--from", help="Calling number.")
ServiceOption = typer.Option("voice", "--service", help="voice or sms.")
DirectionOption = typer.Option("outbound", "--direction", help="outbound or inbound.")
DurationOption = typer.Option(None, "--duration", min=0, help="Call seconds (default 60).")
TextOption = typer.Option(None, "--text", help="SMS text (default: one segment).")
AtOption = typer.Option(None, "--at", help="Start time, ISO 8601 (default now; naive = UTC).")
UnitsOption = typer.Option(None, "--units", min=0, help="Data bytes or generic units.")


# --- quote ------------------------------------------------------------------------------


def quote_command(
    tariff: str = TariffOption,
    to: str = ToOption,
    from_: str | None = FromOption,
    service: str = ServiceOption,
    direction: str = DirectionOption,
    duration: int | None = DurationOption,
    text: str | None = TextOption,
    at: str | None = AtOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    database: str | None = DatabaseOption,
    provider: int | None = typer.Option(
        None, "--provider", help="Provider account id: its catalogue (default: the operator's)."
    ),
    units: int | None = UnitsOption,
) -> None:
    """Price a call or a message and show the breakdown. Exit 3 when no rate matches."""
    with _errors_as_exit():
        request = _quote_request(to, from_, service, direction, duration, text, at, units)
        rated = quote(request, _quote_index(tariff, database, request, provider))
        summary = quote_summary(rated)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(_quote_text(summary))


def _quote_text(summary: dict[str, Any]) -> str:
    if summary["prefix"] is None:  # priced without a row (a free local extension)
        note = summary["charges"][0]["explanation"].get("note") or "no rate row"
        return (
            f"{summary['service']} to {summary['to']}: {note}\ncost {summary['cost']} "
            + f"{summary['currency']}  [tariff {summary['tariff']} v{summary['tariff_version']}]"
        )
    where = f"{summary['destination']} (prefix {summary['prefix']})"
    lines = [
        f"{summary['service']} {summary['direction']} to {summary['to']}: {where}",
        f"cost {summary['cost']} {summary['currency']}  "
        f"[tariff {summary['tariff']} v{summary['tariff_version']}]",
    ]
    if summary.get("segments") is not None or summary["service"] in {"sms", "mms"}:
        encoding = f", {summary['encoding']}" if summary.get("encoding") else ""
        lines.append(
            f"{summary['segments']} segment(s){encoding} at {summary['rate']} "
            f"{summary['rate_unit']}, connect fee {summary['connect_fee']}"
        )
    elif summary.get("unit"):  # data bytes or generic units
        lines.append(
            f"{summary['billed_units']} {summary['unit']} billed at {summary['rate']} "
            f"{summary['rate_unit']}, connect fee {summary['connect_fee']}"
        )
    else:
        lines.append(
            f"{summary['duration_s']} s billed as {summary['billed_seconds']} s "
            f"(increment {summary['increment']}) at {summary['rate']} {summary['rate_unit']}, "
            f"connect fee {summary['connect_fee']}"
        )
    if summary.get("parts"):
        parts = " + ".join(f"{p['billed_s']} s at {p['rate']}" for p in summary["parts"])
        lines.append(f"split at band changes: {parts} {summary['rate_unit']}")
    return "\n".join(lines)


# --- explain ----------------------------------------------------------------------------


def explain_command(
    tariff: str | None = typer.Option(None, "--tariff", help="Tariff name (for a quote)."),
    to: str | None = typer.Option(None, "--to", help="Called number (for a quote)."),
    from_: str | None = FromOption,
    service: str = ServiceOption,
    direction: str = DirectionOption,
    duration: int | None = DurationOption,
    text: str | None = TextOption,
    at: str | None = AtOption,
    charge_file: Path | None = typer.Option(
        None,
        "--charge-json",
        help="Render stored charge JSON instead (a charge, a list, or a quote's --json).",
    ),
    database: str | None = DatabaseOption,
) -> None:
    """Show, step by step, how a charge is computed: a quote, or charges stored as JSON."""
    with _errors_as_exit():
        if charge_file is not None:
            charges = _stored_charges(charge_file)
        else:
            if not tariff or not to:
                raise InvalidInput("give --tariff and --to (or --charge-json FILE)")
            request = _quote_request(to, from_, service, direction, duration, text, at)
            charges = list(quote(request, _quote_index(tariff, database, request)).charges)
        typer.echo("\n\n".join(render_explanation(charge) for charge in charges))


def _stored_charges(path: Path) -> list[Any]:
    input_path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read charge JSON {path}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("charges"), list):
        data = data["charges"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise InvalidInput(f"{path}: expected a charge object or a list of them")
    return items


# --- rate -------------------------------------------------------------------------------


def rate_command(
    cdr_file: Path = typer.Argument(..., help="CDR file (or folder of FreeSWITCH JSON)."),
    tariff: str = TariffOption,
    fmt: str = typer.Option("native", "--format", help=" | ".join(CDR_FORMATS)),
    out: Path = typer.Option(..., "--out", help="Output CSV: input columns + rated columns."),
    timezone: str | None = typer.Option(
        None, "--timezone", help="Zone of naive/local stamps in the file (default UTC)."
    ),
    chunk_size: int = typer.Option(DEFAULT_CHUNK_SIZE, "--chunk-size", min=1),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Processes rating parts of a native file (more cores)."
    ),
    database: str | None = DatabaseOption,
    provider: int | None = typer.Option(
        None, "--provider", help="Provider account id: its catalogue (default: the operator's)."
    ),
) -> None:
    """Rate a CDR file offline into a CSV (no balance is touched). Bad rows get `error`.

    Each call is priced by the tariff version in force at its start.
    """
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from telbill.adapters.formats.cdrs import cdr_input_size
    from telbill.services.cdr_rate_files import rate_cdr_file_workers
    from telbill.services.tariffs import provider_viewer

    with _errors_as_exit():
        input_path(cdr_file, folder_ok=True)
        output_path(out)
        db = open_db(database)
        progress = Progress(
            TextColumn("rating"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty(),
        )  # fmt: skip
        try:
            viewer = provider_viewer(db, provider)
            with progress:
                task = progress.add_task("rate", total=cdr_input_size(cdr_file))
                totals = rate_cdr_file_workers(
                    db, tariff, cdr_file, out, workers=workers, fmt=fmt, timezone=timezone,
                    chunk_size=chunk_size, progress=lambda n: progress.advance(task, n),
                    viewer=viewer,
                )  # fmt: skip
        finally:
            db.dispose()
    err = Console(stderr=True)
    costs = ", ".join(f"{format_amount(v, 6)} {k}" for k, v in sorted(totals.cost.items()))
    err.print(
        f"rated {totals.rated} of {totals.records} record(s), {totals.errors} error(s); "
        f"total {costs or '0'} -> {out}"
    )
