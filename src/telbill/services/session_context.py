"""What a real-time session needs to know about its account, remembered per process.

`context_for` answers which account pays for an account (the nearest with a wallet), which
plan it uses (its own, else the nearest ancestor's) and the tariff in force: the accounts
and the plan are remembered for `CONTEXT_CACHE_TTL_S` seconds per database engine (parents
and wallets never move; a plan assigned in this process is seen at once, by other processes
within the TTL). Statuses and credit settings change, so `fresh_accounts` reads them again
in the request's transaction.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, bindparam, select

from telbill.adapters.db.charging_tables import account_plans
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import accounts as accounts_table
from telbill.domain.lookup import TariffIndex
from telbill.domain.money import from_micros
from telbill.errors import NotFound
from telbill.services.accounts import Account, AccountStatus, BillingMode, load_account
from telbill.services.plans import (
    PlanRecord,
    TariffCache,
    assignment_changes,
    get_plan_by_id,
    plan_for,
)

# A plan assigned in another process is seen by this one within this many seconds.
CONTEXT_CACHE_TTL_S = 5.0

# Two plain parameters, not an expanding IN: an expanding list is re-rendered on every call.
_ACCOUNT_STATES = select(
    accounts_table.c.id,
    accounts_table.c.status,
    accounts_table.c.billing_mode,
    accounts_table.c.credit_limit_micros,
).where(accounts_table.c.id.in_([bindparam("payer_id"), bindparam("leaf_id")]))


@dataclass(frozen=True, slots=True)
class SessionContext:
    """`payer`: the wallet the call spends from: the leaf's billing account, or the account
    renting the called number when its owner pays (`owner_pays`, inbound toll-free)."""

    leaf: Account
    payer: Account
    plan: PlanRecord
    index: TariffIndex
    owner_pays: bool = False


def paid_by(ctx: SessionContext, payer: Account) -> SessionContext:
    """`ctx` with the call paid from `payer`'s wallet (the called number's owner)."""
    if payer.id == ctx.payer.id:
        return ctx
    return replace(ctx, payer=payer, owner_pays=True)


class SessionContextCache:
    """account id -> (monotonic expiry, assignments seen, leaf, payer, plan), per engine."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[int, tuple[float, int, Account, Account, PlanRecord]] = {}
        self.payers: dict[int, tuple[float, Account]] = {}


_context_caches: WeakKeyDictionary[Engine, SessionContextCache] = WeakKeyDictionary()
_context_caches_lock = threading.Lock()


def _context_cache(engine: Engine) -> SessionContextCache:
    found = _context_caches.get(engine)
    if found is None:
        with _context_caches_lock:
            found = _context_caches.setdefault(engine, SessionContextCache())
    return found


def context_for(db: Database, cache: TariffCache, account_id: int, at: datetime) -> SessionContext:
    """The account, its payer and its plan (remembered a few seconds), and the tariff in
    force at `at`. The accounts' statuses in it may be stale: read them in the transaction."""
    memo = _context_cache(db.engine)
    changes = assignment_changes(db.engine)
    entry = memo.entries.get(account_id)
    if entry is None or entry[0] <= time.monotonic() or entry[1] != changes:
        with db.read() as conn:
            leaf, payer, plan = context_rows(conn, account_id)
        entry = (time.monotonic() + CONTEXT_CACHE_TTL_S, changes, leaf, payer, plan)
        with memo.lock:
            memo.entries[account_id] = entry
    _, _, leaf, payer, plan = entry
    return SessionContext(leaf, payer, plan, cache.at(plan.tariff_ref, at))


def payer_account(db: Database, payer_id: int) -> Account:
    """Account `payer_id` (a wallet holder), remembered `CONTEXT_CACHE_TTL_S` seconds like the
    contexts; its status is stale too: `fresh_accounts` reads it in the transaction."""
    memo = _context_cache(db.engine)
    entry = memo.payers.get(payer_id)
    if entry is None or entry[0] <= time.monotonic():
        with db.read() as conn:
            entry = (time.monotonic() + CONTEXT_CACHE_TTL_S, load_account(conn, payer_id))
        with memo.lock:
            memo.payers[payer_id] = entry
    return entry[1]


def context_rows(conn: Connection, account_id: int) -> tuple[Account, Account, PlanRecord]:
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
            plan = replace(get_plan_by_id(conn, int(assigned[account.id])), scope=leaf.provider_id)
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


def fresh_accounts(conn: Connection, ctx: SessionContext) -> tuple[Account, Account]:
    """The payer and the leaf with their status and credit settings as committed now."""
    rows = {
        int(r.id): r
        for r in conn.execute(_ACCOUNT_STATES, {"payer_id": ctx.payer.id, "leaf_id": ctx.leaf.id})
    }

    def fresh(account: Account) -> Account:
        row = rows.get(account.id)
        if row is None:
            raise NotFound(f"account {account.id} not found", account_id=account.id)
        return replace(
            account,
            status=AccountStatus(row.status),
            billing_mode=BillingMode(row.billing_mode),
            credit_limit=from_micros(row.credit_limit_micros),
        )

    return fresh(ctx.payer), fresh(ctx.leaf)


__all__ = [
    "CONTEXT_CACHE_TTL_S",
    "SessionContext",
    "context_for",
    "context_rows",
    "fresh_accounts",
    "paid_by",
    "payer_account",
]
