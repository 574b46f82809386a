"""Inventory CSV: good rows parsed exactly, bad rows reported with their line numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from telbill.adapters.formats.inventory_csv import read_inventory_text
from telbill.errors import InvalidInput

HEADER = "number,country,type,locality,area_code,monthly_price,setup_price,verification_required\n"


def test_inventory_rows_are_normalised_to_e164_with_exact_prices() -> None:
    rows, errors = read_inventory_text(HEADER + "617 555 0100,us,Local,Boston,617,1.15,0.5,yes\n")
    assert errors == []
    row = rows[0]
    assert (row.number, row.country, row.number_type) == ("+16175550100", "US", "local")
    assert (row.monthly_price, row.setup_price) == (Decimal("1.15"), Decimal("0.5"))
    assert row.verification_required is True


def test_bad_inventory_rows_are_reported_with_line_numbers_and_reason() -> None:
    text = (
        HEADER
        + "+16175550100,US,local,Boston,617,1.00,0,no\n"
        + "+16175550101,US,landline,Boston,617,1.00,0,no\n"
        + "+16175550102,US,local,Boston,617,-1,0,no\n"
        + "not-a-number,US,local,Boston,617,1.00,0,no\n"
        + "+16175550100,US,local,Boston,617,1.00,0,no\n"
        + "+16175550103,US,local,Boston,617,1.00,0,maybe\n"
    )
    rows, errors = read_inventory_text(text)
    assert [r.number for r in rows] == ["+16175550100"]
    assert [e.line for e in errors] == [3, 4, 5, 6, 7]
    assert "type" in errors[0].reason and "repeats line 2" in errors[3].reason


def test_inventory_header_without_required_columns_is_refused() -> None:
    with pytest.raises(InvalidInput, match="missing columns: monthly_price"):
        read_inventory_text("number,country,type\n+16175550100,US,local\n")
