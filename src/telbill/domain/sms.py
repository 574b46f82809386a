"""SMS segmentation: GSM-7 or UCS-2, and how many segments a text costs.

* GSM-7 (3GPP TS 23.038 default alphabet) when every character is in the basic set or the
  extension table; extension characters (``^{}[]~\\|€`` and form feed) take two septets
  (escape + character). One segment holds 160 septets; a multi-part message 153 per segment
  (the rest is the concatenation header).
* UCS-2 otherwise: 70 UTF-16 units in one segment, 67 per segment when split. A character
  outside the basic multilingual plane (most emoji) is a surrogate pair: two units.
* An escape pair or a surrogate pair is never split across two segments: when it does not
  fit in what is left of a segment, the segment closes early.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}[]~\\|€\f")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True, slots=True)
class SmsSegmentation:
    """How a text is sent: encoding, segment count and the parts themselves.

    `units` is the total length in the encoding's units (septets for GSM-7, UTF-16 code units
    for UCS-2); `chars_per_segment` is the capacity of one segment for this message (160/153
    or 70/67); `parts` are the texts of each segment, never splitting a pair.
    """

    encoding: Encoding
    segments: int
    chars_per_segment: int
    units: int
    characters: int
    parts: tuple[str, ...]


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the GSM 03.38 basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _unit_width(ch: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def segment_sms(text: str) -> SmsSegmentation:
    """Segment `text` for sending. An empty text is one (empty) segment, as networks bill it."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_MULTI)
    widths = [_unit_width(ch, encoding) for ch in text]
    units = sum(widths)
    if units <= single:
        return SmsSegmentation(encoding, 1, single, units, len(text), (text,))
    parts: list[str] = []
    start, used = 0, 0
    for index, width in enumerate(widths):
        if used + width > multi:  # the pair (or char) does not fit: close this segment
            parts.append(text[start:index])
            start, used = index, 0
        used += width
    parts.append(text[start:])
    return SmsSegmentation(encoding, len(parts), multi, units, len(text), tuple(parts))


__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "SmsSegmentation",
    "is_gsm7",
    "segment_sms",
]
