"""CLI commands of the ledger area: accounts, top-ups, adjustments, refunds, credit grants,
balances, history and reconcile. Thin: parse, call a service, render (Rich or ``--json``).

Each mutating command takes ``--idempotency-key``; run it again with the same key and it
changes nothing and prints the first result (default: a fresh random key).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table

from telbill.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    fail,
    handle_errors,
    open_db,
    print_json,
)
from telbill.errors import InvalidInput
from telbill.services import accounts as accounts_service
from telbill.services import balances as balances_service
from telbill.services import payments, wallets
from telbill.services import reconcile as reconcile_service
from telbill.services.accounts import Account
from telbill.services.clock import SystemClock
from telbill.services.ledger_views import Transaction

account_app = typer.Typer(help="Create, list and show accounts.", no_args_is_help=True)

IdempotencyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Reuse a key to retry safely: the same key changes nothing the second time.",
        show_default=False,
    ),
]
AccountArg = Annotated[int, typer.Argument(help="Account id.")]
AmountArg = Annotated[str, typer.Argument(help="Decimal amount, e.g. 10.50.")]
CurrencyOption = Annotated[
    str | None, typer.Option(help="Must match the wallet's currency (checked).")
]


def _key(given: str | None) -> str:
    return given or f"cli:{uuid.uuid4()}"


def _amount(value: Decimal) -> str:
    return f"{value:f}"


def _account_table(items: list[Account], title: str | None = None) -> Table:
    table = Table(title=title)
    for column in ("id", "parent", "kind", "name", "currency", "mode", "status", "wallet"):
        table.add_column(column)
    for a in items:
        table.add_row(
            str(a.id),
            "" if a.parent_id is None else str(a.parent_id),
            a.kind.value,
            a.name,
            a.currency,
            a.billing_mode.value,
            a.status.value,
            "yes" if a.has_wallet else "no (parent pays)",
        )
    return table


def _print_transaction(tx: Transaction, title: str) -> None:
    table = Table(title=f"{title}: transaction {tx.id}")
    table.add_column("ledger account")
    table.add_column("kind")
    table.add_column("amount", justify="right")
    table.add_column("unit")
    for p in tx.postings:
        name = p.code or f"wallet {p.owner_account_id} ({p.bucket_kind})"
        table.add_row(name, p.bucket_kind, _amount(p.amount), p.unit)
    console.print(table)
    changes = ", ".join(f"{_amount(v)} {u}" for u, v in tx.changes.items())
    if changes:
        console.print(f"wallet change: [bold]{changes}[/]")


@account_app.command("create")
@handle_errors
def account_create(
    kind: Annotated[str, typer.Option(help="provider, organisation or user.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    parent: Annotated[int | None, typer.Option(help="Parent account id.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 (default: parent's).")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone (default: parent's).")] = None,
    billing_mode: Annotated[str | None, typer.Option(help="prepaid or postpaid.")] = None,
    credit_limit: Annotated[str, typer.Option(help="Postpaid credit limit.")] = "0",
    vat_country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-2.")] = None,
    vat_rate: Annotated[str | None, typer.Option(help="Fraction: 0.2 for 20%.")] = None,
    wallet: Annotated[
        bool | None, typer.Option("--wallet/--no-wallet", help="Hold its own wallet.")
    ] = None,
    idempotency_key: IdempotencyOption = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Create an account (a provider has no parent)."""
    account = accounts_service.create_account(
        open_db(database),
        kind=kind,
        name=name,
        parent_id=parent,
        currency=currency,
        timezone=timezone,
        billing_mode=billing_mode,
        credit_limit=credit_limit,
        vat_country=vat_country,
        vat_rate=vat_rate,
        has_wallet=wallet,
        idempotency_key=_key(idempotency_key),
        clock=SystemClock(),
    )
    if json_output:
        print_json(account)
        return
    console.print(_account_table([account], title="account created"))


