"""Request and response shapes of the REST API shared by the routers.

Amounts travel as decimal strings (``"12.50"``), never JSON numbers: a JSON number is
refused with a validation problem, because a client's float has already lost exactness.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from telbill.domain.money import parse_amount
from telbill.errors import InvalidInput
from telbill.jsonable import to_jsonable

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


plain_json = to_jsonable  # the API's name for the shared rule


__all__ = ["AMOUNT_PATTERN", "AmountIn", "AmountOut", "plain_json"]
