"""What happens when a prepaid wallet reaches zero, and when money comes back.

At zero (the money balance of a prepaid wallet, holds not deducted, is <= 0), in the same
transaction as the charge that brought it there (`enforce_zero_balance`):

* the wallet owner is suspended (``account.suspended`` event): new calls are refused;
* every running campaign of the wallet's accounts is paused (``campaign.paused``); campaigns
  never resume by themselves;
* every active session whose plan cuts off ``hard`` is told to disconnect
  (``session.disconnect``); ``soft`` sessions may finish and take the balance negative.

Resuming: a suspended prepaid wallet whose money balance is above zero again is resumed
(``account.resumed``) by `resume_if_funded`. It is evaluated on the next authorisation
(`services.sessions.authorize`) and can be called right after a top-up with `after_top_up`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, select, update

from telbill.adapters.db import ledger_store
from telbill.adapters.db.charging_tables import sessions
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import accounts
from telbill.domain.plans import CutOffPolicy
from telbill.ledger import BucketKind
from telbill.services import campaigns as campaigns_service
from telbill.services import thresholds
from telbill.services.accounts import AccountStatus, BillingMode, load_account
from telbill.services.clock import Clock
from telbill.services.events import emit
from telbill.services.plans import plan_for


def money_balance(conn: Connection, payer_id: int, now: datetime, *, lock: bool = False) -> int:
    """Micro-units of money in the wallet of `payer_id` (unexpired buckets, holds included)."""
    payer = load_account(conn, payer_id)
    buckets = ledger_store.load_buckets(conn, [payer_id], unit=payer.currency, lock=lock)
    return sum(
        b.balance
        for b in buckets
        if b.kind is BucketKind.PAID or (not b.is_expired(now) and b.balance > 0)
    )


def _suspend(conn: Connection, payer_id: int, now: datetime, balance: int) -> None:
    conn.execute(
        update(accounts).where(accounts.c.id == payer_id).values(status=AccountStatus.SUSPENDED)
    )
    emit(
        conn,
        "account.suspended",
        account_id=payer_id,
        payload={"reason": "zero_balance", "balance_micros": balance},
        dedupe_key=f"account.suspended:{payer_id}:{uuid.uuid4().hex}",
        now=now,
    )


def _disconnect_hard_sessions(conn: Connection, payer_id: int, now: datetime) -> int:
    rows = conn.execute(
        select(sessions.c.id, sessions.c.account_id, sessions.c.call_id).where(
            sessions.c.payer_id == payer_id, sessions.c.state == "active"
        )
    ).all()
    told = 0
    policies: dict[int, CutOffPolicy] = {}
    for row in rows:
        if row.account_id not in policies:
            policies[row.account_id] = plan_for(conn, row.account_id).plan.cut_off
        if policies[row.account_id] is not CutOffPolicy.HARD:
            continue
        told += emit(
            conn,
            "session.disconnect",
            account_id=row.account_id,
            payload={"session_id": row.id, "call_id": row.call_id, "reason": "zero_balance"},
            dedupe_key=f"session.disconnect:{row.id}",
            now=now,
        )
    return told


def enforce_zero_balance(conn: Connection, payer_ids: Iterable[int], now: datetime) -> list[int]:
    """Apply the zero-balance rules to each prepaid wallet in `payer_ids` that reached zero.

    Returns the wallets found at zero. Runs in the caller's transaction. Every path that
    charges usage calls it, so it is also where low-balance thresholds are evaluated.
    """
    at_zero: list[int] = []
    for payer_id in sorted(set(payer_ids)):
        thresholds.after_balance_change(conn, payer_id, now)
        payer = load_account(conn, payer_id)
        if payer.billing_mode is not BillingMode.PREPAID:
            continue
        balance = money_balance(conn, payer_id, now)
        if balance > 0:
            continue
        at_zero.append(payer_id)
        if payer.status is AccountStatus.ACTIVE:
            _suspend(conn, payer_id, now, balance)
        campaigns_service.pause_running(conn, payer_id, now, reason="zero_balance")
        _disconnect_hard_sessions(conn, payer_id, now)
    return at_zero


def resume_if_funded(conn: Connection, payer_id: int, now: datetime) -> bool:
    """Resume a wallet suspended at zero when its money balance is above zero again."""
    payer = load_account(conn, payer_id)
    if payer.status is not AccountStatus.SUSPENDED or payer.billing_mode is not BillingMode.PREPAID:
        return False
    balance = money_balance(conn, payer_id, now)
    if balance <= 0:
        return False
    conn.execute(
        update(accounts).where(accounts.c.id == payer_id).values(status=AccountStatus.ACTIVE)
    )
    emit(
        conn,
        "account.resumed",
        account_id=payer_id,
        payload={"balance_micros": balance},
        dedupe_key=f"account.resumed:{payer_id}:{uuid.uuid4().hex}",
        now=now,
    )
    return True


def after_top_up(db: Database, account_id: int, *, clock: Clock) -> bool:
    """Hook for the top-up path: resume the wallet of `account_id` if the payment lifted it."""
    from telbill.services.accounts import billing_account

    def work(conn: Connection) -> bool:
        payer = billing_account(conn, account_id)
        return resume_if_funded(conn, payer.id, clock.now())

    return db.run(work)


__all__ = ["after_top_up", "enforce_zero_balance", "money_balance", "resume_if_funded"]
