"""The real-time session engine: authorisations and ends decided in batches (group commit).

`services.sessions` prepares each request (its account's context, the rated event, the
idempotency scope and the request's hash) in the caller's thread and hands it to the
`GroupCommit` of its database. Requests that arrive while a batch runs wait; the next batch
takes them all (at most `MAX_BATCH`), so a quiet worker answers one request at once and a busy
one amortises the database over many. One batch is ONE transaction of this process:

1. the idempotency keys of every request, read in one statement (a repeat answers as the
   first time; a key reused with another request is refused; a key twice in one batch is
   performed once);
2. the sessions being ended, locked in id order; then the buckets of every wallet involved,
   locked in id order (``SELECT ... FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` holds the
   whole file), and the accounts' statuses;
3. the ends: each call rated, its holds settled in memory (`ledger.WalletBook`,
   `domain.session_holds`), journal entries, hold resolutions, charges and session rows
   written in bulk; the zero-balance rules and thresholds evaluated once per wallet;
4. the authorisations, in arrival order, each on the balances the previous ones left:
   refused with its reason, or its holds reserved in memory; holds, their lines and the
   sessions inserted in bulk;
5. the buckets' ``balance``/``held`` changes in one statement, the idempotency keys in one.

Money rules are those of one request at a time (the requests of a batch are decided in
order, on the same locked rows). A request that fails on its own (a key reused, a session
already ended, no rate) gets its error and the batch goes on; a batch that fails as a whole
(an unexpected error) is rolled back and its requests are run again one by one, so one bad
request never fails the others. A deadlock or a concurrent key retries the whole batch.

Rare paths reuse the per-request code in the batch's transaction after writing the pending
changes: debits beyond a ``soft`` hold, wallets at zero (`services.suspension`), resuming a
funded wallet.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from anyio import to_thread
from sqlalchemy import Connection, Engine, Table, bindparam, select, tuple_
from sqlalchemy.exc import IntegrityError

from telbill.adapters.db import bulk, ledger_store
from telbill.adapters.db.charging_tables import charges, sessions
from telbill.adapters.db.engine import Database, RetryTransaction
from telbill.adapters.db.tables import accounts as accounts_table
from telbill.adapters.db.tables import (
    hold_lines,
    hold_resolutions,
    holds,
    idempotency_keys,
)
from telbill.domain.costs import charge_costs
from telbill.domain.increments import disconnect_after_s
from telbill.domain.lookup import TariffIndex
from telbill.domain.money import CALL_TIME, from_micros, to_micros
from telbill.domain.plans import CallClass, CutOffPolicy
from telbill.domain.rating import classify_call, max_affordable_call_seconds, rate_event
from telbill.domain.session_holds import HoldDecision, decide_hold, decide_settlement
from telbill.domain.tariffs import Direction, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import (
    CallClassNotAllowed,
    Conflict,
    IdempotencyConflict,
    NoRate,
    NotFound,
    TelbillError,
)
from telbill.ledger import (
    Bucket,
    BucketKind,
    DrainPolicy,
    HoldLine,
    HoldOutcome,
    JournalEntry,
    Posting,
    Settlement,
    spendable,
)
from telbill.ledger.book import WalletBook
from telbill.services import thresholds
from telbill.services.accounts import Account, AccountStatus, BillingMode
from telbill.services.charging import explanation_json, usage_json
from telbill.services.clock import Clock
from telbill.services.numbers import is_suspended_number
from telbill.services.session_context import SessionContext
from telbill.services.suspension import enforce_zero_balance, resume_if_funded
from telbill.services.wallets import DebitRequest, debit_many_in

MAX_BATCH = 256
# A hold outlives its call by this much, so the sweeper settles it before it expires.
HOLD_GRACE = timedelta(minutes=15)
ACTIVE, ENDED = "active", "ended"
VOICE = Service.VOICE.value


# ---------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """A call to authorise, prepared by `sessions.authorize` (context, event, key)."""

    ctx: SessionContext
    event: UsageEvent
    call_id: str | None
    scope: str
    key: str
    hashed: str
    clock: Clock


@dataclass(frozen=True, slots=True)
class EndRequest:
    """A session to end, prepared by `sessions.end_session`."""

    session_id: int
    ctx: SessionContext
    cost_index: TariffIndex | None
    duration_s: int | None
    answer_at: datetime | None
    end_at: datetime | None
    scope: str
    key: str
    hashed: str
    clock: Clock


Request = AuthorizeRequest | EndRequest


# ---------------------------------------------------------------------------- group commit


class _Waiter:
    __slots__ = ("done", "lead", "outcome", "request", "wake")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.outcome: Any = None
        self.done = False
        self.lead = False
        self.wake = threading.Event()

    def result(self) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class GroupCommit:
    """Leader and followers: the first request to find no batch running leads; it runs
    batches of whatever is queued until its own is done, then hands the lead to the oldest
    request still waiting. No thread of its own, no timer: a lone request runs at once."""

    def __init__(self, limit: int = MAX_BATCH) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._leading = False
        self.batches = 0  # batches run (for tests and benchmarks)

    def submit(self, db: Database, request: Request) -> Any:
        """Run `request` in the next batch; its answer, or its error raised."""
        waiter = _Waiter(request)
        with self._lock:
            self._queue.append(waiter)
            lead = not self._leading
            self._leading = True
        if not lead:
            waiter.wake.wait()
            if waiter.done:
                return waiter.result()
        self._lead(db, waiter)
        return waiter.result()

    def submit_all(self, db: Database, requests: Sequence[Request]) -> list[Any]:
        """Run `requests` (in order, in as few batches as the limit allows); one outcome
        each, an answer or the error (not raised)."""
        waiters = [_Waiter(request) for request in requests]
        if not waiters:
            return []
        with self._lock:
            self._queue.extend(waiters)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead(db, waiters[-1])
        else:
            for waiter in waiters:
                waiter.wake.wait()
                if not waiter.done:  # handed the lead: run until the last one is done
                    self._lead(db, waiters[-1])
                    break
        return [waiter.outcome for waiter in waiters]

    def _lead(self, db: Database, own: _Waiter) -> None:
        try:
            while not own.done:
                with self._lock:
                    batch = self._queue[: self._limit]
                    del self._queue[: self._limit]
                self._run(db, batch)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    self._leading = False

    def _run(self, db: Database, batch: list[_Waiter]) -> None:
        requests = [w.request for w in batch]
        outcomes: list[Any]
        try:
            try:
                outcomes = db.run(lambda conn: run_batch(conn, requests))
            except Exception as failed:
                if len(batch) == 1:
                    outcomes = [failed]
                else:  # one by one: a request that fails the batch fails alone
                    outcomes = [_run_alone(db, request) for request in requests]
            self.batches += 1
        except BaseException as failed:  # never leave a waiter waiting
            outcomes = [failed] * len(batch)
            raise
        finally:
            for waiter, outcome in zip(batch, outcomes, strict=False):
                waiter.outcome, waiter.done = outcome, True
                waiter.wake.set()


def _run_alone(db: Database, request: Request) -> Any:
    try:
        return db.run(lambda conn: run_batch(conn, [request]))[0]
    except Exception as failed:
        return failed


class AsyncGroupCommit:
    """Group commit for an event loop (the API): requests wait on the loop, not in threads;
    one worker thread takes everything queued, prepares each request (`prepare`: checks and
    context, which may read), decides them in the process's `GroupCommit`, and finishes
    each answer (`finish`). One thread hop per batch instead of one per request."""

    def __init__(self, db: Database, loop: asyncio.AbstractEventLoop) -> None:
        self._db = db
        self.loop = loop  # the loop its requests wait on
        self._queue: list[_Queued] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(
        self, prepare: Callable[[], Request], finish: Callable[[Any, Any], Any]
    ) -> Any:
        """The finished answer of one request, or its error raised."""
        future: asyncio.Future[Any] = self.loop.create_future()
        self._queue.append(_Queued(prepare, finish, future))
        if self._drainer is None:
            self._drainer = self.loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                try:
                    outcomes = await to_thread.run_sync(self._run, batch)
                except BaseException as failed:  # never leave a request waiting
                    outcomes = [failed] * len(batch)
                for queued, outcome in zip(batch, outcomes, strict=True):
                    if queued.future.done():  # its caller went away
                        continue
                    if isinstance(outcome, BaseException):
                        queued.future.set_exception(outcome)
                    else:
                        queued.future.set_result(outcome)
        finally:
            self._drainer = None

    def _run(self, batch: Sequence[_Queued]) -> list[Any]:
        outcomes: list[Any] = [None] * len(batch)
        prepared: list[tuple[int, Request]] = []
        for index, queued in enumerate(batch):
            try:
                prepared.append((index, queued.prepare()))
            except Exception as failed:
                outcomes[index] = failed
        decided = group_commit(self._db).submit_all(self._db, [request for _, request in prepared])
        for (index, request), outcome in zip(prepared, decided, strict=True):
            if isinstance(outcome, BaseException):
                outcomes[index] = outcome
                continue
            try:
                outcomes[index] = batch[index].finish(request, outcome)
            except Exception as failed:
                outcomes[index] = failed
        return outcomes


@dataclass(frozen=True, slots=True)
class _Queued:
    prepare: Callable[[], Request]
    finish: Callable[[Any, Any], Any]
    future: asyncio.Future[Any]


_engines: WeakKeyDictionary[Engine, GroupCommit] = WeakKeyDictionary()
_engines_lock = threading.Lock()


def group_commit(db: Database) -> GroupCommit:
    """The batcher of `db`'s engine in this process (one batch at a time per engine)."""
    found = _engines.get(db.engine)
    if found is None:
        with _engines_lock:
            found = _engines.setdefault(db.engine, GroupCommit())
    return found


