"""Real-time call sessions: authorise (max affordable seconds, hold), update, end, sweep.

* `authorize` answers allowed or refused with a reason: ``suspended`` (the account or its
  wallet is suspended or closed), ``call_class_not_allowed`` (the plan refuses the class),
  ``no_rate`` (no tariff row), ``insufficient_balance`` (not one second affordable),
  ``number_suspended`` (an inbound call to a rented number suspended for an unpaid renewal:
  the switch answers busy; outbound calls from such a number are not refused, the switch
  presents the account's main number instead, see `services.numbers.route_number`).
  `max_seconds` counts call-time packages (``s:call`` seconds, used first) and the money the
  wallet can spend on the call (free/trial/directional credit and the paid balance, holds of
  other calls already deducted), capped by the plan's maximum call length.
* A session holds what `max_seconds` costs (money, and the package seconds), so concurrent
  calls on one wallet never spend the same money twice: the sum of holds counts. With the
  ``soft`` cut-off policy a call may last the plan's maximum length while the balance is
  positive; the hold is what the wallet has and the rest is charged at the end, taking the
  balance negative (the debt is paid by the next top-up).
* `update_session` (interim) records the seconds used so far. When the call comes within
  `EXTEND_WITHIN_S` of its `max_seconds` and that is less than the maximum call length, the
  hold is extended by what the wallet affords now (up to the maximum length) and the answer
  carries the new `max_seconds`; under the ``hard`` cut-off, when nothing more is affordable,
  it answers ``disconnect`` (the call ends at its `max_seconds` at the latest).
* `end` rates the real call (answer..end or a duration) with `rate_event`, settles the exact
  charge from the hold (``hard``: never more than held) and releases the rest. The charge is
  recorded as CDR ``session:<id>`` (explainable like any CDR charge).
* `sweep` ends sessions whose switch went silent for `timeout_s` by settling what was last
  reported.

Who pays: the wallet of the account's billing account, except for an inbound call to a
toll-free number (rating's `Payer.NUMBER_OWNER`): the wallet of the account renting that
number (`services.number_payers`; a number not in our inventory, or rented outside the
caller's scope, falls back to the account's own wallet). The hold, the refusal reasons
(``suspended``, ``insufficient_balance``), the settlement and the zero-balance rules then
use that wallet; the session and its charge keep the leaf account that took the call.

Resuming a suspended wallet is evaluated here: `authorize` resumes a wallet suspended at zero
when its balance is above zero again (see `services.suspension`).

Per-request cost: which account pays for an account and with which plan is remembered per
process for a few seconds (`services.session_context`). Statuses, balances and holds are
always read in the transaction, under the wallet's lock. Authorisations and ends are decided
in batches, many requests in one transaction (`services.session_batch`), with the rules
above applied request after request; interim updates and the sweep run one at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, bindparam, select, update

from telbill.adapters.db import ledger_store
from telbill.adapters.db.charging_tables import charges, sessions
from telbill.adapters.db.engine import Database
from telbill.domain.costs import charge_costs
from telbill.domain.lookup import TariffIndex
from telbill.domain.money import CALL_TIME, from_micros, to_micros
from telbill.domain.plans import CutOffPolicy
from telbill.domain.rating import (
    max_affordable_call_seconds,
    rate_event,
)
from telbill.domain.tariffs import Direction, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    TelbillError,
)
from telbill.ledger import Bucket, BucketKind, DrainPolicy, spendable
from telbill.services import holds as holds_service
from telbill.services import idempotency, session_batch, thresholds
from telbill.services.accounts import Account, AccountStatus
from telbill.services.charge_costs import cost_index_at
from telbill.services.charging import explanation_json, share_of, usage_json
from telbill.services.clock import Clock
from telbill.services.number_payers import number_owner_payer, number_owner_pays
from telbill.services.plans import TariffCache
from telbill.services.session_context import (
    SessionContext,
    context_for,
    fresh_accounts,
    paid_by,
    payer_account,
)
from telbill.services.suspension import enforce_zero_balance
from telbill.services.wallets import DebitRequest, debit_many_in

# A hold outlives its call by this much, so the sweeper settles it before it expires.
HOLD_GRACE = session_batch.HOLD_GRACE
DEFAULT_SWEEP_TIMEOUT_S = 120
# An interim update this close to `max_seconds` extends the hold (if the wallet affords it).
EXTEND_WITHIN_S = 60
ACTIVE, ENDED = "active", "ended"

_SELECT_SESSION = select(sessions).where(sessions.c.id == bindparam("session_id"))
_LOCK_SESSION = _SELECT_SESSION.with_for_update()
_INSERT_CHARGE = charges.insert().returning(charges.c.id)
_UPDATE_SESSION = update(sessions).where(sessions.c.id == bindparam("session_id"))


@dataclass(frozen=True, slots=True)
class Authorization:
    allowed: bool
    reason: str | None
    message: str
    session_id: int | None
    max_seconds: int
    held: Decimal
    held_seconds: int
    currency: str


@dataclass(frozen=True, slots=True)
class SessionView:
    id: int
    account_id: int
    payer_id: int
    state: str
    call_id: str | None
    direction: str
    to_number: str
    started_at: datetime
    max_seconds: int
    reported_seconds: int
    last_update_at: datetime
    ended_at: datetime | None
    billed_seconds: int | None
    charged: Decimal | None
    end_reason: str | None
    disconnect: bool = False
    charge_id: int | None = None


def view_of(row: Any, *, disconnect: bool = False, charge_id: int | None = None) -> SessionView:
    """The view of a session row (any object with the columns as attributes)."""
    return SessionView(
        id=row.id,
        account_id=row.account_id,
        payer_id=row.payer_id,
        state=row.state,
        call_id=row.call_id,
        direction=row.direction,
        to_number=row.to_number,
        started_at=row.started_at,
        max_seconds=row.max_seconds,
        reported_seconds=row.reported_seconds,
        last_update_at=row.last_update_at,
        ended_at=row.ended_at,
        billed_seconds=row.billed_seconds,
        charged=None if row.charged_micros is None else from_micros(row.charged_micros),
        end_reason=row.end_reason,
        disconnect=disconnect,
        charge_id=charge_id,
    )


def _load(conn: Connection, session_id: int) -> Any:
    row = conn.execute(_SELECT_SESSION, {"session_id": session_id}).first()
    if row is None:
        raise NotFound(f"session {session_id} not found", session_id=session_id)
    return row


def get_session(db: Database, session_id: int) -> SessionView:
    with db.read() as conn:
        return view_of(_load(conn, session_id))


# ---------------------------------------------------------------------------- authorize


def _money_seconds(available: int, event: UsageEvent, ctx: SessionContext, cap: int) -> int:
    if available <= 0:
        return 0
    return min(
        cap, max_affordable_call_seconds(from_micros(available), event, ctx.index, ctx.plan.plan)
    )


def _cost_micros(event: UsageEvent, seconds: int, ctx: SessionContext) -> int:
    return session_batch.cost_micros(event, seconds, ctx)


def _cap(ctx: SessionContext) -> int:
    return min(ctx.plan.max_call_s, ctx.index.tariff.settings.max_call_s)


def _spendable(
    buckets: Sequence[Bucket], unit: str, direction: str, now: datetime, floor: int = 0
) -> int:
    own = [b for b in buckets if b.unit == unit]
    return spendable(own, unit=unit, service="voice", direction=direction, now=now, floor=floor)


def authorize(
    db: Database,
    cache: TariffCache,
    *,
    account_id: int,
    to_number: str,
    idempotency_key: str,
    clock: Clock,
    direction: str = "outbound",
    from_number: str | None = None,
    at: datetime | None = None,
    call_id: str | None = None,
    within: int | None = None,
) -> Authorization:
    """Decide whether `account_id` may place this call now, and for how long (module rules).

    `within`: the caller's subtree (an API key's scope): a called toll-free number rented
    outside it is not charged to its owner (`services.number_payers`). Decided in the next
    batch of this process (`services.session_batch`)."""
    prepared = prepare_authorize(
        db, cache, account_id=account_id, to_number=to_number,
        idempotency_key=idempotency_key, clock=clock, direction=direction,
        from_number=from_number, at=at, call_id=call_id, within=within,
    )  # fmt: skip
    answer: dict[str, Any] = session_batch.group_commit(db).submit(db, prepared)
    return authorization_of(db, prepared, answer)


def authorization_of(
    db: Database, prepared: session_batch.AuthorizeRequest, answer: dict[str, Any]
) -> Authorization:
    """The answer of a committed batch to `prepared`, as an `Authorization`."""
    if answer.get("session_id") is not None:  # committed: this id is this call's for good
        ctx = prepared.ctx
        facts = _SessionFacts(
            int(answer["session_id"]), ctx.leaf.id, ctx.payer.id, prepared.event.start
        )
        _remember_session(db, facts)
    return Authorization(
        allowed=bool(answer["allowed"]),
        reason=answer.get("reason"),
        message=str(answer.get("message", "")),
        session_id=answer.get("session_id"),
        max_seconds=int(answer.get("max_seconds", 0)),
        held=from_micros(int(answer.get("held_micros", 0))),
        held_seconds=int(answer.get("held_seconds", 0)),
        currency=str(answer["currency"]),
    )


def prepare_authorize(
    db: Database,
    cache: TariffCache,
    *,
    account_id: int,
    to_number: str,
    idempotency_key: str,
    clock: Clock,
    direction: str = "outbound",
    from_number: str | None = None,
    at: datetime | None = None,
    call_id: str | None = None,
    within: int | None = None,
) -> session_batch.AuthorizeRequest:
    """`authorize`'s request checked and its context found (before any transaction)."""
    try:
        call_direction = Direction(direction)
    except ValueError:
        raise InvalidInput(f"direction must be inbound or outbound, got {direction!r}") from None
    if not to_number or not str(to_number).strip():
        raise InvalidInput("authorize needs the called number")
    if at is not None and at.tzinfo is None:
        raise InvalidInput("at must be timezone-aware")
    start = at or clock.now()
    ctx = context_for(db, cache, account_id, start)
    event = UsageEvent(
        id="authorize", account=str(ctx.leaf.id), to_number=str(to_number).strip(),
        start=start, direction=call_direction, from_number=from_number,
    )  # fmt: skip
    request = {
        "account_id": account_id, "to": event.to_number, "direction": direction,
        "from": from_number, "at": at, "call_id": call_id,
    }  # fmt: skip
    # Keys are scoped by the caller's own wallet, whoever pays for this call.
    scope = f"sessions.authorize:{ctx.payer.id}"
    ctx = _with_number_owner(db, ctx, event, within)

    return session_batch.AuthorizeRequest(
        ctx=ctx, event=event, call_id=call_id, scope=scope,
        key=idempotency.validate_key(idempotency_key),
        hashed=idempotency.request_hash(request), clock=clock,
    )  # fmt: skip


