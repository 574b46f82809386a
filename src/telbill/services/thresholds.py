"""Low-balance thresholds of accounts: settings, evaluation, and the hook after balance changes.

The rules (fire once when crossed downward, re-arm when the balance rises above) are the pure
state machine of `telbill.domain.thresholds`; this module loads settings and arm states,
reads the balance and the recent spend, stores the new states and emits ``balance.low`` /
``balance.zero`` events whose dedupe key is (account, threshold, arm generation).

Hook for other areas: every code path that changes a wallet's money balance (top-ups,
CDR posting, session settlement, renewals) calls ``after_balance_change(conn, account_id,
now)`` inside its own transaction, after the ledger change; it checks the fixed levels.
Spend-based thresholds need the window's spend and move with time alone (the average
changes as old spend leaves the window), so the scheduler runs ``check_all(db, now)``
(the scheduler runs it at every tick), which evaluates every threshold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from telbill.adapters.db.engine import Database
from telbill.adapters.db.notify_tables import threshold_settings, threshold_states
from telbill.adapters.db.tables import accounts, ledger_accounts, postings, transactions
from telbill.domain.money import from_micros, parse_amount, to_micros
from telbill.domain.thresholds import (
    DEFAULT_FIXED_LEVELS,
    DEFAULT_SPEND_DAYS,
    DEFAULT_SPEND_WINDOW_DAYS,
    FIXED_MODES,
    MAX_SPEND_DAYS,
    ArmState,
    FixedThreshold,
    SpendThreshold,
    Threshold,
    dedupe_key,
    default_mode,
    evaluate,
    is_below,
)
from telbill.errors import InvalidInput
from telbill.services.accounts import Account, billing_account
from telbill.services.balances import balances_in
from telbill.services.events import emit

MAX_FIXED_LEVELS = 20


@dataclass(frozen=True, slots=True)
class ThresholdSettings:
    """An account's thresholds; `spend_days` None disables the spend-based one.

    `fixed_modes` is the mode of each fixed level, in the order of `fixed_levels`; empty
    means each level's default mode (see `telbill.domain.thresholds`)."""

    account_id: int
    fixed_levels: tuple[Decimal, ...]
    spend_days: int | None
    spend_window_days: int | None
    is_default: bool
    fixed_modes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.fixed_modes) != len(self.fixed_levels):
            modes = tuple(default_mode(level) for level in self.fixed_levels)
            object.__setattr__(self, "fixed_modes", modes)

    def thresholds(self) -> tuple[Threshold, ...]:
        fixed: list[Threshold] = [
            FixedThreshold(level, mode)
            for level, mode in zip(self.fixed_levels, self.fixed_modes, strict=True)
        ]
        if self.spend_days is not None and self.spend_window_days is not None:
            fixed.append(SpendThreshold(self.spend_days, self.spend_window_days))
        return tuple(fixed)


def _defaults(account_id: int) -> ThresholdSettings:
    return ThresholdSettings(
        account_id,
        tuple(from_micros(to_micros(level)) for level in DEFAULT_FIXED_LEVELS),
        DEFAULT_SPEND_DAYS,
        DEFAULT_SPEND_WINDOW_DAYS,
        is_default=True,
    )


def settings_in(conn: Connection, account_id: int) -> ThresholdSettings:
    row = conn.execute(
        select(threshold_settings).where(threshold_settings.c.account_id == account_id)
    ).first()
    if row is None:
        return _defaults(account_id)
    return ThresholdSettings(
        account_id,
        tuple(from_micros(int(m)) for m in row.fixed_levels_micros),
        row.spend_days,
        row.spend_window_days,
        is_default=False,
        fixed_modes=tuple(row.fixed_modes or ()),
    )


def get_settings(db: Database, account_id: int) -> ThresholdSettings:
    """The thresholds of the account that pays for `account_id` (its wallet's)."""
    with db.transaction() as conn:
        return settings_in(conn, billing_account(conn, account_id).id)


