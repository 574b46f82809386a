"""A customer's top-up request: "I have paid this by bank transfer", booked only when its
provider confirms it.

A customer (organisation admin) cannot put money into its own wallet: what it can do is say
it has paid, with the bank reference, and wait. The request is ``pending`` until an admin of
a provider above the wallet (or the operator) either confirms it, which books it exactly
like a manual payment (ledger transaction, receipt with VAT, suspended account resumed,
thresholds re-armed) in the same database transaction that marks it ``confirmed``, or
rejects it with a reason. The provider hears of a new request (event ``topup.requested`` on its
account: in-app, webhook, email), the customer of a rejection (``topup.rejected``) and of a
confirmation (its ``topup.receipt``). Deciding twice the same way answers the first decision again;
the other way round is a conflict. Amounts are stored in micro-units of the wallet's
currency, which the request fixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from telbill.adapters.db.engine import Database
from telbill.adapters.db.payment_tables import top_up_requests
from telbill.domain.money import from_micros
from telbill.errors import Conflict, InvalidInput, NotFound
from telbill.services import idempotency, payments, wallets
from telbill.services.accounts import billing_account, load_account
from telbill.services.auth import Action, Principal, check_access
from telbill.services.clock import Clock
from telbill.services.events import emit
from telbill.services.inputs import check_currency, minor_amount
from telbill.services.ledger_views import Receipt, load_receipt

MAX_REFERENCE_LENGTH = 150
MAX_REASON_LENGTH = 500
STATUSES = ("pending", "confirmed", "rejected")


@dataclass(frozen=True)
class TopUpRequest:
    id: int
    account_id: int
    provider_id: int
    amount: Decimal
    currency: str
    reference: str
    status: str
    requested_by: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    receipt_id: int | None


def _request(row: Any) -> TopUpRequest:
    return TopUpRequest(
        id=int(row.id), account_id=int(row.account_id), provider_id=int(row.provider_id),
        amount=from_micros(int(row.amount_micros)), currency=str(row.currency),
        reference=str(row.reference), status=str(row.status),
        requested_by=str(row.requested_by), created_at=row.created_at,
        decided_by=row.decided_by, decided_at=row.decided_at, reason=row.reason,
        receipt_id=int(row.receipt_id) if row.receipt_id is not None else None,
    )  # fmt: skip


def _text(value: str, field: str, limit: int) -> str:
    text = (value or "").strip()
    if not text or len(text) > limit:
        raise InvalidInput(f"{field} must be 1 to {limit} characters", field=field)
    return text


def _load(conn: Connection, request_id: int, *, lock: bool = False) -> TopUpRequest:
    query = sa.select(top_up_requests).where(top_up_requests.c.id == request_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"top-up request {request_id} not found")
    return _request(row)


def request_top_up(
    db: Database,
    principal: Principal,
    account_id: int,
    amount: Decimal | str,
    *,
    reference: str,
    idempotency_key: str,
    clock: Clock,
    currency: str | None = None,
) -> TopUpRequest:
    """Record a customer's claim that it paid `amount` into `account_id`'s wallet (pending).

    Nothing is booked: the provider confirms or rejects it (`confirm`, `reject`).
    """
    reference = _text(reference, "reference", MAX_REFERENCE_LENGTH)

    def work(conn: Connection) -> TopUpRequest:
        check_access(conn, principal, account_id, Action.REQUEST_TOP_UP)
        wallet = billing_account(conn, account_id)
        check_currency(wallet, currency)
        micros = minor_amount(amount, wallet.currency)
        request = {"amount": str(amount), "currency": currency, "reference": reference}

        def perform() -> dict[str, Any]:
            provider_id = load_account(conn, account_id).provider_id
            new_id = conn.execute(
                top_up_requests.insert()
                .values(
                    account_id=account_id, provider_id=provider_id,
                    amount_micros=micros, currency=wallet.currency, reference=reference,
                    status="pending", requested_by=principal.name[:254], created_at=clock.now(),
                )
                .returning(top_up_requests.c.id)
            ).scalar_one()  # fmt: skip
            emit(
                conn, "topup.requested", account_id=provider_id,
                payload={"request_id": int(new_id), "account_id": account_id,
                         "amount": str(from_micros(micros)), "currency": wallet.currency,
                         "reference": reference},
                dedupe_key=f"topup.requested:{new_id}", now=clock.now(),
            )  # fmt: skip
            return {"request_id": int(new_id)}

        return idempotency.once(
            conn, scope=f"top_up_request.create:{account_id}", key=idempotency_key,
            request=request, now=clock.now(), perform=perform,
            load=lambda response: _load(conn, int(response["request_id"])),
        )  # fmt: skip

    return db.run(work)


def get_request(db: Database, principal: Principal | None, request_id: int) -> TopUpRequest:
    """One request, if the caller may read its account (NotFound otherwise)."""
    with db.read() as conn:
        found = _load(conn, request_id)
        if principal is not None:
            check_access(conn, principal, found.account_id, Action.READ)
    return found


def list_requests(
    db: Database,
    principal: Principal | None,
    account_id: int,
    *,
    status: str | None = None,
    limit: int = 200,
) -> list[TopUpRequest]:
    """Requests made for `account_id`, or, for a provider, those its admins decide; newest
    first. `principal` None is the operator."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    with db.read() as conn:
        if principal is not None:
            check_access(conn, principal, account_id, Action.READ)
        query = sa.select(top_up_requests).where(
            sa.or_(
                top_up_requests.c.account_id == account_id,
                top_up_requests.c.provider_id == account_id,
            )
        )
        if status is not None:
            query = query.where(top_up_requests.c.status == status)
        rows = conn.execute(query.order_by(top_up_requests.c.id.desc()).limit(limit)).all()
    return [_request(row) for row in rows]


