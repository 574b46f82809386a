"""Tariffs: versioned, effective-dated price lists keyed by longest prefix.

This module holds the data model shared by rating (`domain/rating.py`), tariff file formats
(`adapters/formats/`) and tariff storage. Rows are plain frozen values so that a tariff case
reads as a table in a test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum

from telbill.errors import InvalidInput


class Service(StrEnum):
    VOICE = "voice"
    SMS = "sms"
    MMS = "mms"
    NUMBER = "number"  # monthly rental of a phone number; rate is per month
    FAX = "fax"
    SPEECH = "speech"  # speech recognition / synthesis seconds, their own counter
    RECURRING = "recurring"  # subscription and add-on fees
    DATA = "data"  # bytes; the rate is per `RateRow.rate_unit` bytes (CGRateS *data)
    GENERIC = "generic"  # plain units; the rate is per `RateRow.rate_unit` units


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class NumberType(StrEnum):
    ANY = "any"
    LOCAL = "local"
    NATIONAL = "national"
    MOBILE = "mobile"
    TOLL_FREE = "toll_free"


_INCREMENT_RE = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+)\s*)?$")


@dataclass(frozen=True, slots=True)
class Increment:
    """Billing increment ``first/next`` in seconds: 60/60, 1/1, 15/15, 30/6."""

    first_s: int
    next_s: int

    def __post_init__(self) -> None:
        if self.first_s < 1 or self.next_s < 1:
            raise InvalidInput(
                f"increment must be positive seconds, got {self.first_s}/{self.next_s}"
            )

    @classmethod
    def parse(cls, text: str) -> Increment:
        """Parse ``"60/60"``, ``"30/6"`` or a single ``"n"`` meaning ``n/n``."""
        match = _INCREMENT_RE.match(text)
        if not match:
            raise InvalidInput(f"increment must look like 60/60 or 6, got {text!r}")
        first = int(match.group(1))
        nxt = int(match.group(2)) if match.group(2) is not None else first
        return cls(first, nxt)

    def __str__(self) -> str:
        return f"{self.first_s}/{self.next_s}"


DEFAULT_INCREMENT = Increment(60, 60)


@dataclass(frozen=True, slots=True)
class RateTier:
    """A later rate group of a row: from `start_s` seconds into the billable time on, this
    per-minute `rate` and `increment` apply (CGRateS "GroupIntervalStart").

    The billable time (after the cap and `free_seconds`) is cut at each tier's `start_s`; the
    seconds falling in a group are rounded up to that group's increment and priced at its rate,
    and the row's own `rate`/`increment` price the first group [0, first tier start). Costs are
    summed exactly and rounded once at the end. Every group but the last must hold a whole
    number of its increments (a tariff that breaks this is refused when compiled); the full
    rule, with `min_seconds`, is in `domain/increments.py`.
    """

    start_s: int
    rate: Decimal
    increment: Increment

    def __post_init__(self) -> None:
        if self.start_s < 1:
            raise InvalidInput(f"a rate tier must start after 0 s, got {self.start_s}")


DEFAULT_MAX_CALL_S = 3600
MAX_COST_FREE = "*free"  # past MaxCost the rest of the call is free
MAX_COST_DISCONNECT = "*disconnect"  # the call is cut when its cost reaches MaxCost
MAX_COST_STRATEGIES = (MAX_COST_FREE, MAX_COST_DISCONNECT)


@dataclass(frozen=True, slots=True)
class CalendarDays:
    """Calendar days a row is limited to (CGRateS timings' Years, Months and MonthDays),
    read in the tariff's timezone at the moment priced; None in a field means any."""

    years: frozenset[int] | None = None
    months: frozenset[int] | None = None
    month_days: frozenset[int] | None = None

    def covers(self, day: date) -> bool:
        return (
            (self.years is None or day.year in self.years)
            and (self.months is None or day.month in self.months)
            and (self.month_days is None or day.day in self.month_days)
        )

    @property
    def specificity(self) -> tuple[int, int]:
        """How narrow the days are, to choose between two rows whose days both match: more
        fields bound first, then fewer values in them (the intersection of two calendars is
        always at least as narrow as either)."""
        bound = [f for f in (self.years, self.months, self.month_days) if f is not None]
        return len(bound), -sum(len(f) for f in bound)

    def intersect(self, other: CalendarDays) -> CalendarDays | None:
        """The days both cover, or None when they share none."""
        fields: list[frozenset[int] | None] = []
        for mine, theirs in (
            (self.years, other.years),
            (self.months, other.months),
            (self.month_days, other.month_days),
        ):
            both = theirs if mine is None else mine if theirs is None else mine & theirs
            if both is not None and not both:
                return None
            fields.append(both)
        return CalendarDays(*fields)
NUMBER_MATCH_DIGITS = "digits"
NUMBER_MATCH_EXACT = "exact"
NUMBER_MATCHES = (NUMBER_MATCH_DIGITS, NUMBER_MATCH_EXACT)
PRICE_AT_START = "price_at_start"  # a call is priced wholly by the band of its start
SPLIT_AT_BAND_CHANGE = "split_at_band_change"  # each part by its own band (CGRateS)
BAND_RULES = (PRICE_AT_START, SPLIT_AT_BAND_CHANGE)


@dataclass(frozen=True, slots=True)
class RateRow:
    """One priced row of a tariff.

    `rate` is per minute for voice/speech/fax, per message segment for SMS/MMS, per month for
    numbers and recurring fees. `increment=None` means the tariff's default increment.
    `weekdays` uses ISO numbering (Monday = 1); `hours` is a half-open [start, end) local
    time window in the tariff's timezone, and may wrap midnight (22:00-06:00).
    """

    prefix: str
    destination: str
    rate: Decimal
    service: Service = Service.VOICE
    direction: Direction = Direction.OUTBOUND
    number_type: NumberType = NumberType.ANY
    connect_fee: Decimal = Decimal(0)
    increment: Increment | None = None
    min_seconds: int = 0
    free_seconds: int = 0
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    weekdays: frozenset[int] | None = None
    hours: tuple[time, time] | None = None
    # Later rate groups, sorted by start_s (empty: one rate for the whole call).
    tiers: tuple[RateTier, ...] = ()
    # Per-row rounding of the final charge (CGRateS rounds per destination rate); None means
    # the tariff's `decimals` / `rounding` settings.
    decimals: int | None = None
    rounding: str | None = None
    # Calendar days the row is limited to (with `weekdays`/`hours`, part of its time band).
    calendar: CalendarDays | None = None
    # The call's cost is capped at `max_cost` (connect fee included); the strategy says what
    # happens past it: MAX_COST_FREE (the rest is free) or MAX_COST_DISCONNECT (sessions are
    # authorised only until the cost reaches it). None: no cap.
    max_cost: Decimal | None = None
    max_cost_strategy: str | None = None
    # Data and generic rows: how many units (bytes) `rate` is the price of; their increment
    # (first/next) counts units too. None for every other service.
    rate_unit: int | None = None


UNIT_SERVICES = (Service.DATA, Service.GENERIC)


@dataclass(frozen=True, slots=True)
class TariffSettings:
    """Tariff-level settings chosen at import."""

    currency: str
    default_increment: Increment = DEFAULT_INCREMENT
    timezone: str = "UTC"
    decimals: int = 6
    rounding: str = "ROUND_HALF_UP"  # a decimal module rounding constant name
    max_call_s: int = DEFAULT_MAX_CALL_S
    # How a dialled number meets the prefixes: "digits" (native decks: ``+44 20...``,
    # ``0044...`` and ``4420...`` are one number, prefixes are digits) or "exact" (CGRateS:
    # the number as given, so ``+49`` and ``49`` differ and named destinations such as
    # ``voicemail`` match).
    number_match: str = NUMBER_MATCH_DIGITS
    # A call to a short number (an extension) that no row prices is free when True (native
    # decks); when False it is "no rate" like any other unmatched number (CGRateS).
    free_extensions: bool = True
    # A call crossing a time-band boundary: PRICE_AT_START (native decks) or
    # SPLIT_AT_BAND_CHANGE (CGRateS; see `domain/increments.py`, "Band splitting").
    band_rule: str = PRICE_AT_START


@dataclass(frozen=True, slots=True)
class RowError:
    """A bad input row: its 1-based line number in the file and a readable reason."""

    line: int
    reason: str
    source: str = ""  # file name inside a folder import (CGRateS), empty otherwise


@dataclass(frozen=True, slots=True)
class Tariff:
    name: str
    settings: TariffSettings
    rows: tuple[RateRow, ...] = field(default_factory=tuple)
    version: int = 1