def _levels(
    values: Sequence[Any], modes: Sequence[str | None] | None
) -> tuple[tuple[Decimal, ...], tuple[str, ...]]:
    """Levels highest first with their modes (a level given twice: its last mode)."""
    if len(values) > MAX_FIXED_LEVELS:
        raise InvalidInput(f"at most {MAX_FIXED_LEVELS} fixed thresholds")
    if modes is not None and len(modes) != len(values):
        raise InvalidInput("give one mode per fixed threshold, or none")
    by_level: dict[Decimal, str] = {}
    for index, value in enumerate(values):
        level = parse_amount(value, field="threshold")
        mode = (modes[index] if modes is not None else None) or default_mode(level)
        if mode not in FIXED_MODES:
            raise InvalidInput(f"threshold mode {mode!r} is not one of: {', '.join(FIXED_MODES)}")
        by_level[level] = mode
    levels = tuple(sorted(by_level, reverse=True))
    return levels, tuple(by_level[level] for level in levels)


def set_settings(
    db: Database,
    account_id: int,
    *,
    fixed_levels: Sequence[Any],
    spend_days: int | None,
    spend_window_days: int | None,
    now: datetime,
    fixed_modes: Sequence[str | None] | None = None,
) -> ThresholdSettings:
    """Replace the thresholds of `account_id`'s wallet. Spend needs both numbers or neither.

    `fixed_modes`: one mode per level (``below`` / ``at_or_below``; None: the level's
    default); None: every level's default.
    Arm states of thresholds that remain are kept, so a level set again does not fire again
    (also when only its mode changed).
    """
    levels, modes = _levels(fixed_levels, fixed_modes)
    if (spend_days is None) != (spend_window_days is None):
        raise InvalidInput("give both spend_days and spend_window_days, or neither")
    for name, value in (("spend_days", spend_days), ("spend_window_days", spend_window_days)):
        if value is not None and not (isinstance(value, int) and 1 <= value <= MAX_SPEND_DAYS):
            raise InvalidInput(f"{name} must be a whole number of days, 1..{MAX_SPEND_DAYS}")

    def work(conn: Connection) -> ThresholdSettings:
        payer = billing_account(conn, account_id)
        values = {
            "fixed_levels_micros": [to_micros(level) for level in levels],
            "fixed_modes": list(modes),
            "spend_days": spend_days,
            "spend_window_days": spend_window_days,
            "updated_at": now,
        }
        updated = conn.execute(
            threshold_settings.update()
            .where(threshold_settings.c.account_id == payer.id)
            .values(**values)
        ).rowcount
        if not updated:
            conn.execute(threshold_settings.insert().values(account_id=payer.id, **values))
        return settings_in(conn, payer.id)

    return db.run(work)


def spent_in_window(conn: Connection, account_id: int, unit: str, since: datetime) -> Decimal:
    """Money that left the account's wallet buckets (negative postings) since `since`."""
    total = conn.execute(
        select(func.coalesce(func.sum(postings.c.amount), 0))
        .select_from(
            postings.join(transactions, transactions.c.id == postings.c.transaction_id).join(
                ledger_accounts, ledger_accounts.c.id == postings.c.ledger_account_id
            )
        )
        .where(
            ledger_accounts.c.account_id == account_id,
            postings.c.unit == unit,
            postings.c.amount < 0,
            transactions.c.created_at >= since,
        )
    ).scalar_one()
    return -from_micros(int(total))


