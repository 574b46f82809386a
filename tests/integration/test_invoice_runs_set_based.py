"""The set-based month-end run (`build_drafts`, `issue_many_in`) against the reference path
(`build_draft` and `issue_in` one invoice at a time): the same drafts, and the same invoices,
numbers, lines, events and job outcomes, on a month with every kind of line, a postpaid
account with its own payment terms, an account in another timezone, a second provider, an
invoice already issued, an empty month and a month refused for a foreign currency.
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from invoice_support import (  # noqa: F401 (fixture)
    APRIL,
    START,
    World,
    call,
    key,
    sms,
    world_fixture,
)

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.event_tables import events
from telbill.adapters.db.invoice_tables import document_counters, invoice_lines, invoices
from telbill.adapters.db.lifecycle_tables import job_runs
from telbill.domain.tariffs import Increment, RateRow, TariffSettings
from telbill.services import (
    accounts,
    invoice_documents,
    invoice_runs,
    numbers,
    rerating,
    subscriptions,
    wallets,
)
from telbill.services import invoices as invoice_service
from telbill.services.accounts import load_account
from telbill.services.invoice_builder import Draft, InvoiceRefused, build_draft, build_drafts
from telbill.services.reports import month_bounds
from telbill.services.tariffs import import_tariff

RUN_AT = APRIL + timedelta(hours=6)  # 1 April 06:00 UTC: March is over in New York too


def busy_month(world: World) -> dict[str, int]:
    """March activity of every kind on several accounts; {name: account id}."""
    db, clock = world.db, world.clock

    def org(name: str, parent: int, **kw: Any) -> int:
        created = accounts.create_account(
            db, kind="organisation", name=name, parent_id=parent, idempotency_key=key(),
            clock=clock, **kw,
        )  # fmt: skip
        wallets.top_up(db, created.id, "50", idempotency_key=key(), clock=clock)
        return created.id

    alpha, bravo = world.alpha.id, world.bravo.id
    world.post_calls([
        call("a1", "+447700900001", 61), call("a2", "+447700900002", 30),
        call("a3", "+16175551234", 61), call("a4", "+15550001", 10, direction="inbound"),
        sms("a5", "+447700900003", 2),
        call("b1", "+447700900001", 125, org="bravo", user="bob"),
        call("b2", "+16175551234", 7, org="bravo", user="bob"),
    ])  # fmt: skip
    numbers.buy_number(db, alpha, "+16175550100", idempotency_key=key(), clock=clock)
    subscriptions.subscribe(db, alpha, "team", seats=2, idempotency_key=key(), clock=clock)
    subscriptions.buy_package(db, alpha, "sms100", idempotency_key=key(), clock=clock)
    wallets.adjust(db, alpha, "-5.00", reason="duplicate call", idempotency_key=key(),
                   clock=clock)  # fmt: skip
    wallets.adjust(db, alpha, "2.50", reason="goodwill", idempotency_key=key(), clock=clock)
    wallets.refund(db, alpha, "3.00", reason="left over", idempotency_key=key(), clock=clock)
    wallets.grant_credit(db, alpha, "4.00", kind="free", idempotency_key=key(), clock=clock)
    wallets.debit(db, alpha, "0.25", service="voice", idempotency_key=key(), clock=clock)
    numbers.buy_number(db, bravo, "+16175550101", idempotency_key=key(), clock=clock)
    invoice_documents.set_invoice_settings(db, bravo, payment_terms_days=30, clock=clock)
    cheaper = [
        RateRow("44", "United Kingdom", Decimal("0.30"), increment=Increment(60, 60)),
        RateRow("1", "United States", Decimal("0.12"), increment=Increment(1, 1)),
    ]
    import_tariff(db, "cheaper", cheaper, TariffSettings(currency="USD"),
                  now=START - timedelta(days=1))  # fmt: skip
    rerating.rerate(db, bravo, start=START - timedelta(hours=1), end=START + timedelta(hours=1),
                    clock=clock, tariff="cheaper")  # fmt: skip

    # Another currency on one charge: refused by both paths.
    foreign = org("Foreign Ltd", world.provider.id)
    wallets.debit(db, foreign, "1.00", service="voice", idempotency_key=key(), clock=clock)
    with db.transaction() as conn:
        row = conn.execute(sa.select(charges).limit(1)).one()._asdict()
        row.pop("id")
        conn.execute(
            charges.insert().values(
                {**row, "cdr_id": "eur-1", "currency": "EUR", "payer_id": foreign}
            )
        )
    empty = org("Empty Ltd", world.provider.id)
    # A second provider with its own numbering, its account between the first's by id.
    clock.set(START + timedelta(days=3))
    other = accounts.create_account(
        db, kind="provider", name="Beta Telecom", currency="USD", idempotency_key=key(),
        clock=clock,
    )  # fmt: skip
    beta_one = org("Beta One", other.id)
    wallets.debit(db, beta_one, "2.00", service="sms", idempotency_key=key(), clock=clock)
    late = org("Late Ltd", world.provider.id)
    wallets.debit(db, late, "0.75", service="voice", idempotency_key=key(), clock=clock)
    beta_two = org("Beta Two", other.id, billing_mode="postpaid", credit_limit="10")
    wallets.debit(db, beta_two, "3.00", service="voice", idempotency_key=key(), clock=clock)
    # New York: 1 April 02:00 UTC is still March there (not on the UTC accounts' March).
    new_york = org("Gotham Inc", world.provider.id, timezone="America/New_York")
    clock.set(datetime(2026, 4, 1, 2, 0, tzinfo=UTC))
    wallets.debit(db, new_york, "1.25", service="voice", idempotency_key=key(), clock=clock)
    wallets.debit(db, alpha, "0.40", service="voice", idempotency_key=key(), clock=clock)
    return {
        "alpha": alpha, "bravo": bravo, "foreign": foreign, "empty": empty,
        "new_york": new_york, "beta_one": beta_one, "late": late, "beta_two": beta_two,
        "acme": world.provider.id, "beta": other.id,
    }  # fmt: skip


def test_build_drafts_gives_each_account_the_draft_build_draft_gives_it(world: World) -> None:
    ids = busy_month(world)
    with world.db.transaction() as conn:
        members = [load_account(conn, i) for i in ids.values()]
        compared = 0
        for zone in ("UTC", "America/New_York"):
            start, end = month_bounds("2026-03", zone)
            group = [a for a in members if a.timezone == zone]
            drafts = build_drafts(conn, group, start, end)
            assert sorted(drafts) == sorted(a.id for a in group)
            for account in group:
                try:
                    expected: Draft | InvoiceRefused = build_draft(conn, account, start, end)
                except InvoiceRefused as exc:
                    expected = exc
                got = drafts[account.id]
                if isinstance(expected, InvoiceRefused):
                    assert isinstance(got, InvoiceRefused)
                    assert (str(got), got.details) == (str(expected), expected.details)
                else:
                    assert got == expected, account.name
                compared += 1
    assert compared == len(ids)
    alpha = drafts_of(world, ids["alpha"])
    sections = {line.section for line in alpha.lines}
    assert sections == {"calls", "sms", "numbers", "subscriptions", "packages", "adjustments"}
    bravo = drafts_of(world, ids["bravo"])
    assert any(line.description == "Rerating of voice charges" for line in bravo.lines)


def drafts_of(world: World, account_id: int) -> Draft:
    with world.db.transaction() as conn:
        account = load_account(conn, account_id)
        start, end = month_bounds("2026-03", account.timezone)
        return build_draft(conn, account, start, end)


class _Snapshot(Exception):
    def __init__(self, taken: Any) -> None:
        self.taken = taken


def snapshot(conn: sa.Connection) -> dict[str, Any]:
    """The run's writes without row ids: invoices by (provider, number)."""
    rows = conn.execute(sa.select(invoices)).all()
    number = {r.id: (r.provider_id, r.number) for r in rows}
    return {
        "invoices": sorted(
            (number[r.id], {k: v for k, v in r._asdict().items() if k != "id"}) for r in rows
        ),
        "lines": sorted(
            (
                number[r.invoice_id],
                r.position,
                r.section,
                r.description,
                r.direction,
                r.destination,
                r.prefix,
                r.quantity,
                r.billed_units,
                r.amount_micros,
            )
            for r in conn.execute(sa.select(invoice_lines))
        ),  # fmt: skip
        "events": sorted(
            (
                r.account_id,
                r.occurred_at,
                number[r.payload["invoice_id"]],
                r.dedupe_key == f"invoice.issued:{r.payload['invoice_id']}",
                sorted((k, v) for k, v in r.payload.items() if k != "invoice_id"),
            )
            for r in conn.execute(sa.select(events).where(events.c.type == "invoice.issued"))
        ),  # fmt: skip
        "jobs": sorted(
            (r.entity, r.period, r.outcome, r.ran_at)
            for r in conn.execute(
                sa.select(job_runs).where(job_runs.c.job == invoice_runs.ISSUE_JOB)
            )
        ),
        "counters": sorted(tuple(r) for r in conn.execute(sa.select(document_counters))),
    }


