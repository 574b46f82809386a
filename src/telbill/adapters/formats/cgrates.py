"""A CGRateS tariff-plan folder -> one telbill tariff per rating profile.

Files (header line starting with ``#``, 1-based line numbers):
``Destinations.csv`` (Id, Prefix), ``Rates.csv`` (Id, ConnectFee, Rate, RateUnit, RateIncrement,
GroupIntervalStart), ``DestinationRates.csv`` (Id, DestinationId, RatesTag, RoundingMode,
RoundingDecimals, MaxCost, MaxCostStrategy), ``Timings.csv`` (Id, Years, Months, MonthDays,
WeekDays, Time), ``RatingPlans.csv`` (Id, DestinationRatesId, TimingTag, Weight) and
``RatingProfiles.csv`` (Tenant, Category, Subject, ActivationTime, RatingPlanId,
RatesFallbackSubject).

How CGRateS concepts become RateRows:

* A rate's price is per RateUnit; telbill rates are per minute (voice) or per message (SMS):
  ``rate * 60 / unit`` must be exact (within 9 decimals), else the rate is refused.
* Rate groups (GroupIntervalStart): the group at 0 s gives the row's rate and increment; two
  groups with the same price where the second starts at the first's increment become one
  ``first/next`` increment (0 s @60s + 60 s @1s = 60/1); any other later groups become
  `RateTier`s. A later group must start on a multiple of the previous group's increment.
* Rounding per destination rate (*up, *down, *middle, *toeven + decimals) goes on each row
  (`RateRow.decimals` / `rounding`) and is applied once to the final cost: CGRateS's
  per-increment pre-rounding is deliberately not reproduced, so costs are exact.
* Timings: in each rating plan, for each destination and each moment of the week, the rate
  whose timing is active there wins by highest Weight, then by latest start time; the result
  is cut into weekday/hour bands (an all-week winner becomes an unbanded row). Timings bound to
  years, months or month days cannot be expressed and are refused. WeekDays use CGRateS's
  numbering (0 or 7 = Sunday), converted to ISO.
* Rating profiles: each (Tenant, Category, Subject) becomes the tariff
  ``TENANT:CATEGORY:SUBJECT``; successive ActivationTimes become effective_from/effective_to of
  the rows. RatesFallbackSubject (``;``-separated, followed recursively) adds the fallback
  subject's rows for numbers the subject itself has no prefix for. Destination ``*any`` and
  Subject ``*any`` are kept: ``*any`` matches every number (empty prefix); the ``*any`` subject
  is its own tariff (the default for subjects without a profile).
* MaxCost (non-zero) is refused: telbill has no per-call cost cap.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from decimal import Decimal, localcontext
from itertools import combinations
from pathlib import Path

from telbill.adapters.formats.tariff_fields import (
    RATE_DECIMALS,
    parse_datetime,
    parse_rate,
    row_key,
    zone,
)
from telbill.domain.lookup import exact_key
from telbill.domain.money import DECIMAL_CONTEXT, MONEY_DECIMALS
from telbill.domain.tariffs import (
    MAX_COST_STRATEGIES,
    NUMBER_MATCH_EXACT,
    SPLIT_AT_BAND_CHANGE,
    UNIT_SERVICES,
    CalendarDays,
    Increment,
    RateRow,
    RateTier,
    RowError,
    Service,
    TariffSettings,
)
from telbill.errors import InvalidInput

ANY = "*any"
ROUNDING_MODES = {
    "*up": "ROUND_UP",
    "*down": "ROUND_DOWN",
    "*middle": "ROUND_HALF_UP",
    "*toeven": "ROUND_HALF_EVEN",
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),
    "ns": Decimal("0.000000001"),
}
WEEK = 7 * 24 * 3600
MAX_PREFIX = 32  # characters of a stored prefix
MAX_CALENDARS = 8  # distinct calendar timings per destination (their overlaps are 2^n)


@dataclass
class CgratesPlan:
    """Tariffs read from a folder: name -> rows, and every bad line."""

    tariffs: dict[str, list[RateRow]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)

    def settings_for(
        self, name: str, base: TariffSettings, *, band_rule: str | None = None
    ) -> TariffSettings:
        """`base` with CGRateS's rules (no free extensions; calls split at band changes
        unless `band_rule` says otherwise; numbers matched as given when a destination is
        not plain digits, such as ``+49`` or ``voicemail``), and the tariff's rounding when
        all its rows share one."""
        rows = self.tariffs.get(name, [])
        exact = any(r.prefix and not (r.prefix.isascii() and r.prefix.isdigit()) for r in rows)
        base = replace(
            base, free_extensions=False, band_rule=band_rule or SPLIT_AT_BAND_CHANGE
        )
        if exact:
            base = replace(base, number_match=NUMBER_MATCH_EXACT)
        roundings = {(r.decimals, r.rounding) for r in rows}
        if len(roundings) == 1:
            decimals, rounding = roundings.pop()
            if decimals is not None and rounding is not None:
                return replace(base, decimals=decimals, rounding=rounding)
        return base


# --- reading the files ------------------------------------------------------------------


def _records(
    folder: Path, name: str, width: int, plan: CgratesPlan, *, optional: bool = False
) -> Iterator[tuple[int, list[str]]]:
    path = folder / name
    if not path.exists():
        if not optional:
            plan.errors.append(RowError(0, f"missing file {name}", name))
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for record in reader:
            line = reader.line_num
            if not record or not "".join(record).strip() or record[0].lstrip().startswith("#"):
                continue
            if len(record) < width:
                plan.errors.append(
                    RowError(line, f"expected {width} fields, got {len(record)}", name)
                )
                continue
            yield line, [cell.strip() for cell in record]


def parse_duration_s(text: str) -> Decimal:
    """Go duration text (``60s``, ``1m``, ``1m30s``, ``0``) -> seconds; a bare number is a
    count (nanoseconds in Go, messages for SMS rates)."""
    text = text.strip()
    if text.isdigit():
        return Decimal(text)
    position, total = 0, Decimal(0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += Decimal(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise InvalidInput(f"not a duration: {text!r} (e.g. 60s, 1m, 0s)")
    return total


def _number(text: str, what: str) -> Decimal:
    """A CGRateS number: empty means 0, as CGRateS's loader reads it."""
    return parse_rate(text, what) if text.strip() else Decimal(0)


