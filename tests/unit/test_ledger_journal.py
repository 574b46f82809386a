"""Journal entries must balance per unit; holds settle at most what they reserved (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.errors import InvalidInput
from telbill.ledger import (
    HoldLine,
    JournalEntry,
    LedgerInvariantError,
    Posting,
    UnbalancedEntry,
    plan_release,
    plan_settlement,
    transfer,
)


def test_entry_whose_postings_do_not_sum_to_zero_cannot_be_built() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry("debit", 1, (Posting(1, -5, "USD"), Posting(2, 4, "USD")))


def test_entry_must_balance_per_unit_not_just_in_total() -> None:
    with pytest.raises(UnbalancedEntry, match="s:call"):
        JournalEntry("debit", 1, (Posting(1, -5, "USD"), Posting(2, 5, "s:call")))


def test_entry_without_postings_is_refused() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry("debit", 1, ())


def test_float_posting_amount_is_refused() -> None:
    with pytest.raises(LedgerInvariantError):
        JournalEntry("debit", 1, (Posting(1, -0.5, "USD"), Posting(2, 0.5, "USD")))  # type: ignore[arg-type]


def test_invariant_errors_survive_python_dash_o() -> None:
    # They are raised explicitly, not with `assert`, so -O cannot switch them off.
    assert issubclass(UnbalancedEntry, AssertionError)


def test_transfer_moves_an_amount_between_two_accounts() -> None:
    entry = transfer("grant", account_id=7, source_id=1, destination_id=2, amount=30, unit="USD")
    assert entry.balance_changes() == {1: -30, 2: 30}


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(-(10**12), 10**12)), min_size=1))
def test_any_list_of_postings_plus_its_balancing_posting_is_a_valid_entry(
    moves: list[tuple[int, int]],
) -> None:
    postings = [Posting(account, amount, "USD") for account, amount in moves]
    postings.append(Posting(99, -sum(amount for _, amount in moves), "USD"))
    entry = JournalEntry("x", None, tuple(postings))
    assert sum(entry.balance_changes().values()) == 0


LINES = [HoldLine(10, 30, 0), HoldLine(11, 70, 1)]


def test_settling_less_than_held_takes_lines_in_order_and_releases_all_reservations() -> None:
    settlement = plan_settlement(LINES, 40)
    assert [(t.bucket_id, t.amount) for t in settlement.takes] == [(10, 30), (11, 10)]
    assert [(r.bucket_id, r.amount) for r in settlement.releases] == [(10, 30), (11, 70)]


def test_settling_more_than_held_is_refused() -> None:
    with pytest.raises(InvalidInput, match="reserved only 100"):
        plan_settlement(LINES, 101)


def test_settling_a_negative_amount_is_refused() -> None:
    with pytest.raises(InvalidInput):
        plan_settlement(LINES, -1)


def test_void_takes_nothing_and_releases_everything() -> None:
    release = plan_release(LINES)
    assert release.takes == ()
    assert sum(r.amount for r in release.releases) == 100


@given(st.lists(st.integers(1, 1000), min_size=1, max_size=5), st.data())
def test_settlement_never_takes_more_than_a_line_reserved(
    amounts: list[int], data: st.DataObject
) -> None:
    lines = [HoldLine(i, a, i) for i, a in enumerate(amounts)]
    amount = data.draw(st.integers(0, sum(amounts)))
    settlement = plan_settlement(lines, amount)
    assert settlement.settled == amount
    reserved = {line.ledger_account_id: line.amount for line in lines}
    assert all(t.amount <= reserved[t.bucket_id] for t in settlement.takes)
