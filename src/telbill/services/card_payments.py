"""Card payments: booked only from a payment provider's signed callback.

A card payment is collected by a payment service provider (PSP), never by telbill. When the
PSP has the money it calls ``POST /v1/payment-callbacks/{provider_id}`` with a JSON event and
a signature header, ``Telbill-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">``, made with the telbill provider's callback secret (`rotate_secret`, shown
once; the same scheme as telbill's own webhooks, `adapters.notify.webhooks`). telbill books
the payment only when

* the signature matches the provider's secret (compared in constant time; an unknown
  provider or a provider without a secret looks exactly like a wrong signature),
* the timestamp is within `REPLAY_WINDOW_S` of telbill's clock, either way (a captured
  callback replayed later is refused although its signature is genuine),
* the event names an account in the provider's subtree, in the wallet's currency.

The event's id is the idempotency key: the same event delivered twice (PSPs deliver at least
once) is booked once and answers the same receipt; the same id with another body is a
conflict. Event types other than ``payment.succeeded`` are acknowledged and ignored.

The event body::

    {"id": "evt_123", "type": "payment.succeeded", "account_id": 42,
     "amount": "25.00", "currency": "USD"}
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from telbill.adapters.db.engine import Database
from telbill.adapters.db.payment_tables import payment_callback_secrets
from telbill.adapters.notify.webhooks import InvalidSignature, verify_signature
from telbill.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from telbill.services import idempotency, payments
from telbill.services.accounts import billing_account, load_account
from telbill.services.auth import Action, Principal, Role, check_access, in_scope
from telbill.services.clock import Clock
from telbill.services.ledger_views import Receipt

SIGNATURE_HEADER = "Telbill-Signature"
# How far a callback's signed timestamp may be from telbill's clock, either way.
REPLAY_WINDOW_S = 300
SUCCEEDED = "payment.succeeded"
MAX_EVENT_ID_LENGTH = 100
SECRET_PREFIX = "pcs_"
KEY_PREFIX_LENGTH = 12


@dataclass(frozen=True)
class CallbackResult:
    """What a callback did: the receipt of the payment it booked (or booked before), or
    None for an event type that books nothing."""

    event_id: str
    event_type: str
    receipt: Receipt | None


@dataclass(frozen=True)
class CallbackSecret:
    """A provider's new callback secret: `secret` is its only copy, None on a replay of the
    same idempotent request (the secret is never kept in the idempotency record);
    `key_prefix` tells secrets apart."""

    provider_id: int
    key_prefix: str
    secret: str | None


def rotate_secret(
    db: Database,
    principal: Principal | None,
    provider_id: int,
    *,
    clock: Clock,
    idempotency_key: str | None = None,
) -> CallbackSecret:
    """A new callback secret for `provider_id` (the old one stops working at once).

    Shown once, never again: give it to the PSP. The provider's admins (or the operator,
    `principal` None) set it. The same `idempotency_key` again changes nothing and answers
    the same prefix without the secret.
    """
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = idempotency_key or secrets.token_urlsafe(16)

    def work(conn: Connection) -> CallbackSecret:
        if principal is not None:
            check_access(conn, principal, provider_id, Action.BOOK_PAYMENT)
        if load_account(conn, provider_id).kind.value != "provider":
            raise InvalidInput(f"account {provider_id} is not a provider")

        created: list[bool] = []

        def perform() -> dict[str, Any]:
            conn.execute(
                sa.delete(payment_callback_secrets).where(
                    payment_callback_secrets.c.provider_id == provider_id
                )
            )
            conn.execute(
                payment_callback_secrets.insert().values(
                    provider_id=provider_id, secret=secret, created_at=clock.now()
                )
            )
            created.append(True)
            return {"key_prefix": secret[:KEY_PREFIX_LENGTH]}

        return idempotency.once(
            conn, scope=f"payment_callback_secret:{provider_id}", key=key, request={},
            now=clock.now(), perform=perform,
            load=lambda response: CallbackSecret(
                provider_id, str(response["key_prefix"]), secret if created else None
            ),
        )  # fmt: skip

    return db.run(work)


def _secret(db: Database, provider_id: int) -> str | None:
    with db.read() as conn:
        value = conn.execute(
            sa.select(payment_callback_secrets.c.secret).where(
                payment_callback_secrets.c.provider_id == provider_id
            )
        ).scalar()
    return None if value is None else str(value)


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the callback body is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidInput("the callback body must be a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH:
        raise InvalidInput(f"id must be a string of 1 to {MAX_EVENT_ID_LENGTH} characters")
    if not event_id.isprintable() or not isinstance(event_type, str):
        raise InvalidInput("id must be printable and type a string")
    return event


def book_callback(
    db: Database, provider_id: int, body: bytes, signature: str | None, *, clock: Clock
) -> CallbackResult:
    """Check a PSP callback's signature and book the payment it reports (once per event).

    Raises:
        Unauthenticated: no secret for this provider, signature missing, malformed, wrong
            or outside the replay window: nothing is booked.
        InvalidInput: a signed body that is not a well-formed event.
        NotFound: an account outside the provider's subtree.
        IdempotencyConflict: an event id seen before with a different body.
    """
    secret = _secret(db, provider_id)
    try:
        if secret is None:
            raise InvalidSignature("no callback secret")
        verify_signature(secret, body, signature, now=clock.now(), tolerance_s=REPLAY_WINDOW_S)
    except InvalidSignature:
        # One answer for every cause: the caller learns nothing about providers or secrets.
        raise Unauthenticated("payment callback signature missing, wrong or expired") from None
    event = _event(body)
    event_id, event_type = str(event["id"]), str(event["type"])
    if event_type != SUCCEEDED:
        return CallbackResult(event_id, event_type, None)
    account_id = event.get("account_id")
    if isinstance(account_id, bool) or not isinstance(account_id, int):
        raise InvalidInput("account_id must be an integer")
    currency = event.get("currency")
    if currency is not None and not isinstance(currency, str):
        raise InvalidInput("currency must be a string")
    provider = Principal(key_id=0, role=Role.PROVIDER_ADMIN, account_id=provider_id,
                         name=f"psp:{provider_id}")  # fmt: skip
    with db.read() as conn:
        if not in_scope(conn, provider, account_id):
            raise NotFound(f"account {account_id} not found")
        if billing_account(conn, account_id).id == provider_id:
            raise PermissionDenied("a provider's own wallet is not paid through its callback")
    if not isinstance(event.get("amount"), str):
        raise InvalidInput("amount must be a decimal string")
    receipt = payments.record_top_up(
        db, account_id, event["amount"], currency=currency,
        payment_ref=f"card:{event_id}"[:200], memo="card payment (payment provider callback)",
        idempotency_key=f"card:{provider_id}:{event_id}", clock=clock,
    )  # fmt: skip
    return CallbackResult(event_id, event_type, receipt)


__all__ = [
    "REPLAY_WINDOW_S",
    "SIGNATURE_HEADER",
    "SUCCEEDED",
    "CallbackResult",
    "CallbackSecret",
    "book_callback",
    "rotate_secret",
]
