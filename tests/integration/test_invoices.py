"""Monthly invoices: what the lines say, that the total is the ledger's, VAT, prepaid and
postpaid, gap-free numbers, immutability, currencies. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from invoice_support import (  # noqa: F401 (fixture)
    APRIL,
    START,
    World,
    call,
    key,
    ledger_debits,
    sms,
    wallet_postings_by_kind,
    world_fixture,
)

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.invoice_tables import document_counters, invoice_lines, invoices
from telbill.errors import InvalidInput
from telbill.services import invoices as invoice_service
from telbill.services import numbers, subscriptions, wallets
from telbill.services.invoice_builder import InvoiceRefused
from telbill.services.invoices import InvoiceImmutable

MARCH = (datetime(2026, 3, 1, tzinfo=UTC), APRIL)


def issue(world: World, account_id: int, month: str = "2026-03") -> invoice_service.Invoice:
    world.clock.set(max(world.clock.now(), APRIL + timedelta(hours=1)))
    return invoice_service.issue_invoice(world.db, account_id, month, clock=world.clock)


def lines_of(invoice: invoice_service.Invoice, section: str) -> list[tuple]:
    return [
        (line.description, line.direction, line.quantity, line.billed_units, line.amount)
        for line in invoice.lines
        if line.section == section
    ]


def test_calls_are_grouped_by_destination_and_direction_with_count_minutes_and_cost(
    world: World,
):
    world.post_calls(
        [
            call("c1", "+447700900001", 61),  # 60/60: 120 s billed, 1.20
            call("c2", "+447700900002", 30),  # 60 s, 0.60
            call("c3", "+16175551234", 61),  # 1/1: 61 s, 0.122
            call("c4", "+15550001", 10, direction="inbound"),  # 10 s, 0.001667
            sms("s1", "+447700900003", 2),  # 2 segments, 0.10
        ]
    )
    invoice = issue(world, world.alpha.id)
    assert lines_of(invoice, "calls") == [
        ("Inbound", "inbound", 1, 10, Decimal("0.001667")),
        ("United Kingdom (44)", "outbound", 2, 180, Decimal("1.8")),
        ("United States (1)", "outbound", 1, 61, Decimal("0.122")),
    ]
    uk = next(line for line in invoice.lines if line.prefix == "44")
    assert uk.minutes == "3:00" and uk.destination == "United Kingdom"
    assert lines_of(invoice, "sms") == [("SMS", "outbound", 1, 2, Decimal("0.100000"))]
    assert invoice.total == sum(line.amount for line in invoice.lines)
    assert invoice.period == "2026-03" and invoice.currency == "USD"


def test_invoice_total_equals_the_ledgers_debits_of_the_month(world: World):
    db, clock, alpha = world.db, world.clock, world.alpha
    world.post_calls([call("c1", "+447700900001", 61), sms("s1", "+447700900003", 1)])
    numbers.buy_number(db, alpha.id, "+16175550100", idempotency_key=key(), clock=clock)
    subscriptions.subscribe(db, alpha.id, "team", seats=2, idempotency_key=key(), clock=clock)
    subscriptions.buy_package(db, alpha.id, "sms100", idempotency_key=key(), clock=clock)
    wallets.adjust(db, alpha.id, "-5.00", reason="duplicate call", idempotency_key=key(),
                   clock=clock)  # fmt: skip
    wallets.adjust(db, alpha.id, "2.50", reason="goodwill", idempotency_key=key(), clock=clock)
    wallets.refund(db, alpha.id, "3.00", reason="left over", idempotency_key=key(), clock=clock)
    wallets.grant_credit(db, alpha.id, "4.00", kind="free", idempotency_key=key(), clock=clock)
    wallets.debit(db, alpha.id, "0.25", service="voice", idempotency_key=key(), clock=clock)
    clock.set(APRIL + timedelta(minutes=5))  # booked in April: not on the March invoice
    world.post_calls([call("c9", "+447700900009", 5, at=APRIL)])

    invoice = issue(world, alpha.id)

    debits = ledger_debits(db, alpha.id, *MARCH)
    assert debits > Decimal("20")  # the month really charged something
    assert invoice.total == debits
    assert invoice.total == sum(line.amount for line in invoice.lines)
    sections = {line.section for line in invoice.lines}
    assert sections == {"calls", "sms", "numbers", "subscriptions", "packages", "adjustments"}
    adjustments = lines_of(invoice, "adjustments")
    assert ("Adjustment: duplicate call", None, 1, None, Decimal("5.000000")) in adjustments
    assert ("Adjustment: goodwill", None, 1, None, Decimal("-2.500000")) in adjustments
    assert any(d.startswith("Other voice charges") and a == Decimal("0.25")
               for d, *_, a in adjustments)  # fmt: skip
    # Money in and out that is not a charge is shown for the record, outside the total.
    moves = wallet_postings_by_kind(db, alpha.id, *MARCH)
    assert invoice.activity["top_up"] == moves["top_up"] == Decimal("100")
    assert invoice.activity["refund"] == Decimal("-3")
    assert invoice.activity["grant"] >= Decimal("4")


def test_invoice_prices_include_vat_like_receipts(world: World):
    world.post_calls([call("c1", "+447700900001", 1200)])  # 20 min x 0.60 = 12.00
    invoice = issue(world, world.alpha.id)
    assert (invoice.total, invoice.vat, invoice.net) == (Decimal("12"), Decimal("2"), Decimal("10"))
    assert invoice.vat_rate == Decimal("0.2") and invoice.vat_country == "GB"


def test_prepaid_invoice_owes_nothing_it_was_paid_from_the_balance(world: World):
    world.post_calls([call("c1", "+447700900001", 60)])
    invoice = issue(world, world.alpha.id)
    assert invoice.billing_mode == "prepaid"
    assert (invoice.status, invoice.amount_owed, invoice.amount_due) == ("paid", 0, 0)
    assert invoice.due_at is None


def test_invoice_numbers_follow_each_other_per_provider_across_accounts(world: World):
    world.post_calls([call("a1", "+447700900001", 60),
                      call("b1", "+447700900001", 60, org="bravo", user="bob")])  # fmt: skip
    first = issue(world, world.alpha.id)
    second = issue(world, world.bravo.id)
    assert (first.number, second.number) == (1, 2)
    assert (first.label, second.label) == ("INV-1", "INV-2")


def test_issuing_a_month_again_returns_the_same_invoice(world: World):
    world.post_calls([call("c1", "+447700900001", 60)])
    first = issue(world, world.alpha.id)
    again = issue(world, world.alpha.id)
    assert again == first
    with world.db.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(invoices)).scalar_one() == 1
        counter = conn.execute(sa.select(document_counters.c.last_number)).scalar_one()
    assert counter == 1


def test_issued_invoice_never_changes_late_bookings_are_refused_not_merged(world: World):
    world.post_calls([call("c1", "+447700900001", 60)])
    first = issue(world, world.alpha.id)
    # A clock that went back books a charge into the closed month.
    world.clock.set(datetime(2026, 3, 31, 23, 0, tzinfo=UTC))
    world.post_calls([call("late", "+447700900001", 60, at=world.clock.now())])
    with pytest.raises(InvoiceImmutable, match="credit note"):
        issue(world, world.alpha.id)
    assert invoice_service.get_invoice(world.db, first.id, clock=world.clock) == first


def test_the_database_refuses_to_update_or_delete_an_issued_invoice(world: World):
    world.post_calls([call("c1", "+447700900001", 60)])
    invoice = issue(world, world.alpha.id)
    for statement in (
        sa.update(invoices).where(invoices.c.id == invoice.id).values(total_micros=1),
        sa.update(invoice_lines).values(amount_micros=0),
        sa.delete(invoice_lines),
        sa.delete(invoices),
    ):
        with pytest.raises(sa.exc.DatabaseError, match="never change"):
            with world.db.transaction() as conn:
                conn.execute(statement)
    assert invoice_service.get_invoice(world.db, invoice.id, clock=world.clock) == invoice


def test_a_month_not_over_in_the_accounts_timezone_cannot_be_invoiced(world: World):
    world.clock.set(datetime(2026, 3, 31, 23, 0, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="not over"):
        invoice_service.issue_invoice(world.db, world.alpha.id, "2026-03", clock=world.clock)


def test_user_without_wallet_is_not_invoiced_its_organisation_is(world: World):
    world.clock.set(APRIL + timedelta(hours=1))
    with pytest.raises(InvalidInput, match="no wallet"):
        invoice_service.issue_invoice(world.db, world.alice.id, "2026-03", clock=world.clock)


def test_month_with_charges_in_another_currency_is_refused_and_nothing_is_written(
    world: World,
):
    world.post_calls([call("c1", "+447700900001", 60)])
    # The charging service refuses a tariff in another currency, so such a row can only
    # come from outside it (an import, a manual fix): the invoice must not hide it.
    with world.db.transaction() as conn:
        row = conn.execute(sa.select(charges).limit(1)).one()._asdict()
        row.pop("id")
        conn.execute(charges.insert().values({**row, "cdr_id": "eur-1", "currency": "EUR"}))
    with pytest.raises(InvoiceRefused, match="EUR"):
        issue(world, world.alpha.id)
    with world.db.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(invoices)).scalar_one() == 0
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(document_counters)).scalar_one()
            == 0
        )
