"""Subscriptions, sign-up trial credit, monthly free calling credit, minute/SMS packages.

Rules (issue 5):

* A subscription costs the plan's monthly fee x seats, plus add-ons (fixed monthly fee x
  quantity), charged in advance for each period (service ``recurring``). Periods run between
  anniversaries of the sign-up day in the payer's timezone (`telbill.domain.calendar`).
* A mid-period change of seats or add-ons is prorated: the difference of the monthly totals
  x days left / days in the period, half-up to micro-units; an increase is charged at once,
  a decrease is credited back to the paid balance.
* Sign-up grants the plan's trial credit, after the first fee is paid. It is credit for
  any service (the ledger's drain rule), so an unused trial credit also pays a later fee.
* Each paid period grants free calling credit = fee x seats x the plan's share (e.g. 20 %),
  in a ``free`` bucket for voice with no expiry: unused credit rolls over, and it drains
  before paid money (bucket priority). A seat change mid-period moves it at once: the
  difference for the days left is granted (more seats) or taken back from the unused free
  credit (fewer seats; never more than is left).
* An unpaid renewal makes the subscription ``past_due`` (no credit granted); the scheduler
  retries until the balance covers it, keeping the anniversary.
* Packages (``s:call``, ``s:speech``, ``msg:sms``) are bought from the balance at any time;
  each purchase is its own bucket so packages accumulate; an optional validity makes them
  expire, when the scheduler writes the remainder off to ``expired:<unit>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from sqlalchemy import Connection, select

from telbill.adapters.db import ledger_store
from telbill.adapters.db.engine import Database
from telbill.adapters.db.lifecycle_tables import (
    package_purchases,
    packages,
    subscription_plans,
    subscriptions,
)
from telbill.adapters.db.tables import ledger_accounts
from telbill.domain.calendar import (
    BillingPeriod,
    local_date,
    period_containing,
    period_from,
    prorate,
)
from telbill.domain.money import (
    DECIMAL_CONTEXT,
    from_micros,
    from_minor,
    is_money_unit,
    to_micros,
    validate_unit,
)
from telbill.errors import Conflict, InsufficientBalance, InvalidInput, NotFound
from telbill.ledger import BucketKind, JournalEntry, Posting, transfer
from telbill.services import idempotency
from telbill.services.accounts import PPM, Account, AccountKind, billing_account, load_account
from telbill.services.clock import Clock
from telbill.services.events import emit
from telbill.services.inputs import minor_amount
from telbill.services.lifecycle_common import (
    Charge,
    Grant,
    can_afford,
    charge_in,
    grant_in,
    grant_many_in,
    lock_account,
)

PACKAGE_UNITS = ("s:call", "s:speech", "msg:sms")


@dataclass(frozen=True, slots=True)
class Plan:
    id: int
    provider_id: int
    code: str
    name: str
    currency: str
    monthly_fee: Decimal
    free_credit_percent: Decimal
    trial_credit: Decimal
    trial_number_days: int
    keep_anniversary: bool


@dataclass(frozen=True, slots=True)
class AddOn:
    code: str
    name: str
    monthly_fee: Decimal
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    account_id: int
    plan_code: str
    seats: int
    addons: tuple[AddOn, ...]
    anchor_day: int
    period_start: datetime
    period_end: datetime
    status: str
    monthly_total: Decimal


def _plan(row: Any) -> Plan:
    return Plan(
        id=row.id,
        provider_id=row.provider_id,
        code=row.code,
        name=row.name,
        currency=row.currency,
        monthly_fee=from_micros(row.monthly_fee_micros),
        free_credit_percent=(Decimal(row.free_credit_ppm) / 10_000).normalize(),
        trial_credit=from_micros(row.trial_credit_micros),
        trial_number_days=row.trial_number_days,
        keep_anniversary=row.keep_anniversary,
    )


def _addons(raw: Sequence[Mapping[str, Any]]) -> tuple[AddOn, ...]:
    return tuple(
        AddOn(a["code"], a["name"], from_micros(int(a["fee_micros"])), int(a["quantity"]))
        for a in raw
    )


def _monthly_total_micros(
    plan_fee_micros: int, seats: int, addons: Sequence[Mapping[str, Any]]
) -> int:
    return plan_fee_micros * seats + sum(int(a["fee_micros"]) * int(a["quantity"]) for a in addons)


def load_subscription(
    conn: Connection, subscription_id: int, *, lock: bool = False
) -> Subscription:
    query = (
        select(subscriptions, subscription_plans.c.code, subscription_plans.c.monthly_fee_micros)
        .select_from(subscriptions.join(subscription_plans))
        .where(subscriptions.c.id == subscription_id)
    )
    row = conn.execute(query.with_for_update(of=subscriptions) if lock else query).first()
    if row is None:
        raise NotFound(f"subscription {subscription_id} not found")
    return Subscription(
        id=row.id,
        account_id=row.account_id,
        plan_code=row.code,
        seats=row.seats,
        addons=_addons(row.addons),
        anchor_day=row.anchor_day,
        period_start=row.period_start,
        period_end=row.period_end,
        status=row.status,
        monthly_total=from_micros(
            _monthly_total_micros(row.monthly_fee_micros, row.seats, row.addons)
        ),
    )


def current_subscription(db: Database, account_id: int) -> Subscription:
    """The account's subscription that is not cancelled; NotFound when there is none."""
    with db.transaction() as conn:
        found = conn.execute(
            select(subscriptions.c.id)
            .where(subscriptions.c.account_id == account_id, subscriptions.c.status != "cancelled")
            .order_by(subscriptions.c.id.desc())
        ).first()
        if found is None:
            raise NotFound(f"account {account_id} has no subscription")
        return load_subscription(conn, found.id)