def _step(text: str) -> str:
    """RateUnit / RateIncrement: empty or 0 means 1 s, as CGRateS's rater reads it."""
    return "1s" if not text.strip() or parse_duration_s(text) == 0 else text


def _whole_seconds(text: str, what: str) -> int:
    value = parse_duration_s(text)
    if value != value.to_integral_value():
        raise InvalidInput(f"{what} {text!r} is not a whole number of seconds")
    return int(value)


@dataclass(frozen=True)
class _Slot:
    line: int
    connect_fee: Decimal
    rate: Decimal
    unit: str
    increment: str
    start_s: int


@dataclass(frozen=True)
class _DestRate:
    line: int
    destination_id: str
    rate_id: str
    decimals: int | None
    rounding: str | None
    max_cost: Decimal | None = None
    max_cost_strategy: str | None = None


@dataclass(frozen=True)
class _Timing:
    weekdays: frozenset[int]  # ISO
    start_s: int
    end_s: int  # seconds of the day, 86400 = midnight
    calendar: CalendarDays | None = None


@dataclass(frozen=True)
class _PlanEntry:
    line: int
    destination_rates_id: str
    timing_id: str
    weight: Decimal


@dataclass(frozen=True)
class _Activation:
    line: int
    at: datetime
    plan_id: str
    fallbacks: tuple[str, ...]


def _read_destinations(folder: Path, plan: CgratesPlan) -> dict[str, list[str]]:
    destinations: dict[str, list[str]] = defaultdict(list)
    # Optional: a plan whose destination rates are all `*any` needs none.
    records = _records(folder, "Destinations.csv", 2, plan, optional=True)
    for line, (dest_id, prefix, *_) in records:
        try:
            key = "" if prefix == ANY else exact_key(prefix)
            if len(key) > MAX_PREFIX:
                raise InvalidInput(f"a destination prefix is at most {MAX_PREFIX} characters")
            destinations[dest_id].append(key)
        except InvalidInput as exc:
            plan.errors.append(RowError(line, exc.message, "Destinations.csv"))
    return destinations


