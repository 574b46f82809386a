"""Property tests on a real database: random sequences of ledger operations keep every
invariant (postings sum to zero, balances equal postings, floors hold, replays change nothing)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_support import (  # noqa: F401 (fixtures)
    key,
    manual_clock,
    migrated_db,
    organisation,
    provider,
)

from telbill.adapters.db.engine import Database
from telbill.errors import Conflict, InsufficientBalance, InvalidInput
from telbill.services import wallets
from telbill.services.clock import ManualClock
from telbill.services.reconcile import reconcile

amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(20), places=6)
operation = st.one_of(
    st.tuples(st.just("top_up"), amounts),
    st.tuples(st.just("debit"), amounts, st.sampled_from(["inbound", "outbound"])),
    st.tuples(st.just("grant"), amounts, st.sampled_from(["free", "trial", "incoming"])),
    st.tuples(st.just("adjust"), amounts, st.booleans()),
    st.tuples(st.just("hold"), amounts),
    st.tuples(st.just("settle"), st.integers(0, 100)),
    st.tuples(st.just("void")),
    st.tuples(st.just("replay"), st.integers(0, 50)),
    st.tuples(st.just("tick")),
)


def _snapshot(db: Database, account_id: int, clock: ManualClock) -> object:
    return wallets.get_balances(db, account_id, clock=clock)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(operation, min_size=1, max_size=12),
    postpaid=st.booleans(),
)
def test_random_operations_keep_the_ledger_balanced_and_replays_change_nothing(
    db: Database, clock: ManualClock, ops: list[tuple[object, ...]], postpaid: bool
) -> None:
    mode = {"billing_mode": "postpaid", "credit_limit": "5"} if postpaid else {}
    org = organisation(db, clock, provider(db, clock), **mode)
    floor = Decimal(-5) if postpaid else Decimal(0)
    done: list[tuple[str, dict[str, object]]] = []
    open_holds: list[wallets.Hold] = []

    def call(name: str, params: dict[str, object]) -> None:
        getattr(wallets, name)(db, clock=clock, **params)
        done.append((name, params))

    for op in ops:
        kind = op[0]
        try:
            if kind == "top_up":
                call("top_up", {"account_id": org.id, "amount": op[1], "idempotency_key": key()})
            elif kind == "debit":
                call(
                    "debit",
                    {
                        "account_id": org.id,
                        "amount": op[1],
                        "service": "voice",
                        "direction": op[2],
                        "idempotency_key": key(),
                    },
                )
            elif kind == "grant":
                call(
                    "grant_credit",
                    {
                        "account_id": org.id,
                        "amount": op[1],
                        "kind": op[2],
                        "expires_at": clock.now() + timedelta(hours=1),
                        "idempotency_key": key(),
                    },
                )
            elif kind == "adjust":
                amount = op[1] if op[2] else -op[1]  # type: ignore[operator]
                call(
                    "adjust",
                    {
                        "account_id": org.id,
                        "amount": amount,
                        "reason": "test",
                        "idempotency_key": key(),
                    },
                )
            elif kind == "hold":
                open_holds.append(
                    wallets.hold(
                        db,
                        org.id,
                        op[1],
                        service="voice",  # type: ignore[arg-type]
                        expires_at=clock.now() + timedelta(minutes=30),
                        idempotency_key=key(),
                        clock=clock,
                    )
                )
            elif kind == "settle" and open_holds:
                h = open_holds.pop(0)
                part = (h.amount * int(op[1]) / 100).quantize(Decimal("0.000001"))  # type: ignore[call-overload]
                call("settle", {"hold_id": h.id, "amount": part, "idempotency_key": key()})
            elif kind == "void" and open_holds:
                call("void", {"hold_id": open_holds.pop().id, "idempotency_key": key()})
            elif kind == "replay" and done:
                name, params = done[int(op[1]) % len(done)]  # type: ignore[call-overload]
                before = _snapshot(db, org.id, clock)
                getattr(wallets, name)(db, clock=clock, **params)
                assert _snapshot(db, org.id, clock) == before
            elif kind == "tick":
                clock.advance(minutes=40)
                wallets.expire_holds(db, clock=clock)
                open_holds.clear()
        except (InsufficientBalance, Conflict, InvalidInput):
            pass
        usd = wallets.get_balances(db, org.id, clock=clock).unit("USD")
        paid = next(b for b in usd.buckets if b.kind == "paid")
        assert paid.available >= floor
        assert all(b.balance >= 0 for b in usd.buckets if b.kind != "paid")
    report = reconcile(db)
    assert report.ok, report.problems
