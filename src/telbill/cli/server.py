"""CLI commands that run telbill: `init`, `serve`, `demo` and `admin create-key`."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from telbill.adapters.db.engine import database_url, migrate, normalise_url
from telbill.api.ratelimit import BURST_ENV, DEFAULT_BURST, DEFAULT_RATE_PER_S, RATE_ENV
from telbill.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    handle_errors,
    open_db,
    print_json,
)
from telbill.errors import InvalidInput
from telbill.services.auth import Role, create_api_key, revoke_api_key
from telbill.services.clock import SystemClock

DEMO_DATABASE_FILE = "telbill-demo.db"
# How long uvicorn's supervisor waits for a worker to answer its health check (issue 15:
# its default of 5 s killed 8 workers of a loaded 2-core machine that were only busy).
DEFAULT_WORKER_HEALTHCHECK_S = 30

admin_app = typer.Typer(help="Operator commands (bootstrap API keys).", no_args_is_help=True)


@handle_errors
def init(database: DatabaseOption = None) -> None:
    """Create or migrate the database schema to the newest revision."""
    url = normalise_url(database or database_url())
    migrate(url)
    console.print(f"[green]database ready[/] at {_safe_url(url)}")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    tick_every: Annotated[
        float,
        typer.Option(
            min=0, help="Run the scheduler (`telbill tick`) every N seconds; 0 disables it."
        ),
    ] = 60.0,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Requests a second per API key, per worker (0: no limit). "
            f"Default {DEFAULT_RATE_PER_S:g}, or {RATE_ENV}.",
        ),
    ] = None,
    rate_burst: Annotated[
        int | None,
        typer.Option(
            min=1, help=f"Requests a key may send at once. Default {DEFAULT_BURST}, or {BURST_ENV}."
        ),
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log a line per request. Costs CPU on every request (about 80 us on a "
            "loaded 2-core machine): --no-access-log for a switch's real-time traffic."
        ),
    ] = True,
    timeout_worker_healthcheck: Annotated[
        int,
        typer.Option(
            min=1,
            help="Seconds the supervisor waits for a worker's health-check answer before it "
            "kills and restarts the worker (with --workers > 1). uvicorn's own 5 s kills busy "
            "workers on a loaded machine.",
        ),
    ] = DEFAULT_WORKER_HEALTHCHECK_S,
    database: DatabaseOption = None,
    push_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Push disconnects to registered switches (`telbill switch register`) every "
            "N seconds; 0 disables it.",
        ),
    ] = 1.0,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs) and run the scheduler in the background."""
    if database:
        # Workers are separate processes: they find the database in the environment.
        os.environ["TELBILL_DATABASE_URL"] = database
    if rate_limit is not None:
        os.environ[RATE_ENV] = f"{rate_limit:g}"
    if rate_burst is not None:
        os.environ[BURST_ENV] = str(rate_burst)
    if tick_every > 0:
        start_scheduler(tick_every)
    if push_every > 0:
        from telbill.cli.switch import start_disconnect_pusher

        start_disconnect_pusher(push_every)
    run_server(
        host=host, port=port, workers=workers, access_log=access_log,
        timeout_worker_healthcheck=timeout_worker_healthcheck,
    )  # fmt: skip


def start_scheduler(every_s: float) -> threading.Event:
    """Tick the scheduler every `every_s` seconds in a daemon thread of this process.

    One thread in the supervising process, whatever the number of API workers; several
    `telbill serve` machines on one PostgreSQL may each run one, because every job is keyed
    (job, entity, period) in the transaction of its effect and runs once. Setting the
    returned event stops the thread.
    """
    from telbill.adapters.db.engine import Database
    from telbill.services import scheduler
    from telbill.services.clock import SystemClock

    stop = threading.Event()

    def loop() -> None:
        db = Database(database_url())
        while not stop.wait(every_s):
            try:
                scheduler.tick(db, clock=SystemClock())
            except Exception as error:  # keep serving; the next tick retries what failed
                console.print(f"[red]scheduler tick failed:[/] {error}")

    thread = threading.Thread(target=loop, name="telbill-scheduler", daemon=True)
    thread.start()
    return stop


def run_server(
    *,
    host: str,
    port: int,
    workers: int,
    access_log: bool = True,
    timeout_worker_healthcheck: int | None = None,
) -> None:
    """uvicorn on the API. Its "auto" loop and HTTP parser are uvloop and httptools, which
    telbill depends on (C parser and event loop; the pure-Python fallbacks asyncio + h11 cost
    more CPU per request)."""
    import uvicorn

    console.print(
        f"serving the API on [bold]http://{host}:{port}/v1[/] "
        f"(docs: http://{host}:{port}/docs) and the dashboard on "
        f"[bold]http://{host}:{port}/[/], database {_safe_url(database_url())}"
    )
    uvicorn.run(
        "telbill.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,
        timeout_worker_healthcheck=timeout_worker_healthcheck or DEFAULT_WORKER_HEALTHCHECK_S,
    )