def _decider(principal: Principal | None) -> str:
    return "operator" if principal is None else principal.name[:254]


def confirm(
    db: Database, principal: Principal | None, request_id: int, *, clock: Clock
) -> tuple[TopUpRequest, Receipt]:
    """Book a pending request as a payment received (receipt, VAT) and mark it confirmed.

    Only who may book a payment into the wallet (`payments.check_booking`): an admin of a
    provider above it, or the operator (`principal` None). Confirming again returns the same
    receipt; confirming a rejected request is a Conflict.
    """

    def work(conn: Connection) -> tuple[TopUpRequest, Receipt, bool]:
        found = _load(conn, request_id, lock=True)
        payments.check_booking(conn, principal, found.account_id)
        if found.status == "confirmed" and found.receipt_id is not None:
            return found, load_receipt(conn, found.receipt_id), False
        if found.status != "pending":
            raise Conflict(f"top-up request {request_id} was {found.status}, not pending")
        now = clock.now()
        receipt = wallets.top_up_in(
            conn, found.account_id, found.amount, currency=found.currency,
            idempotency_key=f"top_up_request:{request_id}", now=now,
            payment_ref=f"bank-transfer:{found.reference}"[:200],
            memo=f"bank transfer confirmed by {_decider(principal)} (request {request_id})",
        )  # fmt: skip
        conn.execute(
            top_up_requests.update()
            .where(top_up_requests.c.id == request_id)
            .values(status="confirmed", decided_by=_decider(principal), decided_at=now,
                    receipt_id=receipt.id)
        )  # fmt: skip
        return _load(conn, request_id), receipt, True

    confirmed, receipt, booked = db.run(work)
    if booked:
        payments.after_top_up(db, receipt, clock=clock)
    return confirmed, receipt


def reject(
    db: Database, principal: Principal | None, request_id: int, *, reason: str, clock: Clock
) -> TopUpRequest:
    """Refuse a pending request (the money never arrived): nothing is booked.

    The same people as `confirm` decide. Rejecting again answers the first rejection;
    rejecting a confirmed request is a Conflict (correct a booked payment with a refund).
    """
    reason = _text(reason, "reason", MAX_REASON_LENGTH)

    def work(conn: Connection) -> TopUpRequest:
        found = _load(conn, request_id, lock=True)
        payments.check_booking(conn, principal, found.account_id)
        if found.status == "rejected":
            return found
        if found.status != "pending":
            raise Conflict(f"top-up request {request_id} was {found.status}, not pending")
        conn.execute(
            top_up_requests.update()
            .where(top_up_requests.c.id == request_id)
            .values(status="rejected", decided_by=_decider(principal), decided_at=clock.now(),
                    reason=reason)
        )  # fmt: skip
        emit(
            conn, "topup.rejected", account_id=found.account_id,
            payload={"request_id": request_id, "amount": str(found.amount),
                     "currency": found.currency, "reference": found.reference,
                     "reason": reason},
            dedupe_key=f"topup.rejected:{request_id}", now=clock.now(),
        )  # fmt: skip
        return _load(conn, request_id)

    return db.run(work)


__all__ = [
    "STATUSES",
    "TopUpRequest",
    "confirm",
    "get_request",
    "list_requests",
    "reject",
    "request_top_up",
]
