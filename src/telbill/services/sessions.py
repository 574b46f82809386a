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
* `end` rates the real call (answer..end or a duration) with `rate_event`, settles the exact
  charge from the hold (``hard``: never more than held) and releases the rest. The charge is
  recorded as CDR ``session:<id>`` (explainable like any CDR charge).
* `sweep` ends sessions whose switch went silent for `timeout_s` by settling what was last
  reported.

Resuming a suspended wallet is evaluated here: `authorize` resumes a wallet suspended at zero
when its balance is above zero again (see `services.suspension`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from telbill.adapters.db import ledger_store
from telbill.adapters.db.charging_tables import account_plans, charges, sessions
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import hold_lines, hold_resolutions, holds
from telbill.domain.lookup import TariffIndex
from telbill.domain.money import CALL_TIME, from_micros, to_micros
from telbill.domain.numbers import rating_digits
from telbill.domain.plans import CallClass, CutOffPolicy
from telbill.domain.rating import (
    classify_call,
    max_affordable_call_seconds,
    rate_event,
)
from telbill.domain.tariffs import Direction, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import (
    CallClassNotAllowed,
    Conflict,
    InvalidInput,
    NoRate,
    NotFound,
    TelbillError,
)
from telbill.ledger import (
    Bucket,
    DrainPolicy,
    HoldLine,
    JournalEntry,
    Posting,
    plan_drain,
    plan_settlement,
    spendable,
)
from telbill.services import idempotency
from telbill.services.accounts import Account, AccountStatus, load_account
from telbill.services.charging import explanation_json, share_of, usage_json
from telbill.services.clock import Clock
from telbill.services.numbers import is_suspended_number
from telbill.services.plans import PlanRecord, TariffCache, get_plan_by_id, plan_for
from telbill.services.suspension import enforce_zero_balance, resume_if_funded
from telbill.services.wallets import DebitRequest, debit_many_in

# A hold outlives its call by this much, so the sweeper settles it before it expires.
HOLD_GRACE = timedelta(minutes=15)
DEFAULT_SWEEP_TIMEOUT_S = 120
ACTIVE, ENDED = "active", "ended"


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


def _view(row: Any, *, disconnect: bool = False, charge_id: int | None = None) -> SessionView:
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
    row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
    if row is None:
        raise NotFound(f"session {session_id} not found", session_id=session_id)
    return row


def get_session(db: Database, session_id: int) -> SessionView:
    with db.transaction() as conn:
        return _view(_load(conn, session_id))


# ---------------------------------------------------------------------------- holds


def _place_hold(
    conn: Connection,
    payer: Account,
    buckets: list[Bucket],
    amount: int,
    *,
    unit: str,
    direction: str,
    expires_at: datetime,
    now: datetime,
    subject_id: int,
) -> int:
    plan = plan_drain(
        buckets,
        amount,
        unit=unit,
        service=Service.VOICE.value,
        direction=direction,
        now=now,
        floor=payer.floor_micros if unit == payer.currency else 0,
        policy=DrainPolicy.ENFORCE_FLOOR,
    )
    hold_id = conn.execute(
        holds.insert()
        .values(
            account_id=payer.id,
            unit=unit,
            amount=amount,
            service=Service.VOICE.value,
            direction=direction,
            expires_at=expires_at,
            details={"subject_account_id": subject_id, "purpose": "session"},
            created_at=now,
        )
        .returning(holds.c.id)
    ).scalar_one()
    conn.execute(
        hold_lines.insert(),
        [
            {"hold_id": hold_id, "ledger_account_id": t.bucket_id, "amount": t.amount,
             "position": n}
            for n, t in enumerate(plan.takes)
        ],  # fmt: skip
    )
    ledger_store.add_to_columns(conn, held={t.bucket_id: t.amount for t in plan.takes})
    return int(hold_id)


def _settle_hold(
    conn: Connection,
    hold_id: int,
    amount: int,
    *,
    now: datetime,
    memo: str,
    details: Mapping[str, Any],
) -> tuple[int, int | None]:
    """Settle up to `amount` of an open hold and release the rest: (settled, transaction id).

    A hold already resolved (expired by the ledger's sweeper) settles nothing.
    """
    row = conn.execute(select(holds).where(holds.c.id == hold_id)).one()
    if conn.execute(
        select(hold_resolutions.c.id).where(hold_resolutions.c.hold_id == hold_id)
    ).first():
        return 0, None
    lines = [
        HoldLine(r.ledger_account_id, r.amount, r.position)
        for r in conn.execute(
            select(hold_lines)
            .where(hold_lines.c.hold_id == hold_id)
            .order_by(hold_lines.c.position)
        )
    ]
    settlement = plan_settlement(lines, min(amount, row.amount))
    tx_id: int | None = None
    if settlement.takes:
        revenue = ledger_store.system_account(conn, f"revenue:voice:{row.unit}", row.unit, now)
        post = [Posting(t.bucket_id, -t.amount, row.unit) for t in settlement.takes]
        post.append(Posting(revenue, settlement.settled, row.unit))
        tx_id = ledger_store.apply_entry(
            conn,
            JournalEntry(
                kind="hold_settle",
                account_id=row.account_id,
                subject_account_id=(row.details or {}).get("subject_account_id"),
                postings=tuple(post),
                memo=memo,
                details={**dict(details), "hold_id": hold_id, "service": "voice"},
            ),
            now,
        )
    released: dict[int, int] = defaultdict(int)
    for release in settlement.releases:
        released[release.bucket_id] -= release.amount
    ledger_store.add_to_columns(conn, held=released)
    conn.execute(
        hold_resolutions.insert().values(
            hold_id=hold_id,
            outcome="settled",
            settled_amount=settlement.settled,
            transaction_id=tx_id,
            created_at=now,
        )
    )
    return settlement.settled, tx_id


# ---------------------------------------------------------------------------- authorize


@dataclass(frozen=True, slots=True)
class _Context:
    leaf: Account
    payer: Account
    plan: PlanRecord
    index: TariffIndex


def _context(db: Database, cache: TariffCache, account_id: int, at: datetime) -> _Context:
    with db.engine.connect() as conn:
        leaf, payer, plan = _context_rows(conn, account_id)
        conn.rollback()
    return _Context(leaf, payer, plan, cache.at(plan.tariff, at))


def _context_rows(conn: Connection, account_id: int) -> tuple[Account, Account, PlanRecord]:
    """The account, the account that pays for it (`billing_account`) and its plan
    (`plan_for`: its own, else the nearest ancestor's), read with as few queries as can be."""
    leaf = load_account(conn, account_id)
    chain = [leaf]
    while not chain[-1].has_wallet:
        parent_id = chain[-1].parent_id
        if parent_id is None:
            raise NotFound(f"account {account_id} has no wallet above it", account_id=account_id)
        chain.append(load_account(conn, parent_id))
    assigned = {
        int(row.account_id): row.plan_id
        for row in conn.execute(
            select(account_plans.c.account_id, account_plans.c.plan_id).where(
                account_plans.c.account_id.in_([a.id for a in chain])
            )
        )
    }
    for account in chain:
        if account.id in assigned:
            plan = get_plan_by_id(conn, int(assigned[account.id]))
            break
    else:
        parent_id = chain[-1].parent_id
        if parent_id is None:
            raise NotFound(f"account {account_id} has no charging plan", account_id=account_id)
        try:
            plan = plan_for(conn, parent_id)
        except NotFound:
            raise NotFound(
                f"account {account_id} has no charging plan", account_id=account_id
            ) from None
    return leaf, chain[-1], plan


def _refusal(reason: str, message: str, currency: str) -> dict[str, Any]:
    return {"allowed": False, "reason": reason, "message": message, "currency": currency}


def _money_seconds(
    available: int, event: UsageEvent, ctx: _Context, cap: int
) -> int:
    if available <= 0:
        return 0
    return min(
        cap, max_affordable_call_seconds(from_micros(available), event, ctx.index, ctx.plan.plan)
    )


def _cost_micros(event: UsageEvent, seconds: int, ctx: _Context) -> int:
    if seconds <= 0:
        return 0
    priced = rate_event(
        UsageEvent(
            id=event.id, account=event.account, to_number=event.to_number, start=event.start,
            direction=event.direction, answer=event.start, duration_s=seconds,
            call_class=event.call_class,
        ),  # fmt: skip
        ctx.index,
        ctx.plan.plan,
    )
    return to_micros(priced.charges[0].amount)


def _decide(
    conn: Connection,
    ctx: _Context,
    event: UsageEvent,
    now: datetime,
    call_id: str | None,
    locked: list[Bucket],
) -> dict[str, Any]:
    """`locked`: the payer's buckets, read and locked at the start of this transaction."""
    currency = ctx.payer.currency
    resume_if_funded(conn, ctx.payer.id, now)
    payer = load_account(conn, ctx.payer.id)
    leaf = load_account(conn, ctx.leaf.id)
    if payer.status is not AccountStatus.ACTIVE or leaf.status is not AccountStatus.ACTIVE:
        return _refusal("suspended", f"account {payer.id} is {payer.status.value}", currency)
    if event.direction is Direction.INBOUND and is_suspended_number(conn, event.to_number):
        return _refusal(
            "number_suspended", f"{event.to_number} is suspended for an unpaid renewal", currency
        )
    try:
        call_class = classify_call(event)
        ctx.plan.plan.check_call_class(call_class)
        digits = rating_digits(event.to_number)
        found = ctx.index.find(
            digits, service=Service.VOICE, direction=event.direction, at=event.start
        )
        if found is None and call_class is not CallClass.LOCAL_EXTENSION:
            ctx.index.lookup(digits, service=Service.VOICE, direction=event.direction,
                             at=event.start)  # fmt: skip
    except (CallClassNotAllowed, NoRate) as refused:
        return _refusal(refused.code, refused.message, currency)
    free = found is None  # a local extension without a rate: free (rating's rule)
    direction = event.direction.value
    buckets = locked
    money = [b for b in buckets if b.unit == currency]
    package = [b for b in buckets if b.unit == CALL_TIME]
    money_available = spendable(
        money, unit=currency, service="voice", direction=direction, now=now,
        floor=payer.floor_micros,
    )  # fmt: skip
    package_seconds = spendable(
        package, unit=CALL_TIME, service="voice", direction=direction, now=now
    )
    cap = min(ctx.plan.max_call_s, ctx.index.tariff.settings.max_call_s)
    if free or (
        ctx.plan.plan.cut_off is CutOffPolicy.SOFT and money_available + package_seconds > 0
    ):
        max_seconds = cap
    else:
        max_seconds = min(
            cap, package_seconds + _money_seconds(money_available, event, ctx, cap)
        )
    if max_seconds <= 0:
        return _refusal(
            "insufficient_balance",
            f"the wallet of account {payer.id} cannot pay for one second of this call",
            currency,
        )
    held_seconds = 0 if free else min(package_seconds, max_seconds)
    full_cost = 0 if free else _cost_micros(event, max_seconds, ctx)
    money_hold = min(share_of(full_cost, max_seconds, held_seconds), max(money_available, 0))
    expires_at = now + timedelta(seconds=max_seconds) + HOLD_GRACE
    hold_id = package_hold_id = None
    if money_hold > 0:
        hold_id = _place_hold(
            conn, payer, money, money_hold, unit=currency, direction=direction,
            expires_at=expires_at, now=now, subject_id=ctx.leaf.id,
        )  # fmt: skip
    if held_seconds > 0:
        package_hold_id = _place_hold(
            conn, payer, package, held_seconds, unit=CALL_TIME, direction=direction,
            expires_at=expires_at, now=now, subject_id=ctx.leaf.id,
        )  # fmt: skip
    session_id = conn.execute(
        sessions.insert()
        .values(
            account_id=ctx.leaf.id,
            payer_id=payer.id,
            state=ACTIVE,
            call_id=call_id,
            direction=direction,
            from_number=event.from_number,
            to_number=event.to_number,
            started_at=event.start,
            hold_id=hold_id,
            package_hold_id=package_hold_id,
            max_seconds=max_seconds,
            reported_seconds=0,
            last_update_at=now,
            created_at=now,
        )
        .returning(sessions.c.id)
    ).scalar_one()
    return {
        "allowed": True,
        "reason": None,
        "message": "allowed",
        "session_id": int(session_id),
        "max_seconds": max_seconds,
        "held_micros": money_hold,
        "held_seconds": held_seconds,
        "currency": currency,
    }


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
) -> Authorization:
    """Decide whether `account_id` may place this call now, and for how long (module rules)."""
    try:
        call_direction = Direction(direction)
    except ValueError:
        raise InvalidInput(f"direction must be inbound or outbound, got {direction!r}") from None
    if not to_number or not str(to_number).strip():
        raise InvalidInput("authorize needs the called number")
    if at is not None and at.tzinfo is None:
        raise InvalidInput("at must be timezone-aware")
    start = at or clock.now()
    ctx = _context(db, cache, account_id, start)
    event = UsageEvent(
        id="authorize", account=str(ctx.leaf.id), to_number=str(to_number).strip(),
        start=start, direction=call_direction, from_number=from_number,
    )  # fmt: skip
    request = {
        "account_id": account_id, "to": event.to_number, "direction": direction,
        "from": from_number, "at": at, "call_id": call_id,
    }  # fmt: skip

    def work(conn: Connection) -> dict[str, Any]:
        now = clock.now()
        # Lock the wallet first: concurrent authorisations of one wallet run one at a time.
        locked = ledger_store.load_buckets(conn, [ctx.payer.id])
        return idempotency.once(
            conn,
            scope=f"sessions.authorize:{ctx.payer.id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=lambda: _decide(conn, ctx, event, now, call_id, locked),
            load=lambda response: dict(response),
        )

    answer = db.run(work)
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