# ---------------------------------------------------------------------------- plans


def create_plan(
    db: Database,
    provider_id: int,
    *,
    code: str,
    name: str,
    monthly_fee: Decimal | str | int,
    free_credit_percent: Decimal | str | int = 0,
    trial_credit: Decimal | str | int = 0,
    trial_number_days: int = 7,
    keep_anniversary: bool = False,
    clock: Clock,
    idempotency_key: str | None = None,
) -> Plan:
    """Add a subscription plan to a provider's catalogue (prices in the provider's currency).

    With `idempotency_key` a repeat returns the plan created first (the API's retries).
    """
    percent = Decimal(str(free_credit_percent))
    if not Decimal(0) <= percent <= Decimal(100):
        raise InvalidInput(f"free credit percent must be between 0 and 100, got {percent}")
    if trial_number_days < 0:
        raise InvalidInput("trial number days must not be negative")
    if not code.strip():
        raise InvalidInput("plan code must not be empty")

    def work(conn: Connection) -> Plan:
        provider = load_account(conn, provider_id)
        if provider.kind is not AccountKind.PROVIDER:
            raise InvalidInput(f"account {provider_id} is not a provider")
        fee = to_micros(Decimal(str(monthly_fee)))
        trial = to_micros(Decimal(str(trial_credit)))
        if fee < 0 or trial < 0:
            raise InvalidInput("plan amounts must not be negative")
        exists = conn.execute(
            select(subscription_plans.c.id).where(
                subscription_plans.c.provider_id == provider_id,
                subscription_plans.c.code == code.strip(),
            )
        ).first()
        if exists is not None:
            raise Conflict(f"plan {code!r} already exists")
        plan_id = conn.execute(
            subscription_plans.insert()
            .values(
                provider_id=provider_id,
                code=code.strip(),
                name=name.strip() or code.strip(),
                currency=provider.currency,
                monthly_fee_micros=fee,
                free_credit_ppm=int(percent * PPM / 100),
                trial_credit_micros=trial,
                trial_number_days=trial_number_days,
                keep_anniversary=keep_anniversary,
                created_at=clock.now(),
            )
            .returning(subscription_plans.c.id)
        ).scalar_one()
        return _plan(
            conn.execute(select(subscription_plans).where(subscription_plans.c.id == plan_id)).one()
        )

    request = {
        "code": code,
        "name": name,
        "monthly_fee": str(monthly_fee),
        "free_credit_percent": str(free_credit_percent),
        "trial_credit": str(trial_credit),
        "trial_number_days": trial_number_days,
        "keep_anniversary": keep_anniversary,
    }
    return db.run(
        _once_by_id(f"plan.create:{provider_id}", idempotency_key, request, clock, work, _load_plan)
    )


def _load_plan(conn: Connection, plan_id: int) -> Plan:
    return _plan(
        conn.execute(select(subscription_plans).where(subscription_plans.c.id == plan_id)).one()
    )