def _load_states(conn: Connection, account_id: int, keys: Sequence[str]) -> dict[str, ArmState]:
    """Arm states of `keys`, rows locked (created armed first) so concurrent evaluations of
    one account take turns."""
    query = select(threshold_states).where(
        threshold_states.c.account_id == account_id,
        threshold_states.c.threshold_key.in_(list(keys)),
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {
        row.threshold_key: ArmState(armed=row.armed, generation=row.generation)
        for row in conn.execute(query)
    }


def _save_state(
    conn: Connection, account_id: int, key: str, state: ArmState, existed: bool, now: datetime
) -> None:
    values = {"armed": state.armed, "generation": state.generation, "updated_at": now}
    if existed:
        conn.execute(
            threshold_states.update()
            .where(
                threshold_states.c.account_id == account_id,
                threshold_states.c.threshold_key == key,
            )
            .values(**values)
        )
    else:
        # Upsert: the scheduler's check may have stored this key armed (generation 0) in the
        # meantime without this wallet's lock; this evaluation, made under it, wins.
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            insert(threshold_states)
            .values(account_id=account_id, threshold_key=key, **values)
            .on_conflict_do_update(index_elements=["account_id", "threshold_key"], set_=values)
        )


def evaluate_thresholds(
    conn: Connection,
    account_id: int,
    now: datetime,
    *,
    spend_based: bool = True,
    payer: Account | None = None,
    available: Decimal | None = None,
) -> list[str]:
    """Evaluate the thresholds of `account_id`'s wallet; emit an event per threshold crossed.

    `spend_based` False evaluates the fixed levels only (the cheap check of the hook).
    `payer` (the wallet's account) and `available` (its money available now, in this
    transaction) spare reading them again when the caller already knows them.

    Returns the dedupe keys of the events written (empty when nothing fired or when the
    same crossing was already recorded).
    """
    payer = payer or billing_account(conn, account_id)
    if not spend_based and available is not None and _fixed_levels_settled(conn, payer, available):
        return []
    if conn.dialect.name == "postgresql":
        # Serialise evaluations of one wallet (states may not exist yet to lock). NO KEY
        # UPDATE: rows that only reference the account (a session, a hold) are not held up.
        conn.execute(_LOCK_ACCOUNT, {"account_id": payer.id})
    settings = settings_in(conn, payer.id)
    thresholds = tuple(
        t for t in settings.thresholds() if spend_based or isinstance(t, FixedThreshold)
    )
    if not thresholds:
        return []
    balance = (
        available
        if available is not None
        else balances_in(conn, payer.id, now=now).unit(payer.currency).available
    )
    spend = Decimal(0)
    windows = [t.window_days for t in thresholds if isinstance(t, SpendThreshold)]
    if windows:
        spend = spent_in_window(conn, payer.id, payer.currency, now - timedelta(days=windows[0]))
    states = _load_states(conn, payer.id, [t.key for t in thresholds])
    written: list[str] = []
    for threshold, transition in evaluate(thresholds, states, balance, spend):
        if transition.state != states.get(threshold.key, ArmState()) or threshold.key not in states:
            _save_state(
                conn, payer.id, threshold.key, transition.state, threshold.key in states, now
            )
        if transition.fired and transition.fired_generation is not None:
            key = dedupe_key(payer.id, threshold, transition.fired_generation)
            payload = {
                "threshold": threshold.key,
                "balance": str(balance),
                "currency": payer.currency,
                "account_name": payer.name,
            }
            if isinstance(threshold, FixedThreshold):
                payload["level"] = str(threshold.level)
                payload["mode"] = str(threshold.mode)
            else:
                payload["days"] = threshold.days
                payload["average_daily_spend"] = str(spend / threshold.window_days)
            if emit(
                conn,
                threshold.event_type,
                account_id=payer.id,
                payload=payload,
                dedupe_key=key,
                now=now,
            ):
                written.append(key)
    return written


