"""Phone number normalisation and labels."""

from __future__ import annotations

import pytest

from telbill.domain.numbers import normalize_number, number_labels, rating_digits
from telbill.errors import InvalidInput


def test_plus_e164_is_kept() -> None:
    assert normalize_number("+44 20 7946 0000") == "+442079460000"


def test_00_international_prefix_becomes_plus() -> None:
    assert normalize_number("0044 20 7946 0000") == "+442079460000"


def test_national_digits_use_the_default_region() -> None:
    assert normalize_number("020 7946 0000", default_region="GB") == "+442079460000"
    assert normalize_number("(415) 555-2671", default_region="us") == "+14155552671"


def test_national_digits_without_a_region_are_refused() -> None:
    with pytest.raises(InvalidInput, match="country code"):
        normalize_number("02079460000")


@pytest.mark.parametrize("junk", ["", "hello", "+44abc", "++44", "+1", "12345678901234567890"])
def test_junk_is_a_clear_invalid_input(junk: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_number(junk)


def test_rating_digits_strip_plus_and_00_and_keep_extensions() -> None:
    assert rating_digits("+44 20 7946-0000") == "442079460000"
    assert rating_digits("0044207946") == "44207946"
    assert rating_digits("101") == "101"
    with pytest.raises(InvalidInput):
        rating_digits("sip:alice@example.com")


def test_labels_give_country_and_type_without_pricing() -> None:
    assert number_labels("+442079460000").country == "GB"
    assert number_labels("+447911123456").number_type == "mobile"
    assert number_labels("+18002345678").number_type == "toll_free"
    assert number_labels("999999").country is None
