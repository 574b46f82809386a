"""Two-phase holds on SQLite and PostgreSQL: reserve, settle less and release the rest,
void, expire; each hold resolved once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from ledger_support import (  # noqa: F401 (fixtures)
    key,
    manual_clock,
    migrated_db,
    organisation,
    paid_balance,
    provider,
    row_counts,
)

from telbill.adapters.db.engine import Database
from telbill.errors import Conflict, InsufficientBalance, InvalidInput
from telbill.services import wallets
from telbill.services.accounts import Account
from telbill.services.clock import ManualClock
from telbill.services.reconcile import reconcile


@pytest.fixture
def funded(db: Database, clock: ManualClock) -> Account:
    org = organisation(db, clock, provider(db, clock))
    wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    return org


def reserve(db: Database, clock: ManualClock, org: Account, amount: str) -> wallets.Hold:
    return wallets.hold(
        db,
        org.id,
        amount,
        service="voice",
        direction="outbound",
        expires_at=clock.now() + timedelta(minutes=10),
        idempotency_key=key("h"),
        clock=clock,
    )


def available(db: Database, clock: ManualClock, org: Account) -> Decimal:
    return wallets.get_balances(db, org.id, clock=clock).unit("USD").available


def test_hold_makes_the_reserved_amount_unavailable_to_other_debits(
    db: Database, clock: ManualClock, funded: Account
) -> None:
    reserve(db, clock, funded, "7")
    assert available(db, clock, funded) == Decimal(3)
    with pytest.raises(InsufficientBalance):
        wallets.debit(db, funded.id, "4", service="voice", idempotency_key=key(), clock=clock)
    with pytest.raises(InsufficientBalance):
        reserve(db, clock, funded, "3.000001")


def test_settling_less_than_held_charges_that_and_releases_the_rest(
    db: Database, clock: ManualClock, funded: Account
) -> None:
    held = reserve(db, clock, funded, "6")
    settled = wallets.settle(db, held.id, "2.5", idempotency_key=key(), clock=clock)
    assert (settled.status, settled.settled_amount) == ("settled", Decimal("2.5"))
    assert paid_balance(db, funded.id) == Decimal("7.5")
    assert available(db, clock, funded) == Decimal("7.5")
    assert reconcile(db).ok


def test_settling_more_than_held_is_refused_and_writes_nothing(
    db: Database, clock: ManualClock, funded: Account
) -> None:
    held = reserve(db, clock, funded, "2")
    before = row_counts(db)
    with pytest.raises(InvalidInput, match="reserved only"):
        wallets.settle(db, held.id, "2.01", idempotency_key=key(), clock=clock)
    assert row_counts(db) == before


def test_settling_zero_charges_nothing(db: Database, clock: ManualClock, funded: Account) -> None:
    held = reserve(db, clock, funded, "2")
    assert (
        wallets.settle(db, held.id, "0", idempotency_key=key(), clock=clock).transaction_id is None
    )
    assert available(db, clock, funded) == Decimal(10)


def test_void_releases_the_whole_hold(db: Database, clock: ManualClock, funded: Account) -> None:
    held = reserve(db, clock, funded, "4")
    assert wallets.void(db, held.id, idempotency_key=key(), clock=clock).status == "voided"
    assert available(db, clock, funded) == Decimal(10)
    assert paid_balance(db, funded.id) == Decimal(10)


def test_a_hold_is_resolved_only_once(db: Database, clock: ManualClock, funded: Account) -> None:
    held = reserve(db, clock, funded, "4")
    wallets.settle(db, held.id, "1", idempotency_key="settle-1", clock=clock)
    # The same settle again is a replay, not a second charge.
    assert (
        wallets.settle(db, held.id, "1", idempotency_key="settle-1", clock=clock).status
        == "settled"
    )
    with pytest.raises(Conflict, match="already settled"):
        wallets.void(db, held.id, idempotency_key=key(), clock=clock)
    with pytest.raises(Conflict):
        wallets.settle(db, held.id, "1", idempotency_key="settle-2", clock=clock)
    assert paid_balance(db, funded.id) == Decimal(9)


def test_holds_past_their_expiry_are_released_by_the_sweep(
    db: Database, clock: ManualClock, funded: Account
) -> None:
    early = reserve(db, clock, funded, "3")
    clock.advance(minutes=5)
    late = reserve(db, clock, funded, "3")
    clock.advance(minutes=6)
    assert wallets.expire_holds(db, clock=clock) == [early.id]
    assert wallets.expire_holds(db, clock=clock) == []
    assert available(db, clock, funded) == Decimal(7)
    clock.advance(minutes=10)
    assert wallets.expire_holds(db, clock=clock) == [late.id]
    assert available(db, clock, funded) == Decimal(10)
    assert reconcile(db).ok


def test_hold_spanning_a_free_credit_and_the_paid_balance_settles_credit_first(
    db: Database, clock: ManualClock, funded: Account
) -> None:
    wallets.grant_credit(db, funded.id, "1", kind="free", idempotency_key=key(), clock=clock)
    held = reserve(db, clock, funded, "3")
    wallets.settle(db, held.id, "1.5", idempotency_key=key(), clock=clock)
    usd = wallets.get_balances(db, funded.id, clock=clock).unit("USD")
    by_kind = {b.kind: (b.balance, b.held) for b in usd.buckets}
    assert by_kind == {"paid": (Decimal("9.5"), Decimal(0)), "free": (Decimal(0), Decimal(0))}


def test_hold_must_expire_in_the_future_and_be_positive(
    db: Database, clock: ManualClock, funded: Account
) -> None:
    before = row_counts(db)
    with pytest.raises(InvalidInput):
        wallets.hold(
            db,
            funded.id,
            "1",
            service="voice",
            expires_at=clock.now(),
            idempotency_key=key(),
            clock=clock,
        )
    with pytest.raises(InvalidInput):
        reserve(db, clock, funded, "-1")
    assert row_counts(db) == before