def _with_number_owner(
    db: Database, ctx: SessionContext, event: UsageEvent, within: int | None
) -> SessionContext:
    """`ctx` paid by the called number's renter when rating makes its owner pay (an inbound
    call to a toll-free number rented in our inventory); else `ctx` itself."""
    try:
        owner_pays = number_owner_pays(event, ctx.index)
    except TelbillError:
        return ctx  # an unrateable call: the batch gives the refusal
    if not owner_pays:
        return ctx
    with db.read() as conn:
        owner = number_owner_payer(conn, event.to_number, within=within)
    return ctx if owner is None else paid_by(ctx, owner)


@dataclass(frozen=True, slots=True)
class _SessionFacts:
    """What never changes about a session once its authorisation committed."""

    id: int
    account_id: int
    payer_id: int
    started_at: datetime


# Sessions this process authorised (most recent last): their end needs no read of its own.
_SESSIONS_REMEMBERED = 100_000
_session_facts: WeakKeyDictionary[Engine, dict[int, _SessionFacts]] = WeakKeyDictionary()
_session_facts_lock = threading.Lock()


def _remember_session(db: Database, facts: _SessionFacts) -> None:
    with _session_facts_lock:
        known = _session_facts.setdefault(db.engine, {})
        known[facts.id] = facts
        while len(known) > _SESSIONS_REMEMBERED:
            del known[next(iter(known))]


