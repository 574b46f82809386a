"""Two-phase holds on a wallet: reserve, then settle (up to the amount held), void or expire.

A hold raises the ``held`` of the buckets it reserves in (drain order, floor enforced), so
the reserved amount is no longer available to other debits. Settling posts a debit of the
settled amount from those same buckets and releases the rest; voiding or expiring releases
everything. Each hold is resolved exactly once (``hold_resolutions.hold_id`` is unique).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, bindparam, select, update

from telbill.adapters.db import ledger_store
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import hold_lines, hold_resolutions, holds
from telbill.domain.money import from_minor, is_money_unit, parse_amount, to_minor, validate_unit
from telbill.errors import Conflict, InsufficientBalance, InvalidInput, NotFound
from telbill.ledger import (
    Bucket,
    DrainPolicy,
    HoldLine,
    HoldOutcome,
    JournalEntry,
    Posting,
    Settlement,
    plan_drain,
    plan_release,
    plan_settlement,
)
from telbill.services import idempotency
from telbill.services.accounts import billing_account
from telbill.services.clock import Clock
from telbill.services.inputs import (
    direction_name,
    minor_amount,
    refuse_insufficient,
    service_name,
)

OPEN = "open"


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    account_id: int
    unit: str
    amount: Decimal
    service: str | None
    direction: str | None
    expires_at: datetime
    created_at: datetime
    status: str  # open, settled, voided, expired
    settled_amount: Decimal
    transaction_id: int | None
    details: Mapping[str, Any]


_SELECT_HOLD = select(holds).where(holds.c.id == bindparam("hold_id"))
_SELECT_RESOLUTION = select(hold_resolutions).where(
    hold_resolutions.c.hold_id == bindparam("hold_id")
)
_SELECT_LINES = (
    select(hold_lines.c.ledger_account_id, hold_lines.c.amount, hold_lines.c.position)
    .where(hold_lines.c.hold_id == bindparam("hold_id"))
    .order_by(hold_lines.c.position)
)


def load_hold(conn: Connection, hold_id: int) -> Hold:
    row = conn.execute(_SELECT_HOLD, {"hold_id": hold_id}).first()
    if row is None:
        raise NotFound(f"hold {hold_id} not found", hold_id=hold_id)
    resolution = conn.execute(_SELECT_RESOLUTION, {"hold_id": hold_id}).first()
    return Hold(
        id=row.id,
        account_id=row.account_id,
        unit=row.unit,
        amount=from_minor(row.amount, row.unit),
        service=row.service,
        direction=row.direction,
        expires_at=row.expires_at,
        created_at=row.created_at,
        status=OPEN if resolution is None else resolution.outcome,
        settled_amount=from_minor(resolution.settled_amount if resolution else 0, row.unit),
        transaction_id=None if resolution is None else resolution.transaction_id,
        details=row.details or {},
    )


def hold(
    db: Database,
    account_id: int,
    amount: Decimal | str | int,
    *,
    service: str,
    expires_at: datetime,
    idempotency_key: str,
    clock: Clock,
    direction: str | None = None,
    unit: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Hold:
    """Reserve `amount` in the payer's buckets until `expires_at` (InsufficientBalance if not)."""
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at must be timezone-aware")
    request = {
        "amount": str(amount),
        "service": service,
        "direction": direction,
        "unit": unit,
        "expires_at": expires_at,
        "details": dict(details or {}),
    }

    def work(conn: Connection) -> Hold:
        now = clock.now()
        payer = billing_account(conn, account_id)

        def perform() -> dict[str, Any]:
            hold_unit = payer.currency if unit is None else validate_unit(unit)
            if is_money_unit(hold_unit) and hold_unit != payer.currency:
                raise InvalidInput(f"wrong currency {hold_unit}: billed in {payer.currency}")
            minor = minor_amount(amount, hold_unit)
            if expires_at <= now:
                raise InvalidInput("a hold must expire in the future")
            buckets = ledger_store.load_buckets(conn, [payer.id], unit=hold_unit)
            try:
                plan = plan_drain(
                    buckets,
                    minor,
                    unit=hold_unit,
                    service=service_name(service),
                    direction=direction_name(direction),
                    now=now,
                    floor=payer.floor_micros if hold_unit == payer.currency else 0,
                    policy=DrainPolicy.ENFORCE_FLOOR,
                )
            except InsufficientBalance as refused:
                raise refuse_insufficient(refused, account_id=account_id) from None
            hold_id = conn.execute(
                holds.insert()
                .values(
                    account_id=payer.id,
                    unit=hold_unit,
                    amount=minor,
                    service=service_name(service),
                    direction=direction_name(direction),
                    idempotency_key=idempotency_key,
                    expires_at=expires_at,
                    details={**dict(details or {}), "subject_account_id": account_id},
                    created_at=now,
                )
                .returning(holds.c.id)
            ).scalar_one()
            conn.execute(
                hold_lines.insert(),
                [
                    {
                        "hold_id": hold_id,
                        "ledger_account_id": take.bucket_id,
                        "amount": take.amount,
                        "position": position,
                    }
                    for position, take in enumerate(plan.takes)
                ],
            )
            ledger_store.add_to_columns(conn, held={t.bucket_id: t.amount for t in plan.takes})
            return {"hold_id": int(hold_id)}

        return idempotency.once(
            conn,
            scope=f"wallet.hold:{payer.id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=perform,
            load=lambda response: load_hold(conn, int(response["hold_id"])),
        )

    return db.run(work)


