"""A customer's payment, as the outside world sees it: record the top-up, then let every
area react to the new money (a suspended account resumes, held-back renewals retry...).

Interfaces (API, CLI, dashboard) call `record_top_up`, never `wallets.top_up` directly, so
no reaction is forgotten on one path. The reactions run after the top-up has committed, each
idempotent; if the process dies in between, the next authorisation resumes the account all
the same (see `services/suspension.py`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection

from telbill.adapters.db.engine import Database
from telbill.services import numbers, suspension, thresholds, wallets
from telbill.services.clock import Clock
from telbill.services.events import emit
from telbill.services.ledger_views import Receipt


def record_top_up(
    db: Database,
    account_id: int,
    amount: Decimal | str | int,
    *,
    idempotency_key: str,
    clock: Clock,
    currency: str | None = None,
    payment_ref: str | None = None,
    memo: str | None = None,
) -> Receipt:
    """Top up `account_id`'s wallet (see `wallets.top_up`) and apply what follows from it."""
    receipt = wallets.top_up(
        db,
        account_id,
        amount,
        idempotency_key=idempotency_key,
        clock=clock,
        currency=currency,
        payment_ref=payment_ref,
        memo=memo,
    )
    suspension.after_top_up(db, account_id, clock=clock)
    numbers.renew_paid_up(db, account_id, clock=clock)  # suspended numbers work again now
    db.run(lambda conn: _after_payment(conn, receipt, clock.now()))
    return receipt


def _after_payment(conn: Connection, receipt: Receipt, now: datetime) -> None:
    """Re-arm thresholds the payment lifted the balance above; tell the customer."""
    thresholds.after_balance_change(conn, receipt.account_id, now)
    emit(
        conn,
        "topup.receipt",
        account_id=receipt.account_id,
        payload={
            "receipt_id": receipt.id,
            "number": receipt.number,
            "amount": str(receipt.amount),
            "vat": str(receipt.vat),
            "currency": receipt.currency,
            "new_balance": str(receipt.new_balance),
        },
        dedupe_key=f"topup.receipt:{receipt.id}",
        now=now,
    )


__all__ = ["record_top_up"]