def _session_context(
    db: Database,
    cache: TariffCache,
    session_id: int,
    check: Callable[[int], None] | None,
) -> tuple[Any, SessionContext]:
    """The session's facts (remembered from its authorisation in this process, else read,
    deferred) and its context, `check` passed first so a caller outside the session's scope
    learns nothing about its account.

    Done before the transaction: the caches behind `context_for` and `check` may read with a
    connection of their own, which a transaction waiting for it must not hold up."""
    first: Any = _session_facts.get(db.engine, {}).get(session_id)
    if first is None:
        with db.read() as conn:
            first = _load(conn, session_id)
    if check is not None:
        check(int(first.account_id))
    ctx = context_for(db, cache, int(first.account_id), first.started_at)
    if int(first.payer_id) != ctx.payer.id:  # the called number's owner pays
        ctx = paid_by(ctx, payer_account(db, int(first.payer_id)))
    return first, ctx


def _locked_session(conn: Connection, first: Any) -> tuple[Any, list[Bucket]]:
    """In the request's transaction: the session row again, locked (an end, an update and
    the sweeper of one session take turns; always before the wallet, so they never
    deadlock), and its payer's buckets, locked."""
    return _lock_session(conn, first), _lock_wallet(conn, first)


def _lock_session(conn: Connection, first: Any) -> Any:
    return conn.execute(_LOCK_SESSION, {"session_id": first.id}).one()


