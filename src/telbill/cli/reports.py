"""CLI of usage reports.

``telbill report calls ACCOUNT [--month 2026-03] [--json | --csv FILE]`` prints the call-cost
report of a user or an organisation (its subtree) for a month in the account's timezone (a
table of the first rows and the totals; ``--csv`` writes every row, streamed);
``telbill report counters ACCOUNT [--month M] [--by-campaign] [--json | --csv FILE]`` prints
a month's usage counters, of the account or broken down by campaign;
``telbill report campaign CAMPAIGN [--month M] [--json]`` prints a campaign's own counters;
``telbill report margin PROVIDER [--month M] [--json | --csv FILE]`` prints revenue, carrier
cost and margin per destination of a provider's (or any account's) subtree
(`services.margin`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
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
from telbill.services import counters as counters_service
from telbill.services import margin, reports
from telbill.services.clock import SystemClock

report_app = typer.Typer(help="Call-cost reports and usage counters.")

AccountArg = Annotated[int, typer.Argument(help="Account id (a user or an organisation).")]
MonthOption = Annotated[
    str | None, typer.Option(help="YYYY-MM in the account's timezone (default: this month).")
]
COUNTER_FIELDS = ("calls", "minutes", "sms", "speech_s", "unique_users")


@report_app.command("calls")
@handle_errors
def calls_command(
    account_id: AccountArg,
    month: MonthOption = None,
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
        export = reports.call_csv(db, account_id, chosen)
        with csv_file.open("w", encoding="utf-8", newline="") as out:
            out.writelines(export)
        console.print(f"wrote {export.rows} calls of {chosen} to {csv_file}")
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


def _counter_values(item: object) -> list[str]:
    return [f"{getattr(item, name):f}" if name == "minutes" else str(getattr(item, name))
            for name in COUNTER_FIELDS]  # fmt: skip


def _write_csv(path: Path, header: Sequence[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _by_campaign(
    account_id: int, month: str | None, json_output: bool, csv_file: Path | None,
    database: str | None,
) -> None:  # fmt: skip
    breakdown = counters_service.campaign_breakdown(
        open_db(database), account_id, now=SystemClock().now(), month=month
    )
    rows = [
        ["" if c.campaign_id is None else str(c.campaign_id), c.name or "(no campaign)",
         c.status or "", *_counter_values(c)]
        for c in breakdown.items
    ]  # fmt: skip
    if csv_file is not None:
        _write_csv(csv_file, ("campaign_id", "name", "status", *COUNTER_FIELDS), rows)
        console.print(f"wrote {len(rows)} campaigns of {breakdown.period} to {csv_file}")
        return
    if json_output:
        print_json(breakdown)
        return
    table = Table(title=f"account {account_id} by campaign, {breakdown.period} "
                        f"({breakdown.timezone})")  # fmt: skip
    for name in ("campaign", "name", "status", "calls", "minutes", "sms", "speech s", "users"):
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@report_app.command("counters")
@handle_errors
def counters_command(
    account_id: AccountArg,
    month: MonthOption = None,
    by_campaign: Annotated[
        bool, typer.Option("--by-campaign", help="One row per campaign.")
    ] = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write to this CSV file.")] = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Minutes, SMS, speech seconds and unique users of a month (default: this one)."""
    if by_campaign:
        _by_campaign(account_id, month, json_output, csv_file, database)
        return
    counters = counters_service.period_counters(
        open_db(database), account_id, now=SystemClock().now(), month=month
    )
    if csv_file is not None:
        _write_csv(csv_file, ("account_id", "period", *COUNTER_FIELDS),
                   [[str(account_id), counters.period, *_counter_values(counters)]])  # fmt: skip
        console.print(f"wrote the counters of {counters.period} to {csv_file}")
        return
    if json_output:
        print_json(counters)
        return
    table = Table(title=f"account {account_id}, {counters.period} ({counters.timezone})",
                  show_header=False)  # fmt: skip
    for name, value in zip(COUNTER_FIELDS, _counter_values(counters), strict=True):
        table.add_row(name.replace("_", " "), value)
    console.print(table)


@report_app.command("campaign")
@handle_errors
def campaign_command(
    campaign_id: Annotated[int, typer.Argument(help="Campaign id.")],
    month: MonthOption = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """A campaign's own counters of a month (its account's timezone)."""
    counters = counters_service.campaign_counters(
        open_db(database), campaign_id, now=SystemClock().now(), month=month
    )
    if json_output:
        print_json(counters)
        return
    table = Table(title=f"campaign {campaign_id} ({counters.name}, {counters.status}), "
                        f"{counters.period} ({counters.timezone})", show_header=False)  # fmt: skip
    for name, value in zip(COUNTER_FIELDS, _counter_values(counters), strict=True):
        table.add_row(name.replace("_", " "), value)
    console.print(table)


def _money_or_dash(value: object) -> str:
    return "-" if value is None else format_amount(value)  # type: ignore[arg-type]


@report_app.command("margin")
@handle_errors
def margin_command(
    provider_id: Annotated[int, typer.Argument(help="Provider account id (or any account).")],
    month: MonthOption = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write every destination to this CSV file.")
    ] = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Revenue, carrier cost and margin per destination of a month; charges whose cost is
    unknown are counted apart, never as a zero cost."""
    db = open_db(database)
    chosen = month or reports.current_month(db, provider_id, now=SystemClock().now())
    report = margin.margin_report(db, provider_id, chosen)
    if csv_file is not None:
        with csv_file.open("w", encoding="utf-8", newline="") as out:
            out.writelines(margin.csv_lines(report))
        console.print(f"wrote {len(report.rows)} destinations of {chosen} to {csv_file}")
        return
    if json_output:
        print_json(margin.report_json(report))
        return
    table = Table(title=f"margin of account {provider_id} in {chosen} ({report.timezone})")
    for name in ("destination", "prefix", "service", "charges", "revenue", "cost", "margin",
                 "margin %", "cost unknown"):  # fmt: skip
        table.add_column(name)
    for row in report.rows:
        percent = row.margin_percent
        table.add_row(
            row.destination or "", row.prefix or "", row.service, str(row.charges),
            f"{format_amount(row.revenue)} {row.currency}",
            "-" if row.margin is None else format_amount(row.cost),
            _money_or_dash(row.margin), "-" if percent is None else f"{percent} %",
            f"{row.unknown_charges} ({format_amount(row.unknown_revenue)})",
        )  # fmt: skip
    console.print(table)
    for total in report.totals:
        percent = total.margin_percent
        console.print(
            f"total {total.currency}: revenue {format_amount(total.revenue)}, cost "
            f"{'-' if total.margin is None else format_amount(total.cost)}, margin "
            f"{_money_or_dash(total.margin)}{'' if percent is None else f' ({percent} %)'}; "
            f"cost unknown for {total.unknown_charges} charges "
            f"({format_amount(total.unknown_revenue)})",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(report_app, name="report")
