"""Phone numbers: inventory, search, buy, renew, suspend, grace, release, quarantine.

Rules (issue 5):

* A provider imports its inventory; numbers already rented stay as they are and are
  reported as taken.
* Buying takes the setup fee and the first month from the balance at once (service
  ``number``) and the number works immediately; where the number needs a verification, the
  purchase waits (rental ``pending``, number reserved) for an approved record of that country.
* The first number of an account is free for the plan's trial days (none without a plan);
  the trial ends at local midnight and the number then renews at its price, anchored on the
  day the trial ended.
* Renewal on the anniversary (`telbill.domain.calendar`): the period ends at local midnight
  of the next anniversary of `anchor_day` in the payer's timezone.
* Unpaid renewal: suspended (inbound refused as busy, outbound falls back to the account's
  main number), reserved until the grace end (two months by default), renewed as soon as the
  balance covers it (the new period runs from the payment date, or keeps the anniversary
  when the plan says so), released at the grace end.
* Release on request or after the provider's N idle days; a released number is quarantined
  (30 days by default) before it returns to the inventory.

Scheduled work (`renew_due`, `renew_late`, `end_grace`, ...) runs inside the scheduler's keyed
transaction: see `telbill.services.scheduler`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from telbill.adapters.db.engine import Database
from telbill.adapters.db.lifecycle_tables import (
    number_grace_overrides,
    number_inventory,
    number_policies,
    number_rentals,
    verification_records,
)
from telbill.adapters.db.tables import accounts, transactions
from telbill.adapters.formats.inventory_csv import InventoryRow
from telbill.domain.calendar import (
    grace_end,
    local_date,
    local_midnight,
    next_anniversary,
    trial_end,
)
from telbill.domain.money import from_micros, to_micros
from telbill.domain.numbers import normalize_number
from telbill.errors import Conflict, InsufficientBalance, InvalidInput, NotFound
from telbill.services import idempotency
from telbill.services.accounts import Account, AccountKind, billing_account, load_account
from telbill.services.clock import Clock
from telbill.services.events import emit
from telbill.services.lifecycle_common import (
    Charge,
    NumberPolicy,
    can_afford,
    charge_in,
    number_policy,
    plan_settings,
)

LOCALITY_COUNTRIES = frozenset({"US", "CA"})
MAX_SEARCH = 200


@dataclass(frozen=True, slots=True)
class NumberOffer:
    number: str
    country: str
    number_type: str
    region: str | None
    locality: str | None
    area_code: str | None
    currency: str
    monthly_price: Decimal
    setup_price: Decimal
    verification_required: bool
    status: str


@dataclass(frozen=True, slots=True)
class Rental:
    id: int
    number: str
    account_id: int
    status: str
    bought_at: datetime
    anchor_day: int
    paid_until: datetime | None
    grace_until: datetime | None
    suspended_at: datetime | None
    released_at: datetime | None
    release_reason: str | None
    trial: bool
    is_main: bool
    renewals: int


@dataclass(frozen=True, slots=True)
class InventoryImport:
    added: int
    updated: int
    taken: tuple[str, ...]


def _offer(row: Any) -> NumberOffer:
    return NumberOffer(
        number=row.number,
        country=row.country,
        number_type=row.number_type,
        region=row.region,
        locality=row.locality,
        area_code=row.area_code,
        currency=row.currency,
        monthly_price=from_micros(row.monthly_price_micros),
        setup_price=from_micros(row.setup_price_micros),
        verification_required=row.verification_required,
        status=row.status,
    )


def _rental(row: Any) -> Rental:
    return Rental(
        id=row.id,
        number=row.number,
        account_id=row.account_id,
        status=row.status,
        bought_at=row.bought_at,
        anchor_day=row.anchor_day,
        paid_until=row.paid_until,
        grace_until=row.grace_until,
        suspended_at=row.suspended_at,
        released_at=row.released_at,
        release_reason=row.release_reason,
        trial=row.trial,
        is_main=row.is_main,
        renewals=row.renewals,
    )


def rental_of_row(row: Any) -> Rental:
    """A `Rental` from a row holding the columns of ``number_rentals``."""
    return _rental(row)


def load_rental(conn: Connection, rental_id: int, *, lock: bool = False) -> Rental:
    query = select(number_rentals).where(number_rentals.c.id == rental_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"number rental {rental_id} not found")
    return _rental(row)


# ---------------------------------------------------------------------------- inventory


def import_inventory(
    db: Database,
    provider_id: int,
    rows: Sequence[InventoryRow],
    *,
    clock: Clock,
    idempotency_key: str | None = None,
) -> InventoryImport:
    """Add new numbers as available, update the prices of unrented ones, report rented ones.

    With `idempotency_key` a repeat of the same rows returns the first import's result.
    """

    def work(conn: Connection) -> InventoryImport:
        now = clock.now()
        provider = load_account(conn, provider_id)
        if provider.kind is not AccountKind.PROVIDER:
            raise InvalidInput(f"account {provider_id} is not a provider")
        existing = {
            row.number: row
            for start in range(0, len(rows), 500)
            for row in conn.execute(
                select(number_inventory).where(
                    number_inventory.c.number.in_([r.number for r in rows[start : start + 500]])
                )
            )
        }
        added, updated, taken = [], 0, []
        for item in rows:
            values = {
                "country": item.country,
                "number_type": item.number_type,
                "region": item.region,
                "locality": item.locality,
                "area_code": item.area_code,
                "monthly_price_micros": to_micros(item.monthly_price),
                "setup_price_micros": to_micros(item.setup_price),
                "verification_required": item.verification_required,
            }
            current = existing.get(item.number)
            if current is None:
                added.append(
                    {
                        **values,
                        "provider_id": provider.id,
                        "number": item.number,
                        "currency": provider.currency,
                        "status": "available",
                        "created_at": now,
                    }
                )
            elif current.provider_id != provider.id or current.status != "available":
                taken.append(item.number)
            else:
                conn.execute(
                    number_inventory.update()
                    .where(number_inventory.c.id == current.id)
                    .values(**values)
                )
                updated += 1
        if added:
            conn.execute(number_inventory.insert(), added)
        return InventoryImport(added=len(added), updated=updated, taken=tuple(taken))

    if idempotency_key is None:
        return db.run(work)
    key = idempotency_key

    def guarded(conn: Connection) -> InventoryImport:
        return idempotency.once(
            conn,
            scope=f"inventory.import:{provider_id}",
            key=key,
            request={"rows": [astuple(row)[1:] for row in rows]},
            now=clock.now(),
            perform=lambda: _import_response(work(conn)),
            load=lambda stored: InventoryImport(
                stored["added"], stored["updated"], tuple(stored["taken"])
            ),
        )

    return db.run(guarded)


def _import_response(result: InventoryImport) -> dict[str, Any]:
    return {"added": result.added, "updated": result.updated, "taken": list(result.taken)}


def search_numbers(
    db: Database,
    *,
    country: str | None = None,
    number_type: str | None = None,
    area_code: str | None = None,
    locality: str | None = None,
    provider_id: int | None = None,
    limit: int = 20,
) -> list[NumberOffer]:
    """Available numbers, optionally by country, type, area code and (US/CA) locality."""
    country = country.strip().upper() if country else None
    if not 1 <= limit <= MAX_SEARCH:
        raise InvalidInput(f"limit must be between 1 and {MAX_SEARCH}, got {limit}")
    query = (
        select(number_inventory)
        .where(number_inventory.c.status == "available")
        .order_by(number_inventory.c.number)
        .limit(limit)
    )
    if country is not None:
        query = query.where(number_inventory.c.country == country)
    if number_type is not None:
        query = query.where(number_inventory.c.number_type == number_type)
    if area_code is not None:
        query = query.where(number_inventory.c.area_code == area_code.strip())
    if locality is not None:
        if country not in LOCALITY_COUNTRIES:
            raise InvalidInput("search by locality is offered for the US and Canada only")
        query = query.where(func.lower(number_inventory.c.locality) == locality.strip().lower())
    if provider_id is not None:
        query = query.where(number_inventory.c.provider_id == provider_id)
    with db.transaction() as conn:
        return [_offer(row) for row in conn.execute(query)]


def list_numbers(db: Database, account_id: int, *, include_released: bool = False) -> list[Rental]:
    query = (
        select(number_rentals)
        .where(number_rentals.c.account_id == account_id)
        .order_by(number_rentals.c.id)
    )
    if not include_released:
        query = query.where(number_rentals.c.status != "released")
    with db.transaction() as conn:
        return [_rental(row) for row in conn.execute(query)]


def set_number_policy(
    db: Database,
    provider_id: int,
    *,
    grace_months: int = 2,
    quarantine_days: int = 30,
    idle_release_days: int | None = None,
) -> NumberPolicy:
    """Set a provider's grace period, quarantine and idle-release rule for its numbers."""
    if grace_months < 0 or quarantine_days < 0:
        raise InvalidInput("grace months and quarantine days must not be negative")
    if idle_release_days is not None and idle_release_days < 1:
        raise InvalidInput("idle release days must be positive (or unset)")

    def work(conn: Connection) -> NumberPolicy:
        provider = load_account(conn, provider_id)
        if provider.kind is not AccountKind.PROVIDER:
            raise InvalidInput(f"account {provider_id} is not a provider")
        values = {
            "grace_months": grace_months,
            "quarantine_days": quarantine_days,
            "idle_release_days": idle_release_days,
        }
        updated = conn.execute(
            number_policies.update()
            .where(number_policies.c.provider_id == provider_id)
            .values(**values)
        )
        if updated.rowcount == 0:
            conn.execute(number_policies.insert().values(provider_id=provider_id, **values))
        return number_policy(conn, provider_id)

    return db.run(work)


