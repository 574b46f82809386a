"""Trusted money sources: customers' top-up requests and payment-provider callbacks.

Money enters a wallet only from a trusted source (docs/security.md, "Who may put money in"):

* `top_up_requests`: a customer says it has paid (a bank transfer with its reference); the
  row waits, ``pending``, until an admin of the account's provider confirms it (then it is
  booked like any top-up and the row names its receipt) or rejects it (with a reason).
* `payment_callback_secrets`: a provider's shared secret with its card payment provider
  (PSP); a callback is booked only when its HMAC signature, made with this secret over a
  recent timestamp and the raw body, matches. The PSP's event id is the idempotency key.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String, Table

from telbill.adapters.db.tables import Id, UTCDateTime, metadata

TOP_UP_REQUEST_STATUSES = ("pending", "confirmed", "rejected")

top_up_requests = Table(
    "top_up_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    # The provider whose admins decide (the account's provider when the request was made).
    Column("provider_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", String(150), nullable=False),
    Column("status", String(10), nullable=False),
    # Who asked and who decided: an API key's or dashboard user's name, for the record.
    Column("requested_by", String(254), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("decided_by", String(254), nullable=True),
    Column("decided_at", UTCDateTime(), nullable=True),
    Column("reason", String(500), nullable=True),
    Column("receipt_id", Id, ForeignKey("receipts.id"), nullable=True),
    CheckConstraint("status IN ('pending', 'confirmed', 'rejected')", name="status"),
    CheckConstraint("amount_micros > 0", name="amount_positive"),
)
Index("ix_top_up_requests_provider_id_status", top_up_requests.c.provider_id,
      top_up_requests.c.status)  # fmt: skip
Index("ix_top_up_requests_account_id_id", top_up_requests.c.account_id, top_up_requests.c.id)

payment_callback_secrets = Table(
    "payment_callback_secrets",
    metadata,
    Column("provider_id", Id, ForeignKey("accounts.id"), primary_key=True, autoincrement=False),
    Column("secret", String(100), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

__all__ = ["TOP_UP_REQUEST_STATUSES", "payment_callback_secrets", "top_up_requests"]
