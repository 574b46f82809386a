"""Input types shared by every router: what a field of a request may hold.

Each type is a Pydantic ``Annotated`` type whose checks come from `telbill.domain.inputs`
(the rules) and `telbill.domain.money` (currencies); a value that breaks one is a 422
problem naming the field. Text anywhere in a request is also guarded by
`telbill.api.text_guard` (NUL and lone surrogates), so a field added without these types
still cannot carry them into storage or an answer.

* `Text(n)`: text of at most `n` characters (`Name`, `Code`, `Reason`, `Reference`,
  `CdrId` are the usual sizes).
* `Currency`: an ISO 4217 code in upper case (``"usd"`` is refused, not corrected).
* `TimezoneName`: an IANA name zoneinfo knows.
* `Instant`: a datetime between 1900 and 8999 (UTC) once its offset is applied.
* `Month`: ``YYYY-MM`` in those years.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints, WithJsonSchema

from telbill.domain import inputs
from telbill.domain.money import ISO_4217
from telbill.errors import InvalidInput

MAX_NAME = 200
MAX_CODE = 64
MAX_REASON = 500
MAX_REFERENCE = 200
MAX_CDR_ID = 200
MAX_NUMBER = 64  # an E.164 number is at most 15 digits; room for a prefix or a SIP user


def _text(value: str) -> str:
    problem = inputs.text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def Text(max_length: int, *, min_length: int = 0) -> Any:  # noqa: N802 - reads as a type
    """Text of `min_length`..`max_length` characters, without NUL or lone surrogates."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(_text),
    ]


def _domain_check(check: Any) -> Any:
    def validate(value: Any) -> Any:
        try:
            return check(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    return AfterValidator(validate)


def _currency(value: str) -> str:
    if value not in ISO_4217:
        hint = f" (codes are upper case: {value.upper()})" if value.upper() in ISO_4217 else ""
        raise ValueError(
            f"unknown currency {value[:8]!r}: expected an ISO 4217 code such as USD{hint}"
        )
    return value


Name = Text(MAX_NAME, min_length=1)
Code = Text(MAX_CODE, min_length=1)
Reason = Text(MAX_REASON, min_length=1)
Reference = Text(MAX_REFERENCE)
CdrId = Text(MAX_CDR_ID, min_length=1)
Number = Text(MAX_NUMBER, min_length=1)

Currency = Annotated[
    str,
    AfterValidator(_currency),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Z]{3}$", "examples": ["USD"]}),
]
TimezoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=inputs.MAX_TIMEZONE_LENGTH),
    _domain_check(lambda value: inputs.check_timezone_name(value, "timezone")),
]
Instant = Annotated[datetime, _domain_check(lambda value: inputs.check_instant(value, "time"))]
Month = Annotated[
    str,
    StringConstraints(pattern=r"^\d{4}-\d{2}$"),
    _domain_check(inputs.check_month),
    WithJsonSchema({"type": "string", "pattern": r"^\d{4}-\d{2}$", "examples": ["2026-03"]}),
]


__all__ = [
    "MAX_CDR_ID",
    "MAX_CODE",
    "MAX_NAME",
    "MAX_NUMBER",
    "MAX_REASON",
    "MAX_REFERENCE",
    "CdrId",
    "Code",
    "Currency",
    "Instant",
    "Month",
    "Name",
    "Number",
    "Reason",
    "Reference",
    "Text",
    "TimezoneName",
]
