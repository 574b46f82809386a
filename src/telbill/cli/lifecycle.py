"""CLI of the lifecycle area: `telbill number ...`, `telbill subscription ...`,
`telbill package ...` and `telbill tick`.

Mutating commands take `--key` (an idempotency key; default: a fresh random one, so
re-running a command by hand is a new request; give a key to make a retry safe).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from telbill.adapters.formats.inventory_csv import read_inventory
from telbill.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    err_console,
    fail,
    handle_errors,
    open_db,
    print_json,
)
from telbill.cli.files import LimitedLines, input_path
from telbill.errors import InvalidInput
from telbill.services import numbers, scheduler, subscriptions
from telbill.services.clock import SystemClock

number_app = typer.Typer(
    help="Phone numbers: inventory, search, buy, release.", no_args_is_help=True
)
subscription_app = typer.Typer(help="Plans and subscriptions.", no_args_is_help=True)
package_app = typer.Typer(help="Minute and SMS packages.", no_args_is_help=True)

KeyOption = Annotated[
    str | None, typer.Option("--key", help="Idempotency key (default: a fresh one).")
]


def _key(key: str | None) -> str:
    return key or f"cli-{uuid.uuid4()}"


def _show(value: Any, as_json: bool, columns: tuple[str, ...]) -> None:
    if as_json:
        print_json(value)
        return
    rows = value if isinstance(value, list) else [value]
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(getattr(row, c, "")) for c in columns))
    console.print(table)


RENTAL_COLUMNS = ("id", "number", "account_id", "status", "anchor_day", "paid_until", "trial")


# ---------------------------------------------------------------------------- numbers


@number_app.command("import")
@handle_errors
def import_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Inventory CSV.")],
    provider: Annotated[int, typer.Option(help="Provider account id owning the inventory.")],
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Import the good rows even if some are bad.")
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a number inventory (bad rows are reported by line; nothing written unless
    --skip-bad)."""
    with input_path(path).open(newline="", encoding="utf-8") as handle:
        rows, errors = read_inventory(LimitedLines(handle, str(path)))
    for error in errors:
        err_console.print(f"line {error.line}: {error.reason}", highlight=False)
    if errors and not skip_bad:
        raise fail(f"{len(errors)} bad row(s) in {path}; nothing imported")
    result = numbers.import_inventory(open_db(database), provider, rows, clock=SystemClock())
    if as_json:
        print_json({**vars_of(result), "errors": len(errors)})
        return
    console.print(
        f"added {result.added}, updated {result.updated}, taken {len(result.taken)}, "
        f"bad rows {len(errors)}"
    )
    for number in result.taken:
        console.print(f"taken: {number}")


def vars_of(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}


