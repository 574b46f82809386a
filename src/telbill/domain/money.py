"""Exact money and units.

The rule for numbers in telbill lives here:

* In the domain, amounts are `decimal.Decimal`. Floats are refused on every money path
  (`parse_amount` rejects `float` outright) because 0.1 + 0.2 != 0.3 in binary.
* In storage, every amount is an integer count of the unit's smallest step: micro-units
  (10^-6) for currencies, whole seconds for time counters, whole messages for SMS bundles.
  `to_minor` refuses an amount that would lose digits; rounding is never silent.
* A unit is a string: an ISO 4217 currency code (``"USD"``) for money, or a counter
  ``"s:<counter>"`` (seconds of call time, speech time...) or ``"msg:<counter>"``.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext

from telbill.errors import InvalidInput

MICROS_PER_UNIT = 1_000_000
MONEY_DECIMALS = 6

# Plenty of precision for any product of a rate and a duration; traps on so that an
# inexact or invalid operation raises instead of silently rounding.
DECIMAL_CONTEXT = Context(prec=50, rounding=ROUND_HALF_UP)

SECONDS_PREFIX = "s:"
MESSAGES_PREFIX = "msg:"
CALL_TIME = "s:call"
SPEECH_TIME = "s:speech"
SMS_MESSAGES = "msg:sms"

# ISO 4217 active codes (2024), plus XTS for tests. Data, not logic.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG XTS
    """.split()
)

_AMOUNT_RE = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


def parse_amount(value: object, *, field: str = "amount") -> Decimal:
    """Parse a user-supplied amount into a finite Decimal.

    Accepts Decimal, int and plain decimal strings ("12", "-0.5", "1.000001"). Refuses
    floats, exponents, NaN, infinities, thousands separators and empty strings.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidInput(f"{field} must be a decimal string, not a float: {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(f"{field} must be a finite number: {value!r}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if not _AMOUNT_RE.match(text):
            raise InvalidInput(f"{field} is not a decimal number: {value!r}")
        try:
            return Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - regex guards this
            raise InvalidInput(f"{field} is not a decimal number: {value!r}") from exc
    raise InvalidInput(f"{field} must be a decimal string: {value!r}")


def validate_currency(code: str) -> str:
    """Return the ISO 4217 code in upper case, or raise InvalidInput."""
    upper = code.strip().upper() if isinstance(code, str) else ""
    if upper not in ISO_4217:
        raise InvalidInput(f"unknown currency {code!r}: expected an ISO 4217 code such as USD")
    return upper


def is_money_unit(unit: str) -> bool:
    return unit in ISO_4217


def validate_unit(unit: str) -> str:
    """A unit is a currency code, ``s:<counter>`` or ``msg:<counter>``."""
    if unit in ISO_4217:
        return unit
    for prefix in (SECONDS_PREFIX, MESSAGES_PREFIX):
        if unit.startswith(prefix) and re.fullmatch(r"[a-z][a-z0-9_]{0,31}", unit[len(prefix) :]):
            return unit
    raise InvalidInput(f"unknown unit {unit!r}: expected a currency, s:<counter> or msg:<counter>")


def unit_scale(unit: str) -> int:
    """How many stored integer steps make one unit (10^6 for money, 1 for counters)."""
    return MICROS_PER_UNIT if is_money_unit(unit) else 1


def to_micros(amount: Decimal) -> int:
    """Exact Decimal -> integer micro-units. Raises if the amount has more than 6 decimals."""
    with localcontext(DECIMAL_CONTEXT):
        scaled = amount.scaleb(MONEY_DECIMALS)
        integral = scaled.to_integral_value()
        if scaled != integral:
            raise InvalidInput(f"amount {amount} has more than {MONEY_DECIMALS} decimals")
        return int(integral)


def from_micros(micros: int) -> Decimal:
    """Integer micro-units -> Decimal with exactly 6 decimals."""
    return Decimal(micros).scaleb(-MONEY_DECIMALS)


def to_minor(amount: Decimal, unit: str) -> int:
    """Domain amount -> stored integer for `unit` (exact, or InvalidInput)."""
    if is_money_unit(unit):
        return to_micros(amount)
    if amount != amount.to_integral_value():
        raise InvalidInput(f"{unit} amounts are whole numbers, got {amount}")
    return int(amount)


def from_minor(value: int, unit: str) -> Decimal:
    """Stored integer -> domain Decimal for `unit`."""
    return from_micros(value) if is_money_unit(unit) else Decimal(value)


def round_money(
    amount: Decimal, decimals: int = MONEY_DECIMALS, rounding: str = ROUND_HALF_UP
) -> Decimal:
    """Round once, at a documented place, with a named decimal rounding mode."""
    if not 0 <= decimals <= MONEY_DECIMALS:
        raise InvalidInput(f"decimals must be between 0 and {MONEY_DECIMALS}, got {decimals}")
    with localcontext(DECIMAL_CONTEXT):
        return amount.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)


def format_amount(amount: Decimal, decimals: int = MONEY_DECIMALS) -> str:
    """Canonical decimal string for output (JSON, CSV): fixed decimals, no exponent."""
    with localcontext(DECIMAL_CONTEXT):
        return f"{amount.quantize(Decimal(1).scaleb(-decimals)):f}"


__all__ = [
    "CALL_TIME",
    "DECIMAL_CONTEXT",
    "ISO_4217",
    "MICROS_PER_UNIT",
    "SMS_MESSAGES",
    "SPEECH_TIME",
    "format_amount",
    "from_micros",
    "from_minor",
    "is_money_unit",
    "parse_amount",
    "round_money",
    "to_micros",
    "to_minor",
    "unit_scale",
    "validate_currency",
    "validate_unit",
]
