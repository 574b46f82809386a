"""A chunk of CDRs is one journal transaction per payer and usage account: its postings are
the summed takes of every leg, each charge keeps its own amount and points to it, buckets
are drained in order across the chunk's CDRs, and replays still charge nothing."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from charging_support import (  # noqa: F401  (fixture)
    World,
    cdr_line,
    key,
    paid,
    world_fixture,
    write_cdrs,
)
from sqlalchemy import select

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.tables import ledger_accounts, postings, transactions
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.services import accounts, charging, wallets
from telbill.services.reconcile import reconcile


def post(world: World, path: Path, **kwargs: object) -> charging.PostSummary:
    return charging.post_cdrs(
        world.db, read_cdr_file(path, "native"), clock=world.clock, source=str(path), **kwargs  # type: ignore[arg-type]
    )


def charge_rows(world: World) -> list[dict[str, object]]:
    with world.db.transaction() as conn:
        return [dict(r._mapping) for r in conn.execute(select(charges).order_by(charges.c.id))]


def posting_rows(world: World, transaction_id: int) -> dict[int, tuple[int, str]]:
    with world.db.transaction() as conn:
        rows = conn.execute(
            select(postings.c.ledger_account_id, postings.c.amount, postings.c.unit).where(
                postings.c.transaction_id == transaction_id
            )
        )
        return {r.ledger_account_id: (r.amount, r.unit) for r in rows}


def bucket_ids(world: World) -> dict[str, int]:
    """Ledger account ids by kind (wallet buckets of the org) or code (system accounts)."""
    with world.db.transaction() as conn:
        rows = conn.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.kind, ledger_accounts.c.code,
                   ledger_accounts.c.unit)
        ).all()  # fmt: skip
    return {(r.code or f"{r.kind}:{r.unit}"): r.id for r in rows}


def test_chunk_charges_of_one_payer_share_one_balanced_transaction_summing_the_charges(
    world: World, tmp_path: Path
) -> None:
    durations = [61, 30, 0, 125, 59, 1]
    lines = [cdr_line(f"c{n}", "+15551234567", s) for n, s in enumerate(durations)]
    lines.append(cdr_line("uk", "+447700900123", 61))
    lines.append(cdr_line("unanswered", "+447700900123", None))
    summary = post(world, write_cdrs(tmp_path / "c.csv", lines))
    assert summary.posted == 8
    rows = charge_rows(world)
    charged = [r for r in rows if r["amount_micros"]]
    assert len({r["transaction_id"] for r in charged}) == 1
    [tx_id] = {r["transaction_id"] for r in charged}
    assert next(r for r in rows if r["cdr_id"] == "unanswered")["transaction_id"] is None
    total = sum(int(r["amount_micros"]) for r in rows)  # type: ignore[call-overload]
    # US 0.12/min per second: 61+30+0+125+59+1 = 276 s = 0.552; UK 61 s -> 2 min = 1.20.
    assert total == 552_000 + 1_200_000
    ids = bucket_ids(world)
    assert posting_rows(world, tx_id) == {
        ids["paid:USD"]: (-total, "USD"),
        ids["revenue:voice:USD"]: (total, "USD"),
    }
    with world.db.transaction() as conn:
        tx = conn.execute(select(transactions).where(transactions.c.id == tx_id)).one()
    assert tx.kind == "usage_batch" and tx.account_id == world.org.id
    assert tx.subject_account_id == world.user.id
    assert tx.details["cdrs"] == 6  # the unanswered call and the 0 s one moved nothing
    assert paid(world) == Decimal("10") - Decimal(total) / 1_000_000
    assert reconcile(world.db).ok


def test_each_chunk_is_its_own_transaction_and_each_usage_account_its_own(
    world: World, tmp_path: Path
) -> None:
    clock = world.clock
    bob = accounts.create_account(
        world.db, kind="user", name="bob", parent_id=world.org.id, idempotency_key=key(),
        clock=clock,
    )  # fmt: skip
    lines = [cdr_line(f"a{n}", "+15551234567", 60) for n in range(4)]
    lines += [cdr_line(f"b{n}", "+15551234567", 60, user="bob") for n in range(4)]
    post(world, write_cdrs(tmp_path / "c.csv", lines), chunk_size=4)
    post(world, write_cdrs(tmp_path / "d.csv", lines[:2] + lines[4:6]), chunk_size=10)
    by_tx: dict[int, list[str]] = defaultdict(list)
    for row in charge_rows(world):
        by_tx[int(row["transaction_id"])].append(str(row["cdr_id"]))  # type: ignore[call-overload]
    assert sorted(by_tx.values()) == [["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"]]
    history = wallets.list_history(world.db, bob.id).items
    assert [(t.kind, t.details["cdrs"], t.changes["USD"]) for t in history] == [
        ("usage_batch", 4, Decimal("-0.48"))
    ]
    assert reconcile(world.db).ok


def test_packages_then_credit_then_paid_balance_drain_in_order_across_a_chunks_cdrs(
    world: World, tmp_path: Path
) -> None:
    wallets.grant_credit(world.db, world.org.id, 100, kind="package", unit="s:call",
                         idempotency_key=key(), clock=world.clock)  # fmt: skip
    wallets.grant_credit(world.db, world.org.id, "0.10", kind="free", idempotency_key=key(),
                         clock=world.clock)  # fmt: skip
    # US at 0.12/min per second (0.002/s). c1: 60 s all from the package. c2: 60 s, 40 from
    # the package, 20 s = 0.04 from the free credit. c3: 60 s = 0.12: 0.06 free, 0.06 paid.
    lines = [cdr_line(f"c{n}", "+15551234567", 60) for n in (1, 2, 3)]
    post(world, write_cdrs(tmp_path / "c.csv", lines))
    rows = {r["cdr_id"]: r for r in charge_rows(world)}
    assert [(rows[c]["package_units"], rows[c]["amount_micros"]) for c in ("c1", "c2", "c3")] == [
        (60, 0), (40, 40_000), (0, 120_000)
    ]  # fmt: skip
    assert len({r["transaction_id"] for r in rows.values()}) == 1
    balances = wallets.get_balances(world.db, world.org.id, clock=world.clock)
    kinds = {b.kind: b.balance for b in balances.unit("USD").buckets}
    assert kinds == {"paid": Decimal("9.94"), "free": Decimal("0")}
    assert balances.unit("s:call").buckets[0].balance == 0
    ids = bucket_ids(world)
    tx_id = int(rows["c1"]["transaction_id"])  # type: ignore[call-overload]
    assert posting_rows(world, tx_id) == {
        ids["package:s:call"]: (-100, "s:call"),
        ids["free:USD"]: (-100_000, "USD"),
        ids["paid:USD"]: (-60_000, "USD"),
        ids["revenue:voice:s:call"]: (100, "s:call"),
        ids["revenue:voice:USD"]: (160_000, "USD"),
    }
    assert "40 s:call taken from packages" in charging.get_charge(world.db, 2).text
    assert reconcile(world.db).ok


def test_a_cdr_repeated_within_one_chunk_and_replayed_later_is_charged_once(
    world: World, tmp_path: Path
) -> None:
    lines = [cdr_line("c1", "+15551234567", 60), cdr_line("c1", "+15551234567", 60),
             cdr_line("c2", "+15551234567", 30)]  # fmt: skip
    first = post(world, write_cdrs(tmp_path / "c.csv", lines))
    assert (first.posted, first.duplicates) == (2, 1)
    balance = paid(world)
    assert balance == Decimal("9.82")
    again = post(world, write_cdrs(tmp_path / "c.csv", lines), chunk_size=2)
    assert (again.posted, again.duplicates) == (0, 3)
    assert paid(world) == balance
    assert len(charge_rows(world)) == 2
    assert reconcile(world.db).ok


def test_charges_written_in_bulk_read_back_with_exact_types_and_times(
    world: World, tmp_path: Path
) -> None:
    from datetime import timedelta

    at = world.clock.now() + timedelta(microseconds=250)
    post(world, write_cdrs(tmp_path / "c.csv", [cdr_line("c1", "+447700900123", 61, at=at)]))
    [row] = charge_rows(world)
    assert row["occurred_at"] == at and row["created_at"] == world.clock.now()
    assert isinstance(row["amount_micros"], int) and row["amount_micros"] == 1_200_000
    assert row["usage"] == charging.usage_json(
        next(iter(read_cdr_file(tmp_path / "c.csv", "native")))  # type: ignore[arg-type]
    )
    with world.db.transaction() as conn:
        found = conn.execute(
            select(charges.c.id).where(charges.c.occurred_at == at)
        ).scalar_one_or_none()
    assert found == row["id"]  # the stored time compares equal in SQL too


def test_usage_that_empties_a_package_announces_package_exhausted_once(
    world: World, tmp_path: Path
) -> None:
    from telbill.adapters.db.event_tables import events

    wallets.grant_credit(world.db, world.org.id, 100, kind="package", unit="s:call",
                         idempotency_key=key(), clock=world.clock)  # fmt: skip
    post(world, write_cdrs(tmp_path / "a.csv", [cdr_line("a1", "+15551234567", 60)]))
    lines = [cdr_line(f"b{n}", "+15551234567", 60) for n in range(3)]
    post(world, write_cdrs(tmp_path / "b.csv", lines))
    post(world, write_cdrs(tmp_path / "b.csv", lines))  # a replay drains nothing
    post(world, write_cdrs(tmp_path / "c.csv", [cdr_line("c1", "+15551234567", 60)]))
    with world.db.transaction() as conn:
        found = conn.execute(
            select(events.c.account_id, events.c.payload).where(
                events.c.type == "package.exhausted"
            )
        ).all()
    [(account_id, payload)] = found
    assert account_id == world.org.id
    assert (payload["reason"], payload["unit"]) == ("used_up", "s:call")
    rows = {r["cdr_id"]: r for r in charge_rows(world)}
    assert payload["transaction_id"] == rows["b0"]["transaction_id"]


def test_charge_names_the_campaign_its_cdr_names_by_id_or_name_and_unknown_is_quarantined(
    world: World, tmp_path: Path
) -> None:
    from telbill.services import campaigns

    dialer = campaigns.start_campaign(world.db, world.org.id, "spring-dialer", clock=world.clock)
    at = world.clock.now().isoformat()
    path = tmp_path / "c.csv"
    path.write_text(
        "id,account,user,to,start,answer,end,campaign\n"
        f"c1,alpha,alice,+15551234567,{at},{at},{at},spring-dialer\n"
        f"c2,alpha,alice,+15551234567,{at},{at},{at},{dialer.id}\n"
        f"c3,alpha,alice,+15551234567,{at},{at},{at},\n"
        f"c4,alpha,alice,+15551234567,{at},{at},{at},autumn\n",
        encoding="utf-8",
    )
    summary = post(world, path)
    assert (summary.posted, summary.quarantined) == (3, 1)
    rows = {r["cdr_id"]: r["campaign_id"] for r in charge_rows(world)}
    assert rows == {"c1": dialer.id, "c2": dialer.id, "c3": None}
    [bad] = charging.list_quarantine(world.db)
    assert bad.line == 5 and "no campaign 'autumn'" in bad.reason
    again = post(world, path)
    assert (again.posted, again.duplicates) == (0, 3)
