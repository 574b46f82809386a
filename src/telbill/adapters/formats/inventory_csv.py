"""Number inventory as CSV, as a provider imports it.

Header (order free, names fixed): number, country, type, region, locality, area_code,
monthly_price, setup_price, verification_required. Required: number, country, type,
monthly_price. `type` is local, mobile, toll_free or national; prices are decimal strings in
the provider's currency; `verification_required` is yes/no/true/false/1/0 (empty: no).
Numbers are normalised to E.164. Every bad row is reported with its 1-based line number
(the header is line 1) and reason; the good rows are returned alongside.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from telbill.domain.money import parse_amount
from telbill.domain.numbers import normalize_number
from telbill.domain.tariffs import RowError
from telbill.errors import InvalidInput

COLUMNS = (
    "number",
    "country",
    "type",
    "region",
    "locality",
    "area_code",
    "monthly_price",
    "setup_price",
    "verification_required",
)
REQUIRED = ("number", "country", "type", "monthly_price")
NUMBER_TYPES = ("local", "mobile", "toll_free", "national")
_TRUE = {"yes", "true", "1", "y"}
_FALSE = {"no", "false", "0", "n", ""}


@dataclass(frozen=True, slots=True)
class InventoryRow:
    line: int
    number: str
    country: str
    number_type: str
    region: str | None
    locality: str | None
    area_code: str | None
    monthly_price: Decimal
    setup_price: Decimal
    verification_required: bool


def _price(text: str, field: str) -> Decimal:
    amount = parse_amount(text.strip() or "0", field=field)
    if amount < 0:
        raise InvalidInput(f"{field} must not be negative, got {text}")
    return amount


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(f"verification_required must be yes or no, got {text!r}")


def _row(line: int, cells: dict[str, str]) -> InventoryRow:
    for column in REQUIRED:
        if not cells.get(column, "").strip():
            raise InvalidInput(f"{column} is empty")
    country = cells["country"].strip().upper()
    if len(country) != 2 or not country.isalpha():
        raise InvalidInput(f"country must be an ISO 3166 two-letter code, got {country!r}")
    number_type = cells["type"].strip().lower()
    if number_type not in NUMBER_TYPES:
        raise InvalidInput(f"type must be one of {', '.join(NUMBER_TYPES)}, got {number_type!r}")
    area_code = cells.get("area_code", "").strip() or None
    if area_code is not None and not area_code.isdigit():
        raise InvalidInput(f"area_code must be digits, got {area_code!r}")
    return InventoryRow(
        line=line,
        number=normalize_number(cells["number"], country),
        country=country,
        number_type=number_type,
        region=cells.get("region", "").strip() or None,
        locality=cells.get("locality", "").strip() or None,
        area_code=area_code,
        monthly_price=_price(cells["monthly_price"], "monthly_price"),
        setup_price=_price(cells.get("setup_price", ""), "setup_price"),
        verification_required=_flag(cells.get("verification_required", "")),
    )


def read_inventory(lines: Iterable[str]) -> tuple[list[InventoryRow], list[RowError]]:
    """Parse an inventory CSV. Raises InvalidInput when the header itself is unusable, or
    when the CSV cannot be read past a line (a line end inside an unquoted field)."""
    reader = csv.reader(lines)
    try:
        return _read_rows(reader)
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: unreadable CSV: {exc}") from None


def _read_rows(reader: Any) -> tuple[list[InventoryRow], list[RowError]]:
    header = next(reader, None)
    if header is None:
        raise InvalidInput("the inventory file is empty")
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    missing = [name for name in REQUIRED if name not in names]
    if unknown or missing:
        raise InvalidInput(
            "line 1: bad header"
            + (f"; unknown columns: {', '.join(unknown)}" if unknown else "")
            + (f"; missing columns: {', '.join(missing)}" if missing else "")
        )
    rows: list[InventoryRow] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for index, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(names):
            errors.append(RowError(index, f"expected {len(names)} cells, got {len(cells)}"))
            continue
        try:
            row = _row(index, dict(zip(names, cells, strict=True)))
        except InvalidInput as error:
            errors.append(RowError(index, error.message))
            continue
        if row.number in seen:
            errors.append(RowError(index, f"{row.number} repeats line {seen[row.number]}"))
            continue
        seen[row.number] = index
        rows.append(row)
    return rows, errors


def read_inventory_text(text: str) -> tuple[list[InventoryRow], list[RowError]]:
    # newline="": a lone CR ends a line as the csv module expects (found by schemathesis:
    # {"csv": "J\rr"} was an uncaught csv.Error).
    return read_inventory(io.StringIO(text, newline=""))


__all__ = ["COLUMNS", "InventoryRow", "read_inventory", "read_inventory_text"]
