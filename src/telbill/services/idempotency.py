"""Idempotency keys: the same key returns the first result; a different request is an error.

The key is checked and remembered in the same database transaction as the effect it guards,
with a SHA-256 hash of the canonical request. `scope` names the operation and the account it
acts on (``"wallet.top_up:42"``), so keys of different tenants never collide.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError

from telbill.adapters.db.engine import RetryTransaction
from telbill.adapters.db.tables import idempotency_keys
from telbill.errors import IdempotencyConflict, InvalidInput

MAX_KEY_LENGTH = 200

R = TypeVar("R")


def canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return (
            format(value.normalize(), "f")
            if value == value.to_integral_value()
            else str(value.normalize())
        )
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def request_hash(request: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of `request` (amount "10" == "10.00")."""
    text = json.dumps(canonical(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def validate_key(key: str | None) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("an idempotency key is required")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"idempotency key is longer than {MAX_KEY_LENGTH} characters")
    return key


# Built once: every mutating request runs both (building a statement costs more than
# running it on SQLite).
_STORED = select(idempotency_keys.c.request_hash, idempotency_keys.c.response).where(
    idempotency_keys.c.scope == bindparam("scope"), idempotency_keys.c.key == bindparam("key")
)
_REMEMBER = idempotency_keys.insert()


def check(conn: Connection, scope: str, key: str, hashed: str) -> dict[str, Any] | None:
    """The stored response of (scope, key), None if new; IdempotencyConflict if reused."""
    row = conn.execute(_STORED, {"scope": scope, "key": key}).first()
    if row is None:
        return None
    if row.request_hash != hashed:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for a different request",
            scope=scope,
            key=key,
        )
    response: dict[str, Any] = row.response
    return response


def remember(
    conn: Connection,
    scope: str,
    key: str,
    hashed: str,
    response: Mapping[str, Any],
    now: datetime,
) -> None:
    """Store the response; if another worker stored the key first, start over (and replay)."""
    # No savepoint needed: on a duplicate the whole transaction is rolled back and retried,
    # and the retry finds the first worker's response.
    try:
        conn.execute(
            _REMEMBER,
            {
                "scope": scope,
                "key": key,
                "request_hash": hashed,
                "response": dict(response),
                "created_at": now,
            },
        )
    except IntegrityError as exc:
        raise RetryTransaction(f"idempotency key {key!r} stored concurrently") from exc


def once(
    conn: Connection,
    *,
    scope: str,
    key: str,
    request: Mapping[str, Any],
    now: datetime,
    perform: Callable[[], Mapping[str, Any]],
    load: Callable[[Mapping[str, Any]], R],
) -> R:
    """Run `perform` once per (scope, key); its JSON response is what `load` rebuilds from."""
    key = validate_key(key)
    hashed = request_hash(request)
    stored = check(conn, scope, key, hashed)
    if stored is not None:
        return load(stored)
    response = perform()
    remember(conn, scope, key, hashed, response, now)
    return load(response)