# ---------------------------------------------------------------------------- buy


def _has_approved_verification(conn: Connection, account_id: int, country: str) -> bool:
    return (
        conn.execute(
            select(verification_records.c.id).where(
                verification_records.c.account_id == account_id,
                verification_records.c.country == country,
                verification_records.c.status == "approved",
            )
        ).first()
        is not None
    )


def _first_period_end(anchor_day: int, start: datetime, payer: Account) -> datetime:
    return local_midnight(
        next_anniversary(anchor_day, local_date(start, payer.timezone)), payer.timezone
    )


def _activate(conn: Connection, rental_id: int, now: datetime) -> None:
    """Charge setup + first month (or start the trial) and make the number work now."""
    rental = load_rental(conn, rental_id, lock=True)
    inventory = conn.execute(
        select(number_inventory).where(number_inventory.c.number == rental.number)
    ).one()
    payer = billing_account(conn, rental.account_id)
    settings = plan_settings(conn, payer.id)
    earlier = conn.execute(
        select(func.count())
        .select_from(number_rentals)
        .where(number_rentals.c.account_id == rental.account_id, number_rentals.c.id != rental.id)
    ).scalar_one()
    today = local_date(now, payer.timezone)
    values: dict[str, Any] = {"status": "active", "bought_at": now}
    if earlier == 0 and settings.trial_number_days > 0:
        end = trial_end(today, payer.timezone, days=settings.trial_number_days)
        values.update(trial=True, paid_until=end, anchor_day=local_date(end, payer.timezone).day)
    else:
        details = {"number": rental.number, "rental_id": rental.id}
        charge_in(
            conn,
            rental.account_id,
            [
                Charge(
                    inventory.setup_price_micros,
                    "number",
                    f"number:{rental.id}:setup",
                    f"setup fee {rental.number}",
                    details,
                ),
                Charge(
                    inventory.monthly_price_micros,
                    "number",
                    f"number:{rental.id}:month:0",
                    f"first month {rental.number}",
                    details,
                ),
            ],
            now,
        )
        values.update(anchor_day=today.day, paid_until=_first_period_end(today.day, now, payer))
    has_main = conn.execute(
        select(number_rentals.c.id).where(
            number_rentals.c.account_id == rental.account_id,
            number_rentals.c.is_main.is_(True),
            number_rentals.c.status.in_(["active", "suspended"]),
        )
    ).first()
    values["is_main"] = has_main is None
    conn.execute(number_rentals.update().where(number_rentals.c.id == rental.id).values(**values))


