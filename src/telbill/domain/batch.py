"""Vectorised batch rating with numpy, bit-for-bit equal to `rate_event`.

How it works:

* Compile once. Every prefix of the tariff's (service, direction) rows becomes an interval
  of the K-digit number space (K = the longest prefix): prefix ``P`` of length L covers
  ``[P * 10^(K-L), (P+1) * 10^(K-L))``. Prefix intervals nest or are disjoint, so they are
  flattened into sorted breakpoints, each owning the longest prefix that covers it: a longest
  prefix match of a million numbers is one `numpy.searchsorted`.
* A prefix is on the fast path when it has exactly one row (of any number type), with no
  time band (weekdays, hours, calendar days), no MaxCost and a non-negative rate. Its rate
  and connect fee become integers at a fixed decimal scale S (the most decimals of any such
  row), so cost = (rate x billed + connect x 60) / (60 x 10^S) is an exact rational,
  rounded once with integer arithmetic per the row's decimals and rounding mode (the
  tariff's unless the row overrides them, as CGRateS rows do). An effective-dated row is
  checked per CDR against its start.
* Rate groups (`RateTier`) are vectorised too: each entry carries up to T tier starts, rates
  and increments (missing tiers start "never"); the group a call ends in gives its rounding,
  and the billed stretch [0, billed) is cut at the tier starts, each piece times its group's
  rate (see `domain/increments.py` for the rule this reproduces).
* Correctness first: a CDR falls back to `rate_event` (one at a time) when its prefix is not
  on the fast path, its row is not in force at its start, its number is shorter than K digits
  (a longer prefix could be wrongly matched by padding) or is an extension, its duration is
  negative, or the plan prices relative to cost or refuses public-network calls.

Input columns: numbers as integers plus their digit counts (leading zeros survive), billable
durations in whole seconds (0 = unanswered) and start times in UTC epoch seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from telbill.domain.increments import ROUNDING_MODES, validate_rounding
from telbill.domain.lookup import TariffIndex, is_banded
from telbill.domain.money import MONEY_DECIMALS, to_micros
from telbill.domain.numbers import rating_digits
from telbill.domain.plans import CallClass, ChargingPlan, Pricing
from telbill.domain.rating import EXTENSION_MAX_DIGITS, call_duration_s, rate_event
from telbill.domain.tariffs import Direction, NumberType, RateRow, Service
from telbill.domain.usage import UsageEvent
from telbill.errors import CallClassNotAllowed, InvalidInput, NoRate, TelbillError

I64 = npt.NDArray[np.int64]
MAX_KEY_DIGITS = 18  # 10^18 < 2^63
_INT64_BUDGET = 2**62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_BOUND_LOW = np.iinfo(np.int64).min
_NO_BOUND_HIGH = np.iinfo(np.int64).max
_MIN_SLICE = 65_536  # smaller slices are not worth a thread
_POW10 = np.array([10**i for i in range(MAX_KEY_DIGITS + 1)], dtype=np.int64)
_NEVER_S = 2**40  # the start of a tier an entry does not have: later than any call
_MODES = tuple(sorted(ROUNDING_MODES))  # rounding mode name <-> small integer code


class Status(IntEnum):
    OK = 0
    NO_RATE = 1
    INVALID = 2
    NOT_ALLOWED = 3
    ERROR = 4


@dataclass(frozen=True, slots=True)
class CdrColumns:
    """A batch of voice CDRs as columns (all arrays the same length)."""

    number: I64  # the dialled digits as an integer
    ndigits: I64  # how many digits (so "0049..." keeps its zeros)
    duration_s: I64  # billable seconds from answer; 0 = unanswered
    start_s: I64  # UTC epoch seconds of the event's start

    @classmethod
    def from_strings(
        cls, numbers: Sequence[str], duration_s: Sequence[int], start_s: Sequence[int]
    ) -> CdrColumns:
        """Columns from number strings (``+44...``, ``0044...``, digits); junk raises."""
        digits = [rating_digits(n) for n in numbers]
        return cls(
            number=np.array([int(d) if d else 0 for d in digits], dtype=np.int64),
            ndigits=np.array([len(d) for d in digits], dtype=np.int64),
            duration_s=np.asarray(duration_s, dtype=np.int64),
            start_s=np.asarray(start_s, dtype=np.int64),
        )

    @classmethod
    def from_events(
        cls,
        events: Sequence[UsageEvent],
        *,
        service: Service = Service.VOICE,
        direction: Direction = Direction.OUTBOUND,
    ) -> tuple[CdrColumns, list[int], list[int]]:
        """Split usage events into batch columns and the rest.

        Returns (columns, positions of the events in the columns, positions of the events
        to rate one by one with `rate_event`). An event goes to the rest when it is not a
        plain call of this service and direction (speech seconds, a call class given by the
        switch), its start has a fraction of a second, or its number or duration is invalid.
        """
        numbers: list[int] = []
        lengths: list[int] = []
        durations: list[int] = []
        starts: list[int] = []
        batched: list[int] = []
        rest: list[int] = []
        for position, event in enumerate(events):
            digits, duration = "", 0
            try:
                eligible = (
                    event.service is service
                    and event.direction is direction
                    and event.speech_s == 0
                    and event.call_class is None
                    and event.start.tzinfo is not None
                    and event.start.microsecond == 0
                )
                if eligible:
                    digits = rating_digits(event.to_number)
                    duration = call_duration_s(event)
            except TelbillError:
                eligible = False
            if not eligible or not digits:
                rest.append(position)
                continue
            numbers.append(int(digits))
            lengths.append(len(digits))
            durations.append(duration)
            starts.append((event.start - _EPOCH) // timedelta(seconds=1))
            batched.append(position)
        columns = cls(
            number=np.array(numbers, dtype=np.int64),
            ndigits=np.array(lengths, dtype=np.int64),
            duration_s=np.array(durations, dtype=np.int64),
            start_s=np.array(starts, dtype=np.int64),
        )
        return columns, batched, rest

    def __len__(self) -> int:
        return int(self.number.shape[0])

    def take(self, positions: Sequence[int]) -> CdrColumns:
        """The CDRs at these positions, in this order (a copy)."""
        at = np.asarray(positions, dtype=np.intp)
        return CdrColumns(self.number[at], self.ndigits[at], self.duration_s[at], self.start_s[at])

    def digits(self, i: int) -> str:
        """The number of CDR `i` as a digit string."""
        n = int(self.ndigits[i])
        return str(int(self.number[i])).zfill(n) if n else ""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Per CDR: cost in micro-units, billed seconds, position of the pricing row in
    `Tariff.rows` (-1: none, e.g. a free local extension or an error), status, and how many
    CDRs took the per-event path."""

    cost_micros: I64
    billed_s: I64
    row: I64
    status: npt.NDArray[np.int8]
    fallbacks: int

    def __len__(self) -> int:
        return int(self.cost_micros.shape[0])


