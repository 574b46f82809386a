"""The `telbill` command line. Thin: parse, call a service, render.

Each business area registers its commands from its own module (`cli/<area>.py` exposes
`register(app)`), so areas grow without touching each other's files.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="telbill",
    help="Telephony billing engine: rating, balances, real-time charging.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

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
    "telbill.cli.switch",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