def _lock_wallet(conn: Connection, first: Any) -> list[Bucket]:
    return ledger_store.load_buckets(conn, [first.payer_id])


# ---------------------------------------------------------------------------- update


def _extend(
    conn: Connection,
    ctx: SessionContext,
    row: Any,
    payer: Account,
    locked: list[Bucket],
    *,
    elapsed_s: int,
    now: datetime,
) -> dict[str, Any] | None:
    """Extend the call's holds to what the wallet affords now, up to the maximum call length:
    the session's new columns, or None when not one more second is affordable."""
    money_hold = holds_service.open_hold_in(conn, row.hold_id) if row.hold_id else None
    package_hold = (
        holds_service.open_hold_in(conn, row.package_hold_id) if row.package_hold_id else None
    )
    if (row.hold_id and money_hold is None) or (row.package_hold_id and package_hold is None):
        return None  # a hold expired under the call: the sweeper's business, not extended
    held_money = money_hold.amount if money_hold else 0
    held_seconds = package_hold.amount if package_hold else 0
    direction = row.direction
    money_total = held_money + _spendable(
        locked, ctx.payer.currency, direction, now, payer.floor_micros
    )
    seconds_total = held_seconds + _spendable(locked, CALL_TIME, direction, now)
    event = UsageEvent(
        id=f"session:{row.id}", account=str(row.account_id), to_number=row.to_number,
        start=row.started_at, direction=Direction(direction), from_number=row.from_number,
    )  # fmt: skip
    cap = _cap(ctx)
    new_max = min(cap, seconds_total + _money_seconds(money_total, event, ctx, cap))
    if new_max <= row.max_seconds:
        return None
    new_seconds = min(seconds_total, new_max)
    new_money = min(
        share_of(_cost_micros(event, new_max, ctx), new_max, new_seconds), max(money_total, 0)
    )
    expires_at = now + timedelta(seconds=new_max - elapsed_s) + HOLD_GRACE
    values: dict[str, Any] = {"max_seconds": new_max}
    for unit, current, wanted, column in (
        (ctx.payer.currency, money_hold, new_money, "hold_id"),
        (CALL_TIME, package_hold, new_seconds, "package_hold_id"),
    ):
        floor = payer.floor_micros if unit == ctx.payer.currency else 0
        extra = wanted - (current.amount if current else 0)
        if current is not None:
            holds_service.extend_hold_in(
                conn, current, locked, extra, floor=floor, service=Service.VOICE.value,
                direction=direction, expires_at=expires_at, now=now,
            )  # fmt: skip
        elif extra > 0:
            values[column] = holds_service.place_hold_in(
                conn, locked, extra, account_id=payer.id, unit=unit, floor=floor,
                service=Service.VOICE.value, direction=direction, expires_at=expires_at,
                now=now, details={"subject_account_id": row.account_id, "purpose": "session"},
            )  # fmt: skip
    return values