# ---------------------------------------------------------------------------- statements

_STORED_KEYS = select(
    idempotency_keys.c.scope,
    idempotency_keys.c.key,
    idempotency_keys.c.request_hash,
    idempotency_keys.c.response,
).where(
    tuple_(idempotency_keys.c.scope, idempotency_keys.c.key).in_(bindparam("pairs", expanding=True))
)
_LOCK_SESSIONS = (
    select(sessions)
    .where(sessions.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(sessions.c.id)
    .with_for_update()
)
_ACCOUNT_STATES = select(
    accounts_table.c.id,
    accounts_table.c.status,
    accounts_table.c.billing_mode,
    accounts_table.c.credit_limit_micros,
).where(accounts_table.c.id.in_(bindparam("ids", expanding=True)))
_OPEN_HOLDS = (
    select(
        holds.c.id,
        holds.c.account_id,
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
    .where(holds.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(holds.c.id, hold_lines.c.position)
)
_UPDATE_SESSIONS = (
    sessions.update()
    .where(sessions.c.id == bindparam("session_id"))
    .values(
        state=bindparam("new_state"),
        ended_at=bindparam("new_ended_at"),
        billed_seconds=bindparam("new_billed_seconds"),
        charged_micros=bindparam("new_charged_micros"),
        end_reason=bindparam("new_end_reason"),
        last_update_at=bindparam("new_last_update_at"),
    )
)


_HOLD_COLUMNS = (
    "account_id", "unit", "amount", "service", "direction", "expires_at", "details",
    "created_at",
)  # fmt: skip
_LINE_COLUMNS = ("hold_id", "ledger_account_id", "amount", "position")
_SESSION_COLUMNS = (
    "account_id", "payer_id", "state", "call_id", "direction", "from_number", "to_number",
    "started_at", "hold_id", "package_hold_id", "max_seconds", "reported_seconds",
    "last_update_at", "created_at",
)  # fmt: skip
_CHARGE_COLUMNS = (
    "cdr_id", "leg", "revision", "account_id", "payer_id", "service", "direction",
    "amount_micros", "currency", "unit", "billed_units", "package_units", "tariff",
    "tariff_version", "prefix", "explanation", "usage", "usage_hash", "transaction_id",
    "source", "occurred_at", "created_at", "cost_micros",
)  # fmt: skip
_RESOLUTION_COLUMNS = ("hold_id", "outcome", "settled_amount", "transaction_id", "created_at")
_KEY_COLUMNS = ("scope", "key", "request_hash", "response", "created_at")


def driver_rows(
    conn: Connection, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    """`rows` as tuples of `columns` in the driver's types (`adapters.db.bulk`): times as
    the database stores them, mappings as JSON text."""
    stamp = bulk.timestamp_param(conn)

    def value(item: Any) -> Any:
        if isinstance(item, datetime):
            return stamp(item)
        if isinstance(item, Mapping):
            return bulk.json_text(dict(item))
        return item

    return [tuple(value(row[name]) for name in columns) for row in rows]


def insert_with_ids(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Insert `rows` into `table` in bulk; their new ids in the rows' order."""
    return bulk.insert_with_ids(conn, table, columns, driver_rows(conn, rows, columns))


def insert_all(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    bulk.insert_rows(conn, table, columns, driver_rows(conn, rows, columns))


# ---------------------------------------------------------------------------- the batch


@dataclass(frozen=True, slots=True)
class _OpenHold:
    id: int
    account_id: int
    amount: int
    details: Mapping[str, Any]
    lines: tuple[HoldLine, ...]


@dataclass(slots=True)
class _Batch:
    """What one batch has decided and not written yet."""

    conn: Connection
    book: WalletBook
    states: dict[int, Any]
    entries: list[JournalEntry] = field(default_factory=list)
    # (hold id, settled amount, index of its entry or None)
    resolutions: list[tuple[int, int, int | None]] = field(default_factory=list)
    dirty_states: bool = False

    def flush_columns(self) -> None:
        """Write the buckets' pending balance/held changes (before code that reads them)."""
        balance, held = self.book.take_deltas()
        ledger_store.add_to_columns(self.conn, balance=balance, held=held)

    def fresh(self, account: Account) -> Account:
        if self.dirty_states:
            self._read_states(self.states.keys())
        row = self.states.get(account.id)
        if row is None:
            raise NotFound(f"account {account.id} not found", account_id=account.id)
        return replace(
            account,
            status=AccountStatus(row.status),
            billing_mode=BillingMode(row.billing_mode),
            credit_limit=from_micros(row.credit_limit_micros),
        )

    def _read_states(self, ids: Any) -> None:
        wanted = sorted(set(ids))
        self.states = {
            int(r.id): r for r in self.conn.execute(_ACCOUNT_STATES, {"ids": wanted})
        } if wanted else {}  # fmt: skip
        self.dirty_states = False


def run_batch(conn: Connection, requests: Sequence[Request]) -> list[Any]:
    """Decide `requests` in the transaction of `conn` (module rules): one outcome each, an
    answer (authorisation: the stored dict; end: a `sessions.SessionView`) or an error."""
    from telbill.services.sessions import view_of  # the view type lives with the service

    outcomes: list[Any] = [None] * len(requests)
    stored = _stored_keys(conn, requests)
    todo: list[int] = []
    first_of: dict[tuple[str, str], int] = {}
    copies: list[tuple[int, int]] = []
    replays: list[tuple[int, Mapping[str, Any]]] = []
    for index, request in enumerate(requests):
        pair = (request.scope, request.key)
        if pair in stored or pair in first_of:
            hashed = stored[pair][0] if pair in stored else requests[first_of[pair]].hashed
            if hashed != request.hashed:
                outcomes[index] = IdempotencyConflict(
                    f"idempotency key {request.key!r} was already used for a different request",
                    scope=request.scope, key=request.key,
                )  # fmt: skip
            elif pair in stored:
                replays.append((index, stored[pair][1]))
            else:
                copies.append((index, first_of[pair]))
            continue
        first_of[pair] = index
        todo.append(index)

    end_ids = sorted({r.session_id for r in requests if isinstance(r, EndRequest)})
    rows = {int(r.id): r for r in conn.execute(_LOCK_SESSIONS, {"ids": end_ids})} if end_ids else {}
    for index, response in replays:
        request = requests[index]
        if isinstance(request, AuthorizeRequest):
            outcomes[index] = dict(response)
        else:
            outcomes[index] = view_of(_row(rows, request), charge_id=response.get("charge_id"))

    payers = sorted({requests[i].ctx.payer.id for i in todo})
    book = WalletBook(ledger_store.load_buckets(conn, payers) if payers else [])
    batch = _Batch(conn, book, {})
    batch._read_states(
        [a for i in todo for a in (requests[i].ctx.payer.id, requests[i].ctx.leaf.id)]
    )

    responses: dict[int, dict[str, Any]] = {}
    ends = [i for i in todo if isinstance(requests[i], EndRequest)]
    if ends:
        _end_all(batch, requests, ends, rows, outcomes, responses)
    auths = [i for i in todo if isinstance(requests[i], AuthorizeRequest)]
    if auths:
        _authorize_all(batch, requests, auths, outcomes, responses)
    batch.flush_columns()
    _remember_keys(conn, requests, responses)
    for index, first in copies:
        outcomes[index] = outcomes[first]
    return outcomes


def _row(rows: Mapping[int, Any], request: EndRequest) -> Any:
    row = rows.get(request.session_id)
    if row is None:
        raise NotFound(f"session {request.session_id} not found", session_id=request.session_id)
    return row


def _stored_keys(
    conn: Connection, requests: Sequence[Request]
) -> dict[tuple[str, str], tuple[str, Mapping[str, Any]]]:
    pairs = sorted({(r.scope, r.key) for r in requests})
    return {
        (row.scope, row.key): (row.request_hash, row.response)
        for row in conn.execute(_STORED_KEYS, {"pairs": pairs})
    }


def _remember_keys(
    conn: Connection, requests: Sequence[Request], responses: Mapping[int, Mapping[str, Any]]
) -> None:
    rows = [
        {"scope": requests[i].scope, "key": requests[i].key, "request_hash": requests[i].hashed,
         "response": dict(response), "created_at": requests[i].clock.now()}
        for i, response in sorted(responses.items())
    ]  # fmt: skip
    if not rows:
        return
    try:
        insert_all(conn, idempotency_keys, _KEY_COLUMNS, rows)
    except IntegrityError as exc:  # another worker stored one first: start over, replay it
        raise RetryTransaction("an idempotency key was stored concurrently") from exc


# ---------------------------------------------------------------------------- ends


def _open_holds(conn: Connection, hold_ids: Sequence[int]) -> dict[int, _OpenHold]:
    """The open holds among `hold_ids` with their lines (a resolved hold is left out)."""
    found: dict[int, _OpenHold] = {}
    if not hold_ids:
        return found
    lines: dict[int, list[HoldLine]] = {}
    for r in conn.execute(_OPEN_HOLDS, {"ids": sorted(set(hold_ids))}):
        if r.resolution_id is not None:
            continue
        if r.id not in found:
            found[r.id] = _OpenHold(int(r.id), int(r.account_id), int(r.amount),
                                    r.details or {}, ())  # fmt: skip
            lines[r.id] = []
        if r.ledger_account_id is not None:
            lines[r.id].append(HoldLine(r.ledger_account_id, r.line_amount, r.position))
    return {i: replace(h, lines=tuple(lines[i])) for i, h in found.items()}


@dataclass(slots=True)
class _Ended:
    """An end decided in memory, written once the batch's entries have ids."""

    index: int
    row: Any
    values: dict[str, Any]
    charge: dict[str, Any]
    money_entry: int | None
    beyond: DebitRequest | None = None
    beyond_micros: int = 0


def _settle(
    batch: _Batch, hold: _OpenHold | None, amount: int, unit: str, memo: str,
    details: Mapping[str, Any], now: datetime,
) -> int | None:  # fmt: skip
    """Settle `amount` of an open hold in memory: the index of its journal entry (None when
    nothing was taken), its resolution queued."""
    if hold is None:
        return None
    settlement: Settlement = batch.book.settle(hold.lines, amount)
    entry_index = None
    if settlement.takes:
        taken: dict[int, int] = {}
        for take in settlement.takes:
            taken[take.bucket_id] = taken.get(take.bucket_id, 0) + take.amount
        revenue = ledger_store.system_account(batch.conn, f"revenue:{VOICE}:{unit}", unit, now)
        postings = [Posting(bucket, -value, unit) for bucket, value in taken.items()]
        postings.append(Posting(revenue, settlement.settled, unit))
        batch.entries.append(
            JournalEntry(
                kind="hold_settle", account_id=hold.account_id,
                subject_account_id=hold.details.get("subject_account_id"),
                postings=tuple(postings), memo=memo,
                details={**dict(details), "hold_id": hold.id, "service": VOICE},
            )
        )  # fmt: skip
        entry_index = len(batch.entries) - 1
    batch.resolutions.append((hold.id, settlement.settled, entry_index))
    return entry_index


def _end_one(
    batch: _Batch, request: EndRequest, row: Any, open_holds: Mapping[int, _OpenHold], index: int
) -> _Ended:
    ctx, now = request.ctx, request.clock.now()
    answer_at, duration_s = request.answer_at, request.duration_s
    event = UsageEvent(
        id=f"session:{row.id}", account=str(row.account_id), to_number=row.to_number,
        start=row.started_at, direction=Direction(row.direction), from_number=row.from_number,
        answer=answer_at if answer_at else (row.started_at if duration_s is not None else None),
        end=request.end_at, duration_s=duration_s,
    )  # fmt: skip
    rated = rate_event(event, ctx.index, ctx.plan.plan)  # may raise: nothing decided yet
    charge = rated.charges[0]
    cost = charge_costs(event, rated.charges, ctx.plan.plan, request.cost_index)[0]
    amount, billed = to_micros(charge.amount), charge.billed_units
    hard = ctx.plan.plan.cut_off is CutOffPolicy.HARD
    package_hold = open_holds.get(row.package_hold_id) if row.package_hold_id else None
    money_hold = open_holds.get(row.hold_id) if row.hold_id else None
    decision = decide_settlement(
        amount_micros=amount, billed_units=billed,
        package_held=package_hold.amount if package_hold else 0,
        money_held=money_hold.amount if money_hold else 0, hard=hard,
    )  # fmt: skip
    details = {"session_id": row.id, "cdr_id": event.id}
    _settle(batch, package_hold, decision.package_units, CALL_TIME, "call time", details, now)
    money_entry = _settle(
        batch, money_hold, decision.money_settled, ctx.payer.currency,
        f"call to {row.to_number}", details, now,
    )  # fmt: skip
    beyond = None
    if decision.beyond_hold > 0:
        beyond = DebitRequest(
            # The owner's wallet pays (toll-free): its own account is the subject.
            account_id=row.payer_id if ctx.owner_pays else row.account_id,
            amount=from_micros(decision.beyond_hold),
            idempotency_key=f"session:{row.id}:beyond_hold", service=VOICE,
            direction=row.direction, memo=f"call to {row.to_number} beyond its hold",
            details=details, policy=DrainPolicy.ALLOW_NEGATIVE,
        )  # fmt: skip
    explanation = explanation_json(charge)
    if decision.package_units:
        explanation["package_units"] = decision.package_units
    values = {
        "new_state": ENDED, "new_ended_at": now, "new_billed_seconds": billed,
        "new_charged_micros": decision.money_settled, "new_end_reason": "ended",
        "new_last_update_at": now,
    }  # fmt: skip
    charge_row = {
        "cdr_id": event.id, "leg": charge.leg.value, "revision": 0,
        "account_id": row.account_id, "payer_id": row.payer_id, "service": VOICE,
        "direction": row.direction, "amount_micros": decision.money_settled,
        "currency": charge.currency, "unit": charge.unit, "billed_units": billed,
        "package_units": decision.package_units, "tariff": charge.explanation.tariff,
        "tariff_version": charge.explanation.tariff_version,
        "prefix": charge.explanation.matched_prefix, "explanation": explanation,
        "usage": usage_json(event), "usage_hash": None, "transaction_id": None,
        "source": "session", "occurred_at": row.started_at, "created_at": now,
        "cost_micros": None if cost is None else to_micros(cost),
        "_amount": amount, "_hard": hard,
    }  # fmt: skip
    return _Ended(index, row, values, charge_row, money_entry, beyond, decision.beyond_hold)


def _end_all(
    batch: _Batch,
    requests: Sequence[Request],
    ends: Sequence[int],
    rows: Mapping[int, Any],
    outcomes: list[Any],
    responses: dict[int, dict[str, Any]],
) -> None:
    from telbill.services.sessions import view_of

    conn = batch.conn
    ids = {r.session_id for i in ends if isinstance(r := requests[i], EndRequest)}
    wanted = [rows[i] for i in sorted(ids) if i in rows]
    open_holds = _open_holds(
        conn, [h for row in wanted for h in (row.hold_id, row.package_hold_id) if h is not None]
    )
    decided: list[_Ended] = []
    ended: set[int] = set()
    for index in ends:
        request = requests[index]
        assert isinstance(request, EndRequest)
        try:
            row = _row(rows, request)
            if row.state != ACTIVE or row.id in ended:
                raise Conflict(f"session {row.id} is already ended", session_id=row.id)
            decided.append(_end_one(batch, request, row, open_holds, index))
            ended.add(row.id)
        except TelbillError as refused:
            outcomes[index] = refused
    if not decided:
        return
    tx_ids = ledger_store.insert_entries(conn, batch.entries, requests[ends[0]].clock.now())
    beyond = [e for e in decided if e.beyond is not None]
    if beyond:
        batch.flush_columns()  # the debits read the buckets as stored
        now = requests[beyond[0].index].clock.now()
        debits = debit_many_in(conn, [e.beyond for e in beyond if e.beyond], now=now)
        for end, outcome in zip(beyond, debits, strict=True):
            if not isinstance(outcome, Exception):
                end.charge["amount_micros"] += end.beyond_micros
                end.values["new_charged_micros"] = end.charge["amount_micros"]
                end.charge["_beyond_tx"] = outcome.id
        payers = sorted({e.row.payer_id for e in beyond})
        batch.book.load(ledger_store.load_buckets(conn, payers))
    if batch.resolutions:
        insert_all(
            conn,
            hold_resolutions,
            _RESOLUTION_COLUMNS,
            [
                {"hold_id": hold_id, "outcome": HoldOutcome.SETTLED.value,
                 "settled_amount": settled,
                 "transaction_id": None if entry is None else tx_ids[entry],
                 "created_at": requests[ends[0]].clock.now()}
                for hold_id, settled, entry in batch.resolutions
            ],
        )  # fmt: skip
    charge_rows = []
    for end in decided:
        row = end.charge
        money_tx = None if end.money_entry is None else tx_ids[end.money_entry]
        row["transaction_id"] = money_tx or row.pop("_beyond_tx", None)
        row.pop("_beyond_tx", None)
        amount, hard = row.pop("_amount"), row.pop("_hard")
        charged = row["amount_micros"]
        if charged != amount:
            row["explanation"]["text"] += (
                f"\n  {row['package_units']} s from packages; money charged "
                f"{from_micros(charged)} {row['currency']}"
                + (" (hard cut-off: capped at the hold)" if hard else "")
            )
        charge_rows.append(row)
    charge_ids = insert_with_ids(conn, charges, _CHARGE_COLUMNS, charge_rows)
    conn.execute(
        _UPDATE_SESSIONS,
        [{"session_id": end.row.id, **end.values} for end in decided],
    )
    for end, charge_id in zip(decided, charge_ids, strict=True):
        values = {k.removeprefix("new_"): v for k, v in end.values.items()}
        outcomes[end.index] = view_of(_Merged(end.row, values), charge_id=charge_id)
        responses[end.index] = {"session_id": end.row.id, "charge_id": charge_id}
    _after_ends(batch, requests, decided)


class _Merged:
    """A row with some columns changed (attribute access)."""

    def __init__(self, row: Any, values: Mapping[str, Any]) -> None:
        self._values = {**row._mapping, **values}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


def _money_now(buckets: Sequence[Bucket], currency: str, now: datetime) -> tuple[int, int]:
    """A wallet's money as `suspension.money_balance` counts it, and what is available."""
    balance_total = available = 0
    for bucket in buckets:
        if bucket.unit != currency:
            continue
        if bucket.kind is BucketKind.PAID or (not bucket.is_expired(now) and bucket.balance > 0):
            balance_total += bucket.balance
        if not bucket.is_expired(now):
            available += bucket.balance - bucket.held
    return balance_total, available


def _after_ends(batch: _Batch, requests: Sequence[Request], decided: Sequence[_Ended]) -> None:
    """The zero-balance rules, else the thresholds, once per wallet the ends charged."""
    last: dict[int, _Ended] = {}
    beyond: set[int] = set()
    for end in decided:
        last[end.row.payer_id] = end
        if end.beyond is not None:
            beyond.add(end.row.payer_id)
    for payer_id in sorted(last):
        request = requests[last[payer_id].index]
        ctx, now = request.ctx, request.clock.now()
        balance, available = _money_now(batch.book.of(payer_id), ctx.payer.currency, now)
        if payer_id in beyond or balance <= 0:
            batch.flush_columns()
            enforce_zero_balance(batch.conn, [payer_id], now)
            batch.dirty_states = True
        else:
            thresholds.after_balance_change(
                batch.conn, payer_id, now, payer=ctx.payer, available=from_micros(available)
            )


# ---------------------------------------------------------------------------- authorisations


def _refusal(reason: str, message: str, currency: str) -> dict[str, Any]:
    return {"allowed": False, "reason": reason, "message": message, "currency": currency}


def _cap(ctx: SessionContext) -> int:
    return min(ctx.plan.max_call_s, ctx.index.tariff.settings.max_call_s)


def cost_micros(event: UsageEvent, seconds: int, ctx: SessionContext) -> int:
    """The price of `event` lasting `seconds` (0 for none)."""
    if seconds <= 0:
        return 0
    priced = rate_event(
        UsageEvent(
            id=event.id,
            account=event.account,
            to_number=event.to_number,
            start=event.start,
            direction=event.direction,
            answer=event.start,
            duration_s=seconds,
            call_class=event.call_class,
        ),  # fmt: skip
        ctx.index,
        ctx.plan.plan,
        labels=False,  # only the amount is kept: no number-type guess for the explanation
    )
    return to_micros(priced.charges[0].amount)


def _name(ctx: SessionContext, account: Account) -> str:
    """How a refusal names an account: by id, except the wallet of a called number's owner,
    which may be another tenant's."""
    if ctx.owner_pays and account.id == ctx.payer.id:
        return "the called number's owner"
    return f"account {account.id}"


@dataclass(slots=True)
class _Allowed:
    """An authorisation decided in memory: its hold rows and session row to insert."""

    index: int
    answer: dict[str, Any]
    holds: list[tuple[str, dict[str, Any], tuple[HoldLine, ...]]]  # (column, row, lines)
    session: dict[str, Any]


def _refused_early(
    batch: _Batch, request: AuthorizeRequest, now: datetime
) -> dict[str, Any] | None:
    """The refusal that needs no balance (statuses, a suspended number, the class, the
    rate), else None."""
    ctx, event = request.ctx, request.event
    currency = ctx.payer.currency
    payer, leaf = batch.fresh(ctx.payer), batch.fresh(ctx.leaf)
    if payer.status is AccountStatus.SUSPENDED:
        batch.flush_columns()  # resuming reads the balance as stored
        if resume_if_funded(batch.conn, payer.id, now):
            batch.dirty_states = True
            payer = replace(payer, status=AccountStatus.ACTIVE)
    for account in (payer, leaf):
        if account.status is not AccountStatus.ACTIVE:
            message = f"{_name(ctx, account)} is {account.status.value}"
            return _refusal("suspended", message, currency)
    if event.direction is Direction.INBOUND and is_suspended_number(batch.conn, event.to_number):
        return _refusal(
            "number_suspended", f"{event.to_number} is suspended for an unpaid renewal", currency
        )
    return None


def _authorize_one(
    batch: _Batch, request: AuthorizeRequest, index: int
) -> dict[str, Any] | _Allowed:
    ctx, event, now = request.ctx, request.event, request.clock.now()
    currency = ctx.payer.currency
    refused = _refused_early(batch, request, now)
    if refused is not None:
        return refused
    try:
        call_class = classify_call(event, ctx.index)
        ctx.plan.plan.check_call_class(call_class)
        digits = ctx.index.key_of(event.to_number)
        found = ctx.index.find(
            digits, service=Service.VOICE, direction=event.direction, at=event.start
        )
        free_extension = (
            call_class is CallClass.LOCAL_EXTENSION and ctx.index.tariff.settings.free_extensions
        )
        if found is None and not free_extension:
            ctx.index.lookup(digits, service=Service.VOICE, direction=event.direction,
                             at=event.start)  # fmt: skip
    except (CallClassNotAllowed, NoRate) as no:
        return _refusal(no.code, no.message, currency)
    cap = _cap(ctx)
    if found is not None:  # a *disconnect MaxCost ends the call where its cost reaches it
        disconnect = disconnect_after_s(ctx.index.price_of(found))
        if disconnect is not None:
            cap = min(cap, disconnect)
    if cap <= 0:
        return _refusal("insufficient_balance", "this call's maximum cost allows no second",
                        currency)  # fmt: skip
    payer = batch.fresh(ctx.payer)
    direction = event.direction.value
    buckets = batch.book.of(payer.id)
    decision = None
    if found is not None:  # a local extension without a rate is free (rating's rule)
        decision = decide_hold(
            money_available=spendable(buckets, unit=currency, service=VOICE,
                                      direction=direction, now=now, floor=payer.floor_micros),
            package_available=spendable(buckets, unit=CALL_TIME, service=VOICE,
                                        direction=direction, now=now),
            cap_s=cap, soft=ctx.plan.plan.cut_off is CutOffPolicy.SOFT,
            affordable_s=lambda micros: max_affordable_call_seconds(
                from_micros(micros), event, ctx.index, ctx.plan.plan),
            cost_micros=lambda seconds: cost_micros(event, seconds, ctx),
        )  # fmt: skip
    # A call whose longest length costs nothing (a free incoming call) is always allowed and
    # holds nothing, whatever other calls hold (issue 17, rule 1). Priced only when no money
    # would be held: a call that holds money is not free.
    if decision is None or decision.money_micros == 0:
        if found is None or cost_micros(event, cap, ctx) == 0:
            decision = HoldDecision(cap, 0, 0)
    if decision is None:
        return _refusal(
            "insufficient_balance",
            f"the wallet of {_name(ctx, payer)} cannot pay for one second of this call",
            currency,
        )
    max_seconds = decision.max_seconds
    package_seconds, money = decision.package_seconds, decision.money_micros
    expires_at = now + timedelta(seconds=max_seconds) + HOLD_GRACE
    details = {"subject_account_id": ctx.leaf.id, "purpose": "session"}
    placed: list[tuple[str, dict[str, Any], tuple[HoldLine, ...]]] = []
    for column, unit, amount, floor in (
        ("hold_id", currency, money, payer.floor_micros),
        ("package_hold_id", CALL_TIME, package_seconds, 0),
    ):
        if amount <= 0:
            continue
        lines = batch.book.reserve(
            payer.id, amount, unit=unit, service=VOICE, direction=direction, floor=floor,
            now=now,
        )  # fmt: skip
        hold_row = {
            "account_id": payer.id, "unit": unit, "amount": amount, "service": VOICE,
            "direction": direction, "expires_at": expires_at, "details": details,
            "created_at": now,
        }  # fmt: skip
        placed.append((column, hold_row, lines))
    session_row = {
        "account_id": ctx.leaf.id, "payer_id": payer.id, "state": ACTIVE,
        "call_id": request.call_id, "direction": direction, "from_number": event.from_number,
        "to_number": event.to_number, "started_at": event.start, "hold_id": None,
        "package_hold_id": None, "max_seconds": max_seconds, "reported_seconds": 0,
        "last_update_at": now, "created_at": now,
    }  # fmt: skip
    answer = {
        "allowed": True, "reason": None, "message": "allowed", "session_id": None,
        "max_seconds": max_seconds, "held_micros": money, "held_seconds": package_seconds,
        "currency": currency,
    }  # fmt: skip
    return _Allowed(index, answer, placed, session_row)


def _authorize_all(
    batch: _Batch,
    requests: Sequence[Request],
    auths: Sequence[int],
    outcomes: list[Any],
    responses: dict[int, dict[str, Any]],
) -> None:
    allowed: list[_Allowed] = []
    for index in auths:
        request = requests[index]
        assert isinstance(request, AuthorizeRequest)
        try:
            decided = _authorize_one(batch, request, index)
        except TelbillError as failed:
            outcomes[index] = failed
            continue
        if isinstance(decided, _Allowed):
            allowed.append(decided)
        else:
            outcomes[index] = responses[index] = decided
    if not allowed:
        return
    conn = batch.conn
    placed = [(a, column, row, lines) for a in allowed for column, row, lines in a.holds]
    hold_ids = insert_with_ids(conn, holds, _HOLD_COLUMNS, [row for _, _, row, _ in placed])
    line_rows = []
    for (owner, column, _, lines), hold_id in zip(placed, hold_ids, strict=True):
        owner.session[column] = hold_id
        line_rows += [
            {"hold_id": hold_id, "ledger_account_id": line.ledger_account_id,
             "amount": line.amount, "position": line.position}
            for line in lines
        ]  # fmt: skip
    insert_all(conn, hold_lines, _LINE_COLUMNS, line_rows)
    session_ids = insert_with_ids(conn, sessions, _SESSION_COLUMNS, [a.session for a in allowed])
    for decided, session_id in zip(allowed, session_ids, strict=True):
        decided.answer["session_id"] = session_id
        outcomes[decided.index] = responses[decided.index] = decided.answer


__all__ = [
    "MAX_BATCH",
    "AsyncGroupCommit",
    "AuthorizeRequest",
    "EndRequest",
    "GroupCommit",
    "cost_micros",
    "group_commit",
    "insert_with_ids",
    "run_batch",
]
