from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telbill.domain.money import (
    format_amount,
    from_micros,
    parse_amount,
    round_money,
    to_micros,
    validate_currency,
    validate_unit,
)
from telbill.errors import InvalidInput


def test_amount_as_float_is_refused():
    with pytest.raises(InvalidInput):
        parse_amount(0.1)


@pytest.mark.parametrize("text", ["", "1e3", "NaN", "inf", "1,000", "abc", "--1", "1.2.3"])
def test_malformed_amount_is_refused(text):
    with pytest.raises(InvalidInput):
        parse_amount(text)


def test_amount_with_seven_decimals_cannot_be_stored():
    with pytest.raises(InvalidInput):
        to_micros(Decimal("0.0000001"))


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_micros_round_trip_is_exact(micros):
    assert to_micros(from_micros(micros)) == micros


def test_half_up_rounding_at_six_decimals():
    assert round_money(Decimal("0.0000005")) == Decimal("0.000001")
    assert format_amount(Decimal("1.5")) == "1.500000"


def test_currency_and_unit_validation():
    assert validate_currency("usd") == "USD"
    with pytest.raises(InvalidInput):
        validate_currency("XXXX")
    assert validate_unit("s:call") == "s:call"
    with pytest.raises(InvalidInput):
        validate_unit("minutes")


def test_amount_with_non_ascii_digits_is_refused():
    with pytest.raises(InvalidInput):
        parse_amount("١٢٣")  # Arabic-Indic digits: Decimal would accept them, we do not