_LOCK_ACCOUNT = (
    select(accounts.c.id)
    .where(accounts.c.id == bindparam("account_id"))
    .with_for_update(key_share=True)
)
# The settings of a wallet and the arm states stored for it, in one read (a row per state).
_SETTINGS_AND_STATES = (
    select(
        threshold_settings.c.account_id.label("settings_of"),
        threshold_settings.c.fixed_levels_micros,
        threshold_settings.c.fixed_modes,
        threshold_settings.c.spend_days,
        threshold_settings.c.spend_window_days,
        threshold_states.c.threshold_key,
        threshold_states.c.armed,
    )
    .select_from(
        accounts.outerjoin(
            threshold_settings, threshold_settings.c.account_id == accounts.c.id
        ).outerjoin(threshold_states, threshold_states.c.account_id == accounts.c.id)
    )
    .where(accounts.c.id == bindparam("account_id"))
)


_SETTINGS_AND_STATES_OF_MANY = (
    select(
        accounts.c.id.label("account_id"),
        threshold_settings.c.account_id.label("settings_of"),
        threshold_settings.c.fixed_levels_micros,
        threshold_settings.c.fixed_modes,
        threshold_states.c.threshold_key,
        threshold_states.c.armed,
    )
    .select_from(
        accounts.outerjoin(
            threshold_settings, threshold_settings.c.account_id == accounts.c.id
        ).outerjoin(threshold_states, threshold_states.c.account_id == accounts.c.id)
    )
    .where(accounts.c.id.in_(bindparam("account_ids", expanding=True)))
)


def fixed_levels_settled_many(conn: Connection, available: dict[int, Decimal]) -> set[int]:
    """The wallets of `available` (wallet id -> money available now) whose fixed levels
    are already as that leaves them (`_fixed_levels_settled`), in one read for all: the
    threshold hook then writes nothing for them. Wallets not returned need the hook."""
    if not available:
        return set()
    rows: dict[int, list[Any]] = defaultdict(list)
    for row in conn.execute(_SETTINGS_AND_STATES_OF_MANY, {"account_ids": sorted(available)}):
        rows[row.account_id].append(row)
    return {
        account_id for account_id, found in rows.items()
        if _settled_rows(found, available[account_id])
    }  # fmt: skip


def _settled_rows(rows: list[Any], available: Decimal) -> bool:
    if not rows:
        return False
    first = rows[0]
    levels = None if first.settings_of is None else tuple(first.fixed_levels_micros)
    modes = tuple(first.fixed_modes or ()) if levels is not None else ()
    armed = {row.threshold_key: row.armed for row in rows if row.threshold_key is not None}
    for threshold, key in _fixed_thresholds(levels, modes):
        stored = armed.get(key)
        if stored is None or stored == is_below(threshold, available, ZERO):
            return False  # never stored, fires, or re-arms
    return True


def _fixed_levels_settled(conn: Connection, payer: Account, available: Decimal) -> bool:
    """Whether the fixed levels are already as `available` leaves them: each stored, armed
    above its level and disarmed at or below it. Then the hook writes nothing, and this one
    unlocked read is all it costs; else it is evaluated in full, under the lock.

    Unlocked, because nothing is written when it answers True. The caller holds the wallet's
    buckets, so no other change of this balance evaluates meanwhile; the scheduler's check
    may, with the balance before this change, but a fixed state only moves when it disagrees
    with the balance, which after a change evaluated by this hook it does not.
    """
    rows = conn.execute(_SETTINGS_AND_STATES, {"account_id": payer.id}).all()
    return _settled_rows(rows, available)


@lru_cache(maxsize=1024)
def _fixed_thresholds(
    levels_micros: tuple[int, ...] | None, modes: tuple[str, ...] = ()
) -> tuple[tuple[Threshold, str], ...]:
    """The fixed thresholds (with their keys) of stored levels, or of the defaults (None)."""
    settings = (
        _defaults(0)
        if levels_micros is None
        else ThresholdSettings(
            0,
            tuple(from_micros(int(m)) for m in levels_micros),
            None,
            None,
            is_default=False,
            fixed_modes=modes,
        )
    )
    return tuple((t, t.key) for t in settings.thresholds() if isinstance(t, FixedThreshold))


