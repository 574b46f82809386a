"""`telbill demo`: a fresh SQLite database seeded with a small telephony business.

Seeding is a list of steps (`SEED_STEPS`, ``"module:function"`` names, run in order); each
step takes the `DemoContext`, calls services only, and records what it did with
`DemoContext.report`. Another business area adds its own demo data (tariffs, rated calls,
numbers...) by writing a step in its own module and adding one line to `SEED_STEPS`.
"""

from __future__ import annotations

import importlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from rich.table import Table

from telbill.adapters.db.engine import Database, migrate
from telbill.cli.common import console
from telbill.services import accounts, balances, reconcile, wallets
from telbill.services.auth import Role, create_api_key
from telbill.services.clock import Clock, SystemClock

SEED_STEPS: tuple[str, ...] = (
    "telbill.cli.demo:seed_accounts",
    "telbill.cli.demo:seed_api_keys",
    "telbill.cli.demo:seed_money",
    "telbill.cli.demo_rating:seed_tariffs",
    "telbill.cli.demo_calls:seed_plans",
    "telbill.cli.demo_calls:seed_calls",
    "telbill.cli.demo:seed_usage",
    "telbill.cli.demo_rating:seed_quotes",
    "telbill.cli.invoices:seed_invoice_preview",
)


@dataclass
class DemoContext:
    """What seeding steps share: the database, a clock, and the names of what they made."""

    db: Database
    clock: Clock
    accounts: dict[str, int] = field(default_factory=dict)
    api_keys: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    tariffs: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    _keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def key(self, what: str) -> str:
        """A distinct idempotency key per seeding operation."""
        return f"demo:{what}:{next(self._keys)}"

    def report(self, step: str, what: str) -> None:
        self.log.append((step, what))


def seed_accounts(ctx: DemoContext) -> None:
    def create(name: str, kind: str, parent: str | None, **settings: object) -> None:
        account = accounts.create_account(
            ctx.db,
            kind=kind,
            name=name,
            parent_id=ctx.accounts[parent] if parent else None,
            idempotency_key=ctx.key("account"),
            clock=ctx.clock,
            **settings,  # type: ignore[arg-type]
        )
        ctx.accounts[name] = account.id
        mode = f"{account.billing_mode.value}" + (
            f", credit limit {account.credit_limit:f}" if account.credit_limit else ""
        )
        payer = "own wallet" if account.has_wallet else "charged to its parent"
        ctx.report("accounts", f"{kind} [bold]{name}[/] (id {account.id}, {mode}, {payer})")

    create(
        "Demo Telecom",
        "provider",
        None,
        currency="USD",
        timezone="Europe/London",
        vat_country="GB",
        vat_rate="0.2",
    )
    create("Acme Contact Centre", "organisation", "Demo Telecom")
    create("alice", "user", "Acme Contact Centre")
    create("bob", "user", "Acme Contact Centre")
    create(
        "Globex Voicebots",
        "organisation",
        "Demo Telecom",
        billing_mode="postpaid",
        credit_limit="500",
    )
    create("voicebot-1", "user", "Globex Voicebots")


def seed_api_keys(ctx: DemoContext) -> None:
    for label, account, role in (
        ("provider admin", "Demo Telecom", Role.PROVIDER_ADMIN),
        ("Acme admin", "Acme Contact Centre", Role.ORG_ADMIN),
        ("alice", "alice", Role.USER),
    ):
        created = create_api_key(
            ctx.db, account_id=ctx.accounts[account], role=role, name=label, clock=ctx.clock
        )
        assert created.secret is not None
        ctx.api_keys[label] = (created.secret, ctx.accounts[account], role.value)
        ctx.report("api keys", f"{role.value} key for {account}")