@account_app.command("list")
@handle_errors
def account_list(
    root: AccountArg,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """List an account and every account below it."""
    items = accounts_service.list_subtree(open_db(database), root)
    if json_output:
        print_json(items)
        return
    console.print(_account_table(items))


@account_app.command("show")
@handle_errors
def account_show(
    account_id: AccountArg,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Show one account's settings."""
    account = accounts_service.get_account(open_db(database), account_id)
    if json_output:
        print_json(account)
        return
    table = Table(show_header=False, title=f"account {account.id}")
    for key, value in (
        ("name", account.name),
        ("kind", account.kind.value),
        ("parent", account.parent_id),
        ("provider", account.provider_id),
        ("currency", account.currency),
        ("timezone", account.timezone),
        ("billing mode", account.billing_mode.value),
        ("credit limit", _amount(account.credit_limit)),
        ("status", account.status.value),
        ("VAT", f"{_amount(account.vat_rate)} ({account.vat_country or '-'})"),
        ("wallet", "yes" if account.has_wallet else "no (nearest ancestor with one pays)"),
        ("created", account.created_at.isoformat()),
    ):
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


@handle_errors
def topup(
    account_id: AccountArg,
    amount: AmountArg,
    currency: CurrencyOption = None,
    payment_ref: Annotated[str | None, typer.Option(help="Payment reference.")] = None,
    memo: Annotated[str | None, typer.Option(help="Free text.")] = None,
    idempotency_key: IdempotencyOption = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Top up a wallet with a gross amount (VAT included); prints the receipt."""
    receipt = payments.record_top_up(
        open_db(database),
        account_id,
        amount,
        currency=currency,
        payment_ref=payment_ref,
        memo=memo,
        idempotency_key=_key(idempotency_key),
        clock=SystemClock(),
    )
    if json_output:
        print_json(receipt)
        return
    table = Table(show_header=False, title=f"receipt #{receipt.number}")
    table.add_row("account", str(receipt.account_id))
    table.add_row("amount paid", f"{_amount(receipt.amount)} {receipt.currency}")
    table.add_row("VAT included", f"{_amount(receipt.vat)} ({_amount(receipt.vat_rate)})")
    table.add_row("net", _amount(receipt.net))
    table.add_row("new balance", f"[bold]{_amount(receipt.new_balance)}[/] {receipt.currency}")
    console.print(table)


@handle_errors
def adjust(
    account_id: AccountArg,
    amount: Annotated[str, typer.Argument(help="Signed amount: -5.00 takes money off.")],
    reason: Annotated[str, typer.Option(help="Why (kept on the transaction).")],
    currency: CurrencyOption = None,
    idempotency_key: IdempotencyOption = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Correct a paid balance by a signed amount."""
    tx = wallets.adjust(
        open_db(database),
        account_id,
        amount,
        reason=reason,
        currency=currency,
        idempotency_key=_key(idempotency_key),
        clock=SystemClock(),
    )
    if json_output:
        print_json(tx)
        return
    _print_transaction(tx, "adjustment")


@handle_errors
def refund(
    account_id: AccountArg,
    amount: AmountArg,
    reason: Annotated[str, typer.Option(help="Why (kept on the transaction).")],
    currency: CurrencyOption = None,
    idempotency_key: IdempotencyOption = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Pay money back out of a paid balance."""
    tx = wallets.refund(
        open_db(database),
        account_id,
        amount,
        reason=reason,
        currency=currency,
        idempotency_key=_key(idempotency_key),
        clock=SystemClock(),
    )
    if json_output:
        print_json(tx)
        return
    _print_transaction(tx, "refund")


@handle_errors
def grant(
    account_id: AccountArg,
    amount: AmountArg,
    kind: Annotated[str, typer.Option(help="trial, free, incoming, outgoing or package.")],
    unit: Annotated[
        str | None, typer.Option(help="Packages: s:<counter> or msg:<counter>.")
    ] = None,
    expires_at: Annotated[
        str | None, typer.Option(help="ISO 8601 with a UTC offset, e.g. 2026-12-31T23:59:59Z.")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Lower drains first.")] = None,
    service: Annotated[str | None, typer.Option(help="Only for this service.")] = None,
    direction: Annotated[str | None, typer.Option(help="inbound or outbound.")] = None,
    label: Annotated[str | None, typer.Option(help="Shown to the customer.")] = None,
    idempotency_key: IdempotencyOption = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Grant credit in a new bucket (trial, free, directional money or a unit package)."""
    result = wallets.grant_credit(
        open_db(database),
        account_id,
        amount,
        kind=kind,
        unit=unit,
        expires_at=_parse_time(expires_at),
        priority=priority,
        service=service,
        direction=direction,
        label=label,
        idempotency_key=_key(idempotency_key),
        clock=SystemClock(),
    )
    if json_output:
        print_json(result)
        return
    expiry = result.expires_at.isoformat() if result.expires_at else "never"
    console.print(
        f"granted [bold]{_amount(result.amount)} {result.unit}[/] of {result.kind} credit "
        f"(bucket {result.bucket_id}, expires {expiry})"
    )


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"time {value!r} needs a UTC offset (e.g. Z or +00:00)")
    return moment


@handle_errors
def balance(
    account_id: AccountArg,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Balances per unit (posted, held, available) and the buckets behind them."""
    result = balances_service.get_balances(open_db(database), account_id, clock=SystemClock())
    if json_output:
        print_json(result)
        return
    payer = (
        ""
        if result.billing_account_id == result.account_id
        else f" (paid by account {result.billing_account_id})"
    )
    table = Table(title=f"balances of account {result.account_id}{payer}")
    for column in ("unit", "posted", "held", "available", "spendable"):
        table.add_column(column, justify="left" if column == "unit" else "right")
    for u in result.units:
        table.add_row(
            u.unit, _amount(u.posted), _amount(u.held), _amount(u.available), _amount(u.spendable)
        )
    console.print(table)
    buckets = Table(title="buckets (drained by priority, then earliest expiry; paid last)")
    for column in ("id", "kind", "unit", "balance", "held", "priority", "expires", "for"):
        buckets.add_column(column)
    for u in result.units:
        for b in u.buckets:
            expires = b.expires_at.isoformat() if b.expires_at else ""
            if b.expired:
                expires += " (expired)"
            buckets.add_row(
                str(b.id),
                b.kind,
                b.unit,
                _amount(b.balance),
                _amount(b.held),
                str(b.priority),
                expires,
                " ".join(x for x in (b.service, b.direction) if x) or "any",
            )
    console.print(buckets)


@handle_errors
def history(
    account_id: AccountArg,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Transactions per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="`next cursor` of the previous page.")] = None,
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Transactions of an account, newest first."""
    page = balances_service.list_history(open_db(database), account_id, limit=limit, cursor=cursor)
    if json_output:
        print_json(page)
        return
    table = Table(title=f"history of account {account_id}")
    for column in ("id", "time (UTC)", "kind", "change", "memo"):
        table.add_column(column)
    for tx in page.items:
        change = ", ".join(f"{_amount(v)} {u}" for u, v in tx.changes.items())
        table.add_row(
            str(tx.id), tx.created_at.strftime("%Y-%m-%d %H:%M:%S"), tx.kind, change, tx.memo or ""
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@handle_errors
def reconcile(
    json_output: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Prove the ledger adds up; exit 1 with a report when it does not."""
    report = reconcile_service.reconcile(open_db(database))
    if json_output:
        print_json({"ok": report.ok, **_report_dict(report)})
    elif report.ok:
        console.print(
            f"[green]ledger reconciles[/]: {report.ledger_accounts} ledger accounts, "
            f"{report.transactions} transactions, {report.postings} postings"
        )
    else:
        table = Table(title="reconcile problems")
        for column in ("check", "subject", "problem"):
            table.add_column(column)
        for problem in report.problems:
            table.add_row(problem.check, problem.subject, problem.message)
        console.print(table)
    if not report.ok:
        raise fail(f"ledger does not reconcile: {len(report.problems)} problem(s)")


def _report_dict(report: reconcile_service.ReconcileReport) -> dict[str, object]:
    from telbill.cli.common import to_jsonable

    result: dict[str, object] = to_jsonable(report)
    return result


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(account_app, name="account")
    # Let "-5.00" reach the amount argument (and get a clear error, or be a debit for adjust).
    amounts = {"ignore_unknown_options": True}
    app.command("topup", context_settings=amounts)(topup)
    app.command("adjust", context_settings=amounts)(adjust)
    app.command("refund", context_settings=amounts)(refund)
    app.command("grant", context_settings=amounts)(grant)
    app.command("balance")(balance)
    app.command("history")(history)
    app.command("reconcile")(reconcile)