def update_session(
    db: Database,
    session_id: int,
    *,
    elapsed_s: int,
    clock: Clock,
    cache: TariffCache | None = None,
    check: Callable[[int], None] | None = None,
    extend_within_s: int = EXTEND_WITHIN_S,
) -> SessionView:
    """Interim update: record the seconds the call has lasted; extend its hold when it nears
    `max_seconds`; say whether to disconnect (module rules).

    ``disconnect`` is true when the call reached its `max_seconds`, when its wallet was
    suspended at zero and the plan cuts off hard, or when (hard) the call nears its
    `max_seconds` and the wallet affords nothing more. Repeating an update changes nothing
    more. `check(account_id)` (the caller's authorisation) runs before anything is written.
    """
    if not isinstance(elapsed_s, int) or elapsed_s < 0:
        raise InvalidInput(f"elapsed_s must be a non-negative integer, got {elapsed_s!r}")
    first, ctx = _session_context(db, cache or TariffCache(db), session_id, check)

    def work(conn: Connection) -> SessionView:
        now = clock.now()
        row, locked = _locked_session(conn, first)
        if row.state != ACTIVE:
            return view_of(row, disconnect=True)
        payer, _ = fresh_accounts(conn, ctx)
        hard = ctx.plan.plan.cut_off is CutOffPolicy.HARD
        reported = max(elapsed_s, row.reported_seconds)
        values: dict[str, Any] = {"reported_seconds": reported, "last_update_at": now}
        exhausted = False
        if (
            payer.status is AccountStatus.ACTIVE
            and row.max_seconds < _cap(ctx)
            and row.max_seconds - reported <= extend_within_s
        ):
            extension = _extend(conn, ctx, row, payer, locked, elapsed_s=reported, now=now)
            exhausted = extension is None
            values.update(extension or {})
        conn.execute(_UPDATE_SESSION, {"session_id": session_id, **values})
        row = {**row._mapping, **values}
        stop = (
            reported >= row["max_seconds"]
            or (hard and payer.status is not AccountStatus.ACTIVE)
            or (hard and exhausted)
        )
        return view_of(_Row(row), disconnect=stop)

    return db.run(work)


class _Row:
    """Attribute access over a mapping (a row with some columns changed)."""

    def __init__(self, values: Any) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


# ---------------------------------------------------------------------------- end


def _money_after(
    locked: Sequence[Bucket], currency: str, settled: holds_service.SettledHold, now: datetime
) -> tuple[int, int]:
    """The wallet's money once `settled` left the locked buckets: its balance as
    `suspension.money_balance` counts it, and what is available (`balances_in`)."""
    balance_total = available = 0
    for bucket in locked:
        if bucket.unit != currency:
            continue
        balance = bucket.balance - settled.taken.get(bucket.id, 0)
        held = bucket.held - settled.unheld.get(bucket.id, 0)
        if bucket.kind is BucketKind.PAID or (not bucket.is_expired(now) and balance > 0):
            balance_total += balance
        if not bucket.is_expired(now):
            available += balance - held
    return balance_total, available


