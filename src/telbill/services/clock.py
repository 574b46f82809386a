"""Clocks: services read the time only through one, so tests travel in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: clocks keep aware UTC times")
    return moment.astimezone(UTC)


class FixedClock:
    """Always the same instant."""

    def __init__(self, moment: datetime) -> None:
        self.moment = _require_aware(moment)

    def now(self) -> datetime:
        return self.moment


class ManualClock:
    """A clock a test moves forward explicitly (`advance`, `set`)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = _require_aware(start or datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.moment += delta if delta is not None else timedelta(**kwargs)
        return self.moment

    def set(self, moment: datetime) -> datetime:
        self.moment = _require_aware(moment)
        return self.moment


__all__ = ["Clock", "FixedClock", "ManualClock", "SystemClock"]
