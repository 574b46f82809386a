"""Postpaid invoices (owed, due date, payments, states, overdue), credit notes and the
month-end invoice run of the scheduler. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from invoice_support import (  # noqa: F401 (fixture)
    APRIL,
    World,
    call,
    key,
    wallet_postings_by_kind,
    world_fixture,
)

from telbill.adapters.db.invoice_tables import invoices
from telbill.errors import Conflict, IdempotencyConflict, InvalidInput
from telbill.services import (
    accounts,
    events,
    invoice_documents,
    invoice_payments,
    plans,
    scheduler,
    wallets,
)
from telbill.services import invoices as invoice_service
from telbill.services.clock import FixedClock
from telbill.services.reconcile import reconcile


def postpaid_invoice(world: World) -> invoice_service.Invoice:
    """Bravo (postpaid) calls the UK for 2 x 50 minutes in March at 0.60/min: 60.00."""
    world.post_calls(
        [call(f"b{n}", "+447700900001", 3000, org="bravo", user="bob") for n in (1, 2)]
    )
    world.clock.set(APRIL + timedelta(hours=1))
    return invoice_service.issue_invoice(world.db, world.bravo.id, "2026-03", clock=world.clock)


def balance(world: World, account_id: int) -> Decimal:
    """The wallet's money, straight from its postings."""
    changes = wallet_postings_by_kind(
        world.db, account_id, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    )
    return sum(changes.values(), Decimal(0))


def pay(
    world: World, invoice_id: int, amount: str, **kw: object
) -> invoice_payments.InvoicePayment:
    params: dict[str, object] = {"method": "bank_transfer", "idempotency_key": key()}
    params.update(kw)
    return invoice_payments.record_payment(
        world.db, invoice_id, amount, clock=world.clock, **params
    )  # type: ignore[arg-type]


def state(world: World, invoice_id: int) -> tuple[str, Decimal]:
    invoice = invoice_service.get_invoice(world.db, invoice_id, clock=world.clock)
    return invoice.status, invoice.amount_due


def test_postpaid_invoice_is_owed_by_its_due_date_net_14_days_by_default(world: World):
    invoice = postpaid_invoice(world)
    assert (invoice.total, invoice.amount_owed, invoice.amount_due) == (60, 60, 60)
    assert invoice.status == "issued"
    assert invoice.due_at == APRIL + timedelta(hours=1, days=14)


def test_payment_terms_come_from_the_account_setting(world: World):
    invoice_documents.set_invoice_settings(
        world.db, world.bravo.id, payment_terms_days=30, clock=world.clock
    )
    invoice = postpaid_invoice(world)
    assert invoice.due_at == invoice.issued_at + timedelta(days=30)


def test_payments_move_the_invoice_from_issued_to_partially_paid_to_paid(world: World):
    invoice = postpaid_invoice(world)
    before = balance(world, world.bravo.id)
    pay(world, invoice.id, "20.00", reference="BANK-1")
    assert state(world, invoice.id) == ("partially_paid", Decimal("40"))
    pay(world, invoice.id, "40.00", method="direct_debit")
    assert state(world, invoice.id) == ("paid", 0)
    # Each payment is a ledger transaction crediting the wallet.
    assert balance(world, world.bravo.id) == before + 60
    assert len(invoice_payments.list_payments(world.db, invoice.id)) == 2
    assert reconcile(world.db).ok


def test_an_unpaid_invoice_is_overdue_after_its_due_date_computed_from_the_clock(world: World):
    invoice = postpaid_invoice(world)
    pay(world, invoice.id, "10.00")
    world.clock.set(invoice.due_at - timedelta(seconds=1))
    assert state(world, invoice.id)[0] == "partially_paid"
    world.clock.set(invoice.due_at)
    assert state(world, invoice.id) == ("overdue", Decimal("50"))
    pay(world, invoice.id, "50.00")
    assert state(world, invoice.id) == ("paid", 0)


def test_a_payment_is_idempotent_by_key_and_a_reused_key_with_another_amount_is_refused(
    world: World,
):
    invoice = postpaid_invoice(world)
    first = pay(world, invoice.id, "25.00", idempotency_key="bank-ref-77")
    again = pay(world, invoice.id, "25.00", idempotency_key="bank-ref-77")
    assert again == first
    assert state(world, invoice.id) == ("partially_paid", Decimal("35"))
    with pytest.raises(IdempotencyConflict):
        pay(world, invoice.id, "26.00", idempotency_key="bank-ref-77")


def test_paying_more_than_is_due_is_refused_and_changes_nothing(world: World):
    invoice = postpaid_invoice(world)
    before = balance(world, world.bravo.id)
    with pytest.raises(InvalidInput, match="exceeds the amount due"):
        pay(world, invoice.id, "60.01")
    assert balance(world, world.bravo.id) == before
    assert state(world, invoice.id) == ("issued", Decimal("60"))


def test_a_prepaid_invoice_takes_no_payment(world: World):
    world.post_calls([call("a1", "+447700900001", 60)])
    world.clock.set(APRIL + timedelta(hours=1))
    invoice = invoice_service.issue_invoice(world.db, world.alpha.id, "2026-03", clock=world.clock)
    with pytest.raises(Conflict, match="nothing is owed"):
        pay(world, invoice.id, "1.00")