def _finish(
    conn: Connection,
    row: Any,
    ctx: SessionContext,
    locked: list[Bucket],
    *,
    now: datetime,
    duration_s: int | None,
    answer_at: datetime | None,
    end_at: datetime | None,
    reason: str,
    cost_index: TariffIndex | None = None,
) -> SessionView:
    """`cost_index`: the plan's cost tariff at the call's start (`charge_costs`), for the
    charge's carrier cost."""
    if row.state != ACTIVE:
        raise Conflict(f"session {row.id} is already ended", session_id=row.id)
    event = UsageEvent(
        id=f"session:{row.id}", account=str(row.account_id), to_number=row.to_number,
        start=row.started_at, direction=Direction(row.direction), from_number=row.from_number,
        answer=answer_at if answer_at else (row.started_at if duration_s is not None else None),
        end=end_at, duration_s=duration_s,
    )  # fmt: skip
    rated = rate_event(event, ctx.index, ctx.plan.plan)
    charge = rated.charges[0]
    cost = charge_costs(event, rated.charges, ctx.plan.plan, cost_index)[0]
    amount = to_micros(charge.amount)
    billed = charge.billed_units
    hard = ctx.plan.plan.cut_off is CutOffPolicy.HARD
    details = {"session_id": row.id, "cdr_id": event.id}
    package_units = 0
    if row.package_hold_id is not None:
        package_units = holds_service.settle_hold_in(
            conn, row.package_hold_id, billed, now=now, memo="call time", details=details
        ).settled
    due = share_of(amount, billed, package_units)
    money = holds_service.SettledHold(0, None, {}, {})
    if row.hold_id is not None:
        money = holds_service.settle_hold_in(
            conn, row.hold_id, due, now=now, memo=f"call to {row.to_number}", details=details
        )
    settled, tx_id = money.settled, money.transaction_id
    charged = settled
    beyond_hold = due > settled and not hard
    if beyond_hold:
        outcome = debit_many_in(
            conn,
            [
                DebitRequest(
                    # The owner's wallet pays (toll-free): its own account is the subject.
                    account_id=row.payer_id if ctx.owner_pays else row.account_id,
                    amount=from_micros(due - settled),
                    idempotency_key=f"session:{row.id}:beyond_hold",
                    service="voice",
                    direction=row.direction,
                    memo=f"call to {row.to_number} beyond its hold",
                    details=details,
                    policy=DrainPolicy.ALLOW_NEGATIVE,
                )
            ],  # fmt: skip
            now=now,
        )[0]
        if not isinstance(outcome, Exception):
            charged = due
            tx_id = tx_id or outcome.id
    explanation = explanation_json(charge)
    if package_units:
        explanation["package_units"] = package_units
    if charged != amount:
        explanation["text"] += (
            f"\n  {package_units} s from packages; money charged {from_micros(charged)} "
            f"{charge.currency}" + (" (hard cut-off: capped at the hold)" if hard else "")
        )
    charge_id = conn.execute(
        _INSERT_CHARGE,
        {
            "cdr_id": event.id,
            "leg": charge.leg.value,
            "revision": 0,
            "account_id": row.account_id,
            "payer_id": row.payer_id,
            "service": "voice",
            "direction": row.direction,
            "amount_micros": charged,
            "currency": charge.currency,
            "unit": charge.unit,
            "billed_units": billed,
            "package_units": package_units,
            "tariff": charge.explanation.tariff,
            "tariff_version": charge.explanation.tariff_version,
            "prefix": charge.explanation.matched_prefix,
            "explanation": explanation,
            "usage": usage_json(event),
            "usage_hash": None,
            "transaction_id": tx_id,
            "source": "session",
            "occurred_at": row.started_at,
            "created_at": now,
            "cost_micros": None if cost is None else to_micros(cost),
        },  # fmt: skip
    ).scalar_one()
    ended = {
        "state": ENDED, "ended_at": now, "billed_seconds": billed, "charged_micros": charged,
        "end_reason": reason, "last_update_at": now,
    }  # fmt: skip
    conn.execute(_UPDATE_SESSION, {"session_id": row.id, **ended})
    # The zero-balance rules and the thresholds need the money after this charge: known from
    # the locked buckets, unless a debit beyond the hold moved it too (then read again).
    balance, available = _money_after(locked, ctx.payer.currency, money, now)
    if beyond_hold or balance <= 0:
        enforce_zero_balance(conn, [row.payer_id], now)
    else:
        thresholds.after_balance_change(
            conn, row.payer_id, now, payer=ctx.payer, available=from_micros(available)
        )
    return view_of(_Row({**row._mapping, **ended}), charge_id=int(charge_id))


