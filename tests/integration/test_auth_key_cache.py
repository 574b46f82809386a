"""API key lookups are remembered briefly: a revoked key is refused at once by the process
that revoked it, and by every other process within `KEY_CACHE_TTL_S` seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from telbill.adapters.db import tables as t
from telbill.adapters.db.engine import Database, migrate
from telbill.errors import NotFound, Unauthenticated
from telbill.services import accounts, auth
from telbill.services.clock import SystemClock

Keyed = tuple[Database, int, int, str]


@pytest.fixture
def keyed(db_url: str) -> Iterator[Keyed]:
    migrate(db_url)
    db = Database(db_url)
    clock = SystemClock()
    org = accounts.create_account(
        db, kind="provider", name="Acme", currency="USD", idempotency_key="p", clock=clock
    )
    user = accounts.create_account(
        db, kind="organisation", name="o", parent_id=org.id, idempotency_key="u", clock=clock
    )
    created = auth.create_api_key(
        db, account_id=org.id, role=auth.Role.SWITCH, name="sw", clock=clock
    )
    assert created.secret is not None
    yield db, created.key.id, user.id, created.secret
    db.dispose()


def test_key_revoked_by_this_process_is_refused_at_once(keyed: Keyed) -> None:
    db, key_id, _, secret = keyed
    assert auth.authenticate(db, secret).key_id == key_id
    auth.revoke_api_key(db, key_id, clock=SystemClock())
    with pytest.raises(Unauthenticated):
        auth.authenticate(db, secret)


def test_key_revoked_elsewhere_is_refused_once_the_cache_entry_expires(
    keyed: Keyed, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, key_id, _, secret = keyed
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    auth.authenticate(db, secret)
    with db.transaction() as conn:  # another process revokes it
        conn.execute(
            sa.update(t.api_keys).where(t.api_keys.c.id == key_id)
            .values(revoked_at=SystemClock().now())
        )  # fmt: skip
    assert auth.authenticate(db, secret).key_id == key_id  # still within the TTL
    now[0] += auth.KEY_CACHE_TTL_S + 0.1
    with pytest.raises(Unauthenticated):
        auth.authenticate(db, secret)


def test_remembered_parents_still_hide_accounts_outside_the_callers_subtree(
    keyed: Keyed,
) -> None:
    db, _, user_id, secret = keyed
    principal = auth.authenticate(db, secret)
    for _ in range(2):  # the second time from remembered parents
        auth.authorize(db, principal, user_id, auth.Action.REALTIME)
    clock = SystemClock()
    other = accounts.create_account(
        db, kind="provider", name="Other", currency="USD", idempotency_key="x", clock=clock
    )
    for _ in range(2):
        with pytest.raises(NotFound):
            auth.authorize(db, principal, other.id, auth.Action.REALTIME)
    with pytest.raises(NotFound):
        auth.authorize(db, principal, 10_000, auth.Action.REALTIME)
