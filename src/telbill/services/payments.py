"""A customer's payment, as the outside world sees it: record the top-up, then let every
area react to the new money (a suspended account resumes, held-back renewals retry...).

Interfaces (API, CLI, dashboard) call `record_top_up`, never `wallets.top_up` directly, so
no reaction is forgotten on one path. The reactions run after the top-up has committed, each
idempotent; if the process dies in between, the next authorisation resumes the account all
the same (see `services/suspension.py`).

Money enters a wallet only from a trusted source (docs/security.md, "Who may put money in"):
the operator (the CLI on the database), an admin of a provider above the wallet
(`authorize_booking`: a manual payment, or a customer's request it confirms,
`services/top_up_requests.py`), or a card payment provider's signed callback
(`services/card_payments.py`). A customer never books its own money.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection

from telbill.adapters.db.engine import Database
from telbill.errors import PermissionDenied
from telbill.services import numbers, suspension, thresholds, wallets
from telbill.services.accounts import billing_account
from telbill.services.auth import Action, Principal, check_access
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
    after_top_up(db, receipt, clock=clock)
    return receipt


def after_top_up(db: Database, receipt: Receipt, *, clock: Clock) -> None:
    """What follows a committed top-up (`record_top_up`, or one booked inside another
    service's transaction such as a confirmed top-up request). Idempotent."""
    suspension.after_top_up(db, receipt.account_id, clock=clock)
    numbers.renew_paid_up(db, receipt.account_id, clock=clock)  # suspended numbers work now
    db.run(lambda conn: _after_payment(conn, receipt, clock.now()))


def check_booking(conn: Connection, principal: Principal | None, account_id: int) -> None:
    """May `principal` book money received into `account_id`'s wallet?

    `None` is the operator (the CLI on the database): always. An API or dashboard caller
    needs `Action.BOOK_PAYMENT` (provider admins) on the account, and the wallet credited
    must not be its own: a provider's own balance is booked by the provider above it, or
    the operator. NotFound outside the caller's subtree, PermissionDenied otherwise.
    """
    if principal is None:
        return
    check_access(conn, principal, account_id, Action.BOOK_PAYMENT)
    if billing_account(conn, account_id).id == principal.account_id:
        raise PermissionDenied(
            "a provider may not book money into its own wallet: its own provider or the "
            "operator does"
        )


def authorize_booking(db: Database, principal: Principal | None, account_id: int) -> None:
    """`check_booking` in its own read-only connection."""
    with db.read() as conn:
        check_booking(conn, principal, account_id)


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


__all__ = ["after_top_up", "authorize_booking", "check_booking", "record_top_up"]