def end_session(
    db: Database,
    cache: TariffCache,
    session_id: int,
    *,
    idempotency_key: str,
    clock: Clock,
    duration_s: int | None = None,
    answer_at: datetime | None = None,
    end_at: datetime | None = None,
    check: Callable[[int], None] | None = None,
) -> SessionView:
    """End a call: charge exactly what it cost (from answer to end, or `duration_s` from
    answer), release the rest of its hold. An unanswered call costs nothing.

    `check(account_id)` (the caller's authorisation) runs once the session is found,
    before anything is written. Decided in the next batch of this process."""
    prepared = prepare_end(
        db, cache, session_id, idempotency_key=idempotency_key, clock=clock,
        duration_s=duration_s, answer_at=answer_at, end_at=end_at, check=check,
    )  # fmt: skip
    view: SessionView = session_batch.group_commit(db).submit(db, prepared)
    return view


def prepare_end(
    db: Database,
    cache: TariffCache,
    session_id: int,
    *,
    idempotency_key: str,
    clock: Clock,
    duration_s: int | None = None,
    answer_at: datetime | None = None,
    end_at: datetime | None = None,
    check: Callable[[int], None] | None = None,
) -> session_batch.EndRequest:
    """`end_session`'s request checked and its context found (before any transaction)."""
    if duration_s is not None and (not isinstance(duration_s, int) or duration_s < 0):
        raise InvalidInput(f"duration_s must be a non-negative integer, got {duration_s!r}")
    for moment in (answer_at, end_at):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput("answer and end times must be timezone-aware")
    if answer_at is not None and end_at is None and duration_s is None:
        raise InvalidInput("an answered call needs its end time or its duration")
    first, ctx = _session_context(db, cache, session_id, check)
    cost_index = cost_index_at(cache, ctx.plan.plan, first.started_at, scope=ctx.plan.scope)
    request = {"duration_s": duration_s, "answer": answer_at, "end": end_at}
    return session_batch.EndRequest(
        session_id=session_id, ctx=ctx, cost_index=cost_index, duration_s=duration_s,
        answer_at=answer_at, end_at=end_at, scope=f"sessions.end:{session_id}",
        key=idempotency.validate_key(idempotency_key),
        hashed=idempotency.request_hash(request), clock=clock,
    )  # fmt: skip


def sweep_sessions(
    db: Database,
    cache: TariffCache,
    *,
    clock: Clock,
    timeout_s: int = DEFAULT_SWEEP_TIMEOUT_S,
    limit: int = 500,
) -> list[int]:
    """End sessions not updated for `timeout_s`, charging the seconds last reported."""
    now = clock.now()
    with db.read() as conn:
        silent = (
            conn.execute(
                select(sessions.c.id)
                .where(
                    sessions.c.state == ACTIVE,
                    sessions.c.last_update_at <= now - timedelta(seconds=timeout_s),
                )
                .order_by(sessions.c.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    return [int(i) for i in silent if _sweep_one(db, cache, int(i), clock=clock)]


def _sweep_one(db: Database, cache: TariffCache, session_id: int, *, clock: Clock) -> bool:
    first, ctx = _session_context(db, cache, session_id, None)
    cost_index = cost_index_at(cache, ctx.plan.plan, first.started_at, scope=ctx.plan.scope)

    def work(conn: Connection) -> bool:
        row, locked = _locked_session(conn, first)
        if row.state != ACTIVE:
            return False
        _finish(
            conn, row, ctx, locked, now=clock.now(), duration_s=row.reported_seconds,
            answer_at=None, end_at=None, reason="swept", cost_index=cost_index,
        )  # fmt: skip
        return True

    return db.run(work)


__all__ = [
    "DEFAULT_SWEEP_TIMEOUT_S",
    "EXTEND_WITHIN_S",
    "Authorization",
    "SessionView",
    "authorization_of",
    "authorize",
    "end_session",
    "get_session",
    "prepare_authorize",
    "prepare_end",
    "sweep_sessions",
    "update_session",
]