def _read_rates(folder: Path, plan: CgratesPlan) -> dict[str, list[_Slot]]:
    rates: dict[str, list[_Slot]] = defaultdict(list)
    for line, cells in _records(folder, "Rates.csv", 6, plan):
        rate_id, connect_fee, rate, unit, increment, start = cells[:6]
        try:
            slot = _Slot(
                line,
                _number(connect_fee, "ConnectFee"),
                _number(rate, "Rate"),
                _step(unit),
                _step(increment),
                _whole_seconds(start or "0s", "GroupIntervalStart"),
            )
        except InvalidInput as exc:
            plan.errors.append(RowError(line, exc.message, "Rates.csv"))
            continue
        rates[rate_id].append(slot)
    return rates


def _read_destination_rates(folder: Path, plan: CgratesPlan) -> dict[str, list[_DestRate]]:
    result: dict[str, list[_DestRate]] = defaultdict(list)
    for line, cells in _records(folder, "DestinationRates.csv", 5, plan):
        dr_id, dest_id, rate_id, mode, decimals = cells[:5]
        max_cost = cells[5] if len(cells) > 5 else ""
        strategy = cells[6] if len(cells) > 6 else ""
        try:
            rounding = None
            if mode:
                if mode not in ROUNDING_MODES:
                    raise InvalidInput(
                        f"RoundingMode must be one of {', '.join(ROUNDING_MODES)}, got {mode!r}"
                    )
                rounding = ROUNDING_MODES[mode]
            digits = None
            if decimals:
                if not decimals.isdigit():
                    raise InvalidInput(f"RoundingDecimals must be a whole number, got {decimals!r}")
                # Charges are stored in micro-units: rounding at more decimals than that is
                # rounding at 6 with the same method (docs/cgrates.md).
                digits = min(int(decimals), MONEY_DECIMALS)
            cap = _number(max_cost, "MaxCost")
            if strategy and strategy not in MAX_COST_STRATEGIES:
                raise InvalidInput(
                    f"MaxCostStrategy must be one of {', '.join(MAX_COST_STRATEGIES)}, "
                    f"got {strategy!r}"
                )
        except InvalidInput as exc:
            plan.errors.append(RowError(line, exc.message, "DestinationRates.csv"))
            continue
        # CGRateS applies MaxCost only with a strategy: without one it caps nothing.
        capped = cap > 0 and bool(strategy)
        result[dr_id].append(
            _DestRate(
                line, dest_id, rate_id, digits if rounding else None, rounding,
                cap if capped else None, strategy if capped else None,
            )
        )
    return result


def _seconds_of_day(text: str) -> int:
    if text in ("", ANY, "*asap"):
        return 0
    try:
        clock = time.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"Time must look like 08:00:00, got {text!r}") from None
    return clock.hour * 3600 + clock.minute * 60 + clock.second


def _read_timings(folder: Path, plan: CgratesPlan) -> dict[str, _Timing]:
    timings = {ANY: _Timing(frozenset(range(1, 8)), 0, 86400)}
    if not (folder / "Timings.csv").exists():
        return timings
    for line, cells in _records(folder, "Timings.csv", 6, plan):
        timing_id, years, months, month_days, weekdays, clock = cells[:6]
        try:
            calendar = CalendarDays(
                _days(years, "Years", 1, 9999),
                _days(months, "Months", 1, 12),
                _days(month_days, "MonthDays", 1, 31),
            )
            days: set[int] = set()
            if weekdays in ("", ANY):
                days = set(range(1, 8))
            else:
                for part in weekdays.split(";"):
                    if not part.strip().isdigit() or int(part) > 7:
                        raise InvalidInput(f"WeekDays must be 0-6 separated by ';': {weekdays!r}")
                    days.add(int(part) or 7)
            start_text, _, end_text = clock.partition(";")
            start = _seconds_of_day(start_text)
            end = _seconds_of_day(end_text) if end_text else 86400
            if end == 0:
                end = 86400
            if end <= start:
                raise InvalidInput(f"Time window {clock!r} ends before it starts")
        except InvalidInput as exc:
            plan.errors.append(RowError(line, exc.message, "Timings.csv"))
            continue
        timings[timing_id] = _Timing(
            frozenset(days), start, end, calendar if calendar.specificity[0] else None
        )
    return timings


