"""Request and response shapes of the REST API shared by the routers.

Amounts travel as decimal strings (``"12.50"``), never JSON numbers: a JSON number is
refused with a validation problem, because a client's float has already lost exactness.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from telbill.domain.money import parse_amount
from telbill.errors import InvalidInput

AMOUNT_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"


def _parse_amount_string(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError('amounts are decimal strings such as "12.50", not JSON numbers')
    try:
        return parse_amount(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _format_decimal(value: Decimal) -> str:
    return f"{value:f}"


AmountIn = Annotated[
    Decimal,
    BeforeValidator(_parse_amount_string),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["10.00"]}),
]
AmountOut = Annotated[
    Decimal,
    PlainSerializer(_format_decimal, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["10.000000"]}),
]


def plain_json(value: Any) -> Any:
    """A service result (dataclasses, Decimals, datetimes, enums) as plain JSON values;
    Decimals become strings."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: plain_json(v) for k, v in asdict(value).items()}
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_json(v) for v in value]
    return value


__all__ = ["AMOUNT_PATTERN", "AmountIn", "AmountOut", "plain_json"]
