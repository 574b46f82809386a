"""Low-balance thresholds as a pure state machine.

Two kinds of threshold watch an account's available balance:

* `FixedThreshold`: a level in the account's currency (defaults: a warning at 0.50 and
  ``balance.zero`` at 0). Each level has a mode: ``below`` (the balance is below it when
  ``balance < level``: 0.50 left at a 0.50 level does not warn) or ``at_or_below``
  (``balance <= level``). A level's default mode is ``below``, except the zero level's,
  which is ``at_or_below``: a balance of exactly zero is an empty balance.
* `SpendThreshold`: the balance would last less than `days` days at the average daily spend
  of the last `window_days` days (defaults 2 and 10). Below it when
  ``balance < days * spent_in_window / window_days``; with no spend in the window the
  question has no answer and the state does not move.

Each threshold is *armed* until the balance is first seen below it: then it fires once and
disarms. It re-arms (and its `generation` grows by one) only when the balance is seen above
it again. A (threshold, generation) pair therefore fires at most once, which is what the
services use as the event's dedupe key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

DEFAULT_FIXED_LEVELS: tuple[Decimal, ...] = (Decimal("0.50"), Decimal("0"))
BELOW = "below"
AT_OR_BELOW = "at_or_below"
FIXED_MODES: tuple[str, ...] = (BELOW, AT_OR_BELOW)
DEFAULT_SPEND_DAYS = 2
DEFAULT_SPEND_WINDOW_DAYS = 10
MAX_SPEND_DAYS = 365


def default_mode(level: Decimal) -> str:
    """The mode of a level given without one: ``at_or_below`` for zero, else ``below``."""
    return AT_OR_BELOW if level == 0 else BELOW


@dataclass(frozen=True, slots=True)
class FixedThreshold:
    level: Decimal
    # None: the level's default mode (`default_mode`), resolved at construction.
    mode: str | None = None

    def __post_init__(self) -> None:
        if self.mode is None:
            object.__setattr__(self, "mode", default_mode(self.level))
        elif self.mode not in FIXED_MODES:
            raise ValueError(f"threshold mode must be one of {', '.join(FIXED_MODES)}")

    @property
    def key(self) -> str:
        """Stable name of the threshold: ``fixed:0.5`` for 0.50 and 0.500 alike."""
        normal = self.level.normalize()
        return f"fixed:{normal:f}" if normal != 0 else "fixed:0"

    @property
    def event_type(self) -> str:
        return "balance.zero" if self.level <= 0 else "balance.low"


@dataclass(frozen=True, slots=True)
class SpendThreshold:
    days: int = DEFAULT_SPEND_DAYS
    window_days: int = DEFAULT_SPEND_WINDOW_DAYS

    def __post_init__(self) -> None:
        if not 1 <= self.days <= MAX_SPEND_DAYS or not 1 <= self.window_days <= MAX_SPEND_DAYS:
            raise ValueError(f"spend threshold days must be 1..{MAX_SPEND_DAYS}")

    @property
    def key(self) -> str:
        return f"spend:{self.days}:{self.window_days}"

    @property
    def event_type(self) -> str:
        return "balance.low"

    def level(self, spent_in_window: Decimal) -> Decimal | None:
        """The balance that lasts `days` days at the window's average; None without spend."""
        if spent_in_window <= 0:
            return None
        return spent_in_window * self.days / self.window_days


Threshold = FixedThreshold | SpendThreshold


@dataclass(frozen=True, slots=True)
class ArmState:
    armed: bool = True
    generation: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    """What one observation did to a threshold: the new state, and whether it fired
    (the event to emit carries `fired_generation`) or re-armed."""

    state: ArmState
    fired: bool = False
    rearmed: bool = False
    fired_generation: int | None = None


def step(state: ArmState, below: bool | None) -> Transition:
    """Advance one threshold given whether the balance is below it (None: unknown)."""
    if below is None:
        return Transition(state)
    if below and state.armed:
        return Transition(
            replace(state, armed=False), fired=True, fired_generation=state.generation
        )
    if not below and not state.armed:
        return Transition(ArmState(armed=True, generation=state.generation + 1), rearmed=True)
    return Transition(state)


def is_below(threshold: Threshold, balance: Decimal, spent_in_window: Decimal) -> bool | None:
    """Whether `balance` is below `threshold`; None when a spend threshold has no spend."""
    if isinstance(threshold, FixedThreshold):
        if threshold.mode == BELOW:
            return balance < threshold.level
        return balance <= threshold.level
    level = threshold.level(spent_in_window)
    return None if level is None else balance < level


def evaluate(
    thresholds: Sequence[Threshold],
    states: dict[str, ArmState],
    balance: Decimal,
    spent_in_window: Decimal = Decimal(0),
) -> list[tuple[Threshold, Transition]]:
    """Step every threshold (missing states start armed at generation 0)."""
    return [
        (
            threshold,
            step(
                states.get(threshold.key, ArmState()), is_below(threshold, balance, spent_in_window)
            ),
        )
        for threshold in thresholds
    ]


def default_thresholds() -> tuple[Threshold, ...]:
    return (
        *(FixedThreshold(level) for level in DEFAULT_FIXED_LEVELS),
        SpendThreshold(DEFAULT_SPEND_DAYS, DEFAULT_SPEND_WINDOW_DAYS),
    )


def dedupe_key(account_id: int, threshold: Threshold, generation: int) -> str:
    """Event dedupe key: one event per (account, threshold, arm generation)."""
    return f"threshold:{account_id}:{threshold.key}:{generation}"


__all__ = [
    "AT_OR_BELOW",
    "BELOW",
    "FIXED_MODES",
    "DEFAULT_FIXED_LEVELS",
    "DEFAULT_SPEND_DAYS",
    "DEFAULT_SPEND_WINDOW_DAYS",
    "ArmState",
    "FixedThreshold",
    "SpendThreshold",
    "Threshold",
    "Transition",
    "dedupe_key",
    "default_mode",
    "default_thresholds",
    "evaluate",
    "is_below",
    "step",
]
