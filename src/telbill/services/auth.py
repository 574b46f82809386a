"""API keys and who may do what: authentication and authorisation of API callers.

A key is ``tb_`` followed by a random URL-safe token (`secrets.token_urlsafe`). Only its
SHA-256 hash is stored, beside the first `KEY_PREFIX_LENGTH` characters used to find the row;
the hash is compared in constant time (`hmac.compare_digest`). The plain key is returned
once, when it is created.

Roles, each bound to one account:

* ``provider_admin``: everything on its account's subtree; it books payments (manual
  top-ups, confirming a customer's top-up request) into the accounts below it, never into
  its own (that is for its own provider, or the operator).
* ``org_admin``: read its organisation's subtree, create accounts and keys in it, spend its
  balance (numbers, plans, packages, campaigns), ask for a top-up (a pending request its
  provider confirms), manage its notification thresholds and endpoints.
  Booking payments, adjustments, refunds and credit grants are the provider's business.
* ``user``: read its own account (balances, history), nothing else.
* ``switch``: only the real-time and CDR actions of its subtree.

Authorisation never tells a caller that an account outside its subtree exists: such an
account is `NotFound`, exactly like one that does not exist. An account inside the
subtree with an action the role may not do is `PermissionDenied`.

Per-request cost: `authenticate` remembers a key it found valid (hash -> principal) for
`KEY_CACHE_TTL_S` seconds per database engine, so a busy switch does not read its key on
every call. Revoking a key drops it from this process's cache at once; other processes
(API workers) stop accepting it within `KEY_CACHE_TTL_S` seconds. Unknown and revoked keys
are never cached. Account parents never change, so `authorize` remembers them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from telbill.adapters.db import tables as t
from telbill.adapters.db.engine import Database
from telbill.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from telbill.services import idempotency
from telbill.services.clock import Clock

# A revoked key may still be accepted by another process for at most this long.
KEY_CACHE_TTL_S = 5.0
KEY_TOKEN_PREFIX = "tb_"
KEY_PREFIX_LENGTH = 12
# 32 random bytes: 256 bits of entropy.
KEY_RANDOM_BYTES = 32


class Role(StrEnum):
    PROVIDER_ADMIN = "provider_admin"
    ORG_ADMIN = "org_admin"
    USER = "user"
    SWITCH = "switch"


class Action(StrEnum):
    READ = "read"
    CREATE_ACCOUNT = "create_account"
    # Spend the account's balance on purchases (numbers, plans, packages, campaigns). Its
    # name is historical: booking money into a wallet is `BOOK_PAYMENT`.
    TOP_UP = "top_up"
    # Book money received into a wallet (manual top-up, confirm a top-up request).
    BOOK_PAYMENT = "book_payment"
    # Ask the provider to book a payment the customer says it made (a pending request).
    REQUEST_TOP_UP = "request_top_up"
    ADJUST = "adjust"
    REFUND = "refund"
    GRANT_CREDIT = "grant_credit"
    CREATE_API_KEY = "create_api_key"
    # Threshold settings and notification endpoints (webhooks, email addresses).
    MANAGE_NOTIFICATIONS = "manage_notifications"
    RECONCILE = "reconcile"
    # Reserved for the real-time charging and CDR endpoints.
    REALTIME = "realtime"
    POST_CDRS = "post_cdrs"


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.PROVIDER_ADMIN: frozenset(Action),
    Role.ORG_ADMIN: frozenset(
        {
            Action.READ,
            Action.CREATE_ACCOUNT,
            Action.TOP_UP,
            Action.REQUEST_TOP_UP,
            Action.CREATE_API_KEY,
            Action.MANAGE_NOTIFICATIONS,
        }
    ),
    Role.USER: frozenset({Action.READ}),
    Role.SWITCH: frozenset({Action.REALTIME, Action.POST_CDRS}),
}

# Which account kind a key of each role is bound to.
ROLE_ACCOUNT_KINDS: dict[Role, frozenset[str]] = {
    Role.PROVIDER_ADMIN: frozenset({"provider"}),
    Role.ORG_ADMIN: frozenset({"organisation"}),
    Role.USER: frozenset({"user"}),
    Role.SWITCH: frozenset({"provider", "organisation"}),
}

# Roles a caller may hand out (never more than it has).
GRANTABLE_ROLES: dict[Role, frozenset[Role]] = {
    Role.PROVIDER_ADMIN: frozenset(Role),
    Role.ORG_ADMIN: frozenset({Role.ORG_ADMIN, Role.USER}),
    Role.USER: frozenset(),
    Role.SWITCH: frozenset(),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: one API key, its role and its account."""

    key_id: int
    role: Role
    account_id: int
    name: str
    # The key's end of life (None: no expiry); a cached principal is refused after it.
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ApiKey:
    """A stored API key (never its secret)."""

    id: int
    name: str
    role: Role
    account_id: int
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key: `secret` is the only copy of the plain key, shown once.

    A replay of the same idempotent request returns the same key with `secret` None: the
    plain key is never stored, not even in the idempotency record.
    """

    key: ApiKey
    secret: str | None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return KEY_TOKEN_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {value!r}: expected one of {allowed}") from None


def _row_to_key(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=int(m["id"]),
        name=str(m["name"]),
        role=Role(m["role"]),
        account_id=int(m["account_id"]),
        key_prefix=str(m["key_prefix"]),
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        expires_at=m["expires_at"],
        last_used_at=m["last_used_at"],
    )


def insert_api_key(
    conn: Connection,
    *,
    account_id: int,
    role: Role,
    name: str,
    clock: Clock,
    expires_at: datetime | None = None,
) -> CreatedApiKey:
    """Store a new key for `account_id` inside the caller's transaction."""
    account = conn.execute(
        sa.select(t.accounts.c.kind).where(t.accounts.c.id == account_id)
    ).first()
    if account is None:
        raise NotFound(f"account {account_id} not found")
    if account.kind not in ROLE_ACCOUNT_KINDS[role]:
        kinds = " or ".join(sorted(ROLE_ACCOUNT_KINDS[role]))
        raise InvalidInput(
            f"a {role.value} key belongs to a {kinds} account, not to the {account.kind} "
            f"account {account_id}"
        )
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("key name must be 1 to 200 characters")
    created_at = clock.now()
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= created_at):
        raise InvalidInput("expires_at must be a time in the future, with its UTC offset")
    secret = generate_key()
    key_id = conn.execute(
        t.api_keys.insert()
        .values(
            key_prefix=secret[:KEY_PREFIX_LENGTH],
            key_hash=hash_key(secret),
            name=name,
            role=role.value,
            account_id=account_id,
            created_at=created_at,
            revoked_at=None,
            expires_at=expires_at,
        )
        .returning(t.api_keys.c.id)
    ).scalar_one()
    key = ApiKey(
        id=int(key_id),
        name=name,
        role=role,
        account_id=account_id,
        key_prefix=secret[:KEY_PREFIX_LENGTH],
        created_at=created_at,
        revoked_at=None,
        expires_at=expires_at,
    )
    return CreatedApiKey(key=key, secret=secret)