def _lines(conn: Connection, hold_id: int) -> list[HoldLine]:
    rows = conn.execute(_SELECT_LINES, {"hold_id": hold_id})
    return [HoldLine(r.ledger_account_id, r.amount, r.position) for r in rows]


def _released(settlement: Settlement) -> dict[int, int]:
    """Deltas to the buckets' ``held``: each hold line's reservation goes."""
    released: dict[int, int] = defaultdict(int)
    for release in settlement.releases:
        released[release.bucket_id] -= release.amount
    return dict(released)


def _resolve(
    conn: Connection,
    hold_id: int,
    outcome: HoldOutcome,
    now: datetime,
    *,
    settle_minor: int = 0,
    idempotency_key: str | None = None,
    memo: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Lock the hold's buckets, check it is open, post the settlement and release the rest."""
    current = load_hold(conn, hold_id)
    lines = _lines(conn, hold_id)
    # Lock first, then re-read the status: a concurrent resolution waits on the same rows.
    ledger_store.load_buckets(conn, [current.account_id], unit=current.unit)
    current = load_hold(conn, hold_id)
    if current.status != OPEN:
        raise Conflict(f"hold {hold_id} is already {current.status}", hold_id=hold_id)
    settlement: Settlement = (
        plan_settlement(lines, settle_minor)
        if outcome is HoldOutcome.SETTLED
        else plan_release(lines)
    )
    tx_id = _book_settlement(
        conn, hold_id, current.account_id, current.unit, current.details, settlement,
        service=current.service or "voice", now=now, memo=memo, details=details or {},
        idempotency_key=idempotency_key,
    )  # fmt: skip
    conn.execute(
        _INSERT_RESOLUTION,
        {
            "hold_id": hold_id, "outcome": outcome.value,
            "settled_amount": settlement.settled, "transaction_id": tx_id, "created_at": now,
        },  # fmt: skip
    )


def _book_settlement(
    conn: Connection,
    hold_id: int,
    payer_id: int,
    unit: str,
    hold_details: Mapping[str, Any],
    settlement: Settlement,
    *,
    service: str,
    now: datetime,
    memo: str | None,
    details: Mapping[str, Any],
    idempotency_key: str | None = None,
) -> int | None:
    """Post what a settlement takes to revenue and release the whole reservation: one
    UPDATE per bucket row (balance down by the take, held down by its line). Returns the
    journal transaction, None when nothing was taken (a release only)."""
    released = _released(settlement)
    if not settlement.takes:
        ledger_store.add_to_columns(conn, held=released)
        return None
    taken: dict[int, int] = defaultdict(int)
    for take in settlement.takes:
        taken[take.bucket_id] += take.amount
    revenue = ledger_store.system_account(conn, f"revenue:{service}:{unit}", unit, now)
    post = [Posting(bucket, -amount, unit) for bucket, amount in taken.items()]
    post.append(Posting(revenue, settlement.settled, unit))
    return ledger_store.apply_entry(
        conn,
        JournalEntry(
            kind="hold_settle",
            account_id=payer_id,
            subject_account_id=hold_details.get("subject_account_id"),
            postings=tuple(post),
            memo=memo,
            details={**dict(details), "hold_id": hold_id, "service": service},
            idempotency_key=idempotency_key,
        ),
        now,
        held=released,
    )


def settle(
    db: Database,
    hold_id: int,
    amount: Decimal | str | int,
    *,
    idempotency_key: str,
    clock: Clock,
    memo: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Hold:
    """Charge `amount` (0 <= amount <= held) of the hold and release the rest."""
    request = {"amount": parse_amount(amount), "memo": memo, "details": dict(details or {})}

    def work(conn: Connection) -> Hold:
        now = clock.now()
        current = load_hold(conn, hold_id)

        def perform() -> dict[str, Any]:
            minor = to_minor(parse_amount(amount), current.unit)
            if minor < 0:
                raise InvalidInput(f"settled amount must not be negative, got {amount}")
            _resolve(
                conn,
                hold_id,
                HoldOutcome.SETTLED,
                now,
                settle_minor=minor,
                idempotency_key=idempotency_key,
                memo=memo,
                details=details,
            )
            return {"hold_id": hold_id}

        return idempotency.once(
            conn,
            scope=f"wallet.settle:{hold_id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=perform,
            load=lambda response: load_hold(conn, int(response["hold_id"])),
        )

    return db.run(work)


def void(db: Database, hold_id: int, *, idempotency_key: str, clock: Clock) -> Hold:
    """Release the whole hold without charging anything."""

    def work(conn: Connection) -> Hold:
        now = clock.now()
        load_hold(conn, hold_id)

        def perform() -> dict[str, Any]:
            _resolve(conn, hold_id, HoldOutcome.VOIDED, now)
            return {"hold_id": hold_id}

        return idempotency.once(
            conn,
            scope=f"wallet.void:{hold_id}",
            key=idempotency_key,
            request={"hold_id": hold_id},
            now=now,
            perform=perform,
            load=lambda response: load_hold(conn, int(response["hold_id"])),
        )

    return db.run(work)


def expire_holds(db: Database, *, clock: Clock, limit: int = 1000) -> list[int]:
    """Release every open hold whose expiry has passed; returns their ids.

    Needs no idempotency key: running it twice expires nothing more.
    """

    def work(conn: Connection) -> list[int]:
        now = clock.now()
        due = conn.execute(
            select(holds.c.id)
            .where(
                holds.c.expires_at <= now,
                ~select(hold_resolutions.c.id)
                .where(hold_resolutions.c.hold_id == holds.c.id)
                .exists(),
            )
            .order_by(holds.c.id)
            .limit(limit)
        ).scalars()
        expired = []
        for hold_id in list(due):
            try:
                _resolve(conn, int(hold_id), HoldOutcome.EXPIRED, now)
            except Conflict:
                continue  # settled or voided meanwhile by a concurrent worker
            expired.append(int(hold_id))
        return expired

    return db.run(work)


# ---------------------------------------------------------------------------- in a unit of work
# The real-time path (`services.sessions`) places, extends and settles holds inside its own
# transaction, with the payer's buckets already locked: few statements, built once.

_INSERT_HOLD = holds.insert().returning(holds.c.id)
_INSERT_LINES = hold_lines.insert()
_HOLD_COLUMNS = (
    "account_id", "unit", "amount", "service", "direction", "expires_at", "details",
    "created_at",
)  # fmt: skip


# PostgreSQL: a hold and its lines in one statement (one round trip under the wallet's lock).
_INSERT_HOLD_WITH_LINES_PG = ledger_store.insert_with_lines(
    holds, _HOLD_COLUMNS, hold_lines, "hold_id",
    [("line_buckets", "ledger_account_id", BigInteger),
     ("line_amounts", "amount", BigInteger), ("line_positions", "position", Integer)],
)  # fmt: skip
_EXTEND_HOLD = (
    update(holds)
    .where(holds.c.id == bindparam("hold_id"))
    .values(amount=holds.c.amount + bindparam("extra"), expires_at=bindparam("until"))
)
_INSERT_RESOLUTION = hold_resolutions.insert()
# One read for a hold, whether it is still open, and its lines in settlement order.
_HOLD_WITH_LINES = (
    select(
        holds.c.account_id,
        holds.c.unit,
        holds.c.amount,
        holds.c.details,
        hold_resolutions.c.id.label("resolution_id"),
        hold_lines.c.ledger_account_id,
        hold_lines.c.amount.label("line_amount"),
        hold_lines.c.position,
    )
    .select_from(
        holds.outerjoin(hold_resolutions, hold_resolutions.c.hold_id == holds.c.id).outerjoin(
            hold_lines, hold_lines.c.hold_id == holds.c.id
        )
    )
    .where(holds.c.id == bindparam("hold_id"))
    .order_by(hold_lines.c.position)
)


@dataclass(frozen=True, slots=True)
class OpenHold:
    """A hold as the real-time path sees it: None from `open_hold_in` once resolved."""

    id: int
    account_id: int
    unit: str
    amount: int
    details: Mapping[str, Any]
    lines: tuple[HoldLine, ...]


@dataclass(frozen=True, slots=True)
class SettledHold:
    settled: int
    transaction_id: int | None
    taken: Mapping[int, int]  # bucket id -> amount taken from its balance
    unheld: Mapping[int, int]  # bucket id -> amount no longer held (taken or released)


def reserve_in(
    conn: Connection,
    buckets: Sequence[Bucket],
    amount: int,
    *,
    unit: str,
    floor: int,
    service: str,
    direction: str | None,
    now: datetime,
) -> list[HoldLine]:
    """Plan reserving `amount` of `unit` in the locked `buckets` (drain order, floor kept)
    and raise their ``held``; returns the lines (positions from 0) to store."""
    plan = plan_drain(
        list(buckets), amount, unit=unit, service=service, direction=direction, now=now,
        floor=floor, policy=DrainPolicy.ENFORCE_FLOOR,
    )  # fmt: skip
    ledger_store.add_to_columns(conn, held={t.bucket_id: t.amount for t in plan.takes})
    return [HoldLine(t.bucket_id, t.amount, n) for n, t in enumerate(plan.takes)]


def place_hold_in(
    conn: Connection,
    buckets: Sequence[Bucket],
    amount: int,
    *,
    account_id: int,
    unit: str,
    floor: int,
    service: str,
    direction: str | None,
    expires_at: datetime,
    now: datetime,
    details: Mapping[str, Any],
) -> int:
    """Reserve `amount` in the payer's locked `buckets` (InsufficientBalance if they cannot
    give it): the buckets' ``held``, then the hold row and its lines (one statement on
    PostgreSQL, two on SQLite)."""
    lines = reserve_in(
        conn, buckets, amount, unit=unit, floor=floor, service=service, direction=direction,
        now=now,
    )  # fmt: skip
    row: dict[str, Any] = {
        "account_id": account_id, "unit": unit, "amount": amount, "service": service,
        "direction": direction, "expires_at": expires_at, "details": dict(details),
        "created_at": now,
    }  # fmt: skip
    if conn.dialect.name == "postgresql" and lines:
        row["line_buckets"] = [line.ledger_account_id for line in lines]
        row["line_amounts"] = [line.amount for line in lines]
        row["line_positions"] = [line.position for line in lines]
        return int(conn.execute(_INSERT_HOLD_WITH_LINES_PG, row).scalars().first())
    hold_id = int(conn.execute(_INSERT_HOLD, row).scalar_one())
    _insert_lines(conn, hold_id, lines)
    return hold_id


def _insert_lines(conn: Connection, hold_id: int, lines: Sequence[HoldLine]) -> None:
    rows = [
        {"hold_id": hold_id, "ledger_account_id": line.ledger_account_id,
         "amount": line.amount, "position": line.position}
        for line in lines
    ]  # fmt: skip
    # One line (the usual hold) as a plain execute: executemany costs more for one row.
    conn.execute(_INSERT_LINES, rows[0] if len(rows) == 1 else rows)


def open_hold_in(conn: Connection, hold_id: int) -> OpenHold | None:
    """The hold `hold_id` with its lines, or None when it is already resolved."""
    rows = conn.execute(_HOLD_WITH_LINES, {"hold_id": hold_id}).all()
    if not rows:
        raise NotFound(f"hold {hold_id} not found", hold_id=hold_id)
    first = rows[0]
    if first.resolution_id is not None:
        return None
    return OpenHold(
        id=hold_id,
        account_id=int(first.account_id),
        unit=str(first.unit),
        amount=int(first.amount),
        details=first.details or {},
        lines=tuple(
            HoldLine(r.ledger_account_id, r.line_amount, r.position)
            for r in rows
            if r.ledger_account_id is not None
        ),
    )


def extend_hold_in(
    conn: Connection,
    current: OpenHold,
    buckets: Sequence[Bucket],
    extra: int,
    *,
    floor: int,
    service: str,
    direction: str | None,
    expires_at: datetime,
    now: datetime,
) -> OpenHold:
    """Reserve `extra` more for an open hold (same buckets rules) and move its expiry: the
    hold's amount, new lines after the old ones, and the buckets' ``held``."""
    lines: list[HoldLine] = []
    if extra > 0:
        start = max((line.position for line in current.lines), default=-1) + 1
        planned = reserve_in(
            conn, buckets, extra, unit=current.unit, floor=floor, service=service,
            direction=direction, now=now,
        )  # fmt: skip
        lines = [HoldLine(x.ledger_account_id, x.amount, start + x.position) for x in planned]
        _insert_lines(conn, current.id, lines)
    added = max(extra, 0)
    conn.execute(_EXTEND_HOLD, {"hold_id": current.id, "extra": added, "until": expires_at})
    return replace(current, amount=current.amount + added, lines=current.lines + tuple(lines))


def settle_hold_in(
    conn: Connection,
    hold_id: int,
    amount: int,
    *,
    now: datetime,
    memo: str,
    details: Mapping[str, Any],
    service: str = "voice",
) -> SettledHold:
    """Settle up to `amount` of an open hold and release the rest, with the payer's buckets
    already locked. A hold already resolved (expired by the sweeper) settles nothing."""
    current = open_hold_in(conn, hold_id)
    if current is None:
        return SettledHold(0, None, {}, {})
    settlement = plan_settlement(current.lines, min(amount, current.amount))
    tx_id = _book_settlement(
        conn, hold_id, current.account_id, current.unit, current.details, settlement,
        service=service, now=now, memo=memo, details=details,
    )  # fmt: skip
    conn.execute(
        _INSERT_RESOLUTION,
        {
            "hold_id": hold_id, "outcome": HoldOutcome.SETTLED.value,
            "settled_amount": settlement.settled, "transaction_id": tx_id, "created_at": now,
        },  # fmt: skip
    )
    taken: dict[int, int] = defaultdict(int)
    for take in settlement.takes:
        taken[take.bucket_id] += take.amount
    released = _released(settlement)
    return SettledHold(settlement.settled, tx_id, dict(taken), {b: -a for b, a in released.items()})
