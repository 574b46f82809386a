"""Twilio's pricing CSV: ``ISO,Country,Description,Price / min,Origination Prefixes,
Destination Prefixes`` (voice) or the same with ``Price / msg`` (SMS).

Each file row lists its destination prefixes quoted and comma-separated; it becomes one
RateRow per prefix, all reported on the row's line. Rows priced by the caller's origin
(non-empty "Origination Prefixes") cannot be expressed by a telbill tariff (rates are keyed by
destination only) and are reported as bad rows rather than silently widened to every caller.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping

from telbill.adapters.formats.tariff_fields import (
    ParsedRow,
    parse_enum,
    parse_increment,
    parse_prefix,
    parse_rate,
    reject_duplicates,
)
from telbill.domain.tariffs import Direction, Increment, NumberType, RateRow, RowError, Service
from telbill.errors import InvalidInput

PRICE_COLUMNS = {"price / min": Service.VOICE, "price / msg": Service.SMS}
DESTINATIONS = "destination prefixes"
ORIGINATIONS = "origination prefixes"


def read_twilio_csv(
    lines: Iterable[str],
    *,
    defaults: Mapping[str, str] | None = None,
    source: str = "",
) -> Iterator[ParsedRow | RowError]:
    """Stream a Twilio pricing CSV into rows and errors.

    `defaults` may set `direction` (outbound), `number_type` (any), `increment` (the tariff's
    default), `connect_fee` (0) for every row; the service comes from the price column.
    """
    fixed = _fixed_fields(dict(defaults or {}))
    return reject_duplicates(_read(lines, fixed, source))


def _fixed_fields(defaults: dict[str, str]) -> dict[str, object]:
    allowed = {"direction", "number_type", "increment", "connect_fee"}
    unknown = set(defaults) - allowed
    if unknown:
        raise InvalidInput(
            f"--default for a Twilio file takes only {', '.join(sorted(allowed))}; "
            f"got {', '.join(sorted(unknown))}"
        )
    fixed: dict[str, object] = {}
    if "direction" in defaults:
        fixed["direction"] = parse_enum(defaults["direction"], Direction, "direction")
    if "number_type" in defaults:
        fixed["number_type"] = parse_enum(defaults["number_type"], NumberType, "number_type")
    if "increment" in defaults:
        increment: Increment = parse_increment(defaults["increment"])
        fixed["increment"] = increment
    if "connect_fee" in defaults:
        fixed["connect_fee"] = parse_rate(defaults["connect_fee"], "connect_fee")
    return fixed


def _read(
    lines: Iterable[str], fixed: dict[str, object], source: str
) -> Iterator[ParsedRow | RowError]:
    reader = csv.reader(iter(lines))
    try:
        header = [name.strip().lstrip("\ufeff") for name in next(reader)]
    except StopIteration:
        yield RowError(1, "the file is empty: expected a Twilio pricing header", source)
        return
    lowered = {name.lower(): index for index, name in enumerate(header)}
    price = [(name, service) for name, service in PRICE_COLUMNS.items() if name in lowered]
    if len(price) != 1 or DESTINATIONS not in lowered:
        yield RowError(
            1,
            "not a Twilio pricing header: expected one of 'Price / min' or 'Price / msg' and "
            f"'Destination Prefixes', found {', '.join(header)}",
            source,
        )
        return
    price_name, service = price[0]
    price_at, dest_at = lowered[price_name], lowered[DESTINATIONS]
    origin_at = lowered.get(ORIGINATIONS)
    country_at, description_at = lowered.get("country"), lowered.get("description")
    width = len(header)
    for record in reader:
        line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != width:
            yield RowError(line, f"expected {width} fields, got {len(record)}", source)
            continue
        try:
            if origin_at is not None and record[origin_at].strip():
                raise InvalidInput(
                    "origination-based pricing (Origination Prefixes "
                    f"{record[origin_at].strip()!r}) is not supported by telbill tariffs"
                )
            rate = parse_rate(record[price_at], header[price_at])
            prefixes = [parse_prefix(p) for p in record[dest_at].split(",") if p.strip()]
            if not prefixes:
                raise InvalidInput("Destination Prefixes is empty")
        except InvalidInput as exc:
            yield RowError(line, exc.message, source)
            continue
        country = record[country_at].strip() if country_at is not None else ""
        description = record[description_at].strip() if description_at is not None else ""
        destination = description or country
        if country and description and not description.startswith(country):
            destination = f"{country} - {description}"
        for prefix in prefixes:
            row = RateRow(
                prefix=prefix,
                destination=destination,
                rate=rate,
                service=service,
                **fixed,  # type: ignore[arg-type]
            )
            yield ParsedRow(line, row, source)
