"""Quotes and explanations: price one hypothetical call or message, and show how.

`quote` builds a `UsageEvent` from what a user asks ("60 s to +44 20 7123 4567 now") and rates
it with the rating domain; nothing is stored and no balance is touched. `quote_summary` is the
stable JSON shape of a quote (the CLI's ``--json`` and the API's body).

Explanations are data: `charge_to_json` turns a `Charge` (with its `Explanation`) into plain
JSON and `charge_from_json` restores it, so an explanation stored with a posted charge is
rendered by the very same `render_explanation` as a fresh quote.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from telbill.domain.lookup import TariffIndex, compile_tariff
from telbill.domain.money import format_amount
from telbill.domain.numbers import rating_digits
from telbill.domain.rating import Charge, RatedEvent, explain_text, rate_event
from telbill.domain.tariffs import UNIT_SERVICES, Direction, Service, Tariff
from telbill.domain.usage import UsageEvent
from telbill.errors import InvalidInput

if TYPE_CHECKING:  # SQLAlchemy stays unloaded on the cached quote path
    from telbill.adapters.db.engine import Database
    from telbill.services.tariffs import Viewer

DEFAULT_QUOTE_DURATION_S = 60
MESSAGE_SERVICES = frozenset({Service.SMS, Service.MMS})


@dataclasses.dataclass(frozen=True, slots=True)
class QuoteRequest:
    """What a user wants priced. `at` is when the call would start (aware)."""

    to_number: str
    at: datetime
    service: Service = Service.VOICE
    direction: Direction = Direction.OUTBOUND
    from_number: str | None = None
    duration_s: int | None = None  # voice: default DEFAULT_QUOTE_DURATION_S
    text: str | None = None  # SMS: default one segment
    units: int | None = None  # data: bytes, generic: units (default 0)


def quote_event(request: QuoteRequest) -> UsageEvent:
    """The usage event a quote prices (an answered call of the asked duration, or a message)."""
    if request.at.tzinfo is None:
        raise InvalidInput("the quote time must carry a timezone (or be UTC)")
    common: dict[str, Any] = {
        "id": "quote", "account": "", "to_number": request.to_number, "start": request.at,
        "service": request.service, "direction": request.direction,
        "from_number": request.from_number,
    }  # fmt: skip
    if request.service in MESSAGE_SERVICES:
        segments = None if request.text is not None else 1
        return UsageEvent(**common, text=request.text, segments=segments)
    if request.service in UNIT_SERVICES:
        return UsageEvent(**common, units=request.units or 0)
    duration = DEFAULT_QUOTE_DURATION_S if request.duration_s is None else request.duration_s
    if duration < 0:
        raise InvalidInput(f"duration must be >= 0 seconds, got {duration}")
    end_at = request.at + timedelta(seconds=duration)
    return UsageEvent(**common, answer=request.at, end=end_at, duration_s=duration)


# Tariff versions are immutable, so a compiled index can be reused for as long as the
# process lives; a small LRU keeps the last few (a 36,000-prefix deck takes ~2 s to load).
_INDEX_CACHE: dict[tuple[str, str, int, str], TariffIndex] = {}
_INDEX_CACHE_SIZE = 8


def load_tariff_index(
    db: Database,
    name: str,
    *,
    at: datetime | None = None,
    version: int | None = None,
    viewer: Viewer | None = None,
) -> TariffIndex:
    """The compiled index of tariff `name` as `viewer` sees it (default: the operator's
    catalogue): `version`, else the version in force `at`, else the newest.

    Raises NotFound when there is no such tariff (or not one `viewer` may see).
    """
    from telbill.services.tariffs import OPERATOR, Viewer, get_version, load_tariff

    found = get_version(db, name, version, at=at, viewer=viewer or OPERATOR)
    version = found.version
    # created_at tells a re-created database's "version 1" from the one cached before.
    key = (str(db.engine.url), found.owner_id, name, version, found.created_at.isoformat())
    index = _INDEX_CACHE.pop(key, None)
    if index is None:
        index = compile_tariff(load_tariff(db, name, version, viewer=Viewer.owner(found.owner_id)))
    _INDEX_CACHE[key] = index  # most recently used last
    while len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
        del _INDEX_CACHE[next(iter(_INDEX_CACHE))]
    return index


def cached_quote_index(url: str, name: str, request: QuoteRequest) -> TariffIndex | None:
    """For a one-shot process: the index of the rows of tariff `name` (the version in force
    at the request's time) that can price `request`, from the on-disk compiled-tariff cache
    (`adapters.db.tariff_cache`); None when it is not cached (then `load_tariff_index` and
    `remember_quote_index`).

    Every lookup of a quote is by the digits of its numbers, and the rows kept are those
    whose prefix starts those digits, in their order in the tariff: the index prices the
    request exactly as the whole tariff's does.
    """
    from telbill.adapters.db.tariff_cache import read_slices, stamp_in_force

    prefixes = _candidate_prefixes(request)
    if prefixes is None or request.at.tzinfo is None:
        return None
    stamp = stamp_in_force(url, name, request.at)
    if stamp is None:
        return None
    slices = read_slices(stamp, prefixes)
    if slices is None:
        return None
    header = slices.header
    rows = tuple(row for _, row in slices.rows)
    tariff = Tariff(header["name"], header["settings"], rows, version=header["version"])
    return compile_tariff(tariff)


def remember_quote_index(url: str, name: str, request: QuoteRequest, index: TariffIndex) -> None:
    """Store the tariff behind `index` in the on-disk cache (when its database allows it)."""
    from telbill.adapters.db.tariff_cache import stamp_in_force, write_slices

    if request.at.tzinfo is None:
        return
    stamp = stamp_in_force(url, name, request.at)
    if stamp is None or stamp.version != index.version:
        return
    tariff = index.tariff
    header = {"name": tariff.name, "settings": tariff.settings, "version": tariff.version}
    write_slices(stamp, header, tariff.rows)


def _candidate_prefixes(request: QuoteRequest) -> set[str] | None:
    """Every prefix a lookup for `request` can match (None: a number rating would refuse)."""
    prefixes = {""}
    for number in (request.to_number, request.from_number):
        if number is None:
            continue
        try:
            digits = rating_digits(number)
        except InvalidInput:
            return None
        prefixes.update(digits[:length] for length in range(1, len(digits) + 1))
    return prefixes


def quote(request: QuoteRequest, index: TariffIndex) -> RatedEvent:
    """Rate the quoted event against a compiled tariff index (`domain.lookup.TariffIndex`).

    Raises NoRate when no row prices it.
    """
    return rate_event(quote_event(request), index)


def quote_summary(rated: RatedEvent) -> dict[str, Any]:
    """The stable JSON shape of a quote: headline figures of the main charge, the total,
    and every charge with its full explanation."""
    main = rated.charges[0]
    e = main.explanation
    summary: dict[str, Any] = {
        "cost": format_amount(rated.total, e.decimals),
        "currency": main.currency,
        "service": main.service.value,
        "direction": main.direction.value,
        "to": e.to_number,
        "tariff": e.tariff,
        "tariff_version": e.tariff_version,
        "prefix": e.matched_prefix,
        "destination": e.destination,
        "rate": _text(e.rate),
        "rate_unit": e.rate_unit,
        "connect_fee": _text(e.connect_fee),
        "increment": e.increment,
        "duration_s": e.duration_s,
        "billed_seconds": e.billed_seconds,
    }
    if e.split:  # a call split at band changes: each part's billed seconds and rate
        summary["parts"] = [
            {"start_s": g.start_s, "billed_s": g.billed_s, "rate": str(g.rate)} for g in e.groups
        ]
    if main.service in UNIT_SERVICES:  # data bytes or generic units, and what was billed
        summary["billed_units"] = main.billed_units
        summary["unit"] = main.unit
    if main.service in MESSAGE_SERVICES:
        summary["segments"] = e.segments
        summary["encoding"] = e.encoding
    summary["charges"] = [charge_to_json(charge) for charge in rated.charges]
    return summary


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# --- explanations as data -------------------------------------------------------------


def charge_to_json(charge: Charge) -> dict[str, Any]:
    """A charge and its explanation as JSON-ready values (Decimals as strings)."""
    return _to_json(charge)  # type: ignore[no-any-return]


def charge_from_json(data: Mapping[str, Any]) -> Charge:
    """Restore a `Charge` stored with `charge_to_json`.

    Raises InvalidInput when the data is not a stored charge.
    """
    try:
        return _from_json(Charge, data)  # type: ignore[no-any-return]
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise InvalidInput(f"not a stored charge explanation: {exc}") from exc


def render_explanation(charge: Charge | Mapping[str, Any]) -> str:
    """How a charge was computed, for a person; accepts a `Charge` or its stored JSON."""
    if not isinstance(charge, Charge):
        charge = charge_from_json(charge)
    return explain_text(charge)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_to_json(item) for item in value]
    return value


def _from_json(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if value is None:
            return None
        return _from_json(options[0], value)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        known = {f.name for f in dataclasses.fields(kind)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}")
        return kind(**{name: _from_json(hints[name], item) for name, item in value.items()})
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if kind is Decimal:
        if isinstance(value, float):
            raise ValueError("amounts must be decimal strings")
        return Decimal(str(value))
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind in (int, str, bool):
        if not isinstance(value, kind):
            raise TypeError(f"expected {kind.__name__}, got {value!r}")
        return value
    return value


__all__ = [
    "DEFAULT_QUOTE_DURATION_S",
    "QuoteRequest",
    "charge_from_json",
    "charge_to_json",
    "load_tariff_index",
    "quote",
    "quote_event",
    "quote_summary",
    "render_explanation",
]