def buy_number(
    db: Database, account_id: int, number: str, *, idempotency_key: str, clock: Clock
) -> Rental:
    """Rent `number` for `account_id`: active at once, or pending an approved verification.

    Raises Conflict when the number is taken, InsufficientBalance (nothing written) when the
    balance does not cover the setup fee plus the first month.
    """
    e164 = normalize_number(number)

    def work(conn: Connection) -> Rental:
        now = clock.now()
        account = load_account(conn, account_id)

        def perform() -> dict[str, Any]:
            inventory = conn.execute(
                select(number_inventory).where(number_inventory.c.number == e164).with_for_update()
            ).first()
            if inventory is None or inventory.provider_id != account.provider_id:
                raise NotFound(f"number {e164} is not in the inventory")
            if inventory.status != "available":
                raise Conflict(f"number {e164} is taken", number=e164)
            payer = billing_account(conn, account_id)
            if payer.currency != inventory.currency:
                raise InvalidInput(f"number {e164} is priced in {inventory.currency}")
            rental_id = conn.execute(
                number_rentals.insert()
                .values(
                    number_id=inventory.id,
                    number=e164,
                    account_id=account_id,
                    status="pending",
                    bought_at=now,
                    anchor_day=local_date(now, payer.timezone).day,
                    trial=False,
                    is_main=False,
                    renewals=0,
                    created_at=now,
                )
                .returning(number_rentals.c.id)
            ).scalar_one()
            conn.execute(
                number_inventory.update()
                .where(number_inventory.c.id == inventory.id)
                .values(status="rented", quarantine_until=None)
            )
            needs_check = inventory.verification_required
            if not needs_check or _has_approved_verification(conn, account_id, inventory.country):
                _activate(conn, int(rental_id), now)
            return {"rental_id": int(rental_id)}

        return idempotency.once(
            conn,
            scope=f"number.buy:{account_id}",
            key=idempotency_key,
            request={"number": e164},
            now=now,
            perform=perform,
            load=lambda response: load_rental(conn, int(response["rental_id"])),
        )

    return db.run(work)