def _days(text: str, what: str, low: int, high: int) -> frozenset[int] | None:
    """A Timings.csv list (``1;2;3``, ``*any`` or empty: None = any)."""
    if text in ("", ANY):
        return None
    values: set[int] = set()
    for part in text.split(";"):
        part = part.strip()
        if not part.isdigit() or not low <= int(part) <= high:
            raise InvalidInput(f"{what} must be {low}-{high} separated by ';': {text!r}")
        values.add(int(part))
    return frozenset(values)


def _read_rating_plans(folder: Path, plan: CgratesPlan) -> dict[str, list[_PlanEntry]]:
    plans: dict[str, list[_PlanEntry]] = defaultdict(list)
    for line, cells in _records(folder, "RatingPlans.csv", 4, plan):
        plan_id, dr_id, timing_id, weight = cells[:4]
        try:
            value = parse_rate(weight or "0", "Weight")
        except InvalidInput as exc:
            plan.errors.append(RowError(line, exc.message, "RatingPlans.csv"))
            continue
        plans[plan_id].append(_PlanEntry(line, dr_id, timing_id or ANY, value))
    return plans


def _read_profiles(
    folder: Path, plan: CgratesPlan, timezone: str
) -> dict[tuple[str, str, str], list[_Activation]]:
    tz = zone(timezone)
    profiles: dict[tuple[str, str, str], list[_Activation]] = defaultdict(list)
    for line, cells in _records(folder, "RatingProfiles.csv", 5, plan):
        tenant, category, subject, activation, plan_id = cells[:5]
        fallback = cells[5] if len(cells) > 5 else ""
        try:
            at = parse_datetime(activation, "ActivationTime", tz)
        except InvalidInput as exc:
            plan.errors.append(RowError(line, exc.message, "RatingProfiles.csv"))
            continue
        fallbacks = tuple(s.strip() for s in fallback.split(";") if s.strip())
        profiles[(tenant, category, subject)].append(_Activation(line, at, plan_id, fallbacks))
    return profiles


# --- converting ------------------------------------------------------------------------


def _service_of(category: str) -> Service:
    """The service a category's usage is rated as: messages (sms, mms), data bytes (data),
    generic units (generic), else voice seconds."""
    lowered = category.lower()
    if "mms" in lowered:
        return Service.MMS
    if "sms" in lowered:
        return Service.SMS
    if "data" in lowered:
        return Service.DATA
    if "generic" in lowered:
        return Service.GENERIC
    return Service.VOICE


def _per_unit_price(slot: _Slot, service: Service) -> Decimal:
    """Slot price per minute (voice) or per message (SMS), exact or refused."""
    unit = parse_duration_s(slot.unit)
    if unit <= 0:
        raise InvalidInput(f"RateUnit must be positive, got {slot.unit!r}")
    with localcontext(DECIMAL_CONTEXT):
        price = slot.rate / unit if service in (Service.SMS, Service.MMS) else slot.rate * 60 / unit
        exponent = price.normalize().as_tuple().exponent
        if price * unit != (slot.rate if service in (Service.SMS, Service.MMS) else slot.rate * 60):
            raise InvalidInput(f"Rate {slot.rate} per {slot.unit} has no exact per-minute price")
    if isinstance(exponent, int) and -exponent > RATE_DECIMALS:
        raise InvalidInput(
            f"Rate {slot.rate} per {slot.unit} needs more than {RATE_DECIMALS} decimals "
            "per minute"
        )
    return price.normalize() if price != price.to_integral_value() else price.quantize(1)


@dataclass(frozen=True)
class _RowSpec:
    """Everything of a RateRow but prefix, destination, band and dates."""

    rate: Decimal
    connect_fee: Decimal
    increment: Increment
    tiers: tuple[RateTier, ...]
    decimals: int | None
    rounding: str | None
    max_cost: Decimal | None = None
    max_cost_strategy: str | None = None
    rate_unit: int | None = None


def _whole_units(text: str, what: str) -> int:
    """A data/generic RateUnit or RateIncrement: a whole count of bytes or units (a bare
    number, as CGRateS's data plans write them)."""
    value = parse_duration_s(text) if text.strip().isdigit() else None
    if value is None or value < 1:
        raise InvalidInput(f"{what} of a data or generic rate must be a whole count, got {text!r}")
    return int(value)


