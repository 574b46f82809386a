"""Phone numbers: E.164 normalisation and labels (country, number type).

Two different jobs, kept apart on purpose:

* `normalize_number` turns what a user or switch wrote (``+44 20 7946 0000``,
  ``0044207946...``, ``020 7946 0000`` with a default region) into E.164 with `phonenumbers`,
  refusing junk with `InvalidInput`.
* `rating_digits` gives the digit string a tariff's prefixes are matched against. Rating is
  by the tariff's prefixes, never by the library's guess: `number_labels` only LABELS a charge
  with a country and a number type for people and reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from telbill.errors import InvalidInput

_SEPARATORS_RE = re.compile(r"[\s\-().]")
MAX_DIGITS = 15  # ITU-T E.164

_TYPE_LABELS: dict[int, str] = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}


@dataclass(frozen=True, slots=True)
class NumberLabels:
    """What `phonenumbers` guesses about a number: a label, never a price key."""

    e164: str
    country: str | None  # ISO 3166 alpha-2 region, e.g. "GB"; None when unknown
    number_type: str  # "mobile", "fixed_line", "toll_free", ... or "unknown"


def normalize_number(text: str, default_region: str | None = None) -> str:
    """Return `text` as E.164 (``+442079460000``).

    Accepts ``+E.164``, ``00``-international and national digits when `default_region`
    (ISO 3166 alpha-2) is given. Raises InvalidInput for anything that is not a possible number.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"phone number is empty: {text!r}")
    cleaned = _SEPARATORS_RE.sub("", text.strip())
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if not re.fullmatch(r"\+?\d{1,17}", cleaned):
        raise InvalidInput(f"not a phone number: {text!r}")
    region = default_region.upper() if default_region else None
    if not cleaned.startswith("+") and region is None:
        raise InvalidInput(
            f"phone number {text!r} has no country code: write +<country> or give a default region"
        )
    try:
        parsed = phonenumbers.parse(cleaned, region)
    except NumberParseException as exc:
        raise InvalidInput(f"not a phone number: {text!r} ({exc})") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput(f"not a possible phone number: {text!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def rating_digits(text: str) -> str:
    """Digits that tariff prefixes match: ``+44 20...`` / ``0044...`` / ``4420...`` -> ``4420...``.

    Short digit strings (extensions such as ``101``) are accepted. Junk raises InvalidInput.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"phone number must be text: {text!r}")
    cleaned = _SEPARATORS_RE.sub("", text.strip())
    if cleaned.startswith("+"):
        cleaned = cleaned[1:]
    elif cleaned.startswith("00"):
        cleaned = cleaned[2:]
    if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > MAX_DIGITS:
        raise InvalidInput(f"not a phone number: {text!r}")
    return cleaned


def country_of(e164_or_digits: str) -> str | None:
    """The main region of the number's country calling code (``+1...`` -> ``US``), cheaply:
    no full parse, so shared codes give their main region. None when the code is unknown."""
    digits = rating_digits(e164_or_digits)
    for length in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:length] or 0))
        if regions and len(digits) > length:
            region = regions[0]
            return region if region != "001" else None
    return None


@lru_cache(maxsize=65536)
def number_labels(e164_or_digits: str) -> NumberLabels:
    """Country and number type labels for a number (``unknown`` when the library can't tell)."""
    digits = rating_digits(e164_or_digits)
    e164 = "+" + digits
    try:
        parsed = phonenumbers.parse(e164, None)
    except NumberParseException:
        return NumberLabels(e164, None, "unknown")
    region = phonenumbers.region_code_for_number(parsed)
    kind = _TYPE_LABELS.get(phonenumbers.number_type(parsed), "unknown")
    return NumberLabels(e164, region if region and region != "ZZ" else None, kind)


__all__ = ["NumberLabels", "country_of", "normalize_number", "number_labels", "rating_digits"]
