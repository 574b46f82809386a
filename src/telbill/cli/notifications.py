"""CLI of notifications and receipts.

``telbill notify thresholds ACCOUNT [--level 0.50 --level 0.20:at_or_below | --no-levels]
[--spend-days N
--spend-window M | --no-spend]`` shows or sets low-balance thresholds; ``notify list`` /
``notify read`` are the in-app channel; ``notify webhook add|list`` and ``notify email add``
register endpoints; ``notify deliver`` sends what is due from the outbox (run it from cron or
a loop); ``notify check`` evaluates every wallet's thresholds. ``telbill receipt pdf ID --out
FILE`` writes a top-up receipt as PDF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from telbill.adapters.notify.email import SmtpEmailSender
from telbill.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    handle_errors,
    open_db,
    print_json,
)
from telbill.services import invoice_documents, notifications, receipts, thresholds
from telbill.services.clock import SystemClock

notify_app = typer.Typer(help="Low-balance thresholds, notifications, webhooks, email.")
webhook_app = typer.Typer(help="Webhook endpoints (signed with HMAC-SHA256).")
email_app = typer.Typer(help="Email addresses that receive notifications over SMTP.")
receipt_app = typer.Typer(help="Top-up receipts.")

AccountArg = Annotated[int, typer.Argument(help="Account id.")]
EventTypesOption = Annotated[
    list[str] | None, typer.Option("--event", help="Event type to send (repeat); default all.")
]


@notify_app.command("thresholds")
@handle_errors
def thresholds_command(
    account_id: AccountArg,
    level: Annotated[
        list[str] | None,
        typer.Option(
            "--level",
            help="A fixed threshold (repeat): LEVEL warns below it, LEVEL:at_or_below also "
            "at it (default below; at_or_below for 0).",
        ),
    ] = None,
    no_levels: Annotated[bool, typer.Option("--no-levels", help="No fixed thresholds.")] = False,
    spend_days: Annotated[int | None, typer.Option(help="Warn below N days of spend.")] = None,
    spend_window: Annotated[int | None, typer.Option(help="Average over M days.")] = None,
    no_spend: Annotated[bool, typer.Option("--no-spend", help="No spend threshold.")] = False,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Show the thresholds of an account's wallet, or replace them when options are given."""
    db = open_db(database)
    current = thresholds.get_settings(db, account_id)
    if level or no_levels or spend_days or spend_window or no_spend:
        days = None if no_spend else (spend_days or current.spend_days)
        window = None if no_spend else (spend_window or current.spend_window_days)
        if not no_spend and days is not None and window is None:
            window = thresholds.DEFAULT_SPEND_WINDOW_DAYS
        levels: list[Any] = []
        modes: list[str | None] = []
        if level and not no_levels:
            levels, modes = _levels_and_modes(level)
        elif not no_levels:
            levels, modes = list(current.fixed_levels), list(current.fixed_modes)
        current = thresholds.set_settings(
            db,
            account_id,
            fixed_levels=levels,
            spend_days=days,
            spend_window_days=window,
            now=SystemClock().now(),
            fixed_modes=modes,
        )
    if json_output:
        print_json(current)
        return
    table = Table(title=f"thresholds of account {current.account_id}", show_header=False)
    fixed = [
        f"{lvl:f} ({mode.replace('_', ' ')})"
        for lvl, mode in zip(current.fixed_levels, current.fixed_modes, strict=True)
    ]
    table.add_row("fixed", ", ".join(fixed) or "none")
    spend = (
        f"under {current.spend_days} days of the last {current.spend_window_days} days' spend"
        if current.spend_days
        else "off"
    )
    table.add_row("spend-based", spend)
    table.add_row("source", "defaults" if current.is_default else "account settings")
    console.print(table)


def _levels_and_modes(options: list[str]) -> tuple[list[str], list[str | None]]:
    """``0.50`` or ``0.50:at_or_below`` per option: the levels and their modes (None: the
    level's default)."""
    levels: list[str] = []
    modes: list[str | None] = []
    for option in options:
        text, _, mode = option.partition(":")
        levels.append(text)
        modes.append(mode or None)
    return levels, modes