def seed_money(ctx: DemoContext) -> None:
    acme, globex = ctx.accounts["Acme Contact Centre"], ctx.accounts["Globex Voicebots"]
    for account, amount, ref in ((acme, "120.00", "card-4242"), (globex, "60.00", "sepa-0001")):
        receipt = wallets.top_up(
            ctx.db,
            account,
            amount,
            payment_ref=ref,
            idempotency_key=ctx.key("topup"),
            clock=ctx.clock,
        )
        ctx.report(
            "top-ups",
            f"receipt #{receipt.number}: {receipt.amount:f} {receipt.currency} to account "
            f"{account} (VAT {receipt.vat:f}, new balance {receipt.new_balance:f})",
        )
    month = ctx.clock.now() + timedelta(days=30)
    for account, kind, amount, extra, what in (
        (acme, "trial", "5.00", {"expires_at": month}, "trial credit, 30 days"),
        (acme, "package", "600", {"unit": "s:call", "label": "10 free minutes"}, "call time"),
        (globex, "incoming", "10.00", {}, "incoming-calls-only credit"),
    ):
        grant = wallets.grant_credit(
            ctx.db,
            account,
            amount,
            kind=kind,
            idempotency_key=ctx.key("grant"),
            clock=ctx.clock,
            **extra,
        )
        ctx.report("credits", f"{grant.amount:f} {grant.unit} {what} to account {account}")


def seed_usage(ctx: DemoContext) -> None:
    """Usage that is not a call: a speech-recognition fee debited by the voice-bot platform."""
    tx = wallets.debit(
        ctx.db,
        ctx.accounts["voicebot-1"],
        "0.72",
        service="speech",
        memo="speech recognition, 6 min",
        idempotency_key=ctx.key("usage"),
        clock=ctx.clock,
    )
    change = ", ".join(f"{v:f} {u}" for u, v in tx.changes.items())
    ctx.report("usage", f"voicebot-1: speech recognition, 6 min -> {change}")


def _resolve(name: str) -> Callable[[DemoContext], None]:
    module, _, function = name.partition(":")
    step: Callable[[DemoContext], None] = getattr(importlib.import_module(module), function)
    return step


def fresh_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            candidate.unlink()


def run_demo(url: str, path: Path, *, host: str, port: int) -> DemoContext:
    """Recreate the demo database at `path` (`url`), run every seeding step, print it all."""
    started = time.perf_counter()
    fresh_sqlite(path)
    migrate(url)
    db = Database(url)
    ctx = DemoContext(db=db, clock=SystemClock())
    try:
        for name in SEED_STEPS:
            _resolve(name)(ctx)
        report = reconcile.reconcile(db)
        _print(ctx, url, host, port, time.perf_counter() - started, report.ok)
    finally:
        db.dispose()
    return ctx


def _print(ctx: DemoContext, url: str, host: str, port: int, seconds: float, ok: bool) -> None:
    console.rule("[bold]telbill demo")
    step = None
    for section, what in ctx.log:
        if section != step:
            console.print(f"\n[bold cyan]{section}[/]")
            step = section
        console.print(f"  • {what}")
    table = Table(title="\nbalances")
    for column in ("account", "unit", "posted", "available", "spendable"):
        table.add_column(column)
    for name in ("Acme Contact Centre", "Globex Voicebots"):
        result = balances.get_balances(ctx.db, ctx.accounts[name], clock=ctx.clock)
        for unit in result.units:
            table.add_row(name, unit.unit, _d(unit.posted), _d(unit.available), _d(unit.spendable))
    console.print(table)
    console.print(
        f"\nreconcile: {'[green]the ledger adds up[/]' if ok else '[red]PROBLEMS[/]'}; "
        f"seeded in {seconds:.1f} s into {url}"
    )
    console.print("\n[bold cyan]API keys[/] (shown once; only their hashes are stored)")
    for label, (secret, account, role) in ctx.api_keys.items():
        console.print(f"  {label} ({role}, account {account}): [bold]{secret}[/]", soft_wrap=True)
    admin = ctx.api_keys["provider admin"][0]
    base = f"http://{host}:{port}"
    acme = ctx.accounts["Acme Contact Centre"]
    console.print(
        f"\nAPI:  {base}/v1   docs: {base}/docs\n"
        f'try:  curl -H "Authorization: Bearer {admin}" {base}/v1/accounts/{acme}/balances\n'
        f"CLI:  TELBILL_DATABASE_URL={url} .venv/bin/telbill balance {acme}\n"
        f"      TELBILL_DATABASE_URL={url} .venv/bin/telbill report calls {acme} "
        f"--month {ctx.clock.now():%Y-%m}",
        soft_wrap=True,
    )


def _d(value: Decimal) -> str:
    return f"{value:f}"


__all__ = ["SEED_STEPS", "DemoContext", "run_demo"]