# ---------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class Verification:
    id: int
    account_id: int
    country: str
    status: str
    reference: str | None


def submit_verification(
    db: Database, account_id: int, country: str, *, reference: str | None, clock: Clock
) -> Verification:
    """Record an address/identity verification request for a country (status pending)."""
    country = country.strip().upper()
    if len(country) != 2 or not country.isalpha():
        raise InvalidInput(f"country must be a two-letter code, got {country!r}")

    def work(conn: Connection) -> Verification:
        load_account(conn, account_id)
        record_id = conn.execute(
            verification_records.insert()
            .values(
                account_id=account_id,
                country=country,
                status="pending",
                reference=reference,
                created_at=clock.now(),
            )
            .returning(verification_records.c.id)
        ).scalar_one()
        return Verification(int(record_id), account_id, country, "pending", reference)

    return db.run(work)


def decide_verification(
    db: Database, record_id: int, *, approved: bool, clock: Clock
) -> Verification:
    """Approve or reject; an approval activates the numbers waiting for it when affordable,
    a rejection releases them back to the inventory."""

    def work(conn: Connection) -> Verification:
        return _decide_in(conn, record_id, approved, clock.now())

    return db.run(work)


def _decide_in(conn: Connection, record_id: int, approved: bool, now: datetime) -> Verification:
    """`decide_verification` in the caller's transaction."""
    row = conn.execute(
        select(verification_records).where(verification_records.c.id == record_id).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"verification {record_id} not found")
    if row.status != "pending":
        raise Conflict(f"verification {record_id} is already {row.status}")
    status = "approved" if approved else "rejected"
    conn.execute(
        verification_records.update()
        .where(verification_records.c.id == record_id)
        .values(status=status, decided_at=now)
    )
    waiting = conn.execute(
        select(number_rentals.c.id)
        .select_from(number_rentals.join(number_inventory))
        .where(
            number_rentals.c.account_id == row.account_id,
            number_rentals.c.status == "pending",
            number_inventory.c.country == row.country,
        )
        .order_by(number_rentals.c.id)
    ).scalars()
    for rental_id in list(waiting):
        if approved:
            activate_pending(conn, int(rental_id), now)
        else:
            _release(
                conn, load_rental(conn, int(rental_id), lock=True), now, "verification_rejected"
            )
    return Verification(row.id, row.account_id, row.country, status, row.reference)


def verify_number(
    db: Database,
    number: str,
    *,
    approved: bool,
    reference: str | None = None,
    clock: Clock,
    account_id: int | None = None,
    provider_id: int | None = None,
) -> Rental:
    """Approve or reject the verification a pending number waits for (issue 17, rule 11).

    The decision is the buyer's verification for the number's country (its pending record,
    or a new one): approved, the buyer's numbers of that country waiting for it are charged
    and activated (when the balance covers them; else they stay pending); rejected, they
    go back to the inventory. `account_id`: only a number this account bought (the API's
    tenant wall); `provider_id`: only a number of this provider's inventory (the
    dashboard's). Returns the number's rental as it is afterwards."""
    e164 = normalize_number(number)

    def work(conn: Connection) -> Rental:
        now = clock.now()
        found = conn.execute(
            select(
                number_rentals.c.id,
                number_rentals.c.account_id,
                number_inventory.c.country,
                number_inventory.c.provider_id,
            )
            .select_from(number_rentals.join(number_inventory))
            .where(number_rentals.c.number == e164, number_rentals.c.status == "pending")
            .order_by(number_rentals.c.id.desc())
            .limit(1)
        ).first()  # fmt: skip
        if (
            found is None
            or (account_id is not None and found.account_id != account_id)
            or (provider_id is not None and found.provider_id != provider_id)
        ):
            raise NotFound(f"number {e164} is not waiting for a verification")
        record_id = conn.execute(
            select(verification_records.c.id)
            .where(
                verification_records.c.account_id == found.account_id,
                verification_records.c.country == found.country,
                verification_records.c.status == "pending",
            )
            .order_by(verification_records.c.id)
            .limit(1)
        ).scalar_one_or_none()
        if record_id is None:
            record_id = conn.execute(
                verification_records.insert()
                .values(account_id=found.account_id, country=found.country, status="pending",
                        reference=reference, created_at=now)
                .returning(verification_records.c.id)
            ).scalar_one()  # fmt: skip
        _decide_in(conn, int(record_id), approved, now)
        return load_rental(conn, int(found.id))

    return db.run(work)