def create_api_key(
    db: Database,
    *,
    account_id: int,
    role: Role | str,
    name: str,
    clock: Clock,
    expires_at: datetime | None = None,
) -> CreatedApiKey:
    """Create a key bound to `account_id` with `role` (its own transaction).

    This is the operator's bootstrap path (``telbill admin create-key``); over the API,
    `create_api_key_as` also checks the caller may hand out that role on that account.
    """
    role = parse_role(role) if isinstance(role, str) else role
    return db.run(
        lambda conn: insert_api_key(
            conn, account_id=account_id, role=role, name=name, clock=clock, expires_at=expires_at
        )
    )


def create_api_key_as(
    db: Database,
    principal: Principal,
    *,
    account_id: int,
    role: Role | str,
    name: str,
    idempotency_key: str,
    clock: Clock,
    expires_at: datetime | None = None,
) -> CreatedApiKey:
    """Create a key on behalf of an API caller: in its scope, never a stronger role."""
    role = parse_role(role) if isinstance(role, str) else role
    request: dict[str, Any] = {"account_id": account_id, "role": role.value, "name": name}
    if expires_at is not None:
        request["expires_at"] = expires_at.isoformat()

    def _create(conn: Connection) -> CreatedApiKey:
        check_access(conn, principal, account_id, Action.CREATE_API_KEY)
        if role not in GRANTABLE_ROLES[principal.role]:
            raise PermissionDenied(f"a {principal.role.value} key cannot create {role.value} keys")
        created: list[CreatedApiKey] = []

        def perform() -> dict[str, Any]:
            new = insert_api_key(
                conn, account_id=account_id, role=role, name=name, clock=clock,
                expires_at=expires_at,
            )  # fmt: skip
            created.append(new)
            return {"key_id": new.key.id}

        def load(response: Mapping[str, Any]) -> CreatedApiKey:
            if created:
                return created[0]
            return CreatedApiKey(key=_load_key(conn, int(response["key_id"])), secret=None)

        return idempotency.once(
            conn,
            scope=f"api_key.create:{account_id}",
            key=idempotency_key,
            request=request,
            now=clock.now(),
            perform=perform,
            load=load,
        )

    return db.run(_create)