def after_balance_change(
    conn: Connection,
    account_id: int,
    now: datetime,
    *,
    payer: Account | None = None,
    available: Decimal | None = None,
) -> list[str]:
    """The hook every balance-changing path calls in its transaction, after the change.

    Fixed levels only: the spend-based threshold needs the window's spend (a scan of recent
    postings) and moves with time anyway, so `check_all` evaluates it on the scheduler.
    `payer` and `available`: see `evaluate_thresholds`.
    """
    return evaluate_thresholds(
        conn, account_id, now, spend_based=False, payer=payer, available=available
    )


def check_all(db: Database, now: datetime) -> int:
    """Evaluate every wallet's thresholds; returns the events written.

    Set-based: one read per kind of data for ALL wallets (wallets, settings, balances, the
    spend of each window length, arm states), the state machine run in memory, and only the
    wallets whose state would change are then evaluated again one by one by
    `evaluate_thresholds` (locked, re-read: the same writes and events as a per-wallet check
    would make). Arm states never stored yet are inserted armed in one statement.

    Scheduler-friendly: idempotent, since a crossing already recorded writes nothing.
    """
    with db.transaction() as conn:
        changed, missing = wallets_to_update(conn, now)
        if missing:
            _insert_armed(conn, missing, now)
    written = 0
    for account_id in changed:
        written += len(db.run(lambda conn, a=account_id: evaluate_thresholds(conn, a, now)))
    return written


def check_all_one_by_one(db: Database, now: datetime) -> int:
    """The reference check: every wallet evaluated in its own transaction (slow; for tests
    that prove `check_all` equal to it, and for comparison in benchmarks)."""
    written = 0
    for account_id in _wallet_ids(db):
        written += len(db.run(lambda conn, a=account_id: evaluate_thresholds(conn, a, now)))
    return written


def _wallet_ids(db: Database) -> list[int]:
    with db.transaction() as conn:
        return list(conn.scalars(_wallets_query().with_only_columns(accounts.c.id)).all())


def _wallets_query() -> Any:
    return (
        select(accounts.c.id, accounts.c.currency)
        .where(accounts.c.has_wallet.is_(True), accounts.c.status != "closed")
        .order_by(accounts.c.id)
    )


def wallets_to_update(conn: Connection, now: datetime) -> tuple[list[int], list[tuple[int, str]]]:
    """Wallets whose arm states the check would change (a crossing or a re-arm), and the
    (wallet, threshold key) states of the others that are not stored yet; a few queries
    for all wallets."""
    wallets = {row.id: row.currency for row in conn.execute(_wallets_query())}
    custom = {row.account_id: row for row in conn.execute(select(threshold_settings))}
    available = _available_by_wallet(conn, now)
    windows = {
        row.spend_window_days
        for row in custom.values()
        if row.spend_window_days is not None and row.spend_days is not None
    }
    if any(account_id not in custom for account_id in wallets):
        windows.add(DEFAULT_SPEND_WINDOW_DAYS)
    spend = {days: _spend_by_wallet(conn, now - timedelta(days=days)) for days in windows}
    rules_cache: dict[Any, PreparedRules] = {}
    states: dict[int, dict[str, ArmState]] = defaultdict(dict)
    for row in conn.execute(
        select(
            threshold_states.c.account_id,
            threshold_states.c.threshold_key,
            threshold_states.c.armed,
            threshold_states.c.generation,
        )
    ):
        states[row.account_id][row.threshold_key] = ArmState(row.armed, row.generation)
    changed: list[int] = []
    missing: list[tuple[int, str]] = []
    for account_id, currency in wallets.items():
        row = custom.get(account_id)
        rules, window = _rules_of(rules_cache, row)
        if not rules:
            continue
        stored = states.get(account_id, {})
        balance = from_micros(available.get((account_id, currency), 0))
        spent = -from_micros(spend[window].get((account_id, currency), 0)) if window else ZERO
        absent = []
        for rule, key in rules:
            state = stored.get(key)
            below = is_below(rule, balance, spent)
            # `step` moves a state exactly when the balance is below an armed threshold
            # (it fires) or above a disarmed one (it re-arms).
            if below is not None and below == (state is None or state.armed):
                changed.append(account_id)
                break
            if state is None:
                absent.append((account_id, key))
        else:
            missing.extend(absent)
    return changed, missing


