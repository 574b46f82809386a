"""Operator commands for trusted money sources: customers' top-up requests (list, confirm,
reject) and a provider's card-callback secret.

The CLI works on the database directly: whoever runs it is the operator, trusted with every
account (docs/security.md, "Who may put money in").
"""

from __future__ import annotations

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
from telbill.services.clock import SystemClock

payment_app = typer.Typer(
    help="Top-up requests to confirm or reject, card-callback secrets.", no_args_is_help=True
)


@payment_app.command("requests")
@handle_errors
def list_requests(
    account: Annotated[int, typer.Option("--account", help="An account, or a provider.")],
    status: Annotated[
        str | None, typer.Option(help="pending, confirmed or rejected (default: all).")
    ] = None,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """List the top-up requests of an account (or those a provider decides), newest first."""
    from telbill.services import top_up_requests

    found = top_up_requests.list_requests(open_db(database), None, account, status=status)
    if as_json:
        print_json(found)
        return
    table = Table("id", "account", "amount", "reference", "status", "requested", "decided")
    for r in found:
        decided = r.decided_at.isoformat(timespec="seconds") if r.decided_at else ""
        table.add_row(str(r.id), str(r.account_id), f"{r.amount:f} {r.currency}", r.reference,
                      r.status, r.created_at.isoformat(timespec="seconds"), decided)  # fmt: skip
    console.print(table)


@payment_app.command("confirm")
@handle_errors
def confirm_request(
    request_id: Annotated[int, typer.Argument(help="Top-up request id.")],
    database: DatabaseOption = None,
) -> None:
    """Confirm a pending top-up request: the payment is booked (receipt, VAT)."""
    from telbill.services import top_up_requests

    confirmed, receipt = top_up_requests.confirm(
        open_db(database), None, request_id, clock=SystemClock()
    )
    console.print(
        f"request {confirmed.id} confirmed: receipt #{receipt.number}, "
        f"{receipt.amount:f} {receipt.currency} booked to account {receipt.account_id}"
    )


@payment_app.command("reject")
@handle_errors
def reject_request(
    request_id: Annotated[int, typer.Argument(help="Top-up request id.")],
    reason: Annotated[str, typer.Option(help="Why (shown to the customer).")],
    database: DatabaseOption = None,
) -> None:
    """Reject a pending top-up request: nothing is booked."""
    from telbill.services import top_up_requests

    rejected = top_up_requests.reject(
        open_db(database), None, request_id, reason=reason, clock=SystemClock()
    )
    console.print(f"request {rejected.id} rejected: {rejected.reason}")


@payment_app.command("callback-secret")
@handle_errors
def callback_secret(
    provider: Annotated[int, typer.Argument(help="Provider account id.")],
    database: DatabaseOption = None,
) -> None:
    """Set a new secret for a provider's card-payment callbacks (the old one stops working);
    printed once."""
    from telbill.services import card_payments

    rotated = card_payments.rotate_secret(open_db(database), None, provider, clock=SystemClock())
    console.print(f"callback secret of provider {provider}: [bold]{rotated.secret}[/]")
    console.print("[yellow]Give it to the payment provider now: it is not shown again.[/]")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(payment_app, name="payment")
