"""Low-balance threshold rules (pure): fire once when crossed downward, re-arm above."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.domain.thresholds import (
    ArmState,
    FixedThreshold,
    SpendThreshold,
    dedupe_key,
    default_thresholds,
    evaluate,
    is_below,
    step,
)

D = Decimal


def run(threshold, balances, spend=D(0)):
    """Feed balances one by one; the generations at which it fired."""
    state = ArmState()
    fired = []
    for balance in balances:
        transition = step(state, is_below(threshold, D(balance), spend))
        if transition.fired:
            fired.append(transition.fired_generation)
        state = transition.state
    return fired, state


def test_defaults_are_a_warning_at_half_a_unit_zero_and_two_days_of_ten_day_spend():
    assert default_thresholds() == (
        FixedThreshold(D("0.50")),
        FixedThreshold(D("0")),
        SpendThreshold(2, 10),
    )


def test_fixed_threshold_fires_once_when_crossed_downward():
    fired, _ = run(FixedThreshold(D("0.50")), ["1.00", "0.40", "0.30", "0.10"])
    assert fired == [0]


def test_threshold_reached_exactly_counts_as_crossed():
    fired, _ = run(FixedThreshold(D("0")), ["0.01", "0"])
    assert fired == [0]


def test_threshold_rearms_when_balance_rises_above_it_and_fires_again_next_generation():
    fired, state = run(FixedThreshold(D("0.50")), ["0.40", "5.00", "0.20", "0.10"])
    assert fired == [0, 1]
    assert state == ArmState(armed=False, generation=1)


def test_balance_staying_below_after_a_small_top_up_does_not_rearm():
    fired, _ = run(FixedThreshold(D("0.50")), ["0.40", "0.45", "0.30"])
    assert fired == [0]


def test_zero_threshold_emits_balance_zero_and_others_balance_low():
    assert FixedThreshold(D("0")).event_type == "balance.zero"
    assert FixedThreshold(D("0.5")).event_type == "balance.low"
    assert SpendThreshold().event_type == "balance.low"


def test_spend_threshold_fires_when_balance_lasts_less_than_n_days_of_average_spend():
    # 10 days spent 20.00: 2.00 a day; 2 days need 4.00.
    threshold = SpendThreshold(2, 10)
    assert is_below(threshold, D("4.00"), D("20")) is False
    assert is_below(threshold, D("3.99"), D("20")) is True


def test_spend_threshold_without_spend_neither_fires_nor_rearms():
    threshold = SpendThreshold(2, 10)
    assert is_below(threshold, D("0"), D("0")) is None
    disarmed = ArmState(armed=False, generation=3)
    assert step(disarmed, None).state == disarmed


def test_spend_threshold_days_are_bounded():
    with pytest.raises(ValueError):
        SpendThreshold(0, 10)


def test_same_level_written_differently_is_the_same_threshold():
    assert FixedThreshold(D("0.5")).key == FixedThreshold(D("0.500")).key == "fixed:0.5"
    assert dedupe_key(7, FixedThreshold(D("0")), 2) == "threshold:7:fixed:0:2"


def test_evaluate_starts_missing_states_armed():
    results = evaluate(default_thresholds(), {}, D("0.30"), D("0"))
    assert [(t.key, tr.fired) for t, tr in results] == [
        ("fixed:0.5", True),
        ("fixed:0", False),
        ("spend:2:10", False),
    ]


balances = st.lists(
    st.decimals(min_value=-10, max_value=10, places=2, allow_nan=False), min_size=1, max_size=60
)


@given(balances, st.decimals(min_value=-2, max_value=2, places=2))
def test_never_fires_twice_without_a_rearm_in_between(sequence, level):
    threshold = FixedThreshold(level)
    state = ArmState()
    armed_since_fire = True
    generations = []
    for balance in sequence:
        transition = step(state, is_below(threshold, balance, D(0)))
        if transition.fired:
            assert armed_since_fire
            armed_since_fire = False
            generations.append(transition.fired_generation)
        if transition.rearmed:
            armed_since_fire = True
        state = transition.state
    # Every firing has its own generation: dedupe keys never collide.
    assert len(generations) == len(set(generations))


@given(balances, st.decimals(min_value=-2, max_value=2, places=2))
def test_fires_exactly_at_each_downward_crossing(sequence, level):
    threshold = FixedThreshold(level)
    fired, _ = run(threshold, sequence)
    crossings = 0
    previous_below = False
    for balance in sequence:
        below = balance <= level if level == 0 else balance < level
        if below and not previous_below:
            crossings += 1
        previous_below = below
    assert len(fired) == crossings


def test_level_in_below_mode_does_not_fire_at_equality_but_just_under_it():
    fired, _ = run(FixedThreshold(D("0.50")), ["1.00", "0.50"])
    assert fired == []
    fired, _ = run(FixedThreshold(D("0.50")), ["1.00", "0.50", "0.49"])
    assert fired == [0]


def test_level_in_at_or_below_mode_fires_at_equality():
    fired, _ = run(FixedThreshold(D("0.50"), "at_or_below"), ["1.00", "0.50"])
    assert fired == [0]


def test_level_mode_defaults_to_below_and_to_at_or_below_for_zero():
    assert FixedThreshold(D("0.50")).mode == "below"
    assert FixedThreshold(D("0")).mode == "at_or_below"
    with pytest.raises(ValueError):
        FixedThreshold(D("1"), "under")
