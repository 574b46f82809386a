"""Invoice rules that need no database: state from payments and the clock, the month an
invoice run covers in each timezone, and amounts printed without rounding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from telbill.adapters.pdf.invoices import exact
from telbill.services.invoices import invoice_status, previous_month

DUE = datetime(2026, 4, 15, tzinfo=UTC)
BEFORE, AFTER = DUE - timedelta(seconds=1), DUE


def test_prepaid_invoice_is_paid_whatever_the_clock_says():
    assert invoice_status("prepaid", 0, 0, 0, None, AFTER) == ("paid", 0)


def test_postpaid_invoice_states_follow_payments_credit_notes_and_the_due_date():
    assert invoice_status("postpaid", 100, 0, 0, DUE, BEFORE) == ("issued", 100)
    assert invoice_status("postpaid", 100, 30, 0, DUE, BEFORE) == ("partially_paid", 70)
    assert invoice_status("postpaid", 100, 0, 40, DUE, BEFORE) == ("partially_paid", 60)
    assert invoice_status("postpaid", 100, 30, 0, DUE, AFTER) == ("overdue", 70)
    assert invoice_status("postpaid", 100, 60, 40, DUE, AFTER) == ("paid", 0)


def test_postpaid_invoice_with_nothing_owed_is_paid_at_once():
    assert invoice_status("postpaid", 0, 0, 0, DUE, AFTER) == ("paid", 0)


def test_month_end_run_covers_the_month_just_ended_in_the_accounts_timezone():
    moment = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    assert previous_month(moment, "UTC") == "2026-02"
    assert previous_month(moment, "Europe/Berlin") == "2026-03"  # already 1 April there
    assert previous_month(datetime(2026, 1, 1, 5, tzinfo=UTC), "UTC") == "2025-12"
    assert previous_month(datetime(2026, 1, 1, 4, 59, tzinfo=UTC), "America/New_York") == "2025-11"


def test_invoice_amounts_print_exactly_with_at_least_two_decimals():
    assert exact(Decimal("0.036740")) == "0.03674"
    assert exact(Decimal("12.000000")) == "12.00"
    assert exact(Decimal("-2.500000")) == "-2.50"
    assert exact(Decimal("100")) == "100.00"
