"""The `telbill` command line. Thin: parse, call a service, render.

Each business area registers its commands from its own module (`cli/<area>.py` exposes
`register(app)`), so areas grow without touching each other's files.

Startup is lazy: `COMMANDS` below names, for each top-level command, the module that
registers it and the line `telbill --help` shows, so `--help` imports no area module and a
command imports only its own area (no SQLAlchemy for `sms segments`, no fpdf for `quote`).
A command an area registers without a line in `COMMANDS` still runs (every area is loaded to
find it); a test keeps the table complete.

Every error ends at one boundary (`TelbillGroup.invoke`): one `error: ...` line on stderr and
exit 1 (2 for usage errors, 3 where a command documents it); `--debug` shows the traceback.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

# Modules that add commands; each defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES = (
    "telbill.cli.ledger",
    "telbill.cli.tariffs",
    "telbill.cli.rating",
    "telbill.cli.server",
    "telbill.cli.lifecycle",
    "telbill.cli.charging",
    "telbill.cli.notifications",
    "telbill.cli.reports",
    "telbill.cli.invoices",
    "telbill.cli.payments",
    "telbill.cli.sms",
    "telbill.cli.switch",
)

# Top-level command -> (module that registers it, its line in `telbill --help`).
# Add one line here with each new top-level command (order = order in `--help`).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("telbill.cli.server", "Create or migrate the database schema (newest revision)."),
    "serve": ("telbill.cli.server", "Serve the REST API (docs at /docs) and the scheduler."),
    "demo": ("telbill.cli.server", "Seed a demo (fresh SQLite file), then serve the API."),
    "admin": ("telbill.cli.server", "Operator commands (bootstrap API keys)."),
    "account": ("telbill.cli.ledger", "Create, list and show accounts."),
    "topup": ("telbill.cli.ledger", "Top up a wallet with a gross amount (VAT included)."),
    "adjust": ("telbill.cli.ledger", "Correct a paid balance by a signed amount."),
    "refund": ("telbill.cli.ledger", "Pay money back out of a paid balance."),
    "grant": ("telbill.cli.ledger", "Grant credit in a new bucket (trial, free, package...)."),
    "balance": ("telbill.cli.ledger", "Balances per unit (posted, held, available) and buckets."),
    "history": ("telbill.cli.ledger", "Transactions of an account, newest first."),
    "reconcile": ("telbill.cli.ledger", "Prove the ledger adds up; exit 1 with a report if not."),
    "tariff": ("telbill.cli.tariffs", "Import, list, show and compare tariffs (rate decks)."),
    "quote": ("telbill.cli.rating", "Price a call or a message and show the breakdown."),
    "explain": ("telbill.cli.rating", "Show, step by step, how a charge is computed."),
    "rate": ("telbill.cli.rating", "Rate a CDR file offline into a CSV (no balance is touched)."),
    "sms": ("telbill.cli.sms", "SMS tools."),
    "cdr": ("telbill.cli.charging", "Post CDRs to balances; quarantined rows."),
    "rerate": ("telbill.cli.charging", "Reprice posted usage and post only the differences."),
    "session": ("telbill.cli.charging", "Real-time call sessions (dial plan tests)."),
    "campaign": ("telbill.cli.charging", "Auto-dialer / voice-bot campaigns."),
    "plan": ("telbill.cli.charging", "Charging plans and their accounts."),
    "charge": ("telbill.cli.charging", "Charges posted from usage."),
    "number": ("telbill.cli.lifecycle", "Phone numbers: inventory, search, buy, release."),
    "subscription": ("telbill.cli.lifecycle", "Plans and subscriptions."),
    "package": ("telbill.cli.lifecycle", "Minute and SMS packages."),
    "tick": ("telbill.cli.lifecycle", "Run every due job (renewals, fees, grants...) once."),
    "notify": ("telbill.cli.notifications", "Low-balance thresholds, notifications, webhooks."),
    "receipt": ("telbill.cli.notifications", "Top-up receipts."),
    "report": ("telbill.cli.reports", "Call-cost reports and usage counters."),
    "invoice": ("telbill.cli.invoices", "Monthly invoices, payments and credit notes."),
    "payment": ("telbill.cli.payments", "Top-up requests to confirm or reject, callback secrets."),
    "switch": ("telbill.cli.switch", "Connect a SIP switch (Kamailio): config, disconnects."),
}


def load_commands(module_name: str) -> dict[str, Any]:
    """The click commands one area module registers, by name (imports that module)."""
    area = typer.Typer()
    importlib.import_module(module_name).register(area)
    return dict(typer.main.get_group(area).commands)


class TelbillGroup(TyperGroup):
    """The root group: loads an area's module when one of its commands is asked for, and is
    the one error boundary of every command."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            entry = COMMANDS.get(cmd_name)
            modules = (entry[0],) if entry else _all_modules()
            for module_name in modules:
                for name, command in load_commands(module_name).items():
                    self.commands.setdefault(name, command)
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The listing shows the table's lines: no area module is imported for `--help`, and
        # it is plain text (Rich's help renderer alone costs more than the rest of `--help`).
        for name, (_, line) in COMMANDS.items():
            self.commands.setdefault(name, _HelpOnly(name=name, help=line))
        markup, self.rich_markup_mode = self.rich_markup_mode, None
        try:
            super().format_help(ctx, formatter)
        finally:
            self.rich_markup_mode = markup
            for name in [n for n, c in self.commands.items() if isinstance(c, _HelpOnly)]:
                del self.commands[name]

    def invoke(self, ctx: Any) -> Any:
        from telbill.cli.boundary import run_inside_boundary

        return run_inside_boundary(ctx, lambda: super(TelbillGroup, self).invoke(ctx))


class _HelpOnly(typer.core.TyperCommand):
    """A stand-in that only carries a command's help line (while `--help` is rendered)."""


def _all_modules() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*(module for module, _ in COMMANDS.values()), *COMMAND_MODULES]))


app = typer.Typer(
    name="telbill",
    cls=TelbillGroup,
    help="Telephony billing engine: rating, balances, real-time charging.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    database: str | None = typer.Option(
        None,
        "--database",
        "-d",
        help="Database URL for every command (default: TELBILL_DATABASE_URL or "
        "sqlite:///telbill.db); a command's own --database wins.",
        show_default=False,
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of an error instead of one line."
    ),
) -> None:
    """Telephony billing engine: rating, balances, real-time charging."""
    if database is not None:
        from telbill.cli.boundary import use_database

        use_database(ctx, database)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
