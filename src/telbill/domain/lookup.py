"""A compiled, immutable rate index of one tariff: which row prices an event.

Rules, in order:

1. Rows are grouped by (service, direction) and then by number type. A request for a number
   type T looks in T's rows first and falls back to the ``any`` rows. A request without a
   type (or ``any``, what rating does: the prefix tells the type) takes the longest prefix
   over all rows; at equal length an ``any`` row wins over a typed one (the number's type
   is not known), and typed rows are compared by rules 4 and 5.
2. Longest prefix wins: the digits are cut at each prefix length present (a dict per
   length, longest first), never a scan of the rows. The empty prefix (CGRateS ``*any``)
   matches every number, at the lowest priority: any longer prefix in force wins over it.
3. Only rows in force at the event's start count: ``effective_from <= start < effective_to``
   (either bound may be open). A longer prefix with no row in force falls back to a shorter.
4. Time bands: ``weekdays`` (ISO, Monday = 1) and ``hours`` (half-open ``[start, end)``,
   wrapping midnight when start > end; start == end is the whole day) are read in the
   tariff's timezone at the event's start. The weekday is the local day of the start
   (a Friday 22:00-06:00 band does not cover Saturday 02:00 unless Saturday is listed).
   Calendar days (`CalendarDays`: years, months, month days) are read the same way.
   At one prefix, a row bound to calendar days that matches beats one that is not, and the
   narrower days beat the wider (`CalendarDays.specificity`); then a banded row beats an
   unbanded one.
5. Remaining ties: the latest ``effective_from`` wins, then the earlier row in the file.
6. The key looked up (`TariffIndex.key_of`): a tariff matching "digits" (native decks) looks
   up the number's rating digits (``+44 20``, ``0044 20`` and ``4420`` are one number); one
   matching "exact" (CGRateS) looks up the number as given, without surrounding spaces, so
   ``+49`` and ``49`` are different prefixes and a named destination (``voicemail``) is a
   prefix like any other.
7. Band changes (`TariffIndex.band_changes`): the instants during a call at which the row
   pricing it may change are the local midnights (weekdays, calendar days) and the edges of
   the rows' hours; a tariff with no banded row has none. Effective dates do not split a
   call: the rows in force at its start price all of it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telbill.domain.increments import TimedPrice, check_tiers, validate_rounding
from telbill.domain.money import MONEY_DECIMALS, validate_currency
from telbill.domain.numbers import rating_digits
from telbill.domain.tariffs import (
    BAND_RULES,
    MAX_COST_STRATEGIES,
    NUMBER_MATCH_EXACT,
    NUMBER_MATCHES,
    UNIT_SERVICES,
    Direction,
    NumberType,
    RateRow,
    Service,
    Tariff,
    TariffSettings,
)
from telbill.errors import InvalidInput, NoRate

_NUMBER_TYPE_ORDER = tuple(NumberType)
_EPOCH_MIN = datetime.min.replace(tzinfo=ZoneInfo("UTC"))
_ANY_DAY = (0, 0)  # the calendar specificity of a row bound to no calendar days
MAX_EXACT_KEY = 64  # characters of a number matched as given (CGRateS destinations)

# prefix length -> prefix -> row positions in the tariff, for one number type
_Table = dict[int, dict[str, tuple[int, ...]]]


@dataclass(frozen=True, slots=True)
class RateMatch:
    """The row that prices an event, and why it was chosen."""

    row: RateRow
    position: int  # index of the row in Tariff.rows
    banded: bool


@lru_cache(maxsize=64)
def tariff_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown timezone {name!r}") from exc


def in_force(row: RateRow, at: datetime) -> bool:
    """True when `row` is effective at `at` (half-open [effective_from, effective_to))."""
    if row.effective_from is not None and at < row.effective_from:
        return False
    return row.effective_to is None or at < row.effective_to


def in_band(row: RateRow, local: datetime) -> bool:
    """True when the local time `local` is inside the row's calendar days, weekdays and
    hours."""
    if row.weekdays is not None and local.isoweekday() not in row.weekdays:
        return False
    if row.calendar is not None and not row.calendar.covers(local.date()):
        return False
    if row.hours is None:
        return True
    start, end = row.hours
    now = local.time().replace(tzinfo=None)
    if start == end:
        return True
    if start < end:
        return start <= now < end
    return now >= start or now < end


def is_banded(row: RateRow) -> bool:
    return row.weekdays is not None or row.hours is not None or row.calendar is not None


def exact_key(number: str) -> str:
    """A number matched as given (rule 6): printable, no inner spaces, at most 64 characters."""
    if not isinstance(number, str):
        raise InvalidInput(f"phone number must be text: {number!r}")
    key = number.strip()
    if (
        not key
        or len(key) > MAX_EXACT_KEY
        or not key.isprintable()
        or any(c.isspace() for c in key)
    ):
        raise InvalidInput(f"not a destination: {number!r}")
    return key


def _check_row(row: RateRow, position: int, settings: TariffSettings) -> None:
    if settings.number_match == NUMBER_MATCH_EXACT:
        if row.prefix and exact_key(row.prefix) != row.prefix:
            raise InvalidInput(f"row {position + 1}: bad prefix {row.prefix!r}")
    elif row.prefix and not (row.prefix.isascii() and row.prefix.isdigit()):
        raise InvalidInput(f"row {position + 1}: prefix must be digits, got {row.prefix!r}")
    for bound in (row.effective_from, row.effective_to):
        if bound is not None and bound.tzinfo is None:
            raise InvalidInput(f"row {position + 1}: effective dates must be timezone-aware")
    if row.hours is not None and not all(isinstance(h, time) for h in row.hours):
        raise InvalidInput(f"row {position + 1}: hours must be two times")
    if row.min_seconds < 0 or row.free_seconds < 0:
        raise InvalidInput(f"row {position + 1}: min_seconds and free_seconds must be >= 0")
    if (row.service in UNIT_SERVICES) != (row.rate_unit is not None) or (
        row.rate_unit is not None and row.rate_unit < 1
    ):
        raise InvalidInput(
            f"row {position + 1}: a data or generic row needs a rate unit of at least 1, "
            "and only those rows have one"
        )
    if row.max_cost is not None and (
        not row.max_cost.is_finite()
        or row.max_cost <= 0
        or row.max_cost_strategy not in MAX_COST_STRATEGIES
    ):
        raise InvalidInput(
            f"row {position + 1}: max_cost must be positive with a strategy of "
            f"{', '.join(MAX_COST_STRATEGIES)}"
        )
    if row.decimals is not None and not 0 <= row.decimals <= MONEY_DECIMALS:
        raise InvalidInput(
            f"row {position + 1}: decimals must be between 0 and {MONEY_DECIMALS}, "
            f"got {row.decimals}"
        )
    try:
        if row.rounding is not None:
            validate_rounding(row.rounding)
        if row.tiers:
            check_tiers(row.increment or settings.default_increment, row.tiers)
    except InvalidInput as exc:
        raise InvalidInput(f"row {position + 1}: {exc.message}") from exc


class TariffIndex:
    """Immutable lookup structure compiled from a `Tariff` (see module rules)."""

    __slots__ = (
        "tariff", "zone", "rounding", "exact", "band_edges", "_tables", "_lengths", "_prices",
    )

    def __init__(self, tariff: Tariff) -> None:
        self.tariff = tariff
        settings = tariff.settings
        self.zone = tariff_zone(settings.timezone)
        self.rounding = validate_rounding(settings.rounding)  # canonical ROUND_* name
        validate_currency(settings.currency)
        if not 0 <= settings.decimals <= MONEY_DECIMALS:
            raise InvalidInput(
                f"tariff decimals must be between 0 and {MONEY_DECIMALS}, got {settings.decimals}"
            )
        if settings.max_call_s < 1:
            raise InvalidInput(f"max_call_s must be positive, got {settings.max_call_s}")
        if settings.number_match not in NUMBER_MATCHES:
            raise InvalidInput(
                f"number_match must be one of {', '.join(NUMBER_MATCHES)}, "
                f"got {settings.number_match!r}"
            )
        self.exact = settings.number_match == NUMBER_MATCH_EXACT
        if settings.band_rule not in BAND_RULES:
            raise InvalidInput(
                f"band_rule must be one of {', '.join(BAND_RULES)}, got {settings.band_rule!r}"
            )
        edges: set[time] = set()
        for row in tariff.rows:
            if is_banded(row):
                edges.add(time(0))
                if row.hours is not None:
                    edges.update(row.hours)
        self.band_edges = tuple(sorted(edges))
        building: dict[tuple[Service, Direction, NumberType], dict[int, dict[str, list[int]]]]
        building = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
        for position, row in enumerate(tariff.rows):
            _check_row(row, position, settings)
            key = (row.service, row.direction, row.number_type)
            building[key][len(row.prefix)][row.prefix].append(position)
        self._tables: dict[tuple[Service, Direction, NumberType], _Table] = {
            key: {length: {p: tuple(v) for p, v in by_prefix.items()}
                  for length, by_prefix in by_length.items()}
            for key, by_length in building.items()
        }
        self._lengths = {
            key: tuple(sorted(table, reverse=True)) for key, table in self._tables.items()
        }
        self._prices: dict[int, TimedPrice] = {}

    @property
    def name(self) -> str:
        return self.tariff.name

    @property
    def version(self) -> int:
        return self.tariff.version

    @property
    def currency(self) -> str:
        return self.tariff.settings.currency

    def band_changes(self, start: datetime, end: datetime) -> list[datetime]:
        """The instants in (start, end) where the row pricing a call may change (rule 7), in
        order, timezone-aware; [] for a tariff without banded rows."""
        if not self.band_edges or end <= start:
            return []
        local = start.astimezone(self.zone)
        day = local.date()
        found: list[datetime] = []
        while True:
            for edge in self.band_edges:
                moment = datetime.combine(day, edge, tzinfo=self.zone)
                if moment >= end:
                    return found
                if moment > start:
                    found.append(moment)
            day += timedelta(days=1)

    def key_of(self, number: str) -> str:
        """The text this tariff's prefixes match for `number` (rule 6); InvalidInput for junk."""
        return exact_key(number) if self.exact else rating_digits(number)

    def table(
        self, service: Service, direction: Direction, number_type: NumberType
    ) -> _Table:
        """Prefix length -> prefix -> row positions (read-only view, for the batch rater)."""
        return self._tables.get((service, direction, number_type), {})

    def price_of(self, match: RateMatch) -> TimedPrice:
        """The row's timed price with the tariff's default increment, rounding and cap."""
        cached = self._prices.get(match.position)
        if cached is not None:
            return cached
        price = TimedPrice.for_row(match.row, self.tariff.settings)
        self._prices[match.position] = price
        return price

    def rounding_of(self, position: int) -> tuple[int, str]:
        """Decimals and rounding mode of the final amount of row `position` (index in
        Tariff.rows): the row's own when it sets them (CGRateS), else the tariff's."""
        row = self.tariff.rows[position]
        decimals = self.tariff.settings.decimals if row.decimals is None else row.decimals
        rounding = self.rounding if row.rounding is None else validate_rounding(row.rounding)
        return decimals, rounding

    def find(
        self,
        digits: str,
        *,
        service: Service = Service.VOICE,
        direction: Direction = Direction.OUTBOUND,
        at: datetime,
        number_type: NumberType | None = None,
    ) -> RateMatch | None:
        """The row pricing `digits` at `at`, or None. `at` must be timezone-aware."""
        if at.tzinfo is None:
            raise InvalidInput("event time must be timezone-aware")
        local = at.astimezone(self.zone)
        if number_type is not None and number_type is not NumberType.ANY:
            for kind in (number_type, NumberType.ANY):
                match = self._longest(digits, (service, direction, kind), at, local)
                if match is not None:
                    return match[1]
            return None
        best: RateMatch | None = None
        best_key: tuple[int, bool, bool, datetime, int] | None = None
        for kind in _NUMBER_TYPE_ORDER:
            found = self._longest(digits, (service, direction, kind), at, local)
            if found is None:
                continue
            length, candidate = found
            key = (
                length,
                kind is NumberType.ANY,
                candidate.banded,
                candidate.row.effective_from or _EPOCH_MIN,
                -candidate.position,
            )
            if best_key is None or key > best_key:
                best, best_key = candidate, key
        return best

    def lookup(
        self,
        digits: str,
        *,
        service: Service = Service.VOICE,
        direction: Direction = Direction.OUTBOUND,
        at: datetime,
        number_type: NumberType | None = None,
    ) -> RateMatch:
        """Like `find`, but raises NoRate when nothing matches."""
        match = self.find(
            digits, service=service, direction=direction, at=at, number_type=number_type
        )
        if match is None:
            raise NoRate(
                f"no {direction.value} {service.value} rate for {digits or 'empty number'} "
                f"in tariff {self.name!r} at {at.isoformat()}",
                number=digits,
                tariff=self.name,
            )
        return match

    def _longest(
        self,
        digits: str,
        key: tuple[Service, Direction, NumberType],
        at: datetime,
        local: datetime,
    ) -> tuple[int, RateMatch] | None:
        table = self._tables.get(key)
        if table is None:
            return None
        for length in self._lengths[key]:
            if length > len(digits):
                continue
            positions = table[length].get(digits[:length])
            if positions is None:
                continue
            chosen = self._choose(positions, at, local)
            if chosen is not None:
                return length, chosen
        return None

    def _choose(
        self, positions: tuple[int, ...], at: datetime, local: datetime
    ) -> RateMatch | None:
        best: RateMatch | None = None
        best_key: tuple[tuple[int, int], bool, datetime] | None = None
        rows = self.tariff.rows
        for position in positions:
            row = rows[position]
            if not in_force(row, at) or not in_band(row, local):
                continue
            calendar = row.calendar.specificity if row.calendar is not None else _ANY_DAY
            key = (calendar, is_banded(row), row.effective_from or _EPOCH_MIN)
            if best_key is None or key > best_key:
                best, best_key = RateMatch(row, position, key[1]), key
        return best


def compile_tariff(tariff: Tariff) -> TariffIndex:
    """Compile `tariff` into an immutable lookup index (validates rows and settings)."""
    return TariffIndex(tariff)


__all__ = [
    "RateMatch",
    "TariffIndex",
    "compile_tariff",
    "exact_key",
    "in_band",
    "in_force",
    "is_banded",
]
