"""`telbill switch`: telbill's Kamailio configuration, and the switches telbill tells to end
a running call (see docs/switch.md)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from telbill.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    err_console,
    handle_errors,
    open_db,
    print_json,
)

switch_app = typer.Typer(help="Connect a SIP switch (Kamailio) to telbill.", no_args_is_help=True)


@switch_app.command("kamailio-config")
@handle_errors
def kamailio_config(
    telbill_url: Annotated[
        str, typer.Option(help="Base URL of `telbill serve`, as Kamailio reaches it.")
    ],
    api_key: Annotated[
        str,
        typer.Option(
            envvar="TELBILL_SWITCH_API_KEY",
            help="A `switch` API key (`telbill admin create-key --role switch`).",
        ),
    ],
    listen: Annotated[str, typer.Option(help="SIP (UDP) address IP:PORT.")] = "127.0.0.1:5060",
    rpc_listen: Annotated[
        str, typer.Option(help="JSON-RPC (HTTP) address IP:PORT, for telbill's disconnects.")
    ] = "127.0.0.1:5071",
    rpc_allow: Annotated[
        str, typer.Option(help="The one source IP allowed on the JSON-RPC address (telbill).")
    ] = "127.0.0.1",
    next_hop: Annotated[
        str, typer.Option(help="Where allowed calls go (SIP URI of the callee side).")
    ] = "sip:127.0.0.1:5070",
    timeout: Annotated[int, typer.Option(help="Seconds to wait for telbill.")] = 2,
    update_every: Annotated[
        int,
        typer.Option(
            help="Seconds between interim updates of a call (below telbill's sweep timeout, 120 s)."
        ),
    ] = 60,
    children: Annotated[int, typer.Option(help="Kamailio's UDP worker processes.")] = 4,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print telbill's Kamailio configuration (contrib/kamailio/telbill.cfg) filled in."""
    from telbill.adapters.switch.kamailio_config import KamailioSettings, render

    text = render(
        KamailioSettings(
            telbill_url=telbill_url, api_key=api_key, listen=listen, rpc_listen=rpc_listen,
            rpc_allow=rpc_allow, next_hop=next_hop, timeout_s=timeout, children=children,
            update_every_s=update_every,
        )
    )  # fmt: skip
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {output}")


@switch_app.command("register")
@handle_errors
def register_switch(
    account: Annotated[int, typer.Option(help="Account whose calls (its whole tree) it carries.")],
    rpc_url: Annotated[str, typer.Option(help="Kamailio's JSON-RPC URL, http://IP:PORT/RPC.")],
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Register a Kamailio: telbill ends its running calls when their wallet is emptied."""
    from telbill.services import switches
    from telbill.services.clock import SystemClock

    created = switches.register_switch(
        open_db(database), account, rpc_url=rpc_url, now=SystemClock().now()
    )
    if json_output:
        print_json(created)
        return
    console.print(f"switch {created.id} registered for account {account}: {created.rpc_url}")


@switch_app.command("list")
@handle_errors
def list_switches(
    account: Annotated[int | None, typer.Option(help="Only this account's switches.")] = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """The registered switches, with their last push error."""
    from telbill.services import switches

    found = switches.list_switches(open_db(database), account)
    if json_output:
        print_json(found)
        return
    table = Table("id", "account", "kind", "RPC URL", "active", "last error")
    for item in found:
        table.add_row(
            str(item.id), str(item.account_id), item.kind, item.rpc_url, str(item.active),
            item.last_error or "",
        )  # fmt: skip
    console.print(table)


@switch_app.command("push")
@handle_errors
def push(json_output: JsonOption = False, database: DatabaseOption = None) -> None:
    """Push pending disconnects to the switches once (`telbill serve` does it every second)."""
    from telbill.services import switches

    report = switches.push_disconnects(open_db(database))
    if json_output:
        print_json(report)
        return
    console.print(f"{report.pushed} disconnects pushed, {report.calls_ended} calls ended")
    for error in report.errors:
        err_console.print(f"[yellow]{error}[/]")


def start_disconnect_pusher(every_s: float) -> threading.Event:
    """Push disconnects every `every_s` seconds from a daemon thread (`telbill serve`)."""
    from telbill.adapters.db.engine import Database, database_url
    from telbill.services import switches

    stop = threading.Event()

    def loop() -> None:
        db = Database(database_url())
        last = ""  # the error last printed: a lasting fault is said once, not every round
        while not stop.wait(every_s):
            try:
                switches.push_disconnects(db)
                last = ""
            except Exception as error:  # keep serving; the next round retries
                if str(error) != last:
                    err_console.print(f"[red]disconnect push failed:[/] {error}")
                last = str(error)

    threading.Thread(target=loop, name="telbill-switch-push", daemon=True).start()
    return stop


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(switch_app, name="switch")