def _unit_spec(slots: list[_Slot], dest_rate: _DestRate) -> _RowSpec:
    """A data (bytes) or generic (units) rate: price per RateUnit units, RateIncrement
    units at a time."""
    if len(slots) > 1:
        raise InvalidInput("data and generic rates cannot have several rate groups")
    slot = slots[0]
    step = _whole_units(slot.increment, "RateIncrement")
    return _RowSpec(
        slot.rate, slot.connect_fee, Increment(step, step), (), dest_rate.decimals,
        dest_rate.rounding, dest_rate.max_cost, dest_rate.max_cost_strategy,
        _whole_units(slot.unit, "RateUnit"),
    )


def _row_spec(slots: list[_Slot], dest_rate: _DestRate, service: Service) -> _RowSpec:
    if service in UNIT_SERVICES:
        return _unit_spec(slots, dest_rate)
    ordered = sorted(slots, key=lambda s: s.start_s)
    if ordered[0].start_s != 0:
        # CGRateS loads it but has no price before the first group: those seconds are free.
        first = ordered[0]
        ordered.insert(0, _Slot(first.line, first.connect_fee, Decimal(0), "1s", "1s", 0))
    if len({s.start_s for s in ordered}) != len(ordered):
        raise InvalidInput("the rate has two groups with the same GroupIntervalStart")
    prices = [_per_unit_price(s, service) for s in ordered]
    if service in (Service.SMS, Service.MMS):
        if len(ordered) > 1:
            raise InvalidInput("message rates cannot have several rate groups")
        return _RowSpec(
            prices[0], ordered[0].connect_fee, Increment(1, 1), (), dest_rate.decimals,
            dest_rate.rounding, dest_rate.max_cost, dest_rate.max_cost_strategy,
        )
    increments = [_whole_seconds(s.increment, "RateIncrement") for s in ordered]
    if min(increments) < 1:
        raise InvalidInput("RateIncrement must be at least 1s")
    for previous, slot, step in zip(ordered, ordered[1:], increments, strict=False):
        if (slot.start_s - previous.start_s) % step:
            raise InvalidInput(
                f"group starting at {slot.start_s}s does not fall on a whole increment "
                f"({step}s) of the group before it"
            )
    increment = Increment(increments[0], increments[0])
    tiers = tuple(
        RateTier(s.start_s, price, Increment(step, step))
        for s, price, step in zip(ordered[1:], prices[1:], increments[1:], strict=True)
    )
    if len(tiers) == 1 and tiers[0].rate == prices[0] and tiers[0].start_s == increments[0]:
        increment, tiers = Increment(increments[0], increments[1]), ()
    return _RowSpec(
        prices[0], ordered[0].connect_fee, increment, tiers, dest_rate.decimals,
        dest_rate.rounding, dest_rate.max_cost, dest_rate.max_cost_strategy,
    )


@dataclass(frozen=True)
class _Candidate:
    spec: _RowSpec
    destination_id: str
    timing: _Timing
    weight: Decimal


def _bands(candidates: list[_Candidate]) -> list[tuple[_Candidate, frozenset[int] | None,
                                                       tuple[time, time] | None]]:
    """Cut the week into bands, each won by one candidate (weight, then latest start)."""
    per_day: dict[tuple[int, int, int], int] = {}
    for day in range(1, 8):
        active = [(i, c) for i, c in enumerate(candidates) if day in c.timing.weekdays]
        cuts = sorted({0, 86400} | {c.timing.start_s for _, c in active}
                      | {c.timing.end_s for _, c in active})
        segments: list[tuple[int, int, int]] = []
        for start, end in zip(cuts, cuts[1:], strict=False):
            live = [
                (c.weight, c.timing.start_s, -i, i)
                for i, c in active
                if c.timing.start_s <= start < c.timing.end_s
            ]
            if not live:
                continue
            winner = max(live)[3]
            if segments and segments[-1][2] == winner and segments[-1][1] == start:
                segments[-1] = (segments[-1][0], end, winner)
            else:
                segments.append((start, end, winner))
        for start, end, winner in segments:
            per_day[(day, start, end)] = winner
    grouped: dict[tuple[int, int, int], set[int]] = defaultdict(set)
    for (day, start, end), winner in per_day.items():
        grouped[(start, end, winner)].add(day)
    result: list[tuple[_Candidate, frozenset[int] | None, tuple[time, time] | None]] = []
    for (start, end, winner), days in sorted(grouped.items()):
        weekdays = None if len(days) == 7 else frozenset(days)
        hours = None if (start, end) == (0, 86400) else (_clock(start), _clock(end))
        result.append((candidates[winner], weekdays, hours))
    return result