@number_app.command("policy")
@handle_errors
def policy_command(
    provider: Annotated[int, typer.Argument(help="Provider account id.")],
    grace_months: Annotated[int, typer.Option(min=0, help="Months an unpaid number is kept.")] = 2,
    quarantine_days: Annotated[
        int, typer.Option(min=0, help="Days a released number rests before resale.")
    ] = 30,
    idle_days: Annotated[
        int | None, typer.Option(min=1, help="Release numbers idle this many days.")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the provider's grace period, quarantine and idle-release rule."""
    policy = numbers.set_number_policy(
        open_db(database),
        provider,
        grace_months=grace_months,
        quarantine_days=quarantine_days,
        idle_release_days=idle_days,
    )
    _show(policy, as_json, ("grace_months", "quarantine_days", "idle_release_days"))


@number_app.command("search")
@handle_errors
def search_command(
    country: Annotated[str, typer.Option(help="ISO country code, e.g. US.")],
    number_type: Annotated[str | None, typer.Option("--type", help="local, mobile...")] = None,
    area_code: Annotated[str | None, typer.Option(help="Area code, e.g. 617.")] = None,
    locality: Annotated[str | None, typer.Option(help="US/CA city, e.g. Boston.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search available numbers; shows number and price."""
    offers = numbers.search_numbers(
        open_db(database),
        country=country,
        number_type=number_type,
        area_code=area_code,
        locality=locality,
        limit=limit,
    )
    _show(
        offers,
        as_json,
        (
            "number",
            "number_type",
            "locality",
            "area_code",
            "monthly_price",
            "setup_price",
            "currency",
        ),
    )


@number_app.command("buy")
@handle_errors
def buy_command(
    account: Annotated[int, typer.Argument(help="Account id.")],
    number: Annotated[str, typer.Argument(help="E.164 number.")],
    key: KeyOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Buy a number: setup fee and first month from the balance now."""
    rental = numbers.buy_number(
        open_db(database), account, number, idempotency_key=_key(key), clock=SystemClock()
    )
    _show(rental, as_json, RENTAL_COLUMNS)


@number_app.command("verify")
@handle_errors
def verify_command(
    number: Annotated[str, typer.Argument(help="E.164 number waiting for its verification.")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve: charge, activate.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject: back to inventory.")] = False,
    reference: Annotated[
        str | None, typer.Option(help="The documents checked (kept on the record).")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve or reject the verification a pending number waits for."""
    if approve == reject:
        raise InvalidInput("give exactly one of --approve and --reject")
    rental = numbers.verify_number(
        open_db(database), number, approved=approve, reference=reference, clock=SystemClock()
    )
    _show(rental, as_json, RENTAL_COLUMNS)


@number_app.command("grace")
@handle_errors
def grace_command(
    account: Annotated[int, typer.Argument(help="Account id (its wallet's numbers).")],
    months: Annotated[
        int, typer.Option(help="Keep unpaid numbers this many months (provider's: policy).")
    ],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Support: keep one account's unpaid numbers longer than the provider's grace period."""
    rentals = numbers.extend_grace(
        open_db(database), account, grace_months=months, clock=SystemClock()
    )
    _show(rentals, as_json, (*RENTAL_COLUMNS, "grace_until"))


@number_app.command("release")
@handle_errors
def release_command(
    account: Annotated[int, typer.Argument(help="Account id.")],
    number: Annotated[str, typer.Argument(help="E.164 number.")],
    key: KeyOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a number back; it is quarantined before it returns to the inventory."""
    rental = numbers.release_number(
        open_db(database), account, number, idempotency_key=_key(key), clock=SystemClock()
    )
    _show(rental, as_json, RENTAL_COLUMNS)


@number_app.command("list")
@handle_errors
def list_command(
    account: Annotated[int, typer.Argument(help="Account id.")],
    all_: Annotated[bool, typer.Option("--all", help="Include released numbers.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Numbers an account rents."""
    rentals = numbers.list_numbers(open_db(database), account, include_released=all_)
    _show(rentals, as_json, RENTAL_COLUMNS)


# ---------------------------------------------------------------------------- subscriptions


def _parse_addon(text: str) -> dict[str, Any]:
    """``code=fee`` or ``code=feexqty`` (e.g. ``sip=5.00x2``)."""
    code, sep, rest = text.partition("=")
    if not sep or not code.strip():
        raise InvalidInput(f"add-on must be code=fee or code=feexqty, got {text!r}")
    fee, _, quantity = rest.partition("x")
    try:
        return {"code": code.strip(), "monthly_fee": fee.strip(), "quantity": int(quantity or 1)}
    except ValueError:
        raise InvalidInput(f"bad add-on quantity in {text!r}") from None


SUB_COLUMNS = ("id", "account_id", "plan_code", "seats", "monthly_total", "period_end", "status")


@subscription_app.command("plan")
@handle_errors
def plan_command(
    provider: Annotated[int, typer.Argument(help="Provider account id.")],
    code: Annotated[str, typer.Option(help="Plan code.")],
    fee: Annotated[str, typer.Option(help="Monthly fee per seat.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    free_credit_percent: Annotated[str, typer.Option(help="Monthly free credit, % of fee.")] = "0",
    trial_credit: Annotated[str, typer.Option(help="Credit granted on sign-up.")] = "0",
    trial_number_days: Annotated[int, typer.Option(min=0, help="Free first number days.")] = 7,
    keep_anniversary: Annotated[
        bool, typer.Option(help="Keep a number's anniversary after a late payment.")
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a subscription plan."""
    plan = subscriptions.create_plan(
        open_db(database),
        provider,
        code=code,
        name=name or code,
        monthly_fee=fee,
        free_credit_percent=Decimal(free_credit_percent),
        trial_credit=trial_credit,
        trial_number_days=trial_number_days,
        keep_anniversary=keep_anniversary,
        clock=SystemClock(),
    )
    _show(plan, as_json, ("id", "code", "monthly_fee", "free_credit_percent", "trial_credit"))


@subscription_app.command("create")
@handle_errors
def subscribe_command(
    account: Annotated[int, typer.Argument(help="Account id.")],
    plan: Annotated[str, typer.Argument(help="Plan code.")],
    seats: Annotated[int, typer.Option(min=1)] = 1,
    addon: Annotated[
        list[str] | None, typer.Option(help="Add-on code=fee[xqty]; repeatable.")
    ] = None,
    key: KeyOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe an account: the first period is charged now."""
    sub = subscriptions.subscribe(
        open_db(database),
        account,
        plan,
        seats=seats,
        addons=[_parse_addon(a) for a in addon or []],
        idempotency_key=_key(key),
        clock=SystemClock(),
    )
    _show(sub, as_json, SUB_COLUMNS)


@subscription_app.command("change")
@handle_errors
def change_command(
    subscription: Annotated[int, typer.Argument(help="Subscription id.")],
    seats: Annotated[int | None, typer.Option(min=1)] = None,
    addon: Annotated[
        list[str] | None, typer.Option(help="New add-ons code=fee[xqty]; repeatable.")
    ] = None,
    no_addons: Annotated[bool, typer.Option("--no-addons", help="Remove every add-on.")] = False,
    key: KeyOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change seats/add-ons now; the difference is prorated to the period end."""
    addons = [] if no_addons else ([_parse_addon(a) for a in addon] if addon else None)
    sub = subscriptions.change_subscription(
        open_db(database),
        subscription,
        seats=seats,
        addons=addons,
        idempotency_key=_key(key),
        clock=SystemClock(),
    )
    _show(sub, as_json, SUB_COLUMNS)


@subscription_app.command("cancel")
@handle_errors
def cancel_command(
    subscription: Annotated[int, typer.Argument(help="Subscription id.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop renewing a subscription (no refund of the current period)."""
    sub = subscriptions.cancel_subscription(open_db(database), subscription, clock=SystemClock())
    _show(sub, as_json, SUB_COLUMNS)


# ---------------------------------------------------------------------------- packages


@package_app.command("create")
@handle_errors
def package_create_command(
    provider: Annotated[int, typer.Argument(help="Provider account id.")],
    code: Annotated[str, typer.Option()],
    unit: Annotated[str, typer.Option(help="s:call, s:speech or msg:sms.")],
    amount: Annotated[str, typer.Option(help="Seconds or messages.")],
    price: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()] = "",
    validity_days: Annotated[int | None, typer.Option(min=1)] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a package to the provider's catalogue."""
    package = subscriptions.create_package(
        open_db(database),
        provider,
        code=code,
        name=name or code,
        unit=unit,
        amount=amount,
        price=price,
        validity_days=validity_days,
        clock=SystemClock(),
    )
    _show(package, as_json, ("id", "code", "unit", "amount", "price", "validity_days"))


@package_app.command("overage")
@handle_errors
def package_overage_command(
    account: Annotated[int, typer.Argument(help="Account id (its wallet).")],
    unit: Annotated[str, typer.Option(help="s:call, s:speech or msg:sms.")] = "s:call",
    database: DatabaseOption = None,
) -> None:
    """Owe usage beyond the packages in units (taken from the next package), not money."""
    bucket = subscriptions.owe_overage_in_units(
        open_db(database), account, unit, clock=SystemClock()
    )
    console.print(
        f"account {account} owes {unit} beyond its packages (bucket {bucket}); the next "
        "package bought pays it first",
        highlight=False,
    )


@package_app.command("buy")
@handle_errors
def package_buy_command(
    account: Annotated[int, typer.Argument(help="Account id.")],
    package: Annotated[str, typer.Argument(help="Package code.")],
    key: KeyOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Buy a package from the balance; packages accumulate."""
    purchase = subscriptions.buy_package(
        open_db(database), account, package, idempotency_key=_key(key), clock=SystemClock()
    )
    _show(purchase, as_json, ("id", "package_code", "amount", "unit", "expires_at"))


# ---------------------------------------------------------------------------- tick


def _parse_until(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--until must be an ISO 8601 time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@handle_errors
def tick_command(
    until: Annotated[
        str | None, typer.Option(help="Run jobs due up to this ISO time (default: now).")
    ] = None,
    every: Annotated[
        float | None, typer.Option(min=1, help="Keep running, one tick every N seconds.")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run every due job (renewals, fees, grants, expiries, grace ends, releases) once."""
    db = open_db(database)
    while True:
        report = scheduler.tick(db, _parse_until(until), clock=SystemClock())
        if as_json:
            print_json(
                {
                    "until": report.until,
                    "outcomes": dict(report.outcomes),
                    "holds_expired": report.holds_expired,
                }
            )
        else:
            done = (
                ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "nothing due"
            )
            console.print(f"tick to {report.until.isoformat()}: {done}")
        if every is None:
            return
        time.sleep(every)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(number_app, name="number")
    app.add_typer(subscription_app, name="subscription")
    app.add_typer(package_app, name="package")
    app.command("tick")(tick_command)
