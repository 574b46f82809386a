"""Posting CDRs to balances: exactly once, packages first, bad rows quarantined."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from charging_support import (  # noqa: F401  (fixture)
    START,
    World,
    add_tariff,
    cdr_line,
    key,
    paid,
    retail_rows,
    world_fixture,
    write_cdrs,
)

from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.services import charging, rerating, wallets
from telbill.services.reconcile import reconcile


def post(world: World, path: Path, **kwargs: object) -> charging.PostSummary:
    return charging.post_cdrs(
        world.db, read_cdr_file(path, "native"), clock=world.clock, source=str(path), **kwargs  # type: ignore[arg-type]
    )


def test_cdr_is_rated_with_the_plan_and_charged_to_the_users_billing_account(
    world: World, tmp_path: Path
) -> None:
    path = write_cdrs(tmp_path / "c.csv", [cdr_line("c1", "+447700900123", 61)])
    summary = post(world, path)
    assert (summary.posted, summary.quarantined) == (1, 0)
    # 61 s in 60/60 at 0.60/min = 2 minutes = 1.20, paid by the organisation's wallet.
    assert paid(world) == Decimal("8.80")
    charge = charging.get_charge(world.db, 1)
    assert (charge.account_id, charge.payer_id) == (world.user.id, world.org.id)
    assert charge.amount == Decimal("1.20") and charge.billed_units == 120
    assert charge.prefix == "44" and charge.tariff == "retail"
    assert "matched prefix 44" in charge.text
    assert reconcile(world.db).ok


def test_posting_the_same_file_twice_charges_each_cdr_once(world: World, tmp_path: Path) -> None:
    lines = [cdr_line(f"c{n}", "+15551234567", 30 + n) for n in range(10)]
    path = write_cdrs(tmp_path / "c.csv", lines)
    first = post(world, path, chunk_size=3)
    balance = paid(world)
    second = post(world, path, chunk_size=4)
    assert (first.posted, first.duplicates) == (10, 0)
    assert (second.posted, second.duplicates) == (0, 10)
    assert paid(world) == balance
    assert reconcile(world.db).ok


def test_cdr_id_reused_with_different_content_is_refused_and_quarantined(
    world: World, tmp_path: Path
) -> None:
    post(world, write_cdrs(tmp_path / "a.csv", [cdr_line("c1", "+15551234567", 30)]))
    balance = paid(world)
    summary = post(world, write_cdrs(tmp_path / "b.csv", [cdr_line("c1", "+15551234567", 90)]))
    assert (summary.posted, summary.refused) == (0, 1)
    assert paid(world) == balance
    reasons = [q.reason for q in charging.list_quarantine(world.db)]
    assert any("different content" in r for r in reasons)


def test_bad_rows_are_quarantined_with_line_and_reason_and_the_rest_posts(
    world: World, tmp_path: Path
) -> None:
    path = write_cdrs(
        tmp_path / "c.csv",
        [
            cdr_line("c1", "+15551234567", 60),
            "c2,alpha,alice,outbound,+1555,+1555,not-a-time,,,voice,\n",
            cdr_line("c3", "+861012345678", 60),  # no rate for China
            cdr_line("c4", "+15551234567", 60, account="nobody", user=""),
        ],
    )
    summary = post(world, path)
    assert (summary.posted, summary.quarantined) == (1, 3)
    rows = {q.line: q.reason for q in charging.list_quarantine(world.db)}
    assert set(rows) == {3, 4, 5}
    assert rows[4].startswith("no_rate")
    assert rows[5].startswith("not_found")
    assert paid(world) == Decimal("9.88")
    # Posting the same file again does not quarantine the same rows twice.
    post(world, path)
    assert len(charging.list_quarantine(world.db)) == 3


def test_quarantined_cdr_is_reposted_once_fixed(world: World, tmp_path: Path) -> None:
    post(world, write_cdrs(tmp_path / "c.csv", [cdr_line("c3", "+861012345678", 60)]))
    [row] = charging.list_quarantine(world.db)
    summary = charging.repost_quarantined(
        world.db, row.id, clock=world.clock, fixed={"to": "+15551234567"}
    )
    assert summary.posted == 1
    assert paid(world) == Decimal("9.88")
    assert charging.list_quarantine(world.db, status="reposted")[0].id == row.id


def test_unanswered_call_costs_nothing(world: World, tmp_path: Path) -> None:
    summary = post(world, write_cdrs(tmp_path / "c.csv", [cdr_line("c1", "+447700900123", None)]))
    assert summary.posted == 1
    assert paid(world) == Decimal("10")


def test_call_time_package_pays_voice_seconds_before_money(world: World, tmp_path: Path) -> None:
    wallets.grant_credit(
        world.db, world.org.id, 90, kind="package", unit="s:call", idempotency_key=key(),
        clock=world.clock,
    )  # fmt: skip
    # 120 billed seconds to the US at 0.12/min = 0.24; 90 s from the package, 30 s paid.
    post(world, write_cdrs(tmp_path / "c.csv", [cdr_line("c1", "+15551234567", 120)]))
    assert paid(world) == Decimal("9.94")
    balances = wallets.get_balances(world.db, world.org.id, clock=world.clock)
    assert balances.unit("s:call").buckets[0].balance == 0
    charge = charging.get_charge(world.db, 1)
    assert charge.package_units == 90 and charge.amount == Decimal("0.06")
    assert reconcile(world.db).ok


def test_free_credit_is_drained_before_the_paid_balance(world: World, tmp_path: Path) -> None:
    wallets.grant_credit(
        world.db, world.org.id, "1", kind="free", idempotency_key=key(), clock=world.clock
    )
    post(world, write_cdrs(tmp_path / "c.csv", [cdr_line("c1", "+447700900123", 61)]))
    balances = wallets.get_balances(world.db, world.org.id, clock=world.clock)
    kinds = {b.kind: b.balance for b in balances.unit("USD").buckets}
    assert kinds == {"paid": Decimal("9.80"), "free": Decimal("0")}


def test_sms_is_charged_per_segment(world: World, tmp_path: Path) -> None:
    line = cdr_line("s1", "+447700900123", None, service="sms", segments="3")
    post(world, write_cdrs(tmp_path / "c.csv", [line]))
    assert paid(world) == Decimal("9.85")


def test_rerating_posts_only_the_difference_with_its_explanation(
    world: World, tmp_path: Path
) -> None:
    post(world, write_cdrs(tmp_path / "c.csv", [
        cdr_line("c1", "+447700900123", 61), cdr_line("c2", "+15551234567", 60),
    ]))  # fmt: skip
    assert paid(world) == Decimal("8.68")
    add_tariff(world.db, "fixed-uk", retail_rows(uk_rate="0.30"), START - timedelta(days=1))
    period = {"start": START - timedelta(hours=1), "end": START + timedelta(hours=1)}
    summary = rerating.rerate(
        world.db, world.org.id, clock=world.clock, tariff="fixed-uk", **period
    )
    assert (summary.changed, summary.unchanged) == (1, 1)
    assert summary.difference == Decimal("-0.60")
    assert paid(world) == Decimal("9.28")
    explained = charging.get_charge(world.db, summary.charge_ids[0])
    assert explained.revision == 1 and "difference -0.6" in explained.text
    again = rerating.rerate(world.db, world.org.id, clock=world.clock, tariff="fixed-uk", **period)
    assert again.changed == 0 and paid(world) == Decimal("9.28")
    assert reconcile(world.db).ok


def test_reconcile_names_a_charge_whose_account_payer_transaction_or_campaign_is_missing(
    world: World, tmp_path: Path
) -> None:
    # `charges` declares no foreign keys (its inserts are the busiest): reconcile proves them.
    import sqlalchemy as sa

    from telbill.adapters.db.charging_tables import charges

    lines = [cdr_line(f"c{i}", "+447700900123", 61) for i in range(3)]
    post(world, write_cdrs(tmp_path / "c.csv", lines), chunk_size=1)
    assert reconcile(world.db).ok
    with world.db.engine.begin() as conn:
        for column, charge_id in (("payer_id", 1), ("transaction_id", 2), ("campaign_id", 3)):
            conn.execute(
                sa.update(charges).where(charges.c.id == charge_id).values({column: 987654})
            )
    report = reconcile(world.db)
    found = {(p.check, p.subject, p.message.split(" (")[0]) for p in report.problems}
    assert found == {
        ("charge_references", "charge 1", "its payer 987654 does not exist"),
        ("charge_references", "charge 2", "its transaction 987654 does not exist"),
        ("charge_references", "charge 3", "its campaign 987654 does not exist"),
    }
