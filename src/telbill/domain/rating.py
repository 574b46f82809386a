"""Rating: one usage event into exact charges, each with a breakdown a person can read.

Rules (each has a named test in tests/unit/test_rating_*.py):

* Voice bills from answer to end (or `duration_s` when only a duration is known); an
  unanswered call (no answer and no duration, or 0 s) costs nothing. When the event carries
  `call_segments`, only the billable ones count (clipped to answer..end). Fractions of a
  second round up to a whole second. Increments and the rest: see `domain/increments.py`.
* Speech recognition/synthesis seconds (`speech_s`) are a separate charge on the
  ``s:speech`` counter, priced by Service.SPEECH rows (an empty prefix matches every number).
* A forwarded / tracked call is two legs (`rate_forwarded_call`): the inbound leg to the
  tracked number, rated by an inbound row, and the outbound leg to the destination, rated by
  an outbound row. Inbound calls are priced by the called number (the DID); an inbound call
  to a toll-free number (a ``toll_free`` row, or a number labelled toll-free) is paid by the
  number's owner (`Payer.NUMBER_OWNER`).
* SMS outbound = segments x rate of the destination (+ connect fee once); inbound = the
  inbound row's rate per message, whatever its segments.
* Data (bytes) and generic units (CGRateS *data / *generic): the event's `units` rounded up
  to the row's increment (first/next, in units), cost = rate x billed units / the row's
  `rate_unit` + connect fee, capped at its MaxCost; counters ``B:data`` and ``u:generic``.
* No matching row: NoRate. A plan may refuse the call's class: CallClassNotAllowed. A call
  to a local extension with no matching row is free when the tariff says short numbers are
  free extensions (`TariffSettings.free_extensions`, the default of native decks); otherwise
  (CGRateS imports) it is NoRate like any other number.
* The number is looked up as the tariff matches numbers (`TariffIndex.key_of`): rating
  digits, or the number as given for a tariff matching "exact" (CGRateS).
* A plan priced relative to cost applies its markup to the exact cost; each charge is then
  rounded once with the decimals and rounding mode of its row (CGRateS rounds per
  destination rate), or the tariff's when the row sets none.
* A row with rate groups (`RateTier`) prices each group's seconds at its own rate; the
  explanation lists every group's billed seconds and rate.
* A call crossing a time-band boundary is priced wholly by the row of its start, unless the
  tariff's `band_rule` is ``split_at_band_change`` (CGRateS imports): then by parts, each
  billing block by the row in force when it starts (`domain/increments.py`, "Band
  splitting"), and the explanation lists the parts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from enum import StrEnum

from telbill.domain.increments import (
    GroupSeconds,
    TimedPrice,
    billed_groups,
    billed_seconds,
    billed_units,
    disconnect_after_s,
    max_affordable_seconds,
    split_cost,
    split_groups,
    uncapped_cost,
    unrounded_cost,
)
from telbill.domain.lookup import RateMatch, TariffIndex
from telbill.domain.money import (
    CALL_TIME,
    DECIMAL_CONTEXT,
    SMS_MESSAGES,
    SPEECH_TIME,
    format_amount,
    round_money,
)
from telbill.domain.numbers import country_of, number_labels, rating_digits
from telbill.domain.plans import CallClass, ChargingPlan, Pricing
from telbill.domain.sms import segment_sms
from telbill.domain.tariffs import (
    SPLIT_AT_BAND_CHANGE,
    UNIT_SERVICES,
    Direction,
    Increment,
    NumberType,
    Service,
)
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput

EXTENSION_MAX_DIGITS = 6  # dialled numbers this short are PBX extensions


class Payer(StrEnum):
    ACCOUNT = "account"  # the event's account (the caller, or the number's renter inbound)
    NUMBER_OWNER = "number_owner"  # toll-free: the owner of the called number pays


class Leg(StrEnum):
    CALL = "call"
    INBOUND_LEG = "inbound_leg"
    OUTBOUND_LEG = "outbound_leg"
    SPEECH = "speech"
    MESSAGE = "message"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Explanation:
    """How a charge was computed: every input of the arithmetic, for `explain_text`."""

    tariff: str
    tariff_version: int
    currency: str
    service: Service
    direction: Direction
    leg: Leg
    to_number: str
    matched_prefix: str | None = None
    destination: str | None = None
    row_number_type: NumberType | None = None
    country: str | None = None  # phonenumbers' label, not a price key
    number_label: str | None = None
    rate: Decimal | None = None
    rate_unit: str = "per minute"
    connect_fee: Decimal = Decimal(0)
    increment: str | None = None
    duration_s: int = 0
    max_call_s: int | None = None
    free_seconds: int = 0
    min_seconds: int = 0
    billed_seconds: int = 0
    groups: tuple[GroupSeconds, ...] = ()  # per rate group, only for a row with tiers
    segments: int | None = None
    encoding: str | None = None
    unrounded: Decimal = Decimal(0)
    decimals: int = 6
    rounding: str = "ROUND_HALF_UP"
    cost: Decimal = Decimal(0)  # rounded cost before any plan markup
    plan: str | None = None
    markup_percent: Decimal | None = None
    min_margin: Decimal | None = None
    effective_from: datetime | None = None
    banded: bool = False
    note: str | None = None
    max_cost: Decimal | None = None  # the row's MaxCost when it capped this charge
    max_cost_strategy: str | None = None
    split: bool = False  # `groups` are the parts of a call split at band changes

    def __post_init__(self) -> None:
        # A stored explanation comes back from JSON (services/quotes.py) with `groups` as a
        # list of mappings: rebuild the typed tuple so it equals the live one.
        groups: object = self.groups
        if not isinstance(groups, tuple) or not all(
            isinstance(group, GroupSeconds) for group in groups
        ):
            object.__setattr__(self, "groups", _restore_groups(groups))


def _restore_groups(stored: object) -> tuple[GroupSeconds, ...]:
    """Rate groups from their JSON form (a list of mappings); InvalidInput when malformed."""
    if not isinstance(stored, list | tuple):
        raise InvalidInput(f"rate groups must be a list, got {stored!r}")
    groups: list[GroupSeconds] = []
    for item in stored:
        if isinstance(item, GroupSeconds):
            groups.append(item)
            continue
        try:
            if not isinstance(item, Mapping) or isinstance(item["rate"], float):
                raise TypeError("a rate group must be a mapping with a decimal string rate")
            increment = item["increment"]
            groups.append(
                GroupSeconds(
                    start_s=int(item["start_s"]),
                    billed_s=int(item["billed_s"]),
                    rate=Decimal(str(item["rate"])),
                    increment=Increment(int(increment["first_s"]), int(increment["next_s"])),
                )
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidInput(f"not a stored rate group: {item!r}") from exc
    return tuple(groups)


@dataclass(frozen=True, slots=True)
class Charge:
    """One priced line of a rated event. `unit`/`billed_units` name the usage counter."""

    event_id: str
    account: str
    leg: Leg
    service: Service
    direction: Direction
    amount: Decimal
    currency: str
    unit: str  # "s:call", "s:speech", "msg:sms"...
    billed_units: int
    payer: Payer
    explanation: Explanation


@dataclass(frozen=True, slots=True)
class RatedEvent:
    event_id: str
    charges: tuple[Charge, ...] = field(default_factory=tuple)

    @property
    def total(self) -> Decimal:
        """Sum of the charges (a tariff has one currency, so they add up)."""
        return sum((c.amount for c in self.charges), Decimal(0))


def call_duration_s(event: UsageEvent) -> int:
    """Billable seconds of a voice event (see module rules); 0 when unanswered."""
    if event.call_segments:
        total = timedelta(0)
        for segment in event.call_segments:
            if not segment.billable:
                continue
            start = max(segment.start, event.answer) if event.answer else segment.start
            end = min(segment.end, event.end) if event.end else segment.end
            if end > start:
                total += end - start
        return math.ceil(total.total_seconds())
    if event.duration_s is not None:
        if event.duration_s < 0:
            raise InvalidInput(f"event {event.id}: duration must not be negative")
        return event.duration_s
    if event.answer is None:
        return 0
    if event.end is None:
        raise InvalidInput(f"event {event.id}: answered call without an end or a duration")
    seconds = (event.end - event.answer).total_seconds()
    if seconds < 0:
        raise InvalidInput(f"event {event.id}: call ends before it is answered")
    return math.ceil(seconds)


def _plain_digits(number: str) -> str | None:
    """The number's rating digits, or None when it is not a phone number (a named
    destination of a tariff matching numbers as given)."""
    try:
        return rating_digits(number)
    except InvalidInput:
        return None


def classify_call(event: UsageEvent, index: TariffIndex | None = None) -> CallClass:
    """The event's call class: as given by the switch, else inbound -> incoming, a short
    dialled number -> local extension, anything else -> public network. A named destination
    (not a phone number) of a tariff matching numbers as given is public network."""
    if event.call_class:
        try:
            return CallClass(event.call_class)
        except ValueError as exc:
            raise InvalidInput(f"unknown call class {event.call_class!r}") from exc
    if event.direction is Direction.INBOUND:
        return CallClass.INCOMING
    if index is not None and index.exact:
        digits = _plain_digits(event.to_number)
        if digits is None:
            index.key_of(event.to_number)  # junk still raises InvalidInput
            return CallClass.PUBLIC_NETWORK
    else:
        digits = rating_digits(event.to_number)
    if len(digits) <= EXTENSION_MAX_DIGITS:
        return CallClass.LOCAL_EXTENSION
    return CallClass.PUBLIC_NETWORK


def _apply_plan(
    unrounded: Decimal, decimals: int, rounding: str, plan: ChargingPlan | None
) -> Decimal:
    """The plan's price of an exact cost, rounded once with the row's decimals and mode."""
    priced = plan.price(unrounded) if plan is not None else unrounded
    return round_money(priced, decimals, rounding)


def _base_explanation(
    index: TariffIndex,
    event: UsageEvent,
    leg: Leg,
    service: Service,
    direction: Direction,
    digits: str,
    match: RateMatch | None,
    plan: ChargingPlan | None,
    labels: bool,
) -> Explanation:
    plain = _plain_digits(digits) if index.exact else digits
    public = plain is not None and len(plain) > EXTENSION_MAX_DIGITS
    full = number_labels(plain) if plain is not None and public and labels else None
    settings = index.tariff.settings
    explanation = Explanation(
        tariff=index.name,
        tariff_version=index.version,
        currency=index.currency,
        service=service,
        direction=direction,
        leg=leg,
        to_number=digits if index.exact or not public else "+" + digits,
        country=(
            (full.country if full else country_of(plain)) if plain is not None and public else None
        ),
        number_label=full.number_type if full else None,
        decimals=settings.decimals,
        rounding=index.rounding,
    )
    if match is not None:
        row = match.row
        decimals, rounding = index.rounding_of(match.position)
        explanation = replace(
            explanation,
            decimals=decimals,
            rounding=rounding,
            matched_prefix=row.prefix,
            destination=row.destination,
            row_number_type=row.number_type,
            rate=row.rate,
            connect_fee=row.connect_fee,
            effective_from=row.effective_from,
            banded=match.banded,
        )
    if plan is not None:
        explanation = replace(explanation, plan=plan.name)
        if plan.pricing is Pricing.RELATIVE:
            explanation = replace(
                explanation, markup_percent=plan.markup_percent, min_margin=plan.min_margin
            )
    return explanation


def _payer(direction: Direction, match: RateMatch | None, key: str) -> Payer:
    if direction is not Direction.INBOUND:
        return Payer.ACCOUNT
    if match is not None and match.row.number_type is NumberType.TOLL_FREE:
        return Payer.NUMBER_OWNER
    digits = _plain_digits(key) or ""
    if len(digits) > EXTENSION_MAX_DIGITS and number_labels(digits).number_type == "toll_free":
        return Payer.NUMBER_OWNER
    return Payer.ACCOUNT


def _band_parts(
    index: TariffIndex,
    key: str,
    service: Service,
    direction: Direction,
    start: datetime,
    duration_s: int,
    first: RateMatch,
) -> tuple[tuple[int, TimedPrice], ...]:
    """(offset from the start, price) of each part of a call of `duration_s` seconds: one
    part unless the tariff splits at band changes and the row changes during the call."""
    parts = [(0, first)]
    if index.tariff.settings.band_rule == SPLIT_AT_BAND_CHANGE and duration_s > 0:
        end = start + timedelta(seconds=min(duration_s, index.tariff.settings.max_call_s))
        for moment in index.band_changes(start, end):
            found = index.find(key, service=service, direction=direction, at=moment)
            if found is not None and found.position != parts[-1][1].position:
                offset = math.ceil((moment - start).total_seconds())
                parts.append((offset, found))
    return tuple((offset, index.price_of(match)) for offset, match in parts)


def _timed_charge(
    event: UsageEvent,
    index: TariffIndex,
    plan: ChargingPlan | None,
    *,
    leg: Leg,
    service: Service,
    direction: Direction,
    number: str,
    duration_s: int,
    unit: str,
    labels: bool,
    allow_free_extension: bool = False,
) -> Charge:
    digits = index.key_of(number)
    if duration_s <= 0:
        match = index.find(digits, service=service, direction=direction, at=event.start)
        note = "unanswered: nothing to bill" if service is Service.VOICE else "no usage"
        base = _base_explanation(index, event, leg, service, direction, digits, match, plan, labels)
        return Charge(
            event.id, event.account, leg, service, direction, Decimal(0), index.currency,
            unit, 0, _payer(direction, match, digits), replace(base, note=note),
        )
    if allow_free_extension and index.tariff.settings.free_extensions:
        found = index.find(digits, service=service, direction=direction, at=event.start)
        if found is None:
            base = _base_explanation(
                index, event, leg, service, direction, digits, None, plan, labels
            )
            return Charge(
                event.id, event.account, leg, service, direction, Decimal(0), index.currency,
                unit, 0, Payer.ACCOUNT,
                replace(base, duration_s=duration_s, note="local extension: free"),
            )
        match = found
    else:
        match = index.lookup(digits, service=service, direction=direction, at=event.start)
    price = index.price_of(match)
    parts = _band_parts(index, digits, service, direction, event.start, duration_s, match)
    if len(parts) > 1:
        groups = split_groups(duration_s, parts)
        seconds = sum(group.billed_s for group in groups)
        exact = split_cost(duration_s, parts)
        with localcontext(DECIMAL_CONTEXT):
            whole = sum((g.rate * g.billed_s for g in groups), Decimal(0)) / 60
        capped = price.max_cost is not None and exact < whole + price.connect_fee
    else:
        groups = billed_groups(duration_s, price) if price.tiers else ()
        seconds = billed_seconds(duration_s, price)
        exact = unrounded_cost(duration_s, price)
        capped = price.max_cost is not None and exact < uncapped_cost(duration_s, price)
    amount = _apply_plan(exact, price.decimals, price.rounding, plan)
    base = _base_explanation(index, event, leg, service, direction, digits, match, plan, labels)
    explanation = replace(
        base,
        increment=str(price.increment),
        duration_s=duration_s,
        max_call_s=price.max_call_s,
        free_seconds=price.free_seconds,
        min_seconds=price.min_seconds,
        billed_seconds=seconds,
        groups=groups,
        split=len(parts) > 1,
        unrounded=exact,
        cost=round_money(exact, price.decimals, price.rounding),
        max_cost=price.max_cost if capped else None,
        max_cost_strategy=price.max_cost_strategy if capped else None,
    )
    return Charge(
        event.id, event.account, leg, service, direction, amount, index.currency, unit,
        seconds, _payer(direction, match, digits), explanation,
    )


def _message_charge(
    event: UsageEvent, index: TariffIndex, plan: ChargingPlan | None, labels: bool
) -> Charge:
    digits = index.key_of(event.to_number)
    encoding: str | None = None
    if event.segments is not None:
        if event.segments < 1:
            raise InvalidInput(f"event {event.id}: segments must be at least 1")
        segments = event.segments
    else:
        segmentation = segment_sms(event.text or "")
        segments, encoding = segmentation.segments, segmentation.encoding
    match = index.lookup(
        digits, service=event.service, direction=event.direction, at=event.start
    )
    row = match.row
    outbound = event.direction is Direction.OUTBOUND
    quantity = segments if outbound else 1
    with localcontext(DECIMAL_CONTEXT):
        exact = row.rate * quantity + row.connect_fee
    decimals, rounding = index.rounding_of(match.position)
    amount = _apply_plan(exact, decimals, rounding, plan)
    base = _base_explanation(
        index, event, Leg.MESSAGE, event.service, event.direction, digits, match, plan, labels
    )
    explanation = replace(
        base,
        rate_unit="per segment" if outbound else "per message",
        segments=segments,
        encoding=encoding,
        unrounded=exact,
        cost=round_money(exact, decimals, rounding),
    )
    unit = SMS_MESSAGES if event.service is Service.SMS else f"msg:{event.service.value}"
    return Charge(
        event.id, event.account, Leg.MESSAGE, event.service, event.direction, amount,
        index.currency, unit, quantity, _payer(event.direction, match, digits), explanation,
    )


UNIT_COUNTERS = {Service.DATA: "B:data", Service.GENERIC: "u:generic"}


def _unit_charge(
    event: UsageEvent, index: TariffIndex, plan: ChargingPlan | None, labels: bool
) -> Charge:
    if event.units is None or event.units < 0:
        raise InvalidInput(
            f"event {event.id}: a {event.service.value} event needs its units (0 or more)"
        )
    key = index.key_of(event.to_number)
    match = index.lookup(key, service=event.service, direction=event.direction, at=event.start)
    row = match.row
    rate_unit = row.rate_unit or 1
    increment = row.increment or Increment(1, 1)
    billed = billed_units(event.units, increment)
    with localcontext(DECIMAL_CONTEXT):
        exact = row.rate * billed / rate_unit + row.connect_fee if billed else Decimal(0)
    capped = row.max_cost is not None and exact > row.max_cost
    if capped and row.max_cost is not None:
        exact = row.max_cost
    decimals, rounding = index.rounding_of(match.position)
    amount = _apply_plan(exact, decimals, rounding, plan)
    what = "bytes" if event.service is Service.DATA else "units"
    base = _base_explanation(
        index, event, Leg.OTHER, event.service, event.direction, key, match, plan, labels
    )
    explanation = replace(
        base,
        rate_unit=f"per {rate_unit} {what}",
        unrounded=exact,
        cost=round_money(exact, decimals, rounding),
        max_cost=row.max_cost if capped else None,
        max_cost_strategy=row.max_cost_strategy if capped else None,
        note=(
            f"{event.units} {what} billed as {billed} (increment {increment}): "
            f"cost = {row.rate} x {billed} / {rate_unit} + {row.connect_fee}"
        ),
    )
    return Charge(
        event.id, event.account, Leg.OTHER, event.service, event.direction, amount,
        index.currency, UNIT_COUNTERS[event.service], billed, Payer.ACCOUNT, explanation,
    )


def _speech_charge(
    event: UsageEvent, index: TariffIndex, plan: ChargingPlan | None, seconds: int, labels: bool
) -> Charge:
    return _timed_charge(
        event, index, plan, leg=Leg.SPEECH, service=Service.SPEECH,
        direction=event.direction, number=event.to_number, duration_s=seconds, unit=SPEECH_TIME,
        labels=labels,
    )


def rate_event(
    event: UsageEvent,
    index: TariffIndex,
    plan: ChargingPlan | None = None,
    *,
    labels: bool = True,
) -> RatedEvent:
    """Price one usage event into its charges (see module rules).

    `labels=False` skips phonenumbers' number-type guess (about half a millisecond per
    number) for bulk rating; the country label, from the calling code, stays.

    Raises NoRate when no row matches, CallClassNotAllowed when the plan refuses the call,
    InvalidInput for an inconsistent event.
    """
    if event.start.tzinfo is None:
        raise InvalidInput(f"event {event.id}: start must be timezone-aware")
    charges: list[Charge] = []
    if event.service in (Service.VOICE, Service.FAX):
        call_class = classify_call(event, index)
        if plan is not None:
            plan.check_call_class(call_class)
        charges.append(
            _timed_charge(
                event, index, plan, leg=Leg.CALL, service=event.service,
                direction=event.direction, number=event.to_number,
                duration_s=call_duration_s(event),
                unit=CALL_TIME if event.service is Service.VOICE else "s:fax", labels=labels,
                allow_free_extension=call_class is CallClass.LOCAL_EXTENSION,
            )
        )
        if event.speech_s > 0:
            charges.append(_speech_charge(event, index, plan, event.speech_s, labels))
    elif event.service is Service.SPEECH:
        seconds = event.duration_s if event.duration_s is not None else event.speech_s
        charges.append(_speech_charge(event, index, plan, seconds, labels))
    elif event.service in (Service.SMS, Service.MMS):
        charges.append(_message_charge(event, index, plan, labels))
    elif event.service in UNIT_SERVICES:
        charges.append(_unit_charge(event, index, plan, labels))
    else:
        raise InvalidInput(
            f"event {event.id}: {event.service.value} is priced by its own service, "
            "not from usage events"
        )
    return RatedEvent(event.id, tuple(charges))


def rate_forwarded_call(
    event: UsageEvent,
    forward_to: str,
    index: TariffIndex,
    plan: ChargingPlan | None = None,
    *,
    labels: bool = True,
) -> RatedEvent:
    """Rate a forwarded / tracked call: `event.to_number` is the tracked number the caller
    dialled (inbound leg), `forward_to` the destination it was forwarded to (outbound leg).
    Both legs last the call's billable duration; speech seconds are charged once."""
    if event.start.tzinfo is None:
        raise InvalidInput(f"event {event.id}: start must be timezone-aware")
    if plan is not None:
        plan.check_call_class(CallClass.INCOMING)
        plan.check_call_class(CallClass.PUBLIC_NETWORK)
    duration = call_duration_s(event)
    inbound = _timed_charge(
        event, index, plan, leg=Leg.INBOUND_LEG, service=Service.VOICE,
        direction=Direction.INBOUND, number=event.to_number, duration_s=duration,
        unit=CALL_TIME, labels=labels,
    )
    outbound = _timed_charge(
        event, index, plan, leg=Leg.OUTBOUND_LEG, service=Service.VOICE,
        direction=Direction.OUTBOUND, number=forward_to, duration_s=duration, unit=CALL_TIME,
        labels=labels,
    )
    charges = [inbound, outbound]
    if event.speech_s > 0:
        charges.append(_speech_charge(event, index, plan, event.speech_s, labels))
    return RatedEvent(event.id, tuple(charges))


