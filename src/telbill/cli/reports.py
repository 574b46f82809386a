"""CLI of usage reports.

``telbill report calls ACCOUNT [--month 2026-03] [--json | --csv FILE]`` prints the call-cost
report of a user or an organisation (its subtree) for a month in the account's timezone (a
table of the first rows and the totals; ``--csv`` writes every row, streamed);
``telbill report counters ACCOUNT`` prints this month's usage counters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from telbill.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    handle_errors,
    open_db,
    print_json,
)
from telbill.domain.money import format_amount
from telbill.services import reports
from telbill.services.clock import SystemClock

report_app = typer.Typer(help="Call-cost reports and usage counters.")

AccountArg = Annotated[int, typer.Argument(help="Account id (a user or an organisation).")]


@report_app.command("calls")
@handle_errors
def calls_command(
    account_id: AccountArg,
    month: Annotated[
        str | None, typer.Option(help="YYYY-MM in the account's timezone (default: this month).")
    ] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write every call to this CSV file.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown in the table or JSON.")] = 100,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Every call of a month with its cost, and the totals."""
    db = open_db(database)
    chosen = month or reports.current_month(db, account_id, now=SystemClock().now())
    if csv_file is not None:
        lines = reports.call_csv_lines(db, account_id, chosen)
        count = -1  # the header
        with csv_file.open("w", encoding="utf-8", newline="") as out:
            for line in lines:
                out.write(line)
                count += 1
        console.print(f"wrote {count} calls of {chosen} to {csv_file}")
        return
    report = reports.call_report(db, account_id, chosen, limit=limit)
    if json_output:
        print_json(report)
        return
    table = Table(title=f"calls of account {account_id} in {chosen} ({report.timezone})")
    for name in ("time", "user", "number", "destination", "duration s", "billed s", "cost"):
        table.add_column(name)
    for row in report.rows:
        table.add_row(
            row.time.strftime("%Y-%m-%d %H:%M:%S"), str(row.account_id), row.number,
            row.destination or "", str(row.duration_s), str(row.billed_s),
            f"{format_amount(row.cost)} {row.currency}",
        )  # fmt: skip
    console.print(table)
    for total in report.totals:
        console.print(
            f"total {total.currency}: {total.calls} calls, {total.billed_s} billed s, "
            f"{format_amount(total.cost)}"
        )
    if report.next_cursor is not None:
        console.print(f"(first {limit} rows shown; use --csv for all)")


@report_app.command("counters")
@handle_errors
def counters_command(
    account_id: AccountArg, json_output: JsonOption = False, database: DatabaseOption = None
) -> None:
    """Minutes, SMS, speech seconds and unique users of this month."""
    counters = reports.period_counters(open_db(database), account_id, now=SystemClock().now())
    if json_output:
        print_json(counters)
        return
    table = Table(title=f"account {account_id}, {counters.period} ({counters.timezone})",
                  show_header=False)  # fmt: skip
    for name, value in (
        ("calls", counters.calls), ("minutes", f"{counters.minutes:f}"),
        ("sms", counters.sms), ("speech s", counters.speech_s),
        ("unique users", counters.unique_users),
    ):  # fmt: skip
        table.add_row(name, str(value))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(report_app, name="report")