def _epoch_ceil(moment: datetime | None, default: int) -> int:
    if moment is None:
        return default
    return -((_EPOCH - moment) // timedelta(seconds=1))


def _scaled(value: Decimal, scale: int) -> int:
    scaled = value.scaleb(scale)
    if scaled != scaled.to_integral_value():  # pragma: no cover - scale is chosen to fit
        raise InvalidInput(f"{value} does not fit {scale} decimals")
    return int(scaled)


def _decimals_of(value: Decimal) -> int:
    """Decimal places as written (``0.20930`` -> 5): a scale that holds the value exactly."""
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class BatchRater:
    """Compiled batch rater for one tariff, service and direction (voice by default)."""

    def __init__(
        self,
        index: TariffIndex,
        *,
        service: Service = Service.VOICE,
        direction: Direction = Direction.OUTBOUND,
        plan: ChargingPlan | None = None,
        account: str = "batch",
    ) -> None:
        if service not in (Service.VOICE, Service.FAX):
            raise InvalidInput("the batch rater prices timed calls (voice, fax)")
        self.index = index
        self.service = service
        self.direction = direction
        self.plan = plan
        self.account = account
        call_class = (
            CallClass.INCOMING if direction is Direction.INBOUND else CallClass.PUBLIC_NETWORK
        )
        self.all_fallback = plan is not None and (
            plan.pricing is Pricing.RELATIVE or call_class not in plan.allowed_call_classes
        )
        self._compile()

    def _compile(self) -> None:
        settings = self.index.tariff.settings
        rows = self.index.tariff.rows
        by_prefix: dict[str, list[int]] = {}
        if self.index.exact:
            # Prefixes matched as given (CGRateS's ``+49``, ``voicemail``) are not digit
            # intervals: every CDR takes the per-event path, its digits looked up as given.
            self.all_fallback = True
        for kind in NumberType if not self.index.exact else ():
            table = self.index.table(self.service, self.direction, kind)
            for by_text in table.values():
                for prefix, positions in by_text.items():
                    by_prefix.setdefault(prefix, []).extend(positions)
        key_digits = max((len(p) for p in by_prefix), default=0)
        if key_digits > MAX_KEY_DIGITS:
            self.all_fallback = True
            key_digits = MAX_KEY_DIGITS
        self.key_digits = key_digits

        simple: dict[str, int] = {}
        for prefix, found in by_prefix.items():
            if len(found) != 1 or len(prefix) > key_digits:
                continue
            if self._is_simple(rows[found[0]]):
                simple[prefix] = found[0]
        # Decks repeat a few hundred distinct prices: convert each distinct value once.
        amounts = {rows[p].rate for p in simple.values()}
        amounts.update(rows[p].connect_fee for p in simple.values())
        amounts.update(tier.rate for p in simple.values() for tier in rows[p].tiers)
        scale = max((_decimals_of(amount) for amount in amounts), default=0)
        scaled = {amount: _scaled(amount, scale) for amount in amounts}
        self.scale = scale
        self.max_call_s = settings.max_call_s

        prefixes = sorted(by_prefix)
        entry_of = {prefix: i for i, prefix in enumerate(prefixes)}
        count = len(prefixes) + 1  # the last entry is "no prefix matches"
        self._no_entry = count - 1
        # Per-entry parameters as Python lists first (item assignment into numpy is slow).
        entry_row = [-1] * count
        rate, connect = [0] * count, [0] * count
        first, nxt = [1] * count, [1] * count
        free, minimum = [0] * count, [0] * count
        valid_from, valid_to = [_NO_BOUND_LOW] * count, [_NO_BOUND_HIGH] * count
        tariff_mode = _MODES.index(self.index.rounding)
        decimals, mode = [settings.decimals] * count, [tariff_mode] * count
        tier_count = max((len(rows[p].tiers) for p in simple.values()), default=0)
        tier_start = [[_NEVER_S] * count for _ in range(tier_count)]
        tier_rate = [[0] * count for _ in range(tier_count)]
        tier_first = [[1] * count for _ in range(tier_count)]
        tier_next = [[1] * count for _ in range(tier_count)]
        worst = 0
        for prefix, position in simple.items():
            i = entry_of[prefix]
            row = rows[position]
            increment = row.increment or settings.default_increment
            entry_row[i] = position
            rate[i], connect[i] = scaled[row.rate], scaled[row.connect_fee]
            first[i], nxt[i] = increment.first_s, increment.next_s
            free[i], minimum[i] = row.free_seconds, row.min_seconds
            valid_from[i] = _epoch_ceil(row.effective_from, _NO_BOUND_LOW)
            valid_to[i] = _epoch_ceil(row.effective_to, _NO_BOUND_HIGH)
            if row.decimals is not None:
                decimals[i] = row.decimals
            if row.rounding is not None:
                mode[i] = _MODES.index(validate_rounding(row.rounding))
            top_rate, rounding_s = rate[i], increment.first_s + increment.next_s
            for k, tier in enumerate(row.tiers):
                tier_start[k][i], tier_rate[k][i] = tier.start_s, scaled[tier.rate]
                tier_first[k][i], tier_next[k][i] = tier.increment.first_s, tier.increment.next_s
                top_rate = max(top_rate, tier_rate[k][i])
                rounding_s = max(rounding_s, tier.increment.first_s + tier.increment.next_s)
            longest = max(settings.max_call_s, row.min_seconds) + rounding_s
            worst = max(worst, top_rate * longest + connect[i] * 60)
        most_decimals = max(decimals, default=settings.decimals)
        if (
            worst * 10 ** max(0, most_decimals - scale) >= _INT64_BUDGET
            or scale > MAX_KEY_DIGITS - 2
        ):
            # Integers would overflow int64: every CDR takes the per-event path instead.
            self.all_fallback = True
            simple = {}
            entry_row, rate, connect = [-1] * count, [0] * count, [0] * count
            tier_count, tier_start, tier_rate, tier_first, tier_next = 0, [], [], [], []
        self._entry_row = np.array(entry_row, dtype=np.int64)
        self._rate = np.array(rate, dtype=np.int64)
        self._connect = np.array(connect, dtype=np.int64)
        self._first = np.array(first, dtype=np.int64)
        self._next = np.array(nxt, dtype=np.int64)
        self._free = np.array(free, dtype=np.int64)
        self._min = np.array(minimum, dtype=np.int64)
        self._from = np.array(valid_from, dtype=np.int64)
        self._to = np.array(valid_to, dtype=np.int64)
        self._decimals = np.array(decimals, dtype=np.int64)
        self._mode = np.array(mode, dtype=np.int64)
        self._tier_start = [np.array(v, dtype=np.int64) for v in tier_start]
        self._tier_rate = [np.array(v, dtype=np.int64) for v in tier_rate]
        self._tier_first = [np.array(v, dtype=np.int64) for v in tier_first]
        self._tier_next = [np.array(v, dtype=np.int64) for v in tier_next]
        self.tier_count = tier_count

        self._any_dated = bool(
            np.any(self._from != _NO_BOUND_LOW) or np.any(self._to != _NO_BOUND_HIGH)
        )
        fast_entries = np.array([entry_of[p] for p in simple], dtype=np.int64)
        self._modes = sorted({mode[entry_of[p]] for p in simple})
        self._uniform: dict[str, int] = {}
        for name in ("_first", "_next", "_free", "_min", "_connect", "_decimals", "_mode"):
            values = np.unique(getattr(self, name)[fast_entries])
            if values.shape[0] == 1:
                self._uniform[name] = int(values[0])

        # Flatten the nested prefix intervals of the K-digit space into owned breakpoints.
        bounds, owners = _flatten(prefixes, key_digits, self._no_entry)
        self._bounds = np.array(bounds, dtype=np.int64)
        self._owners = np.array(owners, dtype=np.int64)

    def _is_simple(self, row: RateRow) -> bool:
        return (
            not is_banded(row)
            and row.max_cost is None  # a capped cost goes through rate_event
            and row.rate >= 0
            and row.connect_fee >= 0
            and row.rate.is_finite()
            and row.connect_fee.is_finite()
        )

    def rate(self, cdrs: CdrColumns, *, threads: int = 1) -> BatchResult:
        """Rate a batch of CDRs; see the module docstring for the fast path and fallbacks.

        `threads` > 1 rates slices of a large batch in parallel threads (numpy releases the
        GIL in its loops); the result is the same as with one thread.
        """
        size = len(cdrs)
        if threads > 1 and size >= 2 * _MIN_SLICE:
            return self._rate_threaded(cdrs, threads)
        number, ndigits = cdrs.number, cdrs.ndigits
        duration, start = cdrs.duration_s, cdrs.start_s
        safe = self._owners[self._slots(number, ndigits)]
        has_entry = safe != self._no_entry
        row = self._entry_row[safe]
        fast = (
            (row >= 0)
            & (ndigits >= self.key_digits)
            & (ndigits > EXTENSION_MAX_DIGITS)
            & (duration >= 0)
        )
        if self._any_dated:
            fast &= (start >= self._from[safe]) & (start < self._to[safe])
        no_rate = (
            ~has_entry
            & (ndigits >= self.key_digits)
            & (ndigits > EXTENSION_MAX_DIGITS)
            & (duration >= 0)
        )
        if self.all_fallback:
            fast[:] = False
            no_rate[:] = False

        billed = self._billed(duration, safe)
        cost = self._cost_micros(billed, duration, safe)
        status = np.zeros(size, dtype=np.int8)
        # Unanswered or 0 s: nothing to bill, whether or not a row matches.
        zero = no_rate & (duration == 0)
        status[no_rate & ~zero] = Status.NO_RATE
        cost = np.where(fast, cost, 0)
        billed = np.where(fast, billed, 0)
        row = np.where(fast, row, -1)

        slow = np.flatnonzero(~fast & ~no_rate)
        for i in slow.tolist():
            cost[i], billed[i], row[i], status[i] = self._rate_one(cdrs, i)
        return BatchResult(cost, billed, row, status, int(slow.shape[0]))

    def _slots(self, number: I64, ndigits: I64) -> I64:
        """Index of the breakpoint interval holding each number's K-digit key."""
        size = int(number.shape[0])
        low, high = (int(ndigits.min()), int(ndigits.max())) if size else (0, 0)
        if low == high:  # one length for all: divide by a constant
            key = number // (10 ** max(low - self.key_digits, 0))
        else:
            key = number // _POW10[np.clip(ndigits - self.key_digits, 0, MAX_KEY_DIGITS)]
        # Binary search with sorted needles walks the breakpoints in order: several times
        # faster on large batches than random needles (cache misses), for the cost of a sort.
        # Sorting (key << bits | position) as one int64 is faster than an argsort.
        bits = max(size - 1, 1).bit_length()
        if size and int(key.max()).bit_length() + bits <= 62:
            packed = (key << bits) | np.arange(size, dtype=np.int64)
            packed.sort()
            order = packed & ((1 << bits) - 1)
            sorted_keys = packed >> bits
        else:
            order = np.argsort(key)
            sorted_keys = key[order]
        found = np.searchsorted(self._bounds, sorted_keys, side="right") - 1
        slots: I64 = np.empty_like(found)
        slots[order] = found
        return slots

    def _rate_threaded(self, cdrs: CdrColumns, threads: int) -> BatchResult:
        size = len(cdrs)
        parts = min(threads, size // _MIN_SLICE)
        edges = [size * k // parts for k in range(parts + 1)]
        slices = [
            CdrColumns(
                cdrs.number[a:b], cdrs.ndigits[a:b], cdrs.duration_s[a:b], cdrs.start_s[a:b]
            )
            for a, b in itertools.pairwise(edges)
        ]
        with ThreadPoolExecutor(max_workers=parts) as pool:
            results = list(pool.map(self.rate, slices))
        return BatchResult(
            np.concatenate([r.cost_micros for r in results]),
            np.concatenate([r.billed_s for r in results]),
            np.concatenate([r.row for r in results]),
            np.concatenate([r.status for r in results]),
            sum(r.fallbacks for r in results),
        )

    def _param(self, name: str, entry: I64) -> I64 | int:
        """A per-entry parameter for each CDR: a plain int when every fast entry shares it
        (numpy then divides by a constant, and no gather is needed)."""
        uniform = self._uniform.get(name)
        if uniform is not None:
            return uniform
        gathered: I64 = getattr(self, name)[entry]
        return gathered

    def _billed(self, duration: I64, entry: I64) -> I64:
        first, nxt = self._param("_first", entry), self._param("_next", entry)
        free, minimum = self._param("_free", entry), self._param("_min", entry)
        chargeable = np.minimum(duration, self.max_call_s)
        if not isinstance(free, int) or free:
            chargeable = chargeable - free
        start: I64 | int = 0
        for k in range(self.tier_count):  # the group the call ends in: last one started
            tier_start = self._tier_start[k][entry]
            reached = tier_start < chargeable
            start = np.where(reached, tier_start, start)
            first = np.where(reached, self._tier_first[k][entry], first)
            nxt = np.where(reached, self._tier_next[k][entry], nxt)
        above = np.maximum(chargeable - start - first, 0)
        billed = (start + first + (above + (nxt - 1)) // nxt * nxt).astype(np.int64, copy=False)
        billed[chargeable <= 0] = 0
        if not isinstance(minimum, int) or minimum:
            np.maximum(billed, minimum, out=billed, where=billed > 0)
        return billed

    def _cost_micros(self, billed: I64, duration: I64, entry: I64) -> I64:
        numerator = self._numerator(billed, entry)
        connect = self._param("_connect", entry)
        if not isinstance(connect, int) or connect:
            numerator += np.where(duration > 0, connect * 60, 0)
        decimals, mode = self._param("_decimals", entry), self._param("_mode", entry)
        if isinstance(decimals, int) and isinstance(mode, int):  # one rounding for all
            if self.scale >= decimals:
                denominator = 60 * 10 ** (self.scale - decimals)
            else:
                numerator = numerator * 10 ** (decimals - self.scale)
                denominator = 60
            quotient = _round_division(numerator, denominator, _MODES[mode])
            result: I64 = quotient * 10 ** (MONEY_DECIMALS - decimals)
            return result
        # Rows round differently (CGRateS rounds per destination rate): per-CDR powers of ten.
        decimals = np.broadcast_to(decimals, numerator.shape)
        numerator = numerator * _POW10[np.maximum(decimals - self.scale, 0)]
        denominators = 60 * _POW10[np.maximum(self.scale - decimals, 0)]
        quotient = np.zeros_like(numerator)
        for code in self._modes:
            rounded = _round_division(numerator, denominators, _MODES[code])
            quotient = np.where(mode == code, rounded, quotient)
        per_row: I64 = quotient * _POW10[MONEY_DECIMALS - decimals]
        return per_row

    def _numerator(self, billed: I64, entry: I64) -> I64:
        """Sum of rate x billed seconds over the rate groups, at scale S."""
        if not self.tier_count:
            plain: I64 = self._rate[entry] * billed
            return plain
        # The billed stretch [0, billed) cut at the tier starts: group k holds
        # clip(billed - start_k, 0, start_k+1 - start_k) seconds.
        starts = [np.zeros_like(billed)] + [t[entry] for t in self._tier_start]
        rates = [self._rate[entry]] + [r[entry] for r in self._tier_rate]
        total: I64 = np.zeros_like(billed)
        for k, (start, rate) in enumerate(zip(starts, rates, strict=True)):
            seconds = billed - start
            if k + 1 < len(starts):
                seconds = np.minimum(seconds, starts[k + 1] - start)
            total += rate * np.maximum(seconds, 0)
        return total

    def _rate_one(self, cdrs: CdrColumns, i: int) -> tuple[int, int, int, int]:
        event = UsageEvent(
            id=str(i),
            account=self.account,
            to_number=cdrs.digits(i),
            start=datetime.fromtimestamp(int(cdrs.start_s[i]), UTC),
            service=self.service,
            direction=self.direction,
            duration_s=int(cdrs.duration_s[i]),
        )
        try:
            rated = rate_event(event, self.index, self.plan, labels=False)
        except NoRate:
            return 0, 0, -1, Status.NO_RATE
        except CallClassNotAllowed:
            return 0, 0, -1, Status.NOT_ALLOWED
        except InvalidInput:
            return 0, 0, -1, Status.INVALID
        except TelbillError:  # pragma: no cover - any other refusal of one CDR
            return 0, 0, -1, Status.ERROR
        charge = rated.charges[0]
        match = self.index.find(
            event.to_number, service=self.service, direction=self.direction, at=event.start
        )
        position = match.position if match is not None else -1
        return to_micros(charge.amount), charge.billed_units, position, Status.OK


def _flatten(prefixes: list[str], key_digits: int, nobody: int) -> tuple[list[int], list[int]]:
    """Breakpoints of the K-digit space and the entry owning [bound, next bound).

    Prefix intervals are laminar (nested or disjoint): sorted by start, outer first, a stack
    of open intervals gives the innermost (longest) prefix at every point in one pass.
    `prefixes[i]` is entry i; `nobody` owns the gaps.
    """
    space = 10**key_digits
    intervals = sorted(
        (int(prefix or "0") * 10 ** (key_digits - len(prefix)), len(prefix), entry)
        for entry, prefix in enumerate(prefixes)
    )
    bounds: list[int] = [0]
    owners: list[int] = [nobody]

    def emit(bound: int, owner: int) -> None:
        if bound >= space:
            return
        if bounds[-1] == bound:
            owners[-1] = owner
        else:
            bounds.append(bound)
            owners.append(owner)

    stack: list[tuple[int, int]] = []  # (end, entry) of the open intervals, innermost last
    for start, length, entry in intervals:
        while stack and stack[-1][0] <= start:
            closed_end, _ = stack.pop()
            emit(closed_end, stack[-1][1] if stack else nobody)
        emit(start, entry)
        stack.append((start + 10 ** (key_digits - length), entry))
    while stack:
        closed_end, _ = stack.pop()
        emit(closed_end, stack[-1][1] if stack else nobody)
    return bounds, owners


def _round_division(numerator: I64, denominator: int | I64, mode: str) -> I64:
    """round(numerator / denominator) for non-negative numerators, per a decimal mode name."""
    quotient = numerator // denominator
    remainder = numerator - quotient * denominator
    twice = 2 * remainder
    if mode == "ROUND_HALF_UP":
        bump = twice >= denominator
    elif mode == "ROUND_HALF_DOWN":
        bump = twice > denominator
    elif mode == "ROUND_HALF_EVEN":
        bump = (twice > denominator) | ((twice == denominator) & (quotient % 2 == 1))
    elif mode in ("ROUND_UP", "ROUND_CEILING"):
        bump = remainder > 0
    elif mode in ("ROUND_DOWN", "ROUND_FLOOR"):
        bump = np.zeros(numerator.shape, dtype=bool)
    elif mode == "ROUND_05UP":
        bump = (remainder > 0) & ((quotient % 5) == 0)
    else:  # pragma: no cover - validated when the tariff is compiled
        raise InvalidInput(f"unknown rounding mode {mode!r}")
    result: I64 = quotient + bump.astype(np.int64)
    return result


def compile_batch(
    index: TariffIndex,
    *,
    service: Service = Service.VOICE,
    direction: Direction = Direction.OUTBOUND,
    plan: ChargingPlan | None = None,
) -> BatchRater:
    """Compile `index` for batch rating of one service and direction."""
    return BatchRater(index, service=service, direction=direction, plan=plan)


__all__ = ["BatchRater", "BatchResult", "CdrColumns", "Status", "compile_batch"]