def _load_key(conn: Connection, key_id: int) -> ApiKey:
    row = conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id)).one()
    return _row_to_key(row)


def revoke_api_key(db: Database, key_id: int, *, clock: Clock) -> ApiKey:
    """Revoke a key from now on (kept for the record; revoking twice keeps the first time)."""

    def _revoke(conn: Connection) -> ApiKey:
        key = conn.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id)).first()
        if key is None:
            raise NotFound(f"API key {key_id} not found")
        if key.revoked_at is None:
            conn.execute(
                sa.update(t.api_keys)
                .where(t.api_keys.c.id == key_id)
                .values(revoked_at=clock.now())
            )
        return _load_key(conn, key_id)

    revoked = db.run(_revoke)
    _forget_key(db.engine, key_id)
    return revoked


class _KeyCache:
    """Valid keys of one engine: SHA-256 hash -> (principal, monotonic expiry)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[str, tuple[Principal, float]] = {}
        self.parents: dict[int, int | None] = {}


_caches: WeakKeyDictionary[Engine, _KeyCache] = WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_of(engine: Engine) -> _KeyCache:
    cache = _caches.get(engine)
    if cache is None:
        with _caches_lock:
            cache = _caches.setdefault(engine, _KeyCache())
    return cache


def _forget_key(engine: Engine, key_id: int) -> None:
    cache = _cache_of(engine)
    with cache.lock:
        for hashed in [h for h, (p, _) in cache.keys.items() if p.key_id == key_id]:
            del cache.keys[hashed]


def _now(clock: Clock | None) -> datetime:
    return clock.now() if clock is not None else datetime.now(UTC)


def _live(principal: Principal, clock: Clock | None) -> bool:
    return principal.expires_at is None or principal.expires_at > _now(clock)


def cached_principal(db: Database, secret: str, clock: Clock | None = None) -> Principal | None:
    """The principal of a key this process found valid less than `KEY_CACHE_TTL_S` ago, or
    None (then `authenticate` decides). Never touches the database."""
    cached = _cache_of(db.engine).keys.get(hash_key(secret))
    if cached is not None and cached[1] > time.monotonic() and _live(cached[0], clock):
        return cached[0]
    return None


# `last_used_at` is written when a key is read from the database (at most once per
# `KEY_CACHE_TTL_S` per process) and only when the stored time is older than this: a busy
# key costs one small UPDATE a minute, not one per request.
LAST_USED_STEP_S = 60


def _touch(db: Database, key_id: int, last_used_at: datetime | None, now: datetime) -> None:
    if last_used_at is not None and (now - last_used_at).total_seconds() < LAST_USED_STEP_S:
        return
    db.run(
        lambda conn: conn.execute(
            sa.update(t.api_keys).where(t.api_keys.c.id == key_id).values(last_used_at=now)
        )
    )


def authenticate(db: Database, secret: str, clock: Clock | None = None) -> Principal:
    """The principal of a presented key, or Unauthenticated (unknown, malformed, revoked,
    expired). `clock` decides expiry and the last-used time (default: the system's)."""
    if not secret.startswith(KEY_TOKEN_PREFIX) or len(secret) < KEY_PREFIX_LENGTH + 8:
        raise Unauthenticated("invalid API key")
    presented = hash_key(secret)
    cache = _cache_of(db.engine)
    cached = cache.keys.get(presented)
    if cached is not None and cached[1] > time.monotonic() and _live(cached[0], clock):
        return cached[0]
    with db.read() as conn:
        rows = conn.execute(
            sa.select(t.api_keys).where(t.api_keys.c.key_prefix == secret[:KEY_PREFIX_LENGTH])
        ).all()
    match = None
    for row in rows:
        # Compare every candidate so the time taken does not depend on which one matched.
        if hmac.compare_digest(str(row.key_hash), presented) and match is None:
            match = row
    if match is None or match.revoked_at is not None:
        raise Unauthenticated("invalid API key")
    now = _now(clock)
    if match.expires_at is not None and match.expires_at <= now:
        raise Unauthenticated("this API key has expired")
    principal = Principal(
        key_id=int(match.id),
        role=Role(match.role),
        account_id=int(match.account_id),
        name=str(match.name),
        expires_at=match.expires_at,
    )
    _touch(db, principal.key_id, match.last_used_at, now)
    with cache.lock:
        cache.keys[presented] = (principal, time.monotonic() + KEY_CACHE_TTL_S)
    return principal


def in_scope(
    conn: Connection,
    principal: Principal,
    account_id: int,
    *,
    parents: dict[int, int | None] | None = None,
) -> bool:
    """True when `account_id` is the principal's account or one of its descendants.

    `parents` remembers (account -> parent) across calls; pass it only with a connection
    that sees committed rows alone (an account created in a transaction that rolls back
    must not be remembered).
    """
    current: int | None = account_id
    # The tree is shallow (provider -> organisation -> user), but guard against cycles.
    for _ in range(64):
        if current is None:
            return False
        if current == principal.account_id:
            return True
        if parents is not None and current in parents:
            current = parents[current]
            continue
        row = conn.execute(
            sa.select(t.accounts.c.parent_id).where(t.accounts.c.id == current)
        ).first()
        if row is None:
            return False
        if parents is not None:
            parents[current] = row.parent_id
        current = row.parent_id
    return False


def check_access(conn: Connection, principal: Principal, account_id: int, action: Action) -> None:
    """Raise NotFound for an account outside the caller's subtree, PermissionDenied for a
    role that may not do `action`; return quietly otherwise."""
    if not in_scope(conn, principal, account_id):
        raise NotFound(f"account {account_id} not found")
    if action not in ROLE_ACTIONS[principal.role]:
        raise PermissionDenied(
            f"a {principal.role.value} key may not {action.value.replace('_', ' ')}"
        )


# Settings of a new account that commit the provider's money or tax: provider admins only.
PROVIDER_ONLY_SETTINGS = frozenset({"billing_mode", "credit_limit", "vat_country", "vat_rate"})


def check_account_settings(principal: Principal, settings: Mapping[str, Any]) -> None:
    """An organisation admin may create accounts but not choose credit or tax settings."""
    if principal.role is Role.PROVIDER_ADMIN:
        return
    chosen = sorted(k for k, v in settings.items() if k in PROVIDER_ONLY_SETTINGS and v is not None)
    if chosen:
        raise PermissionDenied(
            f"only a provider admin may set {', '.join(chosen)}; leave them to inherit"
        )


def authorize(db: Database, principal: Principal, account_id: int, action: Action) -> None:
    """`check_access` in its own read-only connection (account parents remembered)."""
    if action not in ROLE_ACTIONS[principal.role]:
        # Decided without the database, but after the scope check's answer would be:
        # an account outside the subtree stays NotFound.
        with db.read() as conn:
            check_access(conn, principal, account_id, action)
        return
    parents = _cache_of(db.engine).parents
    if in_scope_cached(db, principal, account_id, parents):
        return
    raise NotFound(f"account {account_id} not found")


def in_scope_cached(
    db: Database, principal: Principal, account_id: int, parents: dict[int, int | None]
) -> bool:
    current: int | None = account_id
    for _ in range(64):  # fast path: the whole chain is known
        if current is None or current == principal.account_id:
            return current is not None
        if current not in parents:
            break
        current = parents[current]
    else:
        return False
    with db.read() as conn:
        return in_scope(conn, principal, account_id, parents=parents)


def check_wallet_visible(db: Database, principal: Principal, billing_account_id: int) -> None:
    """A wallet's balance is shown to callers whose scope holds it, and to users spending from
    their organisation's wallet; never to an organisation whose provider pays for it (the
    provider's own balance is the provider's business)."""
    with db.read() as conn:
        if in_scope(conn, principal, billing_account_id):
            return
        kind = conn.execute(
            sa.select(t.accounts.c.kind).where(t.accounts.c.id == billing_account_id)
        ).scalar()
    if principal.role is Role.USER and kind == "organisation":
        return
    raise PermissionDenied("this account's usage is paid from a wallet outside your scope")


def authorize_global(db: Database, principal: Principal, action: Action) -> None:
    """Actions over the whole database (reconcile): a provider admin of a root provider."""
    if action not in ROLE_ACTIONS[principal.role]:
        raise PermissionDenied(
            f"a {principal.role.value} key may not {action.value.replace('_', ' ')}"
        )
    with db.read() as conn:
        parent = conn.execute(
            sa.select(t.accounts.c.parent_id).where(t.accounts.c.id == principal.account_id)
        ).scalar()
    if parent is not None:
        raise PermissionDenied(f"only an admin of a top-level provider may {action.value}")


def list_account_keys(db: Database, account_id: int) -> list[ApiKey]:
    """Keys bound to `account_id`, for the operator (``telbill admin list-keys``)."""
    with db.read() as conn:
        rows = conn.execute(
            sa.select(t.api_keys)
            .where(t.api_keys.c.account_id == account_id)
            .order_by(t.api_keys.c.id)
        ).all()
    return [_row_to_key(row) for row in rows]


def list_api_keys(db: Database, principal: Principal, account_id: int) -> list[ApiKey]:
    """Keys bound to `account_id` (in the caller's scope, readable by its role)."""
    with db.read() as conn:
        check_access(conn, principal, account_id, Action.CREATE_API_KEY)
        rows = conn.execute(
            sa.select(t.api_keys)
            .where(t.api_keys.c.account_id == account_id)
            .order_by(t.api_keys.c.id)
        ).all()
    return [_row_to_key(row) for row in rows]


# ------------------------------------------------------------------ dashboard sessions
# A person logs in to the dashboard with an API key, or with the email and password of a
# dashboard user (`create_web_user`); the browser then holds only a random session token
# (its SHA-256 hash is stored) in an HttpOnly cookie. The server-side row names the key or
# the user, so revoking the key or disabling the user ends its sessions too.

WEB_SESSION_TTL_S = 8 * 3600
WEB_SESSION_TOKEN_BYTES = 32
# scrypt cost (RFC 7914): 2**14 x 8 x 1 is about 16 MB and tens of milliseconds per log-in.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_SALT_BYTES, SCRYPT_KEY_BYTES = 2**14, 8, 1, 16, 32
MIN_PASSWORD_LENGTH = 12
# Roles a person may hold on the dashboard (a switch is a machine).
WEB_ROLES = frozenset({Role.PROVIDER_ADMIN, Role.ORG_ADMIN, Role.USER})


@dataclass(frozen=True)
class WebSession:
    """A logged-in dashboard session: who it is and the CSRF token its forms carry.

    For a password user, `principal.key_id` is 0 (no API key) and `principal.name` the email.
    """

    id: int
    principal: Principal
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class WebUser:
    id: int
    email: str
    role: Role
    account_id: int
    created_at: datetime
    disabled_at: datetime | None = None


def hash_password(password: str) -> str:
    """A salted scrypt hash of `password` with its parameters."""
    salt = secrets.token_bytes(SCRYPT_SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
        maxmem=64 * 1024 * 1024, dklen=SCRYPT_KEY_BYTES,
    )  # fmt: skip
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` value (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
            maxmem=64 * 1024 * 1024, dklen=len(expected) // 2,
        )  # fmt: skip
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex().encode(), expected.encode())


# Compared against when the email is unknown, so a wrong address costs what a wrong
# password costs (no user enumeration by timing).
_DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))


def _normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 254 or " " in email:
        raise InvalidInput(f"{email!r} is not an email address")
    return email


def create_web_user(
    db: Database, *, email: str, password: str, role: Role | str, account_id: int, clock: Clock
) -> WebUser:
    """A dashboard user with a password (the operator's ``telbill admin user add``)."""
    role = parse_role(role) if isinstance(role, str) else role
    if role not in WEB_ROLES:
        raise InvalidInput(f"a {role.value} cannot log in to the dashboard")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    email = _normalise_email(email)
    from telbill.adapters.db.web_tables import web_users
    from telbill.errors import Conflict

    def _insert(conn: Connection) -> WebUser:
        kind = conn.execute(
            sa.select(t.accounts.c.kind).where(t.accounts.c.id == account_id)
        ).scalar()
        if kind is None:
            raise NotFound(f"account {account_id} not found")
        if kind not in ROLE_ACCOUNT_KINDS[role]:
            kinds = " or ".join(sorted(ROLE_ACCOUNT_KINDS[role]))
            raise InvalidInput(f"a {role.value} belongs to a {kinds} account, not to a {kind}")
        taken = conn.execute(sa.select(web_users.c.id).where(web_users.c.email == email)).first()
        if taken is not None:
            raise Conflict(f"a dashboard user {email} already exists")
        now = clock.now()
        user_id = conn.execute(
            web_users.insert()
            .values(email=email, password_hash=hash_password(password), role=role.value,
                    account_id=account_id, created_at=now, disabled_at=None)
            .returning(web_users.c.id)
        ).scalar_one()  # fmt: skip
        return WebUser(int(user_id), email, role, account_id, now)

    return db.run(_insert)


def list_web_users(db: Database) -> list[WebUser]:
    """Every dashboard user, disabled ones included (their `disabled_at` is set)."""
    from telbill.adapters.db.web_tables import web_users

    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(web_users).order_by(web_users.c.id)).all()
    return [
        WebUser(int(r.id), str(r.email), Role(r.role), int(r.account_id), r.created_at,
                r.disabled_at)
        for r in rows
    ]  # fmt: skip


def disable_web_user(db: Database, email: str, *, clock: Clock) -> WebUser:
    """Disable a dashboard user: their log-in and every open session stop working at once.

    Disabling twice keeps the first time; the row stays (sessions and history point to it).
    """
    from telbill.adapters.db.web_tables import web_sessions, web_users

    email = email.strip().lower()

    def _disable(conn: Connection) -> WebUser:
        row = conn.execute(sa.select(web_users).where(web_users.c.email == email)).first()
        if row is None:
            raise NotFound(f"no dashboard user {email}")
        disabled_at = row.disabled_at
        if disabled_at is None:
            disabled_at = clock.now()
            conn.execute(
                web_users.update().where(web_users.c.id == row.id).values(disabled_at=disabled_at)
            )
        conn.execute(sa.delete(web_sessions).where(web_sessions.c.user_id == row.id))
        return WebUser(int(row.id), str(row.email), Role(row.role), int(row.account_id),
                       row.created_at, disabled_at)  # fmt: skip

    return db.run(_disable)


def _insert_web_session(
    db: Database, principal: Principal, *, user_id: int | None, clock: Clock, ttl_s: int
) -> tuple[str, WebSession]:
    from datetime import timedelta

    from telbill.adapters.db.web_tables import web_sessions

    token = secrets.token_urlsafe(WEB_SESSION_TOKEN_BYTES)
    csrf = secrets.token_urlsafe(WEB_SESSION_TOKEN_BYTES)
    now = clock.now()
    expires_at = now + timedelta(seconds=ttl_s)

    def _insert(conn: Connection) -> int:
        conn.execute(sa.delete(web_sessions).where(web_sessions.c.expires_at <= now))
        return int(
            conn.execute(
                web_sessions.insert()
                .values(
                    token_hash=hash_key(token),
                    api_key_id=principal.key_id if user_id is None else None,
                    user_id=user_id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=expires_at,
                )
                .returning(web_sessions.c.id)
            ).scalar_one()
        )

    session_id = db.run(_insert)
    return token, WebSession(
        id=session_id, principal=principal, csrf_token=csrf, expires_at=expires_at
    )


def start_web_session(
    db: Database, secret: str, *, clock: Clock, ttl_s: int = WEB_SESSION_TTL_S
) -> tuple[str, WebSession]:
    """Log in with an API key: (session token for the cookie, the session).

    Unauthenticated for a bad key; PermissionDenied for a ``switch`` key (machines only).
    """
    principal = authenticate(db, secret.strip(), clock)
    if principal.role not in WEB_ROLES:
        raise PermissionDenied("a switch key cannot log in to the dashboard")
    return _insert_web_session(db, principal, user_id=None, clock=clock, ttl_s=ttl_s)


def start_password_session(
    db: Database, email: str, password: str, *, clock: Clock, ttl_s: int = WEB_SESSION_TTL_S
) -> tuple[str, WebSession]:
    """Log in with a dashboard user's email and password (Unauthenticated otherwise)."""
    from telbill.adapters.db.web_tables import web_users

    with db.engine.connect() as conn:
        row = conn.execute(
            sa.select(web_users).where(web_users.c.email == email.strip().lower()[:254])
        ).first()
    stored = str(row.password_hash) if row is not None else _DUMMY_PASSWORD_HASH
    matches = verify_password(password, stored)
    if row is None or not matches or row.disabled_at is not None:
        raise Unauthenticated("wrong email or password")
    principal = Principal(
        key_id=0, role=Role(row.role), account_id=int(row.account_id), name=str(row.email)
    )
    return _insert_web_session(db, principal, user_id=int(row.id), clock=clock, ttl_s=ttl_s)


def load_web_session(db: Database, token: str, *, clock: Clock) -> WebSession:
    """The live session of a cookie token, or Unauthenticated (unknown, expired, key revoked,
    user disabled)."""
    from telbill.adapters.db.web_tables import web_sessions, web_users

    if not token or len(token) > 200:
        raise Unauthenticated("not logged in")
    keys, users = t.api_keys, web_users
    with db.engine.connect() as conn:
        row = conn.execute(
            sa.select(
                web_sessions.c.id, web_sessions.c.csrf_token, web_sessions.c.expires_at,
                web_sessions.c.user_id, keys.c.id.label("key_id"),
                sa.func.coalesce(keys.c.role, users.c.role).label("role"),
                sa.func.coalesce(keys.c.account_id, users.c.account_id).label("account_id"),
                sa.func.coalesce(keys.c.name, users.c.email).label("name"),
                sa.func.coalesce(keys.c.revoked_at, users.c.disabled_at).label("ended_at"),
                keys.c.expires_at.label("key_expires_at"),
            )
            .outerjoin(keys, keys.c.id == web_sessions.c.api_key_id)
            .outerjoin(users, users.c.id == web_sessions.c.user_id)
            .where(web_sessions.c.token_hash == hash_key(token))
        ).first()  # fmt: skip
    now = clock.now()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        raise Unauthenticated("not logged in, or the session has expired")
    if row.key_expires_at is not None and row.key_expires_at <= now:
        raise Unauthenticated("the API key of this session has expired")
    principal = Principal(
        key_id=int(row.key_id or 0),
        role=Role(row.role),
        account_id=int(row.account_id),
        name=str(row.name),
    )
    return WebSession(
        id=int(row.id), principal=principal, csrf_token=str(row.csrf_token),
        expires_at=row.expires_at,
    )  # fmt: skip


def end_web_session(db: Database, token: str) -> bool:
    """Log out: delete the session row. True when there was one."""
    from telbill.adapters.db.web_tables import web_sessions

    def _delete(conn: Connection) -> bool:
        result = conn.execute(
            sa.delete(web_sessions).where(web_sessions.c.token_hash == hash_key(token))
        )
        return bool(result.rowcount)

    return db.run(_delete)


def csrf_matches(session: WebSession, presented: str | None) -> bool:
    """Constant-time check of a form's CSRF token against its session's."""
    return presented is not None and hmac.compare_digest(
        session.csrf_token.encode("utf-8"), presented.encode("utf-8")
    )


__all__ = [
    "Action",
    "ApiKey",
    "CreatedApiKey",
    "Principal",
    "Role",
    "authenticate",
    "authorize",
    "authorize_global",
    "cached_principal",
    "check_wallet_visible",
    "check_access",
    "check_account_settings",
    "create_api_key",
    "create_api_key_as",
    "csrf_matches",
    "create_web_user",
    "end_web_session",
    "hash_password",
    "load_web_session",
    "start_password_session",
    "start_web_session",
    "verify_password",
    "WebSession",
    "WebUser",
    "generate_key",
    "hash_key",
    "in_scope",
    "list_account_keys",
    "list_api_keys",
    "revoke_api_key",
]
