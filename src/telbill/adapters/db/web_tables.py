"""Dashboard people and log-in sessions (`web_users`, `web_sessions`).

A person logs in with an API key or, when an operator created one (`telbill admin user
add`), with an email and password: `web_users` keeps the password's scrypt hash, the role
and the account, exactly like an API key. The browser holds a random session token in an
HttpOnly cookie; only its SHA-256 hash is stored, beside the key or user the person logged
in as, the CSRF token every form of the session must carry, and the expiry. Logging out
deletes the row; a revoked key or a disabled user is refused at once.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Table

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.tables import Id, UTCDateTime, metadata

web_users = Table(
    "web_users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Stored lower-cased: one person, one address, whatever the case typed.
    Column("email", String(254), nullable=False, unique=True),
    # "scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>" (hashlib.scrypt, the standard library's).
    Column("password_hash", String(300), nullable=False),
    Column("role", String(16), nullable=False),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
    CheckConstraint("role IN ('provider_admin', 'org_admin', 'user')", name="role"),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    # Exactly one of the two: the API key or the user the person logged in as.
    Column("api_key_id", Id, ForeignKey("api_keys.id"), nullable=True),
    Column("user_id", Id, ForeignKey("web_users.id"), nullable=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    CheckConstraint("(api_key_id IS NULL) <> (user_id IS NULL)", name="who"),
)
Index("ix_web_sessions_expires_at", web_sessions.c.expires_at)

# The dashboard's usage page: the charges a wallet paid (or an account without a wallet
# made), newest first, one keyset page at a time. The id ends each key so that the page order
# (occurred_at, id) is the index order on PostgreSQL too: a page reads 51 index entries, never
# sorts the account's whole history.
Index("ix_charges_payer_id_occurred_at_id", charges.c.payer_id, charges.c.occurred_at, charges.c.id)
Index(
    "ix_charges_account_id_occurred_at_id",
    charges.c.account_id,
    charges.c.occurred_at,
    charges.c.id,
)

__all__ = ["web_sessions", "web_users"]