def pending_verifications(db: Database, provider_id: int) -> list[Rental]:
    """The numbers of `provider_id`'s inventory bought and waiting for a verification."""
    with db.transaction() as conn:
        rows = conn.execute(
            select(number_rentals)
            .select_from(number_rentals.join(number_inventory))
            .where(
                number_inventory.c.provider_id == provider_id,
                number_rentals.c.status == "pending",
            )
            .order_by(number_rentals.c.id)
        )
        return [_rental(row) for row in rows]


def inbound_refusal(conn: Connection, number: str) -> tuple[str, str] | None:
    """Why an inbound call to `number` is refused, as (reason code, message), or None: a
    rented number suspended for an unpaid renewal (``number_suspended``), or bought and
    still waiting for its verification (``number_pending``)."""
    try:
        e164 = normalize_number(number)
    except InvalidInput:
        return None
    status = conn.execute(
        select(number_rentals.c.status)
        .where(
            number_rentals.c.number == e164,
            number_rentals.c.status.in_(["active", "suspended", "pending"]),
        )
        .order_by(number_rentals.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if status == "suspended":
        return "number_suspended", f"{e164} is suspended for an unpaid renewal"
    if status == "pending":
        return "number_pending", f"{e164} is waiting for its verification"
    return None


def activate_pending(conn: Connection, rental_id: int, now: datetime) -> str | None:
    """Activate a pending rental if the balance covers it (savepoint: a refusal keeps it
    pending and writes nothing). Returns "activated" or None."""
    try:
        with conn.begin_nested():
            _activate(conn, rental_id, now)
    except InsufficientBalance:
        return None
    return "activated"


# ---------------------------------------------------------------------------- renewals


def _monthly_price(conn: Connection, rental: Rental) -> int:
    return int(
        conn.execute(
            select(number_inventory.c.monthly_price_micros).where(
                number_inventory.c.number == rental.number
            )
        ).scalar_one()
    )


def renewal_charge(rental: Rental, price: int, period: str) -> Charge:
    """The month's rental charge of a renewal (its key makes it once per period)."""
    return Charge(
        price,
        "number",
        f"number:{rental.id}:renewal:{period}",
        f"monthly rental {rental.number}",
        {"number": rental.number, "rental_id": rental.id, "period_start": period},
    )


def _renew_charge(conn: Connection, rental: Rental, price: int, period: str, now: datetime) -> None:
    charge_in(conn, rental.account_id, [renewal_charge(rental, price, period)], now)


def is_renewal_due(rental: Rental, period: str, now: datetime) -> bool:
    """Whether the renewal keyed `period` is still the rental's next one, due by `now`."""
    if rental.status != "active" or rental.paid_until is None:
        return False
    return rental.paid_until.isoformat() == period and rental.paid_until <= now


def renewed_until(rental: Rental, payer: Account) -> datetime:
    """The new end of a rental renewed on time: the next anniversary, local midnight."""
    assert rental.paid_until is not None
    due_day = local_date(rental.paid_until, payer.timezone)
    return local_midnight(next_anniversary(rental.anchor_day, due_day), payer.timezone)


def renewed_event(rental: Rental, period: str, now: datetime, new_end: datetime) -> dict[str, Any]:
    """The ``number.renewed`` event of an on-time renewal (arguments of `events.emit`)."""
    return {
        "type": "number.renewed",
        "account_id": rental.account_id,
        "payload": {
            "number": rental.number,
            "rental_id": rental.id,
            "paid_until": new_end.isoformat(),
        },
        "dedupe_key": f"number.renewed:{rental.id}:{period}",
        "occurred_at": now,
    }


def renew_due(conn: Connection, rental_id: int, period: str, now: datetime) -> str | None:
    """The renewal due at `paid_until`: charge a month, or suspend for the grace period.

    The scheduler runs many at once with `telbill.services.renewal_batches`, on these rules.
    """
    rental = load_rental(conn, rental_id, lock=True)
    if not is_renewal_due(rental, period, now):
        return None
    payer = billing_account(conn, rental.account_id)
    price = _monthly_price(conn, rental)
    try:  # a refused charge writes nothing: no separate affordability read on the way
        _renew_charge(conn, rental, price, period, now)
    except InsufficientBalance:
        suspend_unpaid(conn, rental, payer, price, period, now)
        return "suspended"
    new_end = renewed_until(rental, payer)
    conn.execute(
        number_rentals.update()
        .where(number_rentals.c.id == rental.id)
        .values(paid_until=new_end, trial=False, renewals=rental.renewals + 1)
    )
    _emit(conn, "number.renewed", rental, period, now, paid_until=new_end.isoformat())
    return "renewed"


def suspend_unpaid(
    conn: Connection, rental: Rental, payer: Account, price: int, period: str, now: datetime
) -> None:
    """An unpaid renewal: suspend the number and reserve it for the grace period."""
    assert rental.paid_until is not None
    due_day = local_date(rental.paid_until, payer.timezone)
    months = grace_months_of(conn, payer)
    grace = grace_end(due_day, payer.timezone, months=months)
    conn.execute(
        number_rentals.update()
        .where(number_rentals.c.id == rental.id)
        .values(status="suspended", suspended_at=now, grace_until=grace, trial=False)
    )
    conn.execute(
        number_inventory.update()
        .where(number_inventory.c.number == rental.number)
        .values(status="suspended")
    )
    _emit(conn, "number.renewal_failed", rental, period, now, price=str(from_micros(price)))
    _emit(conn, "number.suspended", rental, period, now, grace_until=grace.isoformat())


def grace_months_of(conn: Connection, payer: Account) -> int:
    """How long `payer`'s unpaid numbers are kept: support's override for this account, else
    its provider's policy."""
    override = conn.execute(
        select(number_grace_overrides.c.grace_months).where(
            number_grace_overrides.c.account_id == payer.id
        )
    ).scalar_one_or_none()
    if override is not None:
        return int(override)
    return number_policy(conn, payer.provider_id).grace_months


MAX_GRACE_MONTHS = 36


def extend_grace(db: Database, account_id: int, *, grace_months: int, clock: Clock) -> list[Rental]:
    """Support: keep the unpaid numbers of `account_id`'s wallet `grace_months` after each
    missed renewal, instead of the provider's default (issue 17, rule 12).

    Numbers suspended now get the new grace end at once, never an earlier one than they
    had. Returns the wallet's suspended numbers as they are afterwards."""
    if not isinstance(grace_months, int) or not 0 <= grace_months <= MAX_GRACE_MONTHS:
        raise InvalidInput(f"grace months must be a whole number 0..{MAX_GRACE_MONTHS}")

    def work(conn: Connection) -> list[Rental]:
        now = clock.now()
        payer = billing_account(conn, account_id)
        values = {"grace_months": grace_months, "updated_at": now}
        updated = conn.execute(
            number_grace_overrides.update()
            .where(number_grace_overrides.c.account_id == payer.id)
            .values(**values)
        ).rowcount
        if not updated:
            conn.execute(number_grace_overrides.insert().values(account_id=payer.id, **values))
        changed = []
        for rental in _suspended_of(conn, payer):
            assert rental.paid_until is not None and rental.grace_until is not None
            due_day = local_date(rental.paid_until, payer.timezone)
            grace = grace_end(due_day, payer.timezone, months=grace_months)
            if grace > rental.grace_until:
                conn.execute(
                    number_rentals.update()
                    .where(number_rentals.c.id == rental.id)
                    .values(grace_until=grace)
                )
            changed.append(load_rental(conn, rental.id))
        return changed

    return db.run(work)


def _suspended_of(conn: Connection, payer: Account) -> list[Rental]:
    """The suspended rentals `payer`'s wallet pays for, oldest renewal first, locked."""
    tree = select(accounts.c.id).where(accounts.c.id == payer.id).cte("payer_tree", recursive=True)
    tree = tree.union_all(select(accounts.c.id).where(accounts.c.parent_id == tree.c.id))
    rows = conn.execute(
        select(number_rentals.c.id, number_rentals.c.account_id)
        .where(
            number_rentals.c.status == "suspended",
            number_rentals.c.account_id.in_(select(tree.c.id)),
        )
        .order_by(number_rentals.c.paid_until, number_rentals.c.id)
    ).all()
    return [
        load_rental(conn, int(row.id), lock=True)
        for row in rows
        if billing_account(conn, int(row.account_id)).id == payer.id
    ]


def renew_paid_up(db: Database, account_id: int, *, clock: Clock) -> list[str]:
    """At a top-up: renew at once the suspended numbers the balance now covers, oldest
    first (the number works again at once, not at the next tick). Returns the numbers."""

    def work(conn: Connection) -> list[str]:
        now = clock.now()
        payer = billing_account(conn, account_id)
        renewed = []
        for rental in _suspended_of(conn, payer):
            assert rental.paid_until is not None
            if renew_late(conn, rental.id, rental.paid_until.isoformat(), now) is None:
                break  # the balance covers no more (renewals go oldest first)
            renewed.append(rental.number)
        return renewed

    return db.run(work)


def _payment_time(conn: Connection, payer: Account, rental: Rental, now: datetime) -> datetime:
    """When the money that pays a late renewal came in: the last top-up before `now`, never
    before the suspension."""
    latest: datetime | None = conn.execute(
        select(func.max(transactions.c.created_at)).where(
            transactions.c.account_id == payer.id,
            transactions.c.kind == "top_up",
            transactions.c.created_at <= now,
        )
    ).scalar_one_or_none()
    floor = rental.suspended_at or now
    if latest is None:
        return now
    if latest.tzinfo is None:  # SQLite aggregate results bypass the column type
        latest = latest.replace(tzinfo=now.tzinfo)
    return max(latest, floor)


def renew_late(conn: Connection, rental_id: int, period: str, now: datetime) -> str | None:
    """A suspended number renews as soon as the balance covers it; None while it does not."""
    rental = load_rental(conn, rental_id, lock=True)
    if rental.status != "suspended" or rental.paid_until is None:
        return None
    if rental.paid_until.isoformat() != period or (rental.grace_until or now) <= now:
        return None
    payer = billing_account(conn, rental.account_id)
    price = _monthly_price(conn, rental)
    if not can_afford(conn, payer, price, "number", now):
        return None
    paid_at = _payment_time(conn, payer, rental, now)
    _renew_charge(conn, rental, price, period, now)
    paid_day = local_date(paid_at, payer.timezone)
    anchor = rental.anchor_day if plan_settings(conn, payer.id).keep_anniversary else paid_day.day
    new_end = local_midnight(next_anniversary(anchor, paid_day), payer.timezone)
    conn.execute(
        number_rentals.update()
        .where(number_rentals.c.id == rental.id)
        .values(
            status="active",
            anchor_day=anchor,
            paid_until=new_end,
            grace_until=None,
            suspended_at=None,
            renewals=rental.renewals + 1,
        )
    )
    conn.execute(
        number_inventory.update()
        .where(number_inventory.c.number == rental.number)
        .values(status="rented")
    )
    _emit(conn, "number.renewed", rental, period, now, paid_until=new_end.isoformat(), late=True)
    return "renewed_late"


def end_grace(conn: Connection, rental_id: int, period: str, now: datetime) -> str | None:
    """Release a number still unpaid when its grace period ends."""
    rental = load_rental(conn, rental_id, lock=True)
    if rental.status != "suspended" or rental.grace_until is None:
        return None
    if rental.grace_until.isoformat() != period or rental.grace_until > now:
        return None
    _release(conn, rental, now, "unpaid")
    return "released"


def release_idle(conn: Connection, rental_id: int, period: str, now: datetime) -> str | None:
    """Release a number that carried no traffic for the provider's idle days."""
    rental = load_rental(conn, rental_id, lock=True)
    if rental.status != "active":
        return None
    payer = billing_account(conn, rental.account_id)
    days = number_policy(conn, payer.provider_id).idle_release_days
    last = conn.execute(
        select(number_rentals.c.last_traffic_at).where(number_rentals.c.id == rental.id)
    ).scalar_one()
    since = last or rental.bought_at
    if days is None or since.isoformat() != period or since + timedelta(days=days) > now:
        return None
    _release(conn, rental, now, "idle")
    return "released"


def end_quarantine(conn: Connection, number_id: int, period: str, now: datetime) -> str | None:
    """A quarantined number goes back to the inventory."""
    row = conn.execute(
        select(number_inventory).where(number_inventory.c.id == number_id).with_for_update()
    ).first()
    if row is None or row.status != "quarantined" or row.quarantine_until is None:
        return None
    if row.quarantine_until.isoformat() != period or row.quarantine_until > now:
        return None
    conn.execute(
        number_inventory.update()
        .where(number_inventory.c.id == number_id)
        .values(status="available", quarantine_until=None)
    )
    return "available"


# ---------------------------------------------------------------------------- release


def _release(conn: Connection, rental: Rental, now: datetime, reason: str) -> None:
    payer = billing_account(conn, rental.account_id)
    quarantine = number_policy(conn, payer.provider_id).quarantine_days
    conn.execute(
        number_rentals.update()
        .where(number_rentals.c.id == rental.id)
        .values(status="released", released_at=now, release_reason=reason, is_main=False)
    )
    inventory_values: dict[str, Any] = (
        {"status": "quarantined", "quarantine_until": now + timedelta(days=quarantine)}
        if quarantine > 0 and rental.status != "pending"
        else {"status": "available", "quarantine_until": None}
    )
    conn.execute(
        number_inventory.update()
        .where(number_inventory.c.number == rental.number)
        .values(**inventory_values)
    )
    _emit(conn, "number.released", rental, "release", now, reason=reason)


def release_number(
    db: Database, account_id: int, number: str, *, idempotency_key: str, clock: Clock
) -> Rental:
    """Give a number back on request (no refund of the period already paid)."""
    e164 = normalize_number(number)

    def work(conn: Connection) -> Rental:
        now = clock.now()

        def perform() -> dict[str, Any]:
            row = conn.execute(
                select(number_rentals.c.id).where(
                    number_rentals.c.number == e164,
                    number_rentals.c.account_id == account_id,
                    number_rentals.c.status != "released",
                )
            ).first()
            if row is None:
                raise NotFound(f"account {account_id} does not rent {e164}")
            _release(conn, load_rental(conn, row.id, lock=True), now, "requested")
            return {"rental_id": row.id}

        return idempotency.once(
            conn,
            scope=f"number.release:{account_id}",
            key=idempotency_key,
            request={"number": e164},
            now=now,
            perform=perform,
            load=lambda response: load_rental(conn, int(response["rental_id"])),
        )

    return db.run(work)


# ---------------------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class NumberRoute:
    """What the switch should do with calls on a number."""

    number: str
    inbound: str  # "accept" or "busy"
    outbound_caller_id: str | None  # the number to present; None: refuse
    account_id: int | None


def record_traffic(db: Database, number: str, *, clock: Clock) -> None:
    """Note that `number` carried a call or message now (for the idle-release rule)."""
    e164 = normalize_number(number)
    with db.transaction() as conn:
        conn.execute(
            number_rentals.update()
            .where(number_rentals.c.number == e164, number_rentals.c.status == "active")
            .values(last_traffic_at=clock.now())
        )


def record_traffic_in(conn: Connection, e164_numbers: Iterable[str], now: datetime) -> None:
    """`record_traffic` for many E.164 numbers in the caller's transaction (a CDR chunk):
    one UPDATE per 500 numbers."""
    wanted = sorted(set(e164_numbers))
    for start in range(0, len(wanted), 500):
        conn.execute(
            number_rentals.update()
            .where(
                number_rentals.c.number.in_(wanted[start : start + 500]),
                number_rentals.c.status == "active",
            )
            .values(last_traffic_at=now)
        )


def is_suspended_number(conn: Connection, number: str) -> bool:
    """Whether `number` is a rented number suspended for an unpaid renewal (inbound calls to
    it are refused as busy). Numbers telbill does not rent out are not suspended."""
    try:
        e164 = normalize_number(number)
    except InvalidInput:
        return False
    status = conn.execute(
        select(number_rentals.c.status)
        .where(
            number_rentals.c.number == e164,
            number_rentals.c.status.in_(["active", "suspended"]),
        )
        .order_by(number_rentals.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return status == "suspended"


def route_number(db: Database, number: str) -> NumberRoute:
    """Inbound: accept on an active rental, busy otherwise. Outbound: the number itself when
    active; a suspended number's calls present the account's main number instead."""
    e164 = normalize_number(number)
    with db.transaction() as conn:
        row = conn.execute(
            select(number_rentals)
            .where(
                number_rentals.c.number == e164,
                number_rentals.c.status.in_(["active", "suspended"]),
            )
            .order_by(number_rentals.c.id.desc())
        ).first()
        if row is None:
            return NumberRoute(e164, "busy", None, None)
        if row.status == "active":
            return NumberRoute(e164, "accept", e164, row.account_id)
        main = conn.execute(
            select(number_rentals.c.number).where(
                number_rentals.c.account_id == row.account_id,
                number_rentals.c.is_main.is_(True),
                number_rentals.c.status == "active",
            )
        ).scalar_one_or_none()
        return NumberRoute(e164, "busy", main, row.account_id)


def _emit(
    conn: Connection, event_type: str, rental: Rental, period: str, now: datetime, **payload: Any
) -> None:
    emit(
        conn,
        event_type,
        account_id=rental.account_id,
        payload={"number": rental.number, "rental_id": rental.id, **payload},
        dedupe_key=f"{event_type}:{rental.id}:{period}",
        now=now,
    )


__all__ = [
    "InventoryImport",
    "NumberOffer",
    "NumberRoute",
    "Rental",
    "Verification",
    "activate_pending",
    "buy_number",
    "decide_verification",
    "end_grace",
    "end_quarantine",
    "import_inventory",
    "list_numbers",
    "load_rental",
    "rental_of_row",
    "record_traffic",
    "record_traffic_in",
    "release_idle",
    "release_number",
    "is_renewal_due",
    "renew_due",
    "renewal_charge",
    "renewed_event",
    "renewed_until",
    "suspend_unpaid",
    "renew_late",
    "renew_paid_up",
    "extend_grace",
    "grace_months_of",
    "route_number",
    "search_numbers",
    "set_number_policy",
    "submit_verification",
    "verify_number",
    "pending_verifications",
    "inbound_refusal",
]
