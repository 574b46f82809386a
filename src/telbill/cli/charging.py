"""CLI of the charging area: post CDR files (or a NATS stream) to balances, the quarantine,
rerating, sessions for testing a dial plan, campaigns, charging plans, charge explanations.

    telbill cdr post FILE [--format native|freeswitch|asterisk] [--stream nats://...]
    telbill cdr quarantine list | repost ID [--set field=value ...] [--account A]
    telbill rerate --account A --from T --to T [--tariff NAME]
    telbill session authorize|update|end|sweep ...
    telbill campaign start|pause|resume|stop ...
    telbill plan create|assign|cost-tariff ...
    telbill charge explain CHARGE_ID
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from telbill.adapters.formats.cdr_common import CDR_FORMATS
from telbill.adapters.formats.cdrs import cdr_input_size
from telbill.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    handle_errors,
    open_db,
    print_json,
)
from telbill.cli.files import input_path
from telbill.errors import InvalidInput
from telbill.services import campaigns, charging, plans, rerating, sessions
from telbill.services.cdr_workers import post_cdr_file
from telbill.services.clock import SystemClock

cdr_app = typer.Typer(help="Post CDRs to balances; quarantined rows.", no_args_is_help=True)
quarantine_app = typer.Typer(help="CDR rows that could not be posted.", no_args_is_help=True)
session_app = typer.Typer(help="Real-time call sessions (dial plan tests).", no_args_is_help=True)
campaign_app = typer.Typer(help="Auto-dialer / voice-bot campaigns.", no_args_is_help=True)
plan_app = typer.Typer(help="Charging plans and their accounts.", no_args_is_help=True)
charge_app = typer.Typer(help="Charges posted from usage.", no_args_is_help=True)
cdr_app.add_typer(quarantine_app, name="quarantine")
ACCOUNT_HELP = "Act as this tenant (account id): its subtree and its quarantined rows only."


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(cdr_app, name="cdr")
    app.add_typer(session_app, name="session")
    app.add_typer(campaign_app, name="campaign")
    app.add_typer(plan_app, name="plan")
    app.add_typer(charge_app, name="charge")
    app.command("rerate")(rerate_command)


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option}: expected an ISO 8601 time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- cdr


@cdr_app.command("post")
@handle_errors
def post_command(
    cdr_file: Path | None = typer.Argument(None, help="CDR file (or folder of JSON CDRs)."),
    fmt: str = typer.Option("native", "--format", help=f"One of {', '.join(CDR_FORMATS)}."),
    stream: str | None = typer.Option(
        None, "--stream", help="Consume a NATS JetStream instead of a file (nats://host:port)."
    ),
    subject: str = typer.Option("telbill.cdrs", "--subject", help="Stream subject."),
    durable: str = typer.Option("telbill-charging", "--durable", help="Durable consumer name."),
    idle_exit: float | None = typer.Option(
        None, "--idle-exit", help="Stream: stop after this many seconds without a message."
    ),
    ack_wait: float = typer.Option(
        30.0, "--ack-wait", help="Stream: seconds before an unacked CDR goes to another worker."
    ),
    chunk_size: int = typer.Option(charging.DEFAULT_CHUNK_SIZE, "--chunk-size", min=1),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="File: processes posting its chunks (round robin)."
    ),
    timezone: str | None = typer.Option(None, "--timezone", help="Zone of naive times."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    account: int | None = typer.Option(None, "--account", help=ACCOUNT_HELP),
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Rate CDRs and charge them to their wallets; a replay charges nothing more.

    With --account, only accounts of that subtree are charged and the tenant owns the
    quarantined rows; without it, rows whose account is unknown are the platform's."""
    db = open_db(database)
    clock = SystemClock()
    if stream is not None:
        from telbill.adapters.streams.nats_consumer import consume

        if account is not None:
            raise InvalidInput("--account applies to files; a stream's CDRs name their account")
        if workers > 1:
            raise InvalidInput("--workers applies to files; run one consumer per worker")

        summary = consume(
            db, stream, subject=subject, durable=durable, clock=clock, idle_exit_s=idle_exit,
            fmt=fmt, ack_wait_s=ack_wait, batch=min(chunk_size, 1000),
        )  # fmt: skip
    else:
        if cdr_file is None:
            raise InvalidInput("give a CDR file or --stream")
        input_path(cdr_file, folder_ok=True)
        progress = Progress(
            TextColumn("posting"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=console, disable=quiet or as_json or workers > 1, transient=True,
        )  # fmt: skip
        with progress:
            task = progress.add_task("post", total=cdr_input_size(cdr_file))
            summary = post_cdr_file(
                db, cdr_file, workers=workers, fmt=fmt, timezone=timezone,
                chunk_size=chunk_size, within=account,
                progress=lambda n: progress.advance(task, n),
            )  # fmt: skip
    if as_json:
        print_json(summary)
        return
    charged = ", ".join(f"{amount} {cur}" for cur, amount in summary.charged.items()) or "0"
    console.print(
        f"{summary.records} records: {summary.posted} posted, {summary.duplicates} already "
        f"posted, {summary.quarantined} quarantined, {summary.refused} refused; "
        f"charged {charged}",
        highlight=False,
    )


@quarantine_app.command("list")
@handle_errors
def quarantine_list(
    status: str | None = typer.Option("open", "--status", help="open, fixed, reposted or all."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
    account: int | None = typer.Option(None, "--account", help=ACCOUNT_HELP),
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Rows that could not be posted, with source, line and reason (a tenant's own with
    --account; every row without it)."""
    items = charging.list_quarantine(
        open_db(database), status=None if status == "all" else status, limit=limit,
        viewer=account,
    )  # fmt: skip
    if as_json:
        print_json(items)
        return
    table = Table("id", "source", "line", "cdr", "status", "reason")
    for item in items:
        table.add_row(
            str(item.id), item.source, str(item.line or ""), item.cdr_id or "", item.status,
            item.reason,
        )  # fmt: skip
    console.print(table)


@quarantine_app.command("repost")
@handle_errors
def quarantine_repost(
    quarantine_id: int = typer.Argument(..., help="Quarantine row id."),
    fixes: list[str] = typer.Option(
        [], "--set", help="Corrected field, e.g. --set to=+447700900123 (repeatable)."
    ),
    account: int | None = typer.Option(None, "--account", help=ACCOUNT_HELP),
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Post a quarantined row again, with corrected fields (a tenant's own with --account)."""
    fixed = {}
    for item in fixes:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--set expects field=value, got {item!r}")
        fixed[name.strip()] = value
    summary = charging.repost_quarantined(
        open_db(database), quarantine_id, clock=SystemClock(), fixed=fixed, viewer=account
    )
    if as_json:
        print_json(summary)
    else:
        console.print(f"reposted: {summary.posted} posted, {summary.duplicates} already posted")


# ---------------------------------------------------------------------------- rerate


@handle_errors
def rerate_command(
    account: int = typer.Option(..., "--account", help="Account id (its usage, or its wallet's)."),
    start: str = typer.Option(..., "--from", help="Start of the period (ISO 8601)."),
    end: str = typer.Option(..., "--to", help="End of the period, excluded (ISO 8601)."),
    tariff: str | None = typer.Option(None, "--tariff", help="Tariff to rerate with."),
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Reprice posted usage and post only the differences."""
    period_start, period_end = _when(start, "--from"), _when(end, "--to")
    assert period_start is not None and period_end is not None
    summary = rerating.rerate(
        open_db(database), account, start=period_start, end=period_end, clock=SystemClock(),
        tariff=tariff,
    )  # fmt: skip
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{summary.legs} charges: {summary.changed} changed (difference {summary.difference}), "
        f"{summary.unchanged} unchanged, {len(summary.failed)} failed",
        highlight=False,
    )
    for failure in summary.failed:
        console.print(f"  failed: {failure}", highlight=False)


# ---------------------------------------------------------------------------- sessions


@session_app.command("authorize")
@handle_errors
def session_authorize(
    account: int = typer.Option(..., "--account"),
    to: str = typer.Option(..., "--to"),
    from_: str | None = typer.Option(None, "--from"),
    direction: str = typer.Option("outbound", "--direction"),
    at: str | None = typer.Option(None, "--at"),
    call_id: str | None = typer.Option(None, "--call-id"),
    key: str | None = typer.Option(None, "--key", help="Idempotency key (default: random)."),
    database: DatabaseOption = None,
) -> None:
    """May this call start, and for how many seconds? (places a hold)"""
    db = open_db(database)
    decision = sessions.authorize(
        db, plans.TariffCache(db), account_id=account, to_number=to,
        idempotency_key=key or uuid.uuid4().hex, clock=SystemClock(), direction=direction,
        from_number=from_, at=_when(at, "--at"), call_id=call_id,
    )  # fmt: skip
    print_json(decision)


@session_app.command("update")
@handle_errors
def session_update(
    session_id: int = typer.Argument(...),
    elapsed: int = typer.Option(..., "--elapsed", min=0, help="Seconds since answer."),
    database: DatabaseOption = None,
) -> None:
    """Interim update of a call in progress."""
    print_json(
        sessions.update_session(open_db(database), session_id, elapsed_s=elapsed,
                                clock=SystemClock())
    )  # fmt: skip


@session_app.command("end")
@handle_errors
def session_end(
    session_id: int = typer.Argument(...),
    duration: int | None = typer.Option(None, "--duration", min=0),
    answer: str | None = typer.Option(None, "--answer"),
    end: str | None = typer.Option(None, "--end"),
    key: str | None = typer.Option(None, "--key"),
    database: DatabaseOption = None,
) -> None:
    """End a call: settle its exact charge and release the rest of its hold."""
    db = open_db(database)
    print_json(
        sessions.end_session(
            db, plans.TariffCache(db), session_id, idempotency_key=key or f"cli-end-{session_id}",
            clock=SystemClock(), duration_s=duration, answer_at=_when(answer, "--answer"),
            end_at=_when(end, "--end"),
        )
    )  # fmt: skip


@session_app.command("sweep")
@handle_errors
def session_sweep(
    timeout: int = typer.Option(sessions.DEFAULT_SWEEP_TIMEOUT_S, "--timeout", min=1),
    database: DatabaseOption = None,
) -> None:
    """End sessions whose switch went silent, charging what was reported."""
    db = open_db(database)
    swept = sessions.sweep_sessions(db, plans.TariffCache(db), clock=SystemClock(),
                                    timeout_s=timeout)  # fmt: skip
    console.print(f"{len(swept)} session(s) swept: {', '.join(map(str, swept)) or '-'}")


# ---------------------------------------------------------------------------- campaigns


@campaign_app.command("start")
@handle_errors
def campaign_start(
    account: int = typer.Option(..., "--account"),
    name: str = typer.Option(..., "--name"),
    database: DatabaseOption = None,
) -> None:
    """Start a campaign (the wallet needs money above zero)."""
    print_json(campaigns.start_campaign(open_db(database), account, name, clock=SystemClock()))


@campaign_app.command("pause")
@handle_errors
def campaign_pause(campaign_id: int, database: DatabaseOption = None) -> None:
    print_json(campaigns.pause_campaign(open_db(database), campaign_id, clock=SystemClock()))


@campaign_app.command("resume")
@handle_errors
def campaign_resume(campaign_id: int, database: DatabaseOption = None) -> None:
    """Resume a paused campaign (after a top-up)."""
    print_json(campaigns.resume_campaign(open_db(database), campaign_id, clock=SystemClock()))


@campaign_app.command("stop")
@handle_errors
def campaign_stop(campaign_id: int, database: DatabaseOption = None) -> None:
    print_json(campaigns.stop_campaign(open_db(database), campaign_id, clock=SystemClock()))


# ---------------------------------------------------------------------------- plans, charges

PROVIDER_HELP = "Provider account id: act in its catalogue (default: the operator's)."


@plan_app.command("create")
@handle_errors
def plan_create(
    name: str = typer.Argument(...),
    tariff: str = typer.Option(..., "--tariff"),
    pricing: str = typer.Option("fixed", "--pricing", help="fixed or relative (markup)."),
    markup: str = typer.Option("0", "--markup", help="Markup percent (relative pricing)."),
    min_margin: str = typer.Option("0", "--min-margin"),
    classes: str | None = typer.Option(
        None, "--classes", help="Allowed call classes, comma-separated (default: all)."
    ),
    cut_off: str = typer.Option("hard", "--cut-off", help="hard or soft."),
    max_call: int = typer.Option(plans.DEFAULT_MAX_CALL_S, "--max-call", min=1),
    cost_tariff: str | None = typer.Option(
        None, "--cost-tariff", help="Fixed pricing: the carrier's cost tariff (for margin)."
    ),
    database: DatabaseOption = None,
    provider: int | None = typer.Option(None, "--provider", help=PROVIDER_HELP),
) -> None:
    """Create a charging plan (in the operator's catalogue, or --provider's)."""
    record = plans.create_plan(
        open_db(database), name, tariff=tariff, clock=SystemClock(), pricing=pricing,
        markup_percent=markup, min_margin=min_margin,
        allowed_call_classes=None if classes is None else [c.strip() for c in classes.split(",")],
        cut_off=cut_off, max_call_s=max_call, cost_tariff=cost_tariff, owner=provider,
    )  # fmt: skip
    print_json(record)


@plan_app.command("cost-tariff")
@handle_errors
def plan_cost_tariff(
    name: str = typer.Argument(..., help="The fixed-price plan."),
    tariff: str | None = typer.Option(None, "--tariff", help="The carrier's cost tariff."),
    clear: bool = typer.Option(False, "--clear", help="Forget the cost tariff."),
    database: DatabaseOption = None,
    provider: int | None = typer.Option(None, "--provider", help=PROVIDER_HELP),
) -> None:
    """Set (or clear) the carrier cost tariff of a fixed-price plan: charges posted from
    then on record their cost, for margin."""
    if (tariff is None) == (not clear):
        raise InvalidInput("give either --tariff NAME or --clear")
    print_json(
        plans.set_cost_tariff(
            open_db(database), name, None if clear else tariff, provider=provider
        )
    )


@plan_app.command("list")
@handle_errors
def plan_list(
    database: DatabaseOption = None,
    provider: int | None = typer.Option(None, "--provider", help=PROVIDER_HELP),
) -> None:
    """The charging plans of the operator's catalogue, or those --provider may use (its own
    and the operator's), as JSON."""
    db = open_db(database)
    if provider is not None:
        from telbill.services.tariffs import provider_viewer

        provider_viewer(db, provider)  # a provider account, or an error
    print_json(
        [
            {"name": p.name, "tariff": p.tariff, "cost_tariff": p.plan.cost_tariff,
             "pricing": p.plan.pricing.value, "shared": p.owner_id is None}
            for p in plans.list_plans(db, provider=provider)
        ]
    )  # fmt: skip


@plan_app.command("assign")
@handle_errors
def plan_assign(
    account: int = typer.Option(..., "--account"),
    plan: str = typer.Option(..., "--plan"),
    database: DatabaseOption = None,
    provider: int | None = typer.Option(None, "--provider", help=PROVIDER_HELP),
) -> None:
    """Make an account (and the accounts under it) use a plan of its provider's catalogue
    or of the operator's (--provider: only an account of that provider)."""
    plans.assign_plan(open_db(database), account, plan, clock=SystemClock(), provider=provider)
    console.print(f"account {account} now uses plan {plan}", highlight=False)


@charge_app.command("explain")
@handle_errors
def charge_explain(
    charge_id: int = typer.Argument(...),
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """How a posted charge was computed."""
    charge = charging.get_charge(open_db(database), charge_id)
    if as_json:
        print_json(charge)
        return
    console.print(
        f"charge {charge.id}: CDR {charge.cdr_id} ({charge.leg}, revision {charge.revision}) "
        f"of account {charge.account_id}, paid by {charge.payer_id}: {charge.amount} "
        f"{charge.currency}, transaction {charge.transaction_id}; carrier cost "
        f"{'unknown' if charge.cost is None else f'{charge.cost} {charge.currency}'}",
        highlight=False,
    )
    console.print(charge.text, highlight=False, markup=False)