@admin_app.command("create-key")
@handle_errors
def admin_create_key(
    account: Annotated[int, typer.Option("--account", help="Account id the key belongs to.")],
    role: Annotated[
        str, typer.Option(help="provider_admin, org_admin, user or switch.")
    ] = Role.PROVIDER_ADMIN.value,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "admin",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the key (for scripts).")
    ] = False,
    expires_at: Annotated[
        str | None,
        typer.Option(
            "--expires-at", help="Refuse the key from this time on (ISO 8601 with offset)."
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Create an API key directly in the database (bootstrap the first provider admin).

    The key is printed once; only its hash is stored.
    """
    created = create_api_key(
        open_db(database), account_id=account, role=role, name=name, clock=SystemClock(),
        expires_at=_aware_time(expires_at, "--expires-at") if expires_at else None,
    )  # fmt: skip
    if quiet:
        typer.echo(created.secret)
        return
    table = Table(show_header=False, box=None)
    table.add_row("key id", str(created.key.id))
    table.add_row("role", created.key.role.value)
    table.add_row("account", str(created.key.account_id))
    table.add_row("api key", f"[bold]{created.secret}[/]")
    console.print(table)
    console.print("[yellow]Store the key now: it is not shown again.[/]")


def _aware_time(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{option} must be an ISO 8601 time, got {text!r}") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{option} needs its UTC offset (for example 2027-01-01T00:00Z)")
    return moment


@admin_app.command("list-keys")
@handle_errors
def admin_list_keys(
    account: Annotated[int, typer.Option("--account", help="Account id the keys belong to.")],
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """List an account's API keys: role, created, expiry, last used, revoked (no secrets)."""
    from telbill.services.auth import list_account_keys

    keys = list_account_keys(open_db(database), account)
    if as_json:
        print_json(keys)
        return

    def when(moment: datetime | None) -> str:
        return moment.isoformat(timespec="seconds") if moment else ""

    table = Table("id", "name", "role", "prefix", "created", "expires", "last used", "revoked")
    for key in keys:
        table.add_row(str(key.id), key.name, key.role.value, key.key_prefix,
                      when(key.created_at), when(key.expires_at), when(key.last_used_at),
                      when(key.revoked_at))  # fmt: skip
    console.print(table)


@admin_app.command("revoke-key")
@handle_errors
def admin_revoke_key(
    key_id: Annotated[int, typer.Argument(help="Key id (shown when it was created).")],
    database: DatabaseOption = None,
) -> None:
    """Revoke an API key: it stops working at once."""
    key = revoke_api_key(open_db(database), key_id, clock=SystemClock())
    revoked = key.revoked_at.isoformat() if key.revoked_at else "?"
    console.print(f"key {key.id} ({key.name}, {key.role.value}) revoked at {revoked}")


user_app = typer.Typer(help="Dashboard users (email and password).", no_args_is_help=True)
admin_app.add_typer(user_app, name="user")


@user_app.command("add")
@handle_errors
def admin_user_add(
    email: Annotated[str, typer.Option("--email", help="The person's email (their log-in).")],
    account: Annotated[int, typer.Option("--account", help="Account id they act for.")],
    role: Annotated[
        str, typer.Option(help="provider_admin, org_admin or user.")
    ] = Role.ORG_ADMIN.value,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Create a dashboard user who logs in with an email and password (scrypt-hashed)."""
    import sys

    from telbill.services.auth import create_web_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = create_web_user(
        open_db(database), email=email, password=password, role=role, account_id=account,
        clock=SystemClock(),
    )  # fmt: skip
    console.print(
        f"dashboard user {user.id}: {user.email} ({user.role.value}, account {user.account_id})"
    )


@user_app.command("list")
@handle_errors
def admin_user_list(as_json: JsonOption = False, database: DatabaseOption = None) -> None:
    """List dashboard users (email, role, account, created, disabled)."""
    from telbill.services.auth import list_web_users

    users = list_web_users(open_db(database))
    if as_json:
        print_json(users)
        return
    table = Table("id", "email", "role", "account", "created", "disabled")
    for user in users:
        disabled = user.disabled_at.isoformat(timespec="seconds") if user.disabled_at else ""
        table.add_row(str(user.id), user.email, user.role.value, str(user.account_id),
                      user.created_at.isoformat(timespec="seconds"), disabled)  # fmt: skip
    console.print(table)


@user_app.command("disable")
@handle_errors
def admin_user_disable(
    email: Annotated[str, typer.Option("--email", help="The user's email (their log-in).")],
    database: DatabaseOption = None,
) -> None:
    """Disable a dashboard user: log-in refused and open sessions ended at once."""
    from telbill.services.auth import disable_web_user

    user = disable_web_user(open_db(database), email, clock=SystemClock())
    disabled = user.disabled_at.isoformat() if user.disabled_at else "?"
    console.print(f"dashboard user {user.id} ({user.email}) disabled at {disabled}")


@handle_errors
def demo(
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Seed and print, then exit without serving.")
    ] = False,
    database_file: Annotated[
        Path, typer.Option("--database-file", help="SQLite file to (re)create.")
    ] = Path(DEMO_DATABASE_FILE),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Seed a demo (fresh SQLite file), print what it did, then serve the API."""
    from telbill.cli.demo import run_demo

    url = f"sqlite:///{database_file.resolve()}"
    ctx = run_demo(url, database_file, host=host, port=port)
    print_dashboard_login(ctx.api_keys, host=host, port=port)
    if not no_serve:
        os.environ["TELBILL_DATABASE_URL"] = url
        run_server(host=host, port=port, workers=1)


def print_dashboard_login(
    api_keys: dict[str, tuple[str, int, str]], *, host: str, port: int
) -> None:
    """Where the dashboard is and which demo key logs in to it."""
    chosen = api_keys.get("Acme admin") or next(iter(api_keys.values()), None)
    console.print(f"\n[bold cyan]dashboard[/]  http://{host}:{port}/login", soft_wrap=True)
    if chosen is not None:
        secret, account, role = chosen
        console.print(
            f"  log in with the {role} key of account {account}: [bold]{secret}[/]",
            soft_wrap=True,
        )
    admin = api_keys.get("provider admin")
    if admin is not None and admin is not chosen:
        console.print(f"  or as the provider admin: [bold]{admin[0]}[/]", soft_wrap=True)


def _safe_url(url: str) -> str:
    """The URL without a password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("init")(init)
    app.command("serve")(serve)
    app.command("demo")(demo)
    app.add_typer(admin_app, name="admin")
