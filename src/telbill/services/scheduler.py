"""The scheduler: `tick(db, until, clock)` runs every job due up to `until`, exactly once.

Each job instance is keyed by (job, entity, period) in `job_runs`; the key is inserted in
the SAME database transaction as the job's effect (ledger transaction, state change,
events). So a tick run twice, by two processes at once, or again after a crash has the
effect of one run: the second sees the key (or waits on the first's uncommitted key on
PostgreSQL, then sees it) and skips. A job that finds nothing to do (a late renewal the
balance does not cover yet) gives its key back, so a later tick can try again.

The jobs of a batch of paying accounts run in one transaction, after locking those
accounts' rows in id order, each account's jobs in a fixed order (due time, then job
order): two processes always apply an account's jobs in the same order, so they end with
the same ledger as one process would. On-time renewals (the bulk of a day's work) run
set-based for the whole batch (`renewal_batches`): their keys claimed in one statement,
their rentals, subscriptions and plans read in one query each, their charges posted per
instant in one debit; accounts with other jobs due (grace ends, late renewals, expiries)
run job by job.

Time: a job due at a known instant (an anniversary, a grace end, an expiry) takes effect
at that instant, even when the tick comes later (catch-up after downtime); retries
(late renewals, past-due subscriptions, verified purchases) take effect at `until`.
Catch-up loops: a renewal that moves a number's period end to a time still before
`until` makes it due again in the next pass.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Connection, and_, or_, select

from telbill.adapters.db.engine import Database
from telbill.adapters.db.lifecycle_tables import (
    number_inventory,
    number_policies,
    number_rentals,
    package_purchases,
    subscription_plans,
    subscriptions,
    verification_records,
)
from telbill.adapters.db.tables import accounts, ledger_accounts
from telbill.errors import InvalidInput
from telbill.services import invoice_runs, thresholds
from telbill.services import numbers as number_service
from telbill.services import subscriptions as subscription_service
from telbill.services.accounts import billing_account
from telbill.services.clock import Clock, FixedClock
from telbill.services.holds import expire_holds
from telbill.services.lifecycle_common import (
    claim_job,
    claim_jobs,
    finish_job,
    finish_jobs,
    lock_accounts,
)
from telbill.services.plans import TariffCache
from telbill.services.renewal_batches import BATCHED_JOBS, Renewal, renew_many
from telbill.services.sessions import sweep_sessions

Runner = Callable[[Connection, int, str, datetime], "str | None"]
MAX_PASSES = 500
DEFAULT_ACCOUNTS_PER_TRANSACTION = 100


@dataclass(frozen=True, slots=True)
class DueJob:
    job: str
    entity: int
    period: str
    due_at: datetime
    account_id: int | None  # whose row serialises it; None: runs on its own


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str
    order: int
    run: Runner
    at_until: bool  # a retry: takes effect at `until`, attempted once per tick


@dataclass
class TickReport:
    until: datetime
    outcomes: Counter[str] = field(default_factory=Counter)
    passes: int = 0
    holds_expired: int = 0

    def count(self, job: str, outcome: str) -> int:
        return self.outcomes[f"{job}:{outcome}"]


# ---------------------------------------------------------------------------- collectors


def _collect_numbers(conn: Connection, until: datetime) -> list[DueJob]:
    """Renewals, late renewals, grace ends and activations from ONE read of the rentals."""
    rows = conn.execute(
        select(
            number_rentals.c.id,
            number_rentals.c.account_id,
            number_rentals.c.status,
            number_rentals.c.paid_until,
            number_rentals.c.grace_until,
            number_inventory.c.country,
            number_inventory.c.monthly_price_micros,
        )
        .select_from(number_rentals.join(number_inventory))
        .where(
            or_(
                and_(number_rentals.c.status == "active", number_rentals.c.paid_until <= until),
                number_rentals.c.status.in_(["suspended", "pending"]),
            )
        )
    ).all()
    due: list[DueJob] = []
    late = []
    pending = []
    for r in rows:
        if r.status == "active":
            due.append(
                DueJob("number.renewal", r.id, r.paid_until.isoformat(), r.paid_until, r.account_id)
            )
        elif r.status == "suspended" and r.grace_until <= until:
            due.append(
                DueJob(
                    "number.grace_end", r.id, r.grace_until.isoformat(), r.grace_until, r.account_id
                )
            )
        elif r.status == "suspended":
            late.append(r)
        else:
            pending.append(r)
    if late:
        # Cheap pre-filter: skip numbers whose wallet obviously cannot pay yet.
        room = wallet_room(conn, {r.account_id for r in late}, "number")
        due.extend(
            DueJob("number.late_renewal", r.id, r.paid_until.isoformat(), until, r.account_id)
            for r in late
            if room.get(r.account_id, r.monthly_price_micros) >= r.monthly_price_micros
        )
    if pending:
        approved = {
            (v.account_id, v.country)
            for v in conn.execute(
                select(verification_records.c.account_id, verification_records.c.country).where(
                    verification_records.c.account_id.in_({r.account_id for r in pending}),
                    verification_records.c.status == "approved",
                )
            )
        }
        due.extend(
            DueJob("number.activation", r.id, "activation", until, r.account_id)
            for r in pending
            if (r.account_id, r.country) in approved
        )
    return due


def wallet_room(conn: Connection, account_ids: set[int], service: str) -> dict[int, int]:
    """A cheap upper bound of what each account's own wallet could pay for `service` now:
    money buckets open to that service plus a postpaid credit limit. Accounts paid by an
    ancestor are left out (callers then simply try). The charge itself enforces the rule.
    """
    rows = conn.execute(
        select(
            accounts.c.id,
            accounts.c.billing_mode,
            accounts.c.credit_limit_micros,
            ledger_accounts.c.balance,
            ledger_accounts.c.held,
        )
        .select_from(accounts.join(ledger_accounts, ledger_accounts.c.account_id == accounts.c.id))
        .where(
            accounts.c.id.in_(account_ids),
            accounts.c.has_wallet.is_(True),
            ledger_accounts.c.unit == accounts.c.currency,
            ledger_accounts.c.kind.in_(["paid", "trial", "free"]),
            ledger_accounts.c.service.is_(None) | (ledger_accounts.c.service == service),
        )
    )
    room: dict[int, int] = {}
    for row in rows:
        limit = row.credit_limit_micros if row.billing_mode == "postpaid" else 0
        room[row.id] = room.get(row.id, limit) + max(row.balance - row.held, 0)
    return room


def _due_idle_releases(conn: Connection, until: datetime) -> list[DueJob]:
    rows = conn.execute(
        select(
            number_rentals.c.id,
            number_rentals.c.account_id,
            number_rentals.c.bought_at,
            number_rentals.c.last_traffic_at,
            number_policies.c.idle_release_days,
        )
        .select_from(
            number_rentals.join(number_inventory).join(
                number_policies, number_policies.c.provider_id == number_inventory.c.provider_id
            )
        )
        .where(
            number_rentals.c.status == "active",
            number_policies.c.idle_release_days.is_not(None),
        )
    )
    due = []
    for row in rows:
        since = row.last_traffic_at or row.bought_at
        at = since + timedelta(days=row.idle_release_days)
        if at <= until:
            due.append(DueJob("number.idle_release", row.id, since.isoformat(), at, row.account_id))
    return due


def _due_quarantine_ends(conn: Connection, until: datetime) -> list[DueJob]:
    rows = conn.execute(
        select(number_inventory.c.id, number_inventory.c.quarantine_until).where(
            number_inventory.c.status == "quarantined",
            number_inventory.c.quarantine_until <= until,
        )
    )
    return [
        DueJob(
            "number.quarantine_end", r.id, r.quarantine_until.isoformat(), r.quarantine_until, None
        )
        for r in rows
    ]


def _collect_subscriptions(conn: Connection, until: datetime) -> list[DueJob]:
    """Renewals due and past-due retries the wallet may now cover, from one read."""
    rows = conn.execute(
        select(
            subscriptions.c.id,
            subscriptions.c.account_id,
            subscriptions.c.status,
            subscriptions.c.period_end,
            subscriptions.c.seats,
            subscriptions.c.addons,
            subscription_plans.c.monthly_fee_micros,
        )
        .select_from(subscriptions.join(subscription_plans))
        .where(
            or_(
                and_(subscriptions.c.status == "active", subscriptions.c.period_end <= until),
                subscriptions.c.status == "past_due",
            )
        )
    ).all()
    due = [
        DueJob("subscription.renewal", r.id, r.period_end.isoformat(), r.period_end, r.account_id)
        for r in rows
        if r.status == "active"
    ]
    past_due = [r for r in rows if r.status == "past_due"]
    if not past_due:
        return due
    room = wallet_room(conn, {r.account_id for r in past_due}, "recurring")
    for r in past_due:
        total = r.monthly_fee_micros * r.seats + sum(
            int(a["fee_micros"]) * int(a["quantity"]) for a in r.addons
        )
        if room.get(r.account_id, total) >= total:
            due.append(
                DueJob("subscription.retry", r.id, r.period_end.isoformat(), until, r.account_id)
            )
    return due


def _due_package_expiries(conn: Connection, until: datetime) -> list[DueJob]:
    rows = conn.execute(
        select(
            package_purchases.c.id, package_purchases.c.account_id, package_purchases.c.expires_at
        ).where(package_purchases.c.expired.is_(False), package_purchases.c.expires_at <= until)
    )
    return [
        DueJob("package.expiry", r.id, r.expires_at.isoformat(), r.expires_at, r.account_id)
        for r in rows
    ]


def _activate(conn: Connection, rental_id: int, period: str, now: datetime) -> str | None:
    rental = number_service.load_rental(conn, rental_id, lock=True)
    if rental.status != "pending":
        return None
    return number_service.activate_pending(conn, rental_id, now)


JOBS: tuple[JobKind, ...] = (
    JobKind("package.expiry", 10, subscription_service.expire_package, False),
    JobKind("number.grace_end", 20, number_service.end_grace, False),
    JobKind("number.quarantine_end", 25, number_service.end_quarantine, False),
    JobKind("number.idle_release", 30, number_service.release_idle, False),
    JobKind("subscription.renewal", 40, subscription_service.renew_subscription, False),
    JobKind("number.renewal", 50, number_service.renew_due, False),
    JobKind("subscription.retry", 60, subscription_service.retry_subscription, True),
    JobKind("number.late_renewal", 70, number_service.renew_late, True),
    JobKind("number.activation", 80, _activate, True),
)
COLLECTORS: tuple[Callable[[Connection, datetime], list[DueJob]], ...] = (
    _collect_numbers,
    _collect_subscriptions,
    _due_package_expiries,
    _due_quarantine_ends,
    _due_idle_releases,
)
_BY_NAME = {kind.name: kind for kind in JOBS}


# ---------------------------------------------------------------------------- running


def collect_due(db: Database, until: datetime) -> list[DueJob]:
    """Every job instance due at `until`, with its paying account, in run order."""
    with db.transaction() as conn:
        due = [job for collect in COLLECTORS for job in collect(conn, until)]
        payers = _payers(conn, {j.account_id for j in due if j.account_id is not None})
    resolved = [
        DueJob(
            j.job,
            j.entity,
            j.period,
            j.due_at,
            None if j.account_id is None else payers[j.account_id],
        )
        for j in due
    ]
    return sorted(resolved, key=_run_order)


def _payers(conn: Connection, account_ids: set[int]) -> dict[int, int]:
    """The nearest account holding a wallet for each of `account_ids` (few queries)."""
    payers: dict[int, int] = {}
    pending = {a: a for a in account_ids}  # account -> ancestor being looked at
    for _ in range(64):
        if not pending:
            return payers
        rows = {
            r.id: r
            for r in conn.execute(
                select(accounts.c.id, accounts.c.parent_id, accounts.c.has_wallet).where(
                    accounts.c.id.in_(set(pending.values()))
                )
            )
        }
        next_pending = {}
        for account, ancestor in pending.items():
            row = rows[ancestor]
            if row.has_wallet:
                payers[account] = ancestor
            elif row.parent_id is None:
                payers[account] = billing_account(conn, account).id  # raises NotFound
            else:
                next_pending[account] = row.parent_id
        pending = next_pending
    raise AssertionError("account tree deeper than 64 levels")


def _run_order(job: DueJob) -> tuple[datetime, int, int]:
    return (job.due_at, _BY_NAME[job.job].order, job.entity)


Done = tuple[DueJob, str, bool]  # a job, its outcome, and whether it may make work due


def _run_group(conn: Connection, jobs: Sequence[DueJob], until: datetime) -> list[Done]:
    done = []
    for job in jobs:
        kind = _BY_NAME[job.job]
        now = until if kind.at_until else min(job.due_at, until)
        entity = str(job.entity)
        if not claim_job(conn, job.job, entity, job.period, now):
            done.append((job, "already_done", False))
            continue
        outcome = kind.run(conn, job.entity, job.period, now)
        finish_job(conn, job.job, entity, job.period, outcome)
        # A scheduled job that did something may have moved a date still before `until`.
        done.append((job, outcome or "not_due", outcome is not None and not kind.at_until))
    return done


def _run_renewals(conn: Connection, jobs: Sequence[DueJob], until: datetime) -> list[Done]:
    """On-time renewals of many accounts, set-based (`renewal_batches`): one claim of all
    their keys, then the renewals the claim won, then one write of their outcomes."""
    renewals = [Renewal(j.job, j.entity, j.period, min(j.due_at, until)) for j in jobs]
    won = claim_jobs(conn, [(r.job, str(r.entity), r.period, r.now) for r in renewals])
    mine = [(j, r) for j, r in zip(jobs, renewals, strict=True) if _key(r) in won]
    results = renew_many(conn, [r for _, r in mine])
    finish_jobs(
        conn, [(*_key(r), result.outcome) for (_, r), result in zip(mine, results, strict=True)]
    )
    done: list[Done] = [
        (j, "already_done", False)
        for j, r in zip(jobs, renewals, strict=True)
        if _key(r) not in won
    ]
    done.extend(
        (j, result.outcome or "not_due", _due_again(result.next_due_at, until))
        for (j, _), result in zip(mine, results, strict=True)
    )
    return done


def _due_again(next_due_at: datetime | None, until: datetime) -> bool:
    return next_due_at is not None and next_due_at <= until


def _key(renewal: Renewal) -> tuple[str, str, str]:
    return (renewal.job, str(renewal.entity), renewal.period)


def _run_batch(conn: Connection, groups: Sequence[list[DueJob]], until: datetime) -> list[Done]:
    """The jobs of a batch of accounts, in one transaction, after locking every account.

    An account whose due jobs are all on-time renewals joins the set-based run; the others
    (grace ends, late renewals, expiries...) run job by job. Accounts do not share money,
    so the split changes no balance."""
    lock_accounts(conn, (g[0].account_id for g in groups if g[0].account_id is not None))
    batched = [
        job for group in groups if all(j.job in BATCHED_JOBS for j in group) for job in group
    ]
    done = [
        result
        for group in groups
        if not all(j.job in BATCHED_JOBS for j in group)
        for result in _run_group(conn, group, until)
    ]
    if batched:
        done.extend(_run_renewals(conn, sorted(batched, key=_run_order), until))
    return done


def tick(
    db: Database,
    until: datetime | None = None,
    *,
    clock: Clock,
    accounts_per_transaction: int = DEFAULT_ACCOUNTS_PER_TRANSACTION,
) -> TickReport:
    """Run every job due up to `until` (default: now); returns what happened, per job.

    The jobs of up to `accounts_per_transaction` accounts share one database transaction
    (fewer commits); every job still has its own key, and a failure rolls back only the
    batch it belongs to, which the next tick runs again.
    """
    now = clock.now()
    until = until or now
    if until.tzinfo is None:
        raise InvalidInput("until must be timezone-aware")
    if until > now:
        raise InvalidInput(f"cannot tick to {until.isoformat()}: it is later than now")
    if accounts_per_transaction < 1:
        raise InvalidInput("accounts_per_transaction must be at least 1")
    report = TickReport(until=until)
    attempted: set[tuple[str, int, str]] = set()
    for _ in range(MAX_PASSES):
        due = [j for j in collect_due(db, until) if (j.job, j.entity, j.period) not in attempted]
        if not due:
            break
        report.passes += 1
        groups: dict[object, list[DueJob]] = defaultdict(list)
        for job in due:
            owner = job.account_id if job.account_id is not None else ("solo", job.job, job.entity)
            groups[owner].append(job)
        ordered = list(groups.values())
        advanced = False  # did a job move something that may be due again by `until`?
        for start in range(0, len(ordered), accounts_per_transaction):
            batch = ordered[start : start + accounts_per_transaction]
            for job, outcome, again in db.run(partial(_run_batch, groups=batch, until=until)):
                report.outcomes[f"{job.job}:{outcome}"] += 1
                if again:
                    advanced = True
                else:
                    attempted.add((job.job, job.entity, job.period))
        if not advanced:
            break
    report.holds_expired = len(expire_holds(db, clock=FixedClock(until)))
    for name, task in TASKS.items():
        done = task(db, until)
        if done:
            report.outcomes[f"{name}:done"] += done
    return report


# Work of other areas run at every tick (threshold checks, invoice runs...): each task
# must be idempotent on its own (keyed like the jobs above) and returns how much it did.
Task = Callable[[Database, datetime], int]


def sweep_silent_sessions(db: Database, until: datetime) -> int:
    """Session sweep: end calls whose switch went silent (`telbill.services.sessions`)."""
    return len(sweep_sessions(db, TariffCache(db), clock=FixedClock(until)))


TASKS: dict[str, Task] = {
    "sessions.sweep": sweep_silent_sessions,
    "thresholds.check": thresholds.check_all,
    invoice_runs.ISSUE_JOB: invoice_runs.issue_month_end,
    invoice_runs.OVERDUE_JOB: invoice_runs.flag_overdue,
}


def register_task(name: str, task: Task) -> None:
    """Run `task(db, until)` at the end of every tick (after the lifecycle jobs)."""
    TASKS[name] = task


__all__ = [
    "TASKS",
    "register_task",
    "JOBS",
    "DueJob",
    "JobKind",
    "TickReport",
    "collect_due",
    "tick",
]