# ---------------------------------------------------------------------------- update


def update_session(
    db: Database, session_id: int, *, elapsed_s: int, clock: Clock
) -> SessionView:
    """Interim update: record the seconds the call has lasted; say whether to disconnect.

    ``disconnect`` is true when the call reached its `max_seconds`, or its wallet was
    suspended at zero and the plan cuts off hard. Repeating an update changes nothing more.
    """
    if not isinstance(elapsed_s, int) or elapsed_s < 0:
        raise InvalidInput(f"elapsed_s must be a non-negative integer, got {elapsed_s!r}")

    def work(conn: Connection) -> SessionView:
        now = clock.now()
        row = _load(conn, session_id)
        if row.state != ACTIVE:
            return _view(row, disconnect=True)
        conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(reported_seconds=max(elapsed_s, row.reported_seconds), last_update_at=now)
        )
        row = _load(conn, session_id)
        payer = load_account(conn, row.payer_id)
        hard = plan_for(conn, row.account_id).plan.cut_off is CutOffPolicy.HARD
        stop = row.reported_seconds >= row.max_seconds or (
            hard and payer.status is not AccountStatus.ACTIVE
        )
        return _view(row, disconnect=stop)

    return db.run(work)


# ---------------------------------------------------------------------------- end


def _finish(
    conn: Connection,
    row: Any,
    ctx: _Context,
    *,
    now: datetime,
    duration_s: int | None,
    answer_at: datetime | None,
    end_at: datetime | None,
    reason: str,
) -> dict[str, Any]:
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
    amount = to_micros(charge.amount)
    billed = charge.billed_units
    hard = ctx.plan.plan.cut_off is CutOffPolicy.HARD
    details = {"session_id": row.id, "cdr_id": event.id}
    package_units = 0
    if row.package_hold_id is not None:
        package_units, _ = _settle_hold(
            conn, row.package_hold_id, billed, now=now, memo="call time", details=details
        )
    due = share_of(amount, billed, package_units)
    settled, tx_id = 0, None
    if row.hold_id is not None:
        settled, tx_id = _settle_hold(
            conn, row.hold_id, due, now=now, memo=f"call to {row.to_number}", details=details
        )
    charged = settled
    if due > settled and not hard:
        outcome = debit_many_in(
            conn,
            [
                DebitRequest(
                    account_id=row.account_id, amount=from_micros(due - settled),
                    idempotency_key=f"session:{row.id}:beyond_hold", service="voice",
                    direction=row.direction, memo=f"call to {row.to_number} beyond its hold",
                    details=details, policy=DrainPolicy.ALLOW_NEGATIVE,
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
        charges.insert()
        .values(
            cdr_id=event.id, leg=charge.leg.value, revision=0, account_id=row.account_id,
            payer_id=row.payer_id, service="voice", direction=row.direction,
            amount_micros=charged, currency=charge.currency, unit=charge.unit,
            billed_units=billed, package_units=package_units,
            tariff=charge.explanation.tariff, tariff_version=charge.explanation.tariff_version,
            prefix=charge.explanation.matched_prefix, explanation=explanation,
            usage=usage_json(event), usage_hash=None, transaction_id=tx_id,
            source="session", occurred_at=row.started_at, created_at=now,
        )  # fmt: skip
        .returning(charges.c.id)
    ).scalar_one()
    conn.execute(
        update(sessions)
        .where(sessions.c.id == row.id)
        .values(
            state=ENDED, ended_at=now, billed_seconds=billed, charged_micros=charged,
            end_reason=reason, last_update_at=now,
        )  # fmt: skip
    )
    enforce_zero_balance(conn, [row.payer_id], now)
    return {"session_id": row.id, "charge_id": int(charge_id)}


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
    before anything is written."""
    if duration_s is not None and (not isinstance(duration_s, int) or duration_s < 0):
        raise InvalidInput(f"duration_s must be a non-negative integer, got {duration_s!r}")
    for moment in (answer_at, end_at):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput("answer and end times must be timezone-aware")
    if answer_at is not None and end_at is None and duration_s is None:
        raise InvalidInput("an answered call needs its end time or its duration")
    with db.engine.connect() as conn:  # one read connection for the session and its context
        first = _load(conn, session_id)
        try:
            rows: tuple[Account, Account, PlanRecord] | TelbillError = _context_rows(
                conn, first.account_id
            )
        except TelbillError as exc:  # told only to a caller allowed to see this session
            rows = exc
        conn.rollback()
    if check is not None:
        check(int(first.account_id))
    if isinstance(rows, TelbillError):
        raise rows
    leaf, payer, plan = rows
    ctx = _Context(leaf, payer, plan, cache.at(plan.tariff, first.started_at))
    request = {"duration_s": duration_s, "answer": answer_at, "end": end_at}

    def work(conn: Connection) -> SessionView:
        now = clock.now()
        ledger_store.load_buckets(conn, [first.payer_id])
        response = idempotency.once(
            conn,
            scope=f"sessions.end:{session_id}",
            key=idempotency_key,
            request=request,
            now=now,
            perform=lambda: _finish(
                conn, _load(conn, session_id), ctx, now=now, duration_s=duration_s,
                answer_at=answer_at, end_at=end_at, reason="ended",
            ),  # fmt: skip
            load=lambda response: dict(response),
        )
        return _view(_load(conn, session_id), charge_id=response.get("charge_id"))

    return db.run(work)


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
    with db.engine.connect() as conn:
        silent = conn.execute(
            select(sessions.c.id)
            .where(
                sessions.c.state == ACTIVE,
                sessions.c.last_update_at <= now - timedelta(seconds=timeout_s),
            )
            .order_by(sessions.c.id)
            .limit(limit)
        ).scalars().all()
        conn.rollback()
    return [int(i) for i in silent if _sweep_one(db, cache, int(i), clock=clock)]


def _sweep_one(db: Database, cache: TariffCache, session_id: int, *, clock: Clock) -> bool:
    with db.engine.connect() as conn:  # one read connection for the session and its context
        first = _load(conn, session_id)
        leaf, payer, plan = _context_rows(conn, first.account_id)
        conn.rollback()
    ctx = _Context(leaf, payer, plan, cache.at(plan.tariff, first.started_at))

    def work(conn: Connection) -> bool:
        ledger_store.load_buckets(conn, [first.payer_id])
        row = _load(conn, session_id)
        if row.state != ACTIVE:
            return False
        _finish(
            conn, row, ctx, now=clock.now(), duration_s=row.reported_seconds,
            answer_at=None, end_at=None, reason="swept",
        )  # fmt: skip
        return True

    return db.run(work)


__all__ = [
    "DEFAULT_SWEEP_TIMEOUT_S",
    "Authorization",
    "SessionView",
    "authorize",
    "end_session",
    "get_session",
    "sweep_sessions",
    "update_session",
]