def _calendar_bands(
    candidates: list[_Candidate],
) -> Iterator[
    tuple[CalendarDays | None, _Candidate, frozenset[int] | None, tuple[time, time] | None]
]:
    """The week's bands of the timings without calendar days; then, for each set of the
    calendars that timings are bound to whose days overlap, the bands of those common days,
    where the timings of every calendar in the set compete with the weekly ones by weight.
    The lookup picks the narrowest calendar that covers a day, which is the intersection of
    all the calendars covering it: so each day is priced by exactly the timings active on it.
    """
    weekly = [c for c in candidates if c.timing.calendar is None]
    for candidate, weekdays, hours in _bands(weekly):
        yield None, candidate, weekdays, hours
    calendars = list(
        dict.fromkeys(c.timing.calendar for c in candidates if c.timing.calendar is not None)
    )
    if len(calendars) > MAX_CALENDARS:
        raise InvalidInput(
            f"more than {MAX_CALENDARS} distinct calendar timings for one destination"
        )
    common: dict[CalendarDays, frozenset[CalendarDays]] = {}
    for size in range(1, len(calendars) + 1):
        for chosen in combinations(calendars, size):
            days: CalendarDays | None = chosen[0]
            for other in chosen[1:]:
                days = days.intersect(other) if days is not None else None
            if days is not None:  # the larger set wins when two give the same days
                common[days] = frozenset(chosen)
    for days, chosen_set in common.items():
        group = weekly + [c for c in candidates if c.timing.calendar in chosen_set]
        for candidate, weekdays, hours in _bands(group):
            yield days, candidate, weekdays, hours