def test_credit_note_has_its_own_sequence_lines_totals_and_credits_the_wallet(world: World):
    world.post_calls([call("a1", "+447700900001", 1200)])  # 12.00
    world.clock.set(APRIL + timedelta(hours=1))
    invoice = invoice_service.issue_invoice(world.db, world.alpha.id, "2026-03", clock=world.clock)
    before = balance(world, world.alpha.id)
    note = invoice_payments.issue_credit_note(
        world.db, invoice.id, [("Dropped call c1", "6.00")], reason="network fault",
        idempotency_key=key(), clock=world.clock,
    )  # fmt: skip
    assert (note.label, note.invoice_number) == ("CN-1", invoice.number)
    assert (note.total, note.vat, note.net) == (Decimal(6), Decimal(1), Decimal(5))
    assert [(line.description, line.amount) for line in note.lines] == [
        ("Dropped call c1", Decimal(6))
    ]
    assert balance(world, world.alpha.id) == before + 6
    # The issued invoice is unchanged; its credited amount is the credit note's.
    after = invoice_service.get_invoice(world.db, invoice.id, clock=world.clock)
    assert (after.total, after.credited) == (invoice.total, Decimal(6))
    with pytest.raises(InvalidInput, match="left to credit: 6.00"):
        invoice_payments.issue_credit_note(
            world.db, invoice.id, [("more", "6.01")], reason="too much",
            idempotency_key=key(), clock=world.clock,
        )  # fmt: skip
    second = invoice_payments.issue_credit_note(
        world.db, invoice.id, [("rest", "6.00")], reason="goodwill", credit_wallet=False,
        idempotency_key=key(), clock=world.clock,
    )  # fmt: skip
    assert second.number == 2 and second.transaction_id is None
    assert reconcile(world.db).ok


def test_credit_note_reduces_what_a_postpaid_customer_owes(world: World):
    invoice = postpaid_invoice(world)
    invoice_payments.issue_credit_note(
        world.db, invoice.id, [("Misrouted calls", "15.00")], reason="routing error",
        idempotency_key=key(), clock=world.clock,
    )  # fmt: skip
    assert state(world, invoice.id) == ("partially_paid", Decimal("45"))
    with pytest.raises(InvalidInput, match="always credits the wallet"):
        invoice_payments.issue_credit_note(
            world.db, invoice.id, [("x", "1.00")], reason="r", credit_wallet=False,
            idempotency_key=key(), clock=world.clock,
        )  # fmt: skip


def tick(world: World, at: datetime) -> scheduler.TickReport:
    world.clock.set(at)
    return scheduler.tick(world.db, at, clock=FixedClock(at))


def test_month_end_run_issues_last_months_invoices_once_in_each_accounts_timezone(
    world: World,
):
    db, clock = world.db, world.clock
    tokyo = accounts.create_account(
        db, kind="organisation", name="Tokyo KK", parent_id=world.provider.id,
        timezone="Asia/Tokyo", idempotency_key=key(), clock=clock,
    )  # fmt: skip
    newyork = accounts.create_account(
        db, kind="organisation", name="NY Inc", parent_id=world.provider.id,
        timezone="America/New_York", idempotency_key=key(), clock=clock,
    )  # fmt: skip
    for org in (tokyo, newyork):
        plans.assign_plan(db, org.id, "retail", clock=clock)
        wallets.top_up(db, org.id, "10", idempotency_key=key(), clock=clock)
    lines = [call("a1", "+447700900001", 60), call("b1", "+447700900001", 60, org="bravo",
             user="bob")]  # fmt: skip
    world.post_calls(lines)
    for org in (tokyo, newyork):
        wallets.debit(db, org.id, "1.00", service="voice", idempotency_key=key(), clock=clock)

    def issued() -> dict[int, str]:
        with db.transaction() as conn:
            return dict(conn.execute(sa.select(invoices.c.account_id, invoices.c.period)).all())

    tick(world, datetime(2026, 3, 31, 16, 0, tzinfo=UTC))  # already 1 April in Tokyo
    assert issued() == {tokyo.id: "2026-03"}
    report = tick(world, datetime(2026, 4, 1, 0, 30, tzinfo=UTC))
    assert issued() == {tokyo.id: "2026-03", world.alpha.id: "2026-03", world.bravo.id: "2026-03"}
    assert report.outcomes["invoices.issue:done"] == 2
    tick(world, datetime(2026, 4, 1, 5, 0, tzinfo=UTC))  # midnight has passed in New York
    assert set(issued()) == {tokyo.id, newyork.id, world.alpha.id, world.bravo.id}
    again = tick(world, datetime(2026, 4, 2, 5, 0, tzinfo=UTC))
    assert again.outcomes["invoices.issue:done"] == 0
    sent = events.list_events(db, types=["invoice.issued"])
    assert sorted(e.account_id for e in sent) == sorted(issued())
    # Accounts with nothing in March (the provider's own wallet) get no invoice.
    assert world.provider.id not in issued()


def test_overdue_event_is_emitted_once_by_the_scheduler(world: World):
    invoice = postpaid_invoice(world)
    tick(world, invoice.due_at - timedelta(minutes=1))
    assert events.list_events(world.db, types=["invoice.overdue"]) == []
    tick(world, invoice.due_at + timedelta(minutes=1))
    tick(world, invoice.due_at + timedelta(days=3))
    overdue = events.list_events(world.db, types=["invoice.overdue"])
    assert [(e.account_id, e.payload["invoice_id"]) for e in overdue] == [
        (world.bravo.id, invoice.id)
    ]
    assert overdue[0].payload["amount_due"] == "60.000000"


def test_an_invoice_paid_before_its_due_date_never_becomes_overdue(world: World):
    invoice = postpaid_invoice(world)
    pay(world, invoice.id, "60.00")
    tick(world, invoice.due_at + timedelta(days=1))
    assert events.list_events(world.db, types=["invoice.overdue"]) == []
    assert state(world, invoice.id) == ("paid", 0)