def _once_by_id(
    scope: str,
    key: str | None,
    request: Mapping[str, Any],
    clock: Clock,
    work: Any,
    load: Any,
) -> Any:
    """`work(conn)` guarded by an optional idempotency key; a repeat re-reads the row first
    created (its id is what the key remembers)."""
    if key is None:
        return work

    def guarded(conn: Connection) -> Any:
        return idempotency.once(
            conn,
            scope=scope,
            key=key,
            request=request,
            now=clock.now(),
            perform=lambda: {"id": work(conn).id},
            load=lambda stored: load(conn, int(stored["id"])),
        )

    return guarded


def list_plans(db: Database, account_id: int) -> list[Plan]:
    """The plans `account_id` may subscribe to: its provider's catalogue (a provider's own)."""
    with db.transaction() as conn:
        provider_id = load_account(conn, account_id).provider_id
        rows = conn.execute(
            select(subscription_plans)
            .where(subscription_plans.c.provider_id == provider_id)
            .order_by(subscription_plans.c.code)
        )
        return [_plan(row) for row in rows]


def list_packages(db: Database, account_id: int) -> list[Package]:
    """The packages `account_id` may buy: its provider's catalogue (a provider's own)."""
    with db.transaction() as conn:
        provider_id = load_account(conn, account_id).provider_id
        rows = conn.execute(
            select(packages).where(packages.c.provider_id == provider_id).order_by(packages.c.code)
        )
        return [_package(row) for row in rows]


def _find_plan(conn: Connection, account: Account, code: str) -> Any:
    row = conn.execute(
        select(subscription_plans).where(
            subscription_plans.c.provider_id == account.provider_id,
            subscription_plans.c.code == code,
        )
    ).first()
    if row is None:
        raise NotFound(f"plan {code!r} not found")
    return row


