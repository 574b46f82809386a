"""SMS segmentation: GSM-7 / UCS-2 and segment counts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from telbill.domain.sms import GSM7_BASIC, GSM7_EXTENSION, segment_sms


def test_gsm7_basic_alphabet_has_127_characters_and_extension_has_10() -> None:
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10


def test_160_gsm_characters_fit_one_segment() -> None:
    s = segment_sms("a" * 160)
    assert (s.encoding, s.segments, s.chars_per_segment) == ("GSM-7", 1, 160)


def test_161_gsm_characters_need_two_segments_of_153() -> None:
    s = segment_sms("a" * 161)
    assert (s.segments, s.chars_per_segment) == (2, 153)
    assert [len(p) for p in s.parts] == [153, 8]


def test_extension_characters_count_two_septets() -> None:
    s = segment_sms("€" * 80)
    assert (s.encoding, s.units, s.segments) == ("GSM-7", 160, 1)
    assert segment_sms("€" * 80 + "a").segments == 2
    assert segment_sms("\f").units == 2


def test_escape_pair_is_never_split_across_segments() -> None:
    s = segment_sms("a" * 152 + "{" + "b" * 10)
    assert s.parts[0] == "a" * 152
    assert s.parts[1].startswith("{")


def test_any_character_outside_gsm7_switches_to_ucs2_with_70_per_segment() -> None:
    s = segment_sms("Привет")
    assert (s.encoding, s.segments, s.chars_per_segment) == ("UCS-2", 1, 70)
    assert segment_sms("é" * 70).encoding == "GSM-7"
    assert segment_sms("ç" + "a" * 70).segments == 2  # lowercase ç is not GSM-7


def test_ucs2_multipart_holds_67_units_per_segment() -> None:
    s = segment_sms("ж" * 71)
    assert (s.segments, s.chars_per_segment) == (2, 67)
    assert segment_sms("ж" * 134).segments == 2
    assert segment_sms("ж" * 135).segments == 3


def test_emoji_outside_the_basic_plane_counts_two_units() -> None:
    s = segment_sms("😀" * 35)
    assert (s.encoding, s.units, s.segments) == ("UCS-2", 70, 1)
    assert segment_sms("😀" * 36).segments == 2


def test_surrogate_pair_is_never_split_across_segments() -> None:
    s = segment_sms("ж" * 66 + "😀" + "ж" * 5)
    assert s.parts[0] == "ж" * 66
    assert s.parts[1] == "😀" + "ж" * 5


def test_empty_message_is_one_segment() -> None:
    assert segment_sms("").segments == 1


alphabet = st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION) + ["ж", "😀", "中"])


@given(st.text(alphabet=alphabet, max_size=700))
def test_segments_times_capacity_covers_the_message(text: str) -> None:
    s = segment_sms(text)
    assert s.segments * s.chars_per_segment >= s.units
    assert "".join(s.parts) == text
    width = (lambda ch: 2 if ch in GSM7_EXTENSION else 1) if s.encoding == "GSM-7" else (
        lambda ch: 2 if ord(ch) > 0xFFFF else 1
    )
    for part in s.parts:
        assert sum(width(ch) for ch in part) <= s.chars_per_segment
        # UTF-16 view: a part never starts with a low surrogate (no pair was split)
        encoded = part.encode("utf-16-le")
        if encoded:
            first_unit = int.from_bytes(encoded[:2], "little")
            assert not 0xDC00 <= first_unit <= 0xDFFF
    if s.segments > 1:
        assert s.segments == len(s.parts)