def max_affordable_call_seconds(
    available: Decimal,
    event: UsageEvent,
    index: TariffIndex,
    plan: ChargingPlan | None = None,
) -> int:
    """Longest call (seconds, capped at the tariff maximum) whose charge is <= `available`,
    for real-time authorisation. Raises NoRate / CallClassNotAllowed like `rate_event`."""
    if plan is not None:
        plan.check_call_class(classify_call(event, index))
    key = index.key_of(event.to_number)
    match = index.lookup(key, service=event.service, direction=event.direction, at=event.start)
    price: TimedPrice = index.price_of(match)
    parts = _band_parts(
        index, key, event.service, event.direction, event.start, price.max_call_s, match
    )
    affordable = max_affordable_seconds(
        available,
        price,
        lambda s: _apply_plan(
            split_cost(s, parts) if len(parts) > 1 else unrounded_cost(s, price),
            price.decimals,
            price.rounding,
            plan,
        ),
    )
    disconnect = disconnect_after_s(price)
    return affordable if disconnect is None else min(affordable, disconnect)


def explain_text(charge: Charge) -> str:
    """A person-readable account of how `charge` was computed."""
    e = charge.explanation
    lines = [
        f"{charge.leg.value} {e.direction.value} {e.service.value} to {e.to_number}"
        + (f" ({e.country}, {e.number_label})" if e.country else ""),
        f"  tariff {e.tariff} v{e.tariff_version}, currency {e.currency}",
    ]
    if e.matched_prefix is not None:
        lines.append(
            f"  matched prefix {e.matched_prefix or '(any)'} -> {e.destination}"
            + (f" [{e.row_number_type.value}]" if e.row_number_type else "")
            + (" (time band)" if e.banded else "")
            + (f", effective from {e.effective_from.isoformat()}" if e.effective_from else "")
        )
        lines.append(f"  rate {e.rate} {e.rate_unit}, connect fee {e.connect_fee}")
    if e.increment is not None:
        lines.append(
            f"  duration {e.duration_s} s (max {e.max_call_s} s), free {e.free_seconds} s, "
            f"increment {e.increment}, minimum {e.min_seconds} s -> billed {e.billed_seconds} s"
        )
        if e.groups:
            what = "band part" if e.split else "rate group"
            for group in e.groups:
                lines.append(
                    f"  {what} from {group.start_s} s: {group.billed_s} s at {group.rate} "
                    f"per minute (increment {group.increment})"
                )
            products = " + ".join(f"{g.rate} x {g.billed_s}" for g in e.groups) or "0"
            lines.append(
                f"  cost = ({products}) / 60 + {e.connect_fee} = {e.unrounded}"
            )
        else:
            lines.append(
                f"  cost = {e.rate} x {e.billed_seconds} / 60 + {e.connect_fee} = {e.unrounded}"
            )
        if e.max_cost is not None:
            lines.append(
                f"  capped at MaxCost {e.max_cost} ({e.max_cost_strategy}): "
                + (
                    "the rest of the call is free"
                    if e.max_cost_strategy == "*free"
                    else "the call is cut when its cost reaches it"
                )
            )
    if e.segments is not None:
        lines.append(
            f"  {e.segments} segment(s)" + (f", {e.encoding}" if e.encoding else "")
            + f": cost = {e.rate} x {charge.billed_units} + {e.connect_fee} = {e.unrounded}"
        )
    lines.append(
        f"  rounded once to {e.decimals} decimals ({e.rounding}): "
        f"{format_amount(e.cost, e.decimals)}"
    )
    if e.markup_percent is not None:
        lines.append(
            f"  plan {e.plan}: markup {e.markup_percent}% (minimum margin {e.min_margin})"
        )
    if e.note:
        lines.append(f"  note: {e.note}")
    lines.append(
        f"  charge {format_amount(charge.amount, e.decimals)} {charge.currency} "
        f"for {charge.billed_units} {charge.unit}, paid by {charge.payer.value}"
    )
    return "\n".join(lines)


__all__ = [
    "Charge",
    "Explanation",
    "Leg",
    "Payer",
    "RatedEvent",
    "call_duration_s",
    "classify_call",
    "explain_text",
    "max_affordable_call_seconds",
    "rate_event",
    "rate_forwarded_call",
]