ZERO = Decimal(0)
PreparedRules = tuple[tuple[tuple[Threshold, str], ...], int | None]


def _rules_of(cache: dict[Any, PreparedRules], row: Any) -> PreparedRules:
    """The thresholds of a settings row (None: the defaults) with their keys, built once per
    distinct setting in a check."""
    marker = (
        None
        if row is None
        else (
            tuple(row.fixed_levels_micros),
            tuple(row.fixed_modes or ()),
            row.spend_days,
            row.spend_window_days,
        )
    )
    if marker not in cache:
        settings = (
            _defaults(0)
            if row is None
            else ThresholdSettings(
                0,
                tuple(from_micros(int(m)) for m in row.fixed_levels_micros),
                row.spend_days,
                row.spend_window_days,
                is_default=False,
                fixed_modes=tuple(row.fixed_modes or ()),
            )
        )
        rules = tuple((rule, rule.key) for rule in settings.thresholds())
        spending = any(isinstance(rule, SpendThreshold) for rule, _ in rules)
        cache[marker] = (rules, settings.spend_window_days if spending else None)
    return cache[marker]


def _available_by_wallet(conn: Connection, now: datetime) -> dict[tuple[int, str], int]:
    """Posted minus held per (wallet, unit), expired buckets left out (as `balances_in`)."""
    rows = conn.execute(
        select(
            ledger_accounts.c.account_id,
            ledger_accounts.c.unit,
            func.sum(ledger_accounts.c.balance - ledger_accounts.c.held).label("available"),
        )
        .where(
            ledger_accounts.c.account_id.is_not(None),
            or_(ledger_accounts.c.expires_at.is_(None), ledger_accounts.c.expires_at > now),
        )
        .group_by(ledger_accounts.c.account_id, ledger_accounts.c.unit)
    )
    return {(row.account_id, row.unit): int(row.available) for row in rows}


def _spend_by_wallet(conn: Connection, since: datetime) -> dict[tuple[int, str], int]:
    """Sum of negative postings per (wallet, unit) since `since` (as `spent_in_window`)."""
    rows = conn.execute(
        select(
            ledger_accounts.c.account_id,
            postings.c.unit,
            func.sum(postings.c.amount).label("spent"),
        )
        .select_from(
            postings.join(ledger_accounts, ledger_accounts.c.id == postings.c.ledger_account_id)
        )
        .where(
            # The window's transactions by the created_at index, then their postings.
            postings.c.transaction_id.in_(
                select(transactions.c.id).where(transactions.c.created_at >= since)
            ),
            ledger_accounts.c.account_id.is_not(None),
            postings.c.amount < 0,
        )
        .group_by(ledger_accounts.c.account_id, postings.c.unit)
    )
    return {(row.account_id, row.unit): int(row.spent) for row in rows}


def _insert_armed(conn: Connection, keys: Sequence[tuple[int, str]], now: datetime) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        insert(threshold_states).on_conflict_do_nothing(
            index_elements=["account_id", "threshold_key"]
        ),
        [
            {
                "account_id": account_id,
                "threshold_key": key,
                "armed": True,
                "generation": 0,
                "updated_at": now,
            }
            for account_id, key in keys
        ],
    )


__all__ = [
    "ThresholdSettings",
    "after_balance_change",
    "check_all",
    "check_all_one_by_one",
    "evaluate_thresholds",
    "get_settings",
    "set_settings",
    "spent_in_window",
    "wallets_to_update",
]
