"""The drain rule of wallet buckets (pure, no database)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.errors import InsufficientBalance, InvalidInput
from telbill.ledger import (
    Bucket,
    BucketKind,
    DrainPolicy,
    WalletDrain,
    plan_drain,
    spendable,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USD = "USD"


def paid(balance: int, held: int = 0, bucket_id: int = 1) -> Bucket:
    return Bucket(id=bucket_id, kind=BucketKind.PAID, unit=USD, balance=balance, held=held)


def credit(
    bucket_id: int,
    balance: int,
    kind: BucketKind = BucketKind.FREE,
    priority: int = 20,
    expires_in_days: int | None = None,
    unit: str = USD,
    service: str | None = None,
) -> Bucket:
    return Bucket(
        id=bucket_id,
        kind=kind,
        unit=unit,
        balance=balance,
        priority=priority,
        expires_at=None if expires_in_days is None else NOW + timedelta(days=expires_in_days),
        service=service,
    )


def takes(plan: object) -> list[tuple[int, int]]:
    return [(t.bucket_id, t.amount) for t in plan.takes]  # type: ignore[attr-defined]


def drain(buckets: list[Bucket], amount: int, **kwargs: object) -> list[tuple[int, int]]:
    params: dict[str, object] = {"unit": USD, "service": "voice", "direction": "outbound"}
    params.update(kwargs)
    return takes(plan_drain(buckets, amount, now=NOW, **params))  # type: ignore[arg-type]


def test_paid_balance_is_drained_last_even_with_a_low_id() -> None:
    assert drain([paid(100, bucket_id=1), credit(2, 30)], 50) == [(2, 30), (1, 20)]


def test_lower_priority_number_drains_first() -> None:
    buckets = [paid(100), credit(2, 10, priority=30), credit(3, 10, priority=10)]
    assert drain(buckets, 15) == [(3, 10), (2, 5)]


def test_same_priority_drains_earliest_expiry_first_and_no_expiry_last() -> None:
    buckets = [
        paid(100),
        credit(2, 10, expires_in_days=None),
        credit(3, 10, expires_in_days=9),
        credit(4, 10, expires_in_days=2),
    ]
    assert drain(buckets, 25) == [(4, 10), (3, 10), (2, 5)]


def test_expired_bucket_is_skipped() -> None:
    assert drain([paid(100), credit(2, 50, expires_in_days=-1)], 30) == [(1, 30)]


def test_bucket_expiring_exactly_now_is_expired() -> None:
    expiring = Bucket(2, BucketKind.FREE, USD, 50, expires_at=NOW)
    assert drain([paid(100), expiring], 30) == [(1, 30)]


def test_incoming_only_credit_does_not_pay_for_outbound_calls() -> None:
    incoming = credit(2, 50, kind=BucketKind.INCOMING, priority=10)
    assert drain([paid(100), incoming], 30, direction="outbound") == [(1, 30)]
    assert drain([paid(100), incoming], 30, direction="inbound") == [(2, 30)]


def test_outgoing_only_credit_pays_only_outbound() -> None:
    outgoing = credit(2, 50, kind=BucketKind.OUTGOING, priority=10)
    assert drain([paid(100), outgoing], 30, direction="inbound") == [(1, 30)]
    assert drain([paid(100), outgoing], 30, direction="outbound") == [(2, 30)]


def test_service_restricted_credit_pays_only_that_service() -> None:
    sms_only = credit(2, 50, service="sms")
    assert drain([paid(100), sms_only], 30, service="voice") == [(1, 30)]
    assert drain([paid(100), sms_only], 30, service="sms") == [(2, 30)]


def test_unit_package_pays_only_its_own_unit() -> None:
    package = credit(2, 120, kind=BucketKind.PACKAGE, unit="s:call")
    assert drain([paid(100), package], 60, unit="s:call") == [(2, 60)]
    assert drain([paid(100), package], 60) == [(1, 60)]


def test_prepaid_debit_beyond_the_balance_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(InsufficientBalance, match="insufficient balance"):
        drain([paid(100), credit(2, 20)], 121)


def test_prepaid_debit_of_exactly_everything_leaves_zero() -> None:
    assert drain([paid(100), credit(2, 20)], 120) == [(2, 20), (1, 100)]


def test_postpaid_paid_balance_goes_down_to_minus_the_credit_limit() -> None:
    assert drain([paid(10)], 60, floor=-50) == [(1, 60)]
    with pytest.raises(InsufficientBalance):
        drain([paid(10)], 61, floor=-50)


def test_held_amount_is_not_available_to_a_debit() -> None:
    with pytest.raises(InsufficientBalance):
        drain([paid(100, held=80)], 21)
    assert drain([paid(100, held=80)], 20) == [(1, 20)]


def test_allow_negative_policy_lets_a_call_in_progress_cross_the_floor() -> None:
    plan = plan_drain(
        [paid(10)],
        50,
        unit=USD,
        service="voice",
        direction="outbound",
        now=NOW,
        policy=DrainPolicy.ALLOW_NEGATIVE,
    )
    assert takes(plan) == [(1, 50)]
    assert plan.shortfall == 0


def test_partial_policy_reports_the_shortfall_instead_of_failing() -> None:
    package = credit(2, 40, kind=BucketKind.PACKAGE, unit="s:call")
    plan = plan_drain(
        [package],
        100,
        unit="s:call",
        service="voice",
        direction="outbound",
        now=NOW,
        policy=DrainPolicy.PARTIAL,
    )
    assert takes(plan) == [(2, 40)]
    assert plan.shortfall == 60


def test_non_paid_bucket_never_goes_below_zero_even_when_allowed_negative() -> None:
    plan = plan_drain(
        [credit(2, 5)],
        50,
        unit=USD,
        service="voice",
        direction="outbound",
        now=NOW,
        policy=DrainPolicy.ALLOW_NEGATIVE,
    )
    assert takes(plan) == [(2, 5)]
    assert plan.shortfall == 45


@pytest.mark.parametrize("amount", [0, -1])
def test_amount_to_take_must_be_positive(amount: int) -> None:
    with pytest.raises(InvalidInput):
        drain([paid(100)], amount)


bucket_strategy = st.builds(
    Bucket,
    id=st.integers(2, 50),
    kind=st.sampled_from(
        [BucketKind.FREE, BucketKind.TRIAL, BucketKind.INCOMING, BucketKind.OUTGOING]
    ),
    unit=st.just(USD),
    balance=st.integers(0, 1000),
    held=st.just(0),
    priority=st.integers(0, 5),
    expires_at=st.one_of(st.none(), st.integers(-3, 3).map(lambda d: NOW + timedelta(days=d))),
)


@given(
    others=st.lists(bucket_strategy, max_size=6, unique_by=lambda b: b.id),
    paid_balance=st.integers(-200, 1000),
    floor=st.integers(-500, 0),
    amount=st.integers(1, 3000),
    direction=st.sampled_from(["inbound", "outbound"]),
)
def test_drain_takes_exactly_the_amount_or_refuses_and_never_crosses_a_floor(
    others: list[Bucket], paid_balance: int, floor: int, amount: int, direction: str
) -> None:
    buckets = [paid(paid_balance), *others]
    room = spendable(buckets, unit=USD, service="voice", direction=direction, now=NOW, floor=floor)
    try:
        plan = plan_drain(
            buckets, amount, unit=USD, service="voice", direction=direction, now=NOW, floor=floor
        )
    except InsufficientBalance:
        assert amount > room
        return
    assert amount <= room
    assert plan.covered == amount
    by_id = {b.id: b for b in buckets}
    for take in plan.takes:
        bucket = by_id[take.bucket_id]
        assert take.amount > 0
        assert not bucket.is_expired(NOW)
        assert bucket.applies_to(USD, "voice", direction)
        lowest = floor if bucket.kind is BucketKind.PAID else 0
        assert bucket.available - take.amount >= lowest
    paid_positions = [i for i, t in enumerate(plan.takes) if t.bucket_id == 1]
    assert paid_positions in ([], [len(plan.takes) - 1])


_bucket_strategy = st.builds(
    lambda kind, balance, held, priority, days, service, direction, unit: (
        kind, balance, held, priority, days, service, direction, unit
    ),
    st.sampled_from(list(BucketKind)[:6]),
    st.integers(0, 500),
    st.integers(0, 50),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(-1, 2)),
    st.sampled_from([None, "voice", "sms"]),
    st.sampled_from([None, "inbound", "outbound"]),
    st.sampled_from([USD, "s:call"]),
)
_debit_strategy = st.tuples(
    st.integers(1, 200),
    st.sampled_from([USD, "s:call"]),
    st.sampled_from(["voice", "sms"]),
    st.sampled_from(["inbound", "outbound"]),
    st.sampled_from(list(DrainPolicy)),
)


@given(
    st.lists(_bucket_strategy, min_size=1, max_size=6),
    st.lists(_debit_strategy, min_size=1, max_size=25),
    st.integers(-100, 0),
)
def test_wallet_drain_of_many_debits_equals_plan_drain_one_after_another(
    specs: list[tuple[Any, ...]], debits: list[tuple[Any, ...]], floor: int
) -> None:
    buckets = [
        Bucket(
            id=n + 1, kind=kind, unit=USD if kind is BucketKind.PAID else unit,
            balance=balance, held=held, priority=priority, service=service,
            direction=direction, expires_at=None if days is None else NOW + timedelta(days=days),
        )
        for n, (kind, balance, held, priority, days, service, direction, unit) in enumerate(specs)
    ]  # fmt: skip
    drain_ = WalletDrain(buckets, now=NOW)
    current = {b.id: b for b in buckets}
    for amount, unit, service, direction, policy in debits:
        params: dict[str, Any] = {
            "unit": unit, "service": service, "direction": direction, "floor": floor,
            "policy": policy,
        }  # fmt: skip
        try:
            plan = plan_drain(list(current.values()), amount, now=NOW, **params)
        except InsufficientBalance:
            before = dict(drain_.taken)
            with pytest.raises(InsufficientBalance):
                drain_.take(amount, **params)
            assert drain_.taken == before  # a refused debit takes nothing
            continue
        into: dict[int, int] = {}
        assert drain_.take(amount, into=into, **params) == plan.covered
        assert into == {t.bucket_id: t.amount for t in plan.takes}
        for t in plan.takes:
            bucket = current[t.bucket_id]
            current[t.bucket_id] = dataclasses.replace(bucket, balance=bucket.balance - t.amount)
    assert {b.id: drain_.balance(b) for b in buckets} == {b.id: b.balance for b in current.values()}