def _clock(seconds: int) -> time:
    seconds %= 86400
    return time(seconds // 3600, seconds % 3600 // 60, seconds % 60)


class _Converter:
    def __init__(self, folder: Path, plan: CgratesPlan, timezone: str) -> None:
        self.plan = plan
        self.destinations = _read_destinations(folder, plan)
        self.rates = _read_rates(folder, plan)
        self.destination_rates = _read_destination_rates(folder, plan)
        self.timings = _read_timings(folder, plan)
        self.rating_plans = _read_rating_plans(folder, plan)
        self.profiles = _read_profiles(folder, plan, timezone)
        self._plan_rows: dict[tuple[str, Service], list[RateRow] | None] = {}

    def _error(self, line: int, source: str, reason: str) -> None:
        self.plan.errors.append(RowError(line, reason, source))

    def plan_rows(self, plan_id: str, service: Service, line: int) -> list[RateRow] | None:
        key = (plan_id, service)
        if key not in self._plan_rows:
            self._plan_rows[key] = self._convert_plan(plan_id, service, line)
        return self._plan_rows[key]

    def _convert_plan(self, plan_id: str, service: Service, line: int) -> list[RateRow] | None:
        entries = self.rating_plans.get(plan_id)
        if not entries:
            self._error(line, "RatingProfiles.csv", f"unknown RatingPlanId {plan_id!r}")
            return None
        by_prefix: dict[str, list[_Candidate]] = defaultdict(list)
        for entry in entries:
            timing = self.timings.get(entry.timing_id)
            if timing is None:
                self._error(entry.line, "RatingPlans.csv", f"unknown TimingTag {entry.timing_id!r}")
                continue
            dest_rates = self.destination_rates.get(entry.destination_rates_id)
            if not dest_rates:
                self._error(
                    entry.line,
                    "RatingPlans.csv",
                    f"unknown DestinationRatesId {entry.destination_rates_id!r}",
                )
                continue
            for dest_rate in dest_rates:
                prefixes = (
                    [""] if dest_rate.destination_id == ANY
                    else self.destinations.get(dest_rate.destination_id)
                )
                slots = self.rates.get(dest_rate.rate_id)
                if not prefixes:
                    self._error(
                        dest_rate.line,
                        "DestinationRates.csv",
                        f"unknown DestinationId {dest_rate.destination_id!r}",
                    )
                    continue
                if not slots:
                    self._error(
                        dest_rate.line, "DestinationRates.csv",
                        f"unknown RatesTag {dest_rate.rate_id!r}",
                    )
                    continue
                try:
                    spec = _row_spec(slots, dest_rate, service)
                except InvalidInput as exc:
                    self._error(
                        slots[0].line, "Rates.csv", f"rate {dest_rate.rate_id}: {exc.message}"
                    )
                    continue
                candidate = _Candidate(spec, dest_rate.destination_id, timing, entry.weight)
                for prefix in prefixes:
                    by_prefix[prefix].append(candidate)
        rows: list[RateRow] = []
        for prefix, candidates in by_prefix.items():
            for calendar, candidate, weekdays, hours in _calendar_bands(candidates):
                spec = candidate.spec
                rows.append(
                    RateRow(
                        prefix=prefix,
                        destination=candidate.destination_id,
                        rate=spec.rate,
                        service=service,
                        connect_fee=spec.connect_fee,
                        increment=spec.increment,
                        weekdays=weekdays,
                        hours=hours,
                        tiers=spec.tiers,
                        decimals=spec.decimals,
                        rounding=spec.rounding,
                        calendar=calendar,
                        max_cost=spec.max_cost,
                        max_cost_strategy=spec.max_cost_strategy,
                        rate_unit=spec.rate_unit,
                    )
                )
        return rows

    def subject_rows(
        self, tenant: str, category: str, subject: str, seen: tuple[str, ...] = ()
    ) -> list[RateRow]:
        """The subject's rows over all its activations, with fallback subjects merged in."""
        activations = sorted(self.profiles.get((tenant, category, subject), []),
                             key=lambda a: a.at)
        service = _service_of(category)
        rows: list[RateRow] = []
        for index, activation in enumerate(activations):
            until = activations[index + 1].at if index + 1 < len(activations) else None
            own = self.plan_rows(activation.plan_id, service, activation.line) or []
            period = [_dated(r, activation.at, until) for r in own]
            covered = {r.prefix for r in own}
            for fallback in activation.fallbacks:
                if fallback in seen or fallback == subject:
                    continue
                if (tenant, category, fallback) not in self.profiles:
                    continue  # CGRateS ignores a fallback subject without a profile
                extra = self.subject_rows(tenant, category, fallback, (*seen, subject))
                added: set[str] = set()
                for row in extra:
                    if _is_covered(row.prefix, covered):
                        continue
                    dated = _intersect(row, activation.at, until)
                    if dated is not None:
                        period.append(dated)
                        added.add(row.prefix)
                covered |= added
            rows.extend(period)
        return rows


def _is_covered(prefix: str, covered: set[str]) -> bool:
    """A number starting with `prefix` always finds one of `covered` (a prefix of it)."""
    return any(prefix[:n] in covered for n in range(len(prefix) + 1))


def _dated(row: RateRow, start: datetime, until: datetime | None) -> RateRow:
    return replace(row, effective_from=start, effective_to=until)


def _intersect(row: RateRow, start: datetime, until: datetime | None) -> RateRow | None:
    begin = max(start, row.effective_from) if row.effective_from else start
    ends = [t for t in (until, row.effective_to) if t is not None]
    end = min(ends) if ends else None
    if end is not None and end <= begin:
        return None
    return replace(row, effective_from=begin, effective_to=end)


def read_cgrates_folder(folder: Path, *, timezone: str = "UTC") -> CgratesPlan:
    """Read a tariff-plan folder into one row list per rating profile (and errors)."""
    plan = CgratesPlan()
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a CGRateS tariff-plan folder")
    converter = _Converter(folder, plan, timezone)
    for tenant, category, subject in sorted(converter.profiles):
        rows = converter.subject_rows(tenant, category, subject)
        name = f"{tenant}:{category}:{subject}"
        seen: dict[tuple[object, ...], RateRow] = {}
        unique: list[RateRow] = []
        for row in rows:
            key = (*row_key(row), row.calendar)
            if key in seen:
                if seen[key] != row:
                    plan.errors.append(
                        RowError(0, f"{name}: two different rates for prefix {row.prefix!r} "
                                 "in the same band and period", "RatingPlans.csv")
                    )
                continue
            seen[key] = row
            unique.append(row)
        plan.tariffs[name] = unique
    plan.errors = list(dict.fromkeys(plan.errors))
    return plan