def test_month_end_run_set_based_issues_the_same_invoices_as_one_by_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = busy_month(world)
    world.clock.set(APRIL + timedelta(hours=1))
    already = invoice_service.issue_invoice(world.db, ids["late"], "2026-03", clock=world.clock)
    assert already.number == 1
    real_batch = invoice_runs._issue_batch

    def snapshot_and_roll_back(conn: sa.Connection, *args: Any) -> int:
        real_batch(conn, *args)
        raise _Snapshot(snapshot(conn))

    # The reference: every invoice one by one, rolled back once its writes are read.
    monkeypatch.setattr(invoice_runs, "SET_BASED", False)
    monkeypatch.setattr(invoice_runs, "_issue_batch", snapshot_and_roll_back)
    with pytest.raises(_Snapshot) as one_by_one:
        invoice_runs.issue_month_end(world.db, RUN_AT)
    monkeypatch.setattr(invoice_runs, "_issue_batch", real_batch)
    monkeypatch.setattr(invoice_runs, "SET_BASED", True)

    assert invoice_runs.issue_month_end(world.db, RUN_AT) == 6
    with world.db.transaction() as conn:
        set_based = snapshot(conn)
    assert set_based == one_by_one.value.taken
    outcomes = {entity: outcome for entity, _, outcome, _ in set_based["jobs"]}
    assert outcomes == {
        str(ids["alpha"]): "issued", str(ids["bravo"]): "issued",
        str(ids["foreign"]): "refused", str(ids["empty"]): "issued",  # a zero invoice
        str(ids["new_york"]): "issued", str(ids["beta_one"]): "issued",
        str(ids["late"]): "already_issued", str(ids["beta_two"]): "issued",
        str(ids["acme"]): "empty", str(ids["beta"]): "empty",  # providers hold wallets too
    }  # fmt: skip
    # Numbers follow each other per provider, in account order, after the one issued by hand.
    by_account = {row["account_id"]: key for key, row in set_based["invoices"]}
    first, beta = ids["acme"], ids["beta"]
    # (zones in name order: America/New_York's accounts come before UTC's)
    assert [by_account[ids[n]] for n in ("new_york", "alpha", "bravo")] == [
        (first, 2),
        (first, 3),
        (first, 4),
    ]
    assert [by_account[ids[n]] for n in ("beta_one", "beta_two")] == [(beta, 1), (beta, 2)]
    bravo = next(row for _, row in set_based["invoices"] if row["account_id"] == ids["bravo"])
    assert bravo["due_at"] == RUN_AT + timedelta(days=30)
    beta_two = next(row for _, row in set_based["invoices"] if row["account_id"] == ids["beta_two"])
    assert beta_two["due_at"] == RUN_AT + timedelta(days=14)
    # Issued for real: read back like any invoice, total = its lines.
    invoice = invoice_service.list_invoices(world.db, ids["alpha"], clock=world.clock)[0]
    full = invoice_service.get_invoice(world.db, invoice.id, clock=world.clock)
    assert full.total == sum(line.amount for line in full.lines) > 0