@notify_app.command("list")
@handle_errors
def list_command(
    account_id: AccountArg,
    unread: Annotated[bool, typer.Option("--unread", help="Only unread ones.")] = False,
    after_id: Annotated[int, typer.Option(help="Page after this event id.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """In-app notifications of an account, oldest first."""
    items = notifications.list_notifications(
        open_db(database), account_id, unread_only=unread, after_id=after_id, limit=limit
    )
    if json_output:
        print_json(items)
        return
    table = Table(title=f"notifications of account {account_id}")
    for column in ("id", "time", "type", "details", "read"):
        table.add_column(column)
    for item in items:
        details = ", ".join(f"{k}={v}" for k, v in sorted(item.payload.items()))
        table.add_row(
            str(item.event_id),
            item.occurred_at.strftime("%Y-%m-%d %H:%M"),
            item.type,
            details,
            "yes" if item.read_at else "",
        )
    console.print(table)


@notify_app.command("read")
@handle_errors
def read_command(
    account_id: AccountArg,
    event_ids: Annotated[list[int] | None, typer.Argument(help="Event ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Mark every notification read.")] = False,
    database: DatabaseOption = None,
) -> None:
    """Mark notifications read."""
    if not event_ids and not all_:
        raise typer.BadParameter("give event ids or --all")
    marked = notifications.mark_read(
        open_db(database), account_id, None if all_ else event_ids, now=SystemClock().now()
    )
    console.print(f"marked {marked} notification(s) read")


def _endpoint_table(items: list[notifications.Endpoint], title: str) -> Table:
    table = Table(title=title)
    for column in ("id", "target", "events", "active", "created"):
        table.add_column(column)
    for e in items:
        table.add_row(
            str(e.id),
            e.target,
            ", ".join(e.event_types) if e.event_types else "all",
            "yes" if e.active else "no",
            e.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    return table


@webhook_app.command("add")
@handle_errors
def webhook_add(
    account_id: AccountArg,
    url: Annotated[str, typer.Argument(help="https:// URL receiving POSTs.")],
    event: EventTypesOption = None,
    secret: Annotated[str | None, typer.Option(help="Signing secret (generated).")] = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Register a webhook; prints its signing secret (shown only now)."""
    endpoint = notifications.add_endpoint(
        open_db(database),
        account_id,
        kind="webhook",
        target=url,
        event_types=event or None,
        secret=secret,
        now=SystemClock().now(),
    )
    if json_output:
        print_json(endpoint)
        return
    console.print(f"webhook {endpoint.id} -> {endpoint.target}")
    console.print(f"secret: {endpoint.secret}", highlight=False)


@webhook_app.command("list")
@handle_errors
def webhook_list(
    account_id: AccountArg, json_output: JsonOption = False, database: DatabaseOption = None
) -> None:
    """Webhooks of an account."""
    items = [e for e in notifications.list_endpoints(open_db(database), account_id)]
    items = [e for e in items if e.kind == "webhook"]
    if json_output:
        print_json([{**notifications_fields(e)} for e in items])
        return
    console.print(_endpoint_table(items, f"webhooks of account {account_id}"))


def notifications_fields(endpoint: notifications.Endpoint) -> dict[str, object]:
    """An endpoint without its secret."""
    return {
        "id": endpoint.id,
        "account_id": endpoint.account_id,
        "kind": endpoint.kind,
        "target": endpoint.target,
        "event_types": endpoint.event_types,
        "active": endpoint.active,
        "created_at": endpoint.created_at,
    }


@email_app.command("add")
@handle_errors
def email_add(
    account_id: AccountArg,
    address: Annotated[str, typer.Argument(help="Email address.")],
    event: EventTypesOption = None,
    database: DatabaseOption = None,
) -> None:
    """Send an account's notifications to an email address (SMTP: TELBILL_SMTP_*)."""
    endpoint = notifications.add_endpoint(
        open_db(database),
        account_id,
        kind="email",
        target=address,
        event_types=event or None,
        now=SystemClock().now(),
    )
    console.print(f"email endpoint {endpoint.id} -> {endpoint.target}")


@notify_app.command("deliver")
@handle_errors
def deliver_command(
    batch: Annotated[int, typer.Option(help="Deliveries claimed at a time.")] = 50,
    max_attempts: Annotated[int, typer.Option(help="Attempts before a delivery is dead.")] = (
        notifications.DEFAULT_MAX_ATTEMPTS
    ),
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Send every due webhook and email from the outbox (retries back off exponentially)."""
    db = open_db(database)
    clock = SystemClock()
    email = SmtpEmailSender(attachments=invoice_documents.email_attachments(db, clock))
    report = notifications.deliver_due(
        db,
        clock,
        notifications.ChannelSender(email=email),
        batch=batch,
        max_attempts=max_attempts,
    )
    if json_output:
        print_json(report)
        return
    console.print(
        f"queued {report.queued}, delivered {report.delivered}, "
        f"retrying {report.retried}, dead {report.dead}"
    )
    for error in report.errors[:20]:
        console.print(f"  {error}", highlight=False)


@notify_app.command("check")
@handle_errors
def check_command(database: DatabaseOption = None) -> None:
    """Evaluate every wallet's thresholds now (spend-based ones move with time)."""
    written = thresholds.check_all(open_db(database), SystemClock().now())
    console.print(f"{written} threshold event(s) written")


@receipt_app.command("pdf")
@handle_errors
def receipt_pdf(
    receipt_id: Annotated[int, typer.Argument(help="Receipt id.")],
    out: Annotated[Path, typer.Option("--out", help="PDF file to write.")],
    database: DatabaseOption = None,
) -> None:
    """Write a top-up receipt as PDF."""
    data = receipts.receipt_pdf(open_db(database), receipt_id)
    out.write_bytes(data)
    console.print(f"wrote {out} ({len(data)} bytes)")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    notify_app.add_typer(webhook_app, name="webhook")
    notify_app.add_typer(email_app, name="email")
    app.add_typer(notify_app, name="notify")
    app.add_typer(receipt_app, name="receipt")