def _addon_rows(addons: Sequence[AddOn | Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for item in addons:
        addon = (
            item
            if isinstance(item, AddOn)
            else AddOn(
                str(item["code"]),
                str(item.get("name") or item["code"]),
                Decimal(str(item["monthly_fee"])),
                int(item.get("quantity", 1)),
            )
        )
        if addon.quantity < 1 or addon.monthly_fee < 0:
            raise InvalidInput(f"add-on {addon.code!r}: quantity >= 1 and a fee >= 0 are required")
        rows.append(
            {
                "code": addon.code,
                "name": addon.name,
                "fee_micros": to_micros(addon.monthly_fee),
                "quantity": addon.quantity,
            }
        )
    codes = [r["code"] for r in rows]
    if len(set(codes)) != len(codes):
        raise InvalidInput("an add-on is listed twice")
    return rows


def _free_credit_micros(plan: Any, seats: int) -> int:
    with localcontext(DECIMAL_CONTEXT):
        share = Decimal(plan.monthly_fee_micros * seats) * plan.free_credit_ppm / PPM
        return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def period_charge(
    subscription_id: int,
    plan: Any,
    seats: int,
    addons: Sequence[Mapping[str, Any]],
    period: BillingPeriod,
) -> Charge:
    """The fee of one period, charged in advance (its key makes it once per period)."""
    label = period.first_day.isoformat()
    return Charge(
        _monthly_total_micros(plan.monthly_fee_micros, seats, addons),
        "recurring",
        f"subscription:{subscription_id}:period:{label}",
        f"subscription {plan.code} x{seats}, period from {label}",
        {"subscription_id": subscription_id, "period_start": label, "seats": seats},
    )


def free_credit_grant(
    subscription_id: int,
    plan: Any,
    seats: int,
    period: BillingPeriod,
    payer: Account,
    now: datetime,
) -> Grant | None:
    """The free calling credit a paid period brings (None when the plan gives none)."""
    credit = _free_credit_micros(plan, seats)
    if credit <= 0:
        return None
    label = period.first_day.isoformat()
    return Grant(
        payer,
        BucketKind.FREE,
        credit,
        payer.currency,
        f"subscription:{subscription_id}:free:{label}",
        now,
        f"free calling credit {plan.code}, period from {label}",
        service="voice",
    )


def _pay_period(
    conn: Connection,
    subscription_id: int,
    account_id: int,
    plan: Any,
    seats: int,
    addons: Sequence[Mapping[str, Any]],
    period: BillingPeriod,
    now: datetime,
    payer: Account,
) -> None:
    """Charge one period in advance and grant its free calling credit (InsufficientBalance,
    with nothing written, when the balance does not cover the fee)."""
    charge_in(conn, account_id, [period_charge(subscription_id, plan, seats, addons, period)], now)
    grant = free_credit_grant(subscription_id, plan, seats, period, payer, now)
    if grant is not None:
        grant_many_in(conn, [grant])


def is_renewal_due(row: Any, period: str, now: datetime) -> bool:
    """Whether the renewal keyed `period` is still the subscription's next one, due by `now`."""
    return row.status == "active" and row.period_end.isoformat() == period and row.period_end <= now


def next_period(row: Any, payer: Account) -> BillingPeriod:
    """The period a renewal at `row.period_end` pays for."""
    first_day = local_date(row.period_end, payer.timezone)
    return period_from(first_day, row.anchor_day, payer.timezone)


# ---------------------------------------------------------------------------- subscribe


def subscribe(
    db: Database,
    account_id: int,
    plan_code: str,
    *,
    seats: int = 1,
    addons: Sequence[AddOn | Mapping[str, Any]] = (),
    idempotency_key: str,
    clock: Clock,
) -> Subscription:
    """Sign `account_id` up: first period charged now, trial credit and free credit granted."""
    if not isinstance(seats, int) or seats < 1:
        raise InvalidInput(f"seats must be a positive integer, got {seats!r}")
    addon_rows = _addon_rows(addons)

    def work(conn: Connection) -> Subscription:
        now = clock.now()

        def perform() -> dict[str, Any]:
            payer = billing_account(conn, account_id)
            lock_account(conn, payer.id)
            plan = _find_plan(conn, payer, plan_code)
            if plan.currency != payer.currency:
                raise InvalidInput(f"plan {plan_code!r} is priced in {plan.currency}")
            active = conn.execute(
                select(subscriptions.c.id).where(
                    subscriptions.c.account_id == account_id,
                    subscriptions.c.status != "cancelled",
                )
            ).first()
            if active is not None:
                raise Conflict(f"account {account_id} already has subscription {active.id}")
            today = local_date(now, payer.timezone)
            period = period_from(today, today.day, payer.timezone)
            subscription_id = int(
                conn.execute(
                    subscriptions.insert()
                    .values(
                        account_id=account_id,
                        plan_id=plan.id,
                        seats=seats,
                        addons=addon_rows,
                        anchor_day=today.day,
                        period_start=now,
                        period_end=period.end,
                        status="active",
                        created_at=now,
                    )
                    .returning(subscriptions.c.id)
                ).scalar_one()
            )
            _pay_period(
                conn, subscription_id, account_id, plan, seats, addon_rows, period, now, payer
            )
            if plan.trial_credit_micros > 0:
                grant_in(
                    conn,
                    payer,
                    kind=BucketKind.TRIAL,
                    amount=plan.trial_credit_micros,
                    unit=payer.currency,
                    idempotency_key=f"subscription:{subscription_id}:trial",
                    now=now,
                    label=f"trial credit {plan.code}",
                )
            return {"subscription_id": subscription_id}

        return idempotency.once(
            conn,
            scope=f"subscription.subscribe:{account_id}",
            key=idempotency_key,
            request={"plan": plan_code, "seats": seats, "addons": addon_rows},
            now=now,
            perform=perform,
            load=lambda response: load_subscription(conn, int(response["subscription_id"])),
        )

    return db.run(work)


def change_subscription(
    db: Database,
    subscription_id: int,
    *,
    seats: int | None = None,
    addons: Sequence[AddOn | Mapping[str, Any]] | None = None,
    idempotency_key: str,
    clock: Clock,
) -> Subscription:
    """Change seats and/or add-ons now; the difference is prorated to the period's end."""
    if seats is not None and (not isinstance(seats, int) or seats < 1):
        raise InvalidInput(f"seats must be a positive integer, got {seats!r}")
    new_addons = None if addons is None else _addon_rows(addons)

    def work(conn: Connection) -> Subscription:
        now = clock.now()

        def perform() -> dict[str, Any]:
            row = conn.execute(
                select(subscriptions).where(subscriptions.c.id == subscription_id)
            ).first()
            if row is None:
                raise NotFound(f"subscription {subscription_id} not found")
            payer = billing_account(conn, row.account_id)
            lock_account(conn, payer.id)
            if row.status != "active":
                raise Conflict(f"subscription {subscription_id} is {row.status}")
            plan = conn.execute(
                select(subscription_plans).where(subscription_plans.c.id == row.plan_id)
            ).one()
            new_seats = row.seats if seats is None else seats
            addon_rows = row.addons if new_addons is None else new_addons
            old_total = _monthly_total_micros(plan.monthly_fee_micros, row.seats, row.addons)
            new_total = _monthly_total_micros(plan.monthly_fee_micros, new_seats, addon_rows)
            period = period_containing(
                row.anchor_day, row.period_end - timedelta(seconds=1), payer.timezone
            )
            share = to_micros(
                prorate(
                    from_micros(abs(new_total - old_total)), period, local_date(now, payer.timezone)
                )
            )
            key = f"subscription:{subscription_id}:change:{idempotency_key}"
            details = {
                "subscription_id": subscription_id,
                "from_total": old_total,
                "to_total": new_total,
            }
            if new_total > old_total and share > 0:
                charge_in(
                    conn,
                    row.account_id,
                    [Charge(share, "recurring", key, "prorated subscription change", details)],
                    now,
                )
            elif new_total < old_total and share > 0:
                _credit_back(conn, payer, share, key, details, now)
            free = _adjust_free_credit(
                conn,
                payer,
                plan,
                (row.seats, new_seats),
                period,
                local_date(now, payer.timezone),
                key,
                now,
            )
            conn.execute(
                subscriptions.update()
                .where(subscriptions.c.id == subscription_id)
                .values(seats=new_seats, addons=addon_rows)
            )
            return {
                "subscription_id": subscription_id,
                "prorated_micros": share,
                "free_credit_micros": free,
            }

        return idempotency.once(
            conn,
            scope=f"subscription.change:{subscription_id}",
            key=idempotency_key,
            request={"seats": seats, "addons": new_addons},
            now=now,
            perform=perform,
            load=lambda response: load_subscription(conn, int(response["subscription_id"])),
        )

    return db.run(work)


def _adjust_free_credit(
    conn: Connection,
    payer: Account,
    plan: Any,
    seats: tuple[int, int],
    period: BillingPeriod,
    today: date,
    key: str,
    now: datetime,
) -> int:
    """A seat change moves this period's free calling credit at once, prorated to its end:
    more seats grant the difference for the days left; fewer seats take back the difference
    for the days left, from the free credit still unused (never more than is left, newest
    credit first). Returns the signed change in micro-units."""
    before, after = (_free_credit_micros(plan, count) for count in seats)
    share = to_micros(prorate(from_micros(abs(after - before)), period, today))
    if share <= 0:
        return 0
    if after > before:
        grant_in(
            conn,
            payer,
            kind=BucketKind.FREE,
            amount=share,
            unit=payer.currency,
            idempotency_key=f"{key}:free",
            now=now,
            label=f"free calling credit {plan.code}, {seats[1]} seats from {today.isoformat()}",
            service="voice",
        )
        return share
    unused = [
        bucket
        for bucket in ledger_store.load_buckets(conn, [payer.id], unit=payer.currency)
        if bucket.kind is BucketKind.FREE
        and bucket.service == "voice"
        and (bucket.expires_at is None or bucket.expires_at > now)
        and bucket.balance - bucket.held > 0
    ]
    takes: list[Posting] = []
    left = share
    for bucket in sorted(unused, key=lambda b: -b.id):
        take = min(left, bucket.balance - bucket.held)
        takes.append(Posting(bucket.id, -take, payer.currency))
        left -= take
        if left == 0:
            break
    taken = share - left
    if taken == 0:
        return 0
    source = ledger_store.system_account(conn, f"promotions:{payer.currency}", payer.currency, now)
    entry = JournalEntry(
        kind="grant_clawback",
        account_id=payer.id,
        postings=(*takes, Posting(source, taken, payer.currency)),
        memo=f"free calling credit {plan.code}, {seats[1]} seats from {today.isoformat()}",
        details={"from_seats": seats[0], "to_seats": seats[1], "unused_taken": taken},
        idempotency_key=f"{key}:free",
    )
    ledger_store.apply_entry(conn, entry, now)
    return -taken


def _credit_back(
    conn: Connection,
    payer: Account,
    amount: int,
    key: str,
    details: Mapping[str, Any],
    now: datetime,
) -> None:
    buckets = ledger_store.load_buckets(conn, [payer.id], unit=payer.currency)
    paid = next(b for b in buckets if b.kind is BucketKind.PAID)
    revenue = ledger_store.system_account(
        conn, f"revenue:recurring:{payer.currency}", payer.currency, now
    )
    entry = transfer(
        "proration_credit",
        account_id=payer.id,
        source_id=revenue,
        destination_id=paid.id,
        amount=amount,
        unit=payer.currency,
        memo="prorated subscription change",
        details=details,
        idempotency_key=key,
    )
    ledger_store.apply_entry(conn, entry, now)


def cancel_subscription(db: Database, subscription_id: int, *, clock: Clock) -> Subscription:
    """Stop renewing; the period already paid is not refunded."""

    def work(conn: Connection) -> Subscription:
        current = load_subscription(conn, subscription_id, lock=True)
        if current.status != "cancelled":
            conn.execute(
                subscriptions.update()
                .where(subscriptions.c.id == subscription_id)
                .values(status="cancelled", cancelled_at=clock.now())
            )
        return load_subscription(conn, subscription_id)

    return db.run(work)


# ---------------------------------------------------------------------------- scheduled


def _scheduled_context(conn: Connection, subscription_id: int) -> tuple[Any, Any, Account]:
    row = conn.execute(
        select(subscriptions).where(subscriptions.c.id == subscription_id).with_for_update()
    ).one()
    plan = conn.execute(
        select(subscription_plans).where(subscription_plans.c.id == row.plan_id)
    ).one()
    return row, plan, billing_account(conn, row.account_id)


def renew_subscription(
    conn: Connection, subscription_id: int, period: str, now: datetime
) -> str | None:
    """At `period_end`: charge the next period (and grant its credit) or mark it past due."""
    row, plan, payer = _scheduled_context(conn, subscription_id)
    if not is_renewal_due(row, period, now):
        return None
    paid = next_period(row, payer)
    try:  # a refused charge writes nothing: no separate affordability read on the way
        _pay_period(conn, row.id, row.account_id, plan, row.seats, row.addons, paid, now, payer)
    except InsufficientBalance:
        conn.execute(
            subscriptions.update().where(subscriptions.c.id == row.id).values(status="past_due")
        )
        return "past_due"
    conn.execute(
        subscriptions.update()
        .where(subscriptions.c.id == row.id)
        .values(period_start=paid.start, period_end=paid.end)
    )
    return "renewed"


def retry_subscription(
    conn: Connection, subscription_id: int, period: str, now: datetime
) -> str | None:
    """A past-due subscription is charged as soon as the balance covers it, for the period
    that contains the payment (anniversary kept)."""
    row, plan, payer = _scheduled_context(conn, subscription_id)
    if row.status != "past_due" or row.period_end.isoformat() != period:
        return None
    total = _monthly_total_micros(plan.monthly_fee_micros, row.seats, row.addons)
    if not can_afford(conn, payer, total, "recurring", now):
        return None
    current = period_containing(row.anchor_day, now, payer.timezone)
    _pay_period(conn, row.id, row.account_id, plan, row.seats, row.addons, current, now, payer)
    conn.execute(
        subscriptions.update()
        .where(subscriptions.c.id == row.id)
        .values(status="active", period_start=now, period_end=current.end)
    )
    return "renewed_late"


# ---------------------------------------------------------------------------- packages


@dataclass(frozen=True, slots=True)
class Package:
    id: int
    code: str
    name: str
    unit: str
    amount: Decimal
    currency: str
    price: Decimal
    validity_days: int | None


@dataclass(frozen=True, slots=True)
class PackagePurchase:
    id: int
    account_id: int
    package_code: str
    bucket_id: int
    amount: Decimal
    unit: str
    bought_at: datetime
    expires_at: datetime | None


def _package(row: Any) -> Package:
    return Package(
        id=row.id,
        code=row.code,
        name=row.name,
        unit=row.unit,
        amount=from_minor(row.amount, row.unit),
        currency=row.currency,
        price=from_micros(row.price_micros),
        validity_days=row.validity_days,
    )


def create_package(
    db: Database,
    provider_id: int,
    *,
    code: str,
    name: str,
    unit: str,
    amount: Decimal | str | int,
    price: Decimal | str | int,
    validity_days: int | None = None,
    clock: Clock,
    idempotency_key: str | None = None,
) -> Package:
    """Add a minute/SMS package to a provider's catalogue (`idempotency_key`: as plans)."""
    if validate_unit(unit) not in PACKAGE_UNITS or is_money_unit(unit):
        raise InvalidInput(f"package unit must be one of {', '.join(PACKAGE_UNITS)}, got {unit!r}")
    if validity_days is not None and validity_days < 1:
        raise InvalidInput("validity days must be positive")
    minor = minor_amount(amount, unit)

    def work(conn: Connection) -> Package:
        provider = load_account(conn, provider_id)
        if provider.kind is not AccountKind.PROVIDER:
            raise InvalidInput(f"account {provider_id} is not a provider")
        price_micros = to_micros(Decimal(str(price)))
        if price_micros < 0:
            raise InvalidInput("package price must not be negative")
        package_id = conn.execute(
            packages.insert()
            .values(
                provider_id=provider_id,
                code=code.strip(),
                name=name.strip() or code.strip(),
                unit=unit,
                amount=minor,
                currency=provider.currency,
                price_micros=price_micros,
                validity_days=validity_days,
                created_at=clock.now(),
            )
            .returning(packages.c.id)
        ).scalar_one()
        return _load_package(conn, package_id)

    request = {
        "code": code,
        "name": name,
        "unit": unit,
        "amount": str(amount),
        "price": str(price),
        "validity_days": validity_days,
    }
    return db.run(
        _once_by_id(
            f"package.create:{provider_id}", idempotency_key, request, clock, work, _load_package
        )
    )


def _load_package(conn: Connection, package_id: int) -> Package:
    return _package(conn.execute(select(packages).where(packages.c.id == package_id)).one())


def owe_overage_in_units(db: Database, account_id: int, unit: str, *, clock: Clock) -> int:
    """Make the wallet of `account_id` owe the `unit` (``s:call``...) its usage takes beyond
    its packages, instead of paying it as money (issue 17, rule 6, the voice-bot model): a
    paid bucket in `unit` goes below zero, and the next package of that unit bought pays
    that debt first. Returns the bucket's id (the same when asked again)."""
    if unit not in PACKAGE_UNITS:
        raise InvalidInput(f"unit must be one of {', '.join(sorted(PACKAGE_UNITS))}")

    def work(conn: Connection) -> int:
        payer = billing_account(conn, account_id)
        for bucket in ledger_store.load_buckets(conn, [payer.id], unit=unit):
            if bucket.kind is BucketKind.PAID:
                return bucket.id
        return ledger_store.create_bucket(
            conn, account_id=payer.id, kind=BucketKind.PAID, unit=unit, now=clock.now(),
            priority=1_000_000, label=f"{unit} owed beyond packages",  # drained last
        )  # fmt: skip

    return db.run(work)


def _settle_owed_units(
    conn: Connection, payer: Account, unit: str, bucket_id: int, amount: int, key: str,
    now: datetime,
) -> None:  # fmt: skip
    """A new package of `unit` first pays what the wallet owes in that unit (its paid
    bucket below zero, `owe_overage_in_units`)."""
    for bucket in ledger_store.load_buckets(conn, [payer.id], unit=unit):
        if bucket.kind is BucketKind.PAID and bucket.balance < 0:
            owed = min(-bucket.balance, amount)
            entry = transfer(
                "package_overage", account_id=payer.id, source_id=bucket_id,
                destination_id=bucket.id, amount=owed, unit=unit,
                memo=f"{owed} {unit} owed from earlier usage",
                details={"package_bucket_id": bucket_id}, idempotency_key=f"{key}:overage",
            )  # fmt: skip
            ledger_store.apply_entry(conn, entry, now)
            return


def buy_package(
    db: Database, account_id: int, package_code: str, *, idempotency_key: str, clock: Clock
) -> PackagePurchase:
    """Pay a package from the balance and add its units in a new bucket (they accumulate)."""

    def work(conn: Connection) -> PackagePurchase:
        now = clock.now()

        def perform() -> dict[str, Any]:
            payer = billing_account(conn, account_id)
            row = conn.execute(
                select(packages).where(
                    packages.c.provider_id == payer.provider_id, packages.c.code == package_code
                )
            ).first()
            if row is None:
                raise NotFound(f"package {package_code!r} not found")
            if row.currency != payer.currency:
                raise InvalidInput(f"package {package_code!r} is priced in {row.currency}")
            key = f"package:{account_id}:{idempotency_key}"
            charge_in(
                conn,
                account_id,
                [
                    Charge(
                        row.price_micros,
                        "recurring",
                        key,
                        f"package {row.code}",
                        {"package": row.code},
                    )
                ],
                now,
            )
            expires = None if row.validity_days is None else now + timedelta(days=row.validity_days)
            bucket_id, _ = grant_in(
                conn,
                payer,
                kind=BucketKind.PACKAGE,
                amount=row.amount,
                unit=row.unit,
                idempotency_key=key,
                now=now,
                label=f"package {row.code}",
                expires_at=expires,
                counter=row.unit.split(":", 1)[1],
            )
            _settle_owed_units(conn, payer, row.unit, bucket_id, row.amount, key, now)
            purchase_id = conn.execute(
                package_purchases.insert()
                .values(
                    account_id=payer.id,
                    package_id=row.id,
                    bucket_id=bucket_id,
                    bought_at=now,
                    expires_at=expires,
                    expired=False,
                )
                .returning(package_purchases.c.id)
            ).scalar_one()
            return {"purchase_id": int(purchase_id)}

        return idempotency.once(
            conn,
            scope=f"package.buy:{account_id}",
            key=idempotency_key,
            request={"package": package_code},
            now=now,
            perform=perform,
            load=lambda response: _load_purchase(conn, int(response["purchase_id"])),
        )

    return db.run(work)


def _load_purchase(conn: Connection, purchase_id: int) -> PackagePurchase:
    row = conn.execute(
        select(package_purchases, packages.c.code, packages.c.unit, packages.c.amount)
        .select_from(package_purchases.join(packages))
        .where(package_purchases.c.id == purchase_id)
    ).one()
    return PackagePurchase(
        id=row.id,
        account_id=row.account_id,
        package_code=row.code,
        bucket_id=row.bucket_id,
        amount=from_minor(row.amount, row.unit),
        unit=row.unit,
        bought_at=row.bought_at,
        expires_at=row.expires_at,
    )


def package_counters(db: Database, account_id: int, *, clock: Clock) -> dict[str, Decimal]:
    """Units left per counter ("call", "speech", "sms") in unexpired package buckets."""
    now = clock.now()
    with db.transaction() as conn:
        payer = billing_account(conn, account_id)
        rows = conn.execute(
            select(
                ledger_accounts.c.unit, ledger_accounts.c.balance, ledger_accounts.c.expires_at
            ).where(
                ledger_accounts.c.account_id == payer.id,
                ledger_accounts.c.kind == BucketKind.PACKAGE.value,
            )
        ).all()
    counters: dict[str, Decimal] = {u.split(":", 1)[1]: Decimal(0) for u in PACKAGE_UNITS}
    for row in rows:
        if row.expires_at is not None and row.expires_at <= now:
            continue
        counter = row.unit.split(":", 1)[1]
        counters[counter] = counters.get(counter, Decimal(0)) + from_minor(row.balance, row.unit)
    return counters


def expire_package(conn: Connection, purchase_id: int, period: str, now: datetime) -> str | None:
    """At its expiry, write the units a package still holds off to ``expired:<unit>``."""
    row = conn.execute(
        select(package_purchases).where(package_purchases.c.id == purchase_id).with_for_update()
    ).first()
    if row is None or row.expired or row.expires_at is None:
        return None
    if row.expires_at.isoformat() != period or row.expires_at > now:
        return None
    bucket = conn.execute(
        select(ledger_accounts).where(ledger_accounts.c.id == row.bucket_id).with_for_update()
    ).one()
    left = bucket.balance - bucket.held
    if left > 0:
        target = ledger_store.system_account(conn, f"expired:{bucket.unit}", bucket.unit, now)
        entry = transfer(
            "expiry",
            account_id=row.account_id,
            source_id=bucket.id,
            destination_id=target,
            amount=left,
            unit=bucket.unit,
            memo="package expired",
            details={"purchase_id": row.id, "bucket_id": bucket.id},
            idempotency_key=f"package-expiry:{row.id}",
        )
        ledger_store.apply_entry(conn, entry, now)
    conn.execute(
        package_purchases.update().where(package_purchases.c.id == row.id).values(expired=True)
    )
    emit(
        conn,
        "package.exhausted",
        account_id=row.account_id,
        payload={"purchase_id": row.id, "reason": "expired", "units_written_off": left},
        dedupe_key=f"package.exhausted:{row.id}",
        now=now,
    )
    return "expired"


__all__ = [
    "PACKAGE_UNITS",
    "owe_overage_in_units",
    "AddOn",
    "Package",
    "PackagePurchase",
    "Plan",
    "Subscription",
    "buy_package",
    "cancel_subscription",
    "change_subscription",
    "create_package",
    "create_plan",
    "current_subscription",
    "expire_package",
    "list_packages",
    "list_plans",
    "load_subscription",
    "package_counters",
    "renew_subscription",
    "retry_subscription",
    "subscribe",
]
