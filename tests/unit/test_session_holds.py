"""Hold arithmetic of real-time calls (pure, no database): what an authorisation holds, what
an end takes, and many holds on one wallet decided in memory (`ledger.WalletBook`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.domain.session_holds import decide_hold, decide_settlement, money_share
from telbill.errors import InsufficientBalance
from telbill.ledger import Bucket, BucketKind, plan_drain, spendable
from telbill.ledger.book import WalletBook

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PER_SECOND = 1_000  # micro-units per second of the test tariff


def cost(seconds: int) -> int:
    return seconds * PER_SECOND


def affordable(micros: int) -> int:
    return micros // PER_SECOND


def hold(money: int, package: int = 0, cap: int = 3_600, soft: bool = False) -> object:
    return decide_hold(
        money_available=money, package_available=package, cap_s=cap, soft=soft,
        affordable_s=affordable, cost_micros=cost,
    )  # fmt: skip


def test_a_call_may_last_what_the_money_affords_and_holds_its_price() -> None:
    decided = decide_hold(
        money_available=90_500, package_available=0, cap_s=3_600, soft=False,
        affordable_s=affordable, cost_micros=cost,
    )  # fmt: skip
    assert decided is not None
    assert (decided.max_seconds, decided.package_seconds, decided.money_micros) == (90, 0, 90_000)


def test_package_seconds_count_first_and_money_pays_only_for_the_rest() -> None:
    decided = decide_hold(
        money_available=30_000, package_available=60, cap_s=3_600, soft=False,
        affordable_s=affordable, cost_micros=cost,
    )  # fmt: skip
    assert decided is not None
    assert (decided.max_seconds, decided.package_seconds, decided.money_micros) == (90, 60, 30_000)


def test_a_wallet_that_cannot_pay_one_second_is_refused() -> None:
    assert hold(999) is None
    assert hold(-5_000) is None


def test_soft_cut_off_allows_the_longest_call_and_holds_what_the_wallet_has() -> None:
    decided = decide_hold(
        money_available=5_000, package_available=0, cap_s=3_600, soft=True,
        affordable_s=affordable, cost_micros=cost,
    )  # fmt: skip
    assert decided is not None
    assert (decided.max_seconds, decided.money_micros) == (3_600, 5_000)


def test_hard_cut_off_settles_at_most_the_hold_and_soft_charges_the_rest_beyond_it() -> None:
    hard = decide_settlement(
        amount_micros=70_000, billed_units=70, package_held=0, money_held=50_000, hard=True
    )
    soft = decide_settlement(
        amount_micros=70_000, billed_units=70, package_held=0, money_held=50_000, hard=False
    )
    assert (hard.money_settled, hard.beyond_hold, hard.money_charged) == (50_000, 0, 50_000)
    assert (soft.money_settled, soft.beyond_hold, soft.money_charged) == (50_000, 20_000, 70_000)


def test_an_ended_call_takes_package_seconds_first_and_money_for_the_uncovered_share() -> None:
    settled = decide_settlement(
        amount_micros=90_000, billed_units=90, package_held=60, money_held=90_000, hard=True
    )
    assert (settled.package_units, settled.money_due, settled.money_settled) == (60, 30_000, 30_000)


@given(
    money=st.integers(-(10**9), 10**9),
    package=st.integers(0, 10_000),
    cap=st.integers(1, 14_400),
    soft=st.booleans(),
)
def test_a_hold_never_exceeds_what_the_wallet_affords(
    money: int, package: int, cap: int, soft: bool
) -> None:
    decided = hold(money, package, cap, soft)
    if decided is None:
        assert soft is False or money + package <= 0
        return
    assert 0 < decided.max_seconds <= cap  # type: ignore[attr-defined]
    assert 0 <= decided.package_seconds <= package  # type: ignore[attr-defined]
    assert 0 <= decided.money_micros <= max(money, 0)  # type: ignore[attr-defined]
    if not soft:  # the money held pays for every second not covered by packages
        uncovered = decided.max_seconds - decided.package_seconds  # type: ignore[attr-defined]
        assert decided.money_micros == cost(uncovered)  # type: ignore[attr-defined]


@given(
    amount=st.integers(0, 10**9),
    billed=st.integers(0, 14_400),
    package_held=st.integers(0, 14_400),
    money_held=st.integers(0, 10**9),
    hard=st.booleans(),
)
def test_a_settlement_takes_no_more_than_each_hold_and_hard_never_beyond(
    amount: int, billed: int, package_held: int, money_held: int, hard: bool
) -> None:
    settled = decide_settlement(
        amount_micros=amount, billed_units=billed, package_held=package_held,
        money_held=money_held, hard=hard,
    )  # fmt: skip
    assert 0 <= settled.package_units <= min(billed, package_held)
    assert 0 <= settled.money_settled <= money_held
    assert settled.money_due == money_share(amount, billed, settled.package_units)
    assert settled.money_charged <= (settled.money_settled if hard else settled.money_due)
    if not hard:
        assert settled.money_charged == settled.money_due


def wallet() -> list[Bucket]:
    return [
        Bucket(id=1, kind=BucketKind.FREE, unit="USD", balance=20_000, priority=10, account_id=7),
        Bucket(id=2, kind=BucketKind.PAID, unit="USD", balance=100_000, account_id=7),
        Bucket(id=3, kind=BucketKind.PAID, unit="USD", balance=50_000, account_id=8),
    ]


def test_holds_decided_one_after_another_see_what_the_previous_ones_reserved() -> None:
    book = WalletBook(wallet())
    first = book.reserve(7, 30_000, unit="USD", service="voice", direction="outbound",
                         floor=0, now=NOW)  # fmt: skip
    assert [(x.ledger_account_id, x.amount) for x in first] == [(1, 20_000), (2, 10_000)]
    assert spendable(book.of(7), unit="USD", service="voice", direction="outbound",
                     now=NOW) == 90_000  # fmt: skip
    with pytest.raises(InsufficientBalance):
        book.reserve(7, 90_001, unit="USD", service="voice", direction="outbound",
                     floor=0, now=NOW)  # fmt: skip
    assert book.held_deltas == {1: 20_000, 2: 10_000}  # a refused hold changes nothing


def test_settling_a_hold_takes_its_lines_in_order_and_releases_all_of_them() -> None:
    book = WalletBook(wallet())
    lines = book.reserve(7, 30_000, unit="USD", service="voice", direction="outbound",
                         floor=0, now=NOW)  # fmt: skip
    book.settle(lines, 25_000)
    balance, held = book.take_deltas()
    assert balance == {1: -20_000, 2: -5_000}
    assert held == {1: 0, 2: 0}
    assert {b.id: (b.balance, b.held) for b in book.of(7)} == {1: (0, 0), 2: (95_000, 0)}


@given(st.lists(st.integers(1, 60_000), max_size=12))
def test_many_holds_in_memory_reserve_exactly_what_one_at_a_time_would(amounts: list[int]) -> None:
    book = WalletBook(wallet())
    # The same holds, one at a time, each on wallet 7's buckets as the previous one left them.
    stored = [b for b in wallet() if b.account_id == 7]
    for amount in amounts:
        try:
            expected = plan_drain(stored, amount, unit="USD", service="voice",
                                  direction="outbound", now=NOW)  # fmt: skip
        except InsufficientBalance:
            with pytest.raises(InsufficientBalance):
                book.reserve(7, amount, unit="USD", service="voice", direction="outbound",
                             floor=0, now=NOW)  # fmt: skip
            continue
        lines = book.reserve(7, amount, unit="USD", service="voice", direction="outbound",
                             floor=0, now=NOW)  # fmt: skip
        assert [(x.ledger_account_id, x.amount) for x in lines] == [
            (t.bucket_id, t.amount) for t in expected.takes
        ]
        taken = {t.bucket_id: t.amount for t in expected.takes}
        stored = [
            Bucket(id=b.id, kind=b.kind, unit=b.unit, balance=b.balance,
                   held=b.held + taken.get(b.id, 0), priority=b.priority,
                   account_id=b.account_id)
            for b in stored
        ]  # fmt: skip
    assert sum(b.held for b in book.of(7)) <= 120_000
    assert book.of(8)[0].held == 0  # another wallet is untouched
