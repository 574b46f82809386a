"""Request and response shapes of the REST API shared by the routers.

Amounts travel as decimal strings (``"12.50"``), never JSON numbers: a JSON number is
refused with a validation problem, because a client's float has already lost exactness.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from telbill.api.deps import MAX_IDEMPOTENCY_KEY_LENGTH
from telbill.domain.money import parse_amount
from telbill.errors import InvalidInput
from telbill.jsonable import to_jsonable

AMOUNT_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"


# Strict: no spaces, no newline, no exponent, at most MAX_AMOUNT_CHARS characters, and a
# magnitude whose micro-units fit the 64-bit integers of storage.
MAX_AMOUNT_CHARS = 32
MAX_AMOUNT = (Decimal(2**63 - 1) / 10**6).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
_STRICT_AMOUNT = re.compile(AMOUNT_PATTERN[1:-1])


def _parse_amount_string(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError('amounts are decimal strings such as "12.50", not JSON numbers')
    if len(value) > MAX_AMOUNT_CHARS:
        raise ValueError(f"an amount has at most {MAX_AMOUNT_CHARS} characters")
    if _STRICT_AMOUNT.fullmatch(value) is None:
        raise ValueError(
            f"not a decimal number: {value!r} (digits and one point, no spaces or exponent)"
        )
    try:
        amount = parse_amount(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None
    if abs(amount) > MAX_AMOUNT:
        raise ValueError(f"out of range: an amount is at most {MAX_AMOUNT} in magnitude")
    return amount


def _format_decimal(value: Decimal) -> str:
    return f"{value:f}"


AmountIn = Annotated[
    Decimal,
    BeforeValidator(_parse_amount_string),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "maxLength": MAX_AMOUNT_CHARS,
            "examples": ["10.00"],
        }
    ),  # fmt: skip
]
AmountOut = Annotated[
    Decimal,
    PlainSerializer(_format_decimal, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["10.000000"]}),
]


plain_json = to_jsonable  # the API's name for the shared rule

IDEMPOTENCY_KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
    "pattern": r"\S",
}


def document_required_idempotency_key(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API enforces: ``Idempotency-Key`` is required.

    The dependency declares the header optional so that a missing one is our own 400
    problem (``idempotency_key_missing``), not a generic validation error; the document
    still tells clients (and schemathesis) that every POST must send it.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "header" and parameter["name"] == "Idempotency-Key":
                        parameter["required"] = True
                        parameter["schema"] = dict(IDEMPOTENCY_KEY_SCHEMA)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "AMOUNT_PATTERN",
    "MAX_AMOUNT",
    "AmountIn",
    "AmountOut",
    "document_required_idempotency_key",
    "plain_json",
]
