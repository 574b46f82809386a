"""Period counters per campaign: the breakdown of an account's month by the campaign its
CDRs named adds up to the account's counters, each campaign's counters equal what its
charges hold, a campaign counts every user who called for it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from charging_support import START, World, add_tariff, retail_rows, world_fixture  # noqa: F401

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.errors import InvalidInput, NotFound
from telbill.services import accounts, campaigns, counters, rerating
from telbill.services.charging import post_cdrs

HEADER = "id,account,user,direction,from,to,start,answer,end,service,segments,campaign\n"
NOW = START + timedelta(days=5)


def line(
    cdr_id: str, seconds: int | None, campaign: str = "", *, user: str = "alice",
    to: str = "+15551234567", at: datetime = START, service: str = "voice", segments: str = "",
) -> str:  # fmt: skip
    answer = end = ""
    if service == "voice" and seconds is not None:
        answer = (at + timedelta(seconds=1)).isoformat()
        end = (at + timedelta(seconds=1 + seconds)).isoformat()
    return (
        f"{cdr_id},alpha,{user},outbound,+15550001,{to},{at.isoformat()},{answer},{end},"
        f"{service},{segments},{campaign}\n"
    )


def post(world: World, tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    summary = post_cdrs(world.db, read_cdr_file(path, "native"), clock=world.clock, source="t")
    assert summary.quarantined == 0


def held_by_charges(world: World) -> dict[int | None, dict[str, int]]:
    """What the charges table holds per campaign for March, summed straight from its rows."""
    out: dict[int | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with world.db.engine.connect() as conn:
        for row in conn.execute(sa.select(charges).where(charges.c.occurred_at >= START)):
            held = out[row.campaign_id]
            held[f"{row.service}_units"] += row.billed_units
            if row.service == "voice" and row.revision == 0:
                held["calls"] += 1
    return out


@pytest.fixture
def bob(world: World) -> accounts.Account:
    return accounts.create_account(
        world.db, kind="user", name="bob", parent_id=world.org.id, idempotency_key="bob",
        clock=world.clock,
    )  # fmt: skip


def test_campaign_breakdown_adds_up_to_the_account_and_each_campaign_to_its_charges(
    world: World, tmp_path: Path, bob: accounts.Account
) -> None:
    spring = campaigns.start_campaign(world.db, world.org.id, "spring", clock=world.clock)
    summer = campaigns.start_campaign(world.db, world.org.id, "summer", clock=world.clock)
    idle = campaigns.start_campaign(world.db, world.user.id, "idle", clock=world.clock)
    post(world, tmp_path, [
        line("a1", 90, "spring"), line("a2", 30, "spring", user="bob"),
        line("a3", 61, str(summer.id), to="+447700900123"),
        line("a4", 45), line("s1", None, "spring", service="sms", segments="3",
                              to="+447700900123"),
        line("old", 600, "spring", at=START - timedelta(days=40)),
    ])  # fmt: skip
    breakdown = counters.campaign_breakdown(world.db, world.org.id, now=NOW)
    by_id = {item.campaign_id: item for item in breakdown.items}
    assert list(by_id) == [spring.id, summer.id, idle.id, None]
    held = held_by_charges(world)
    for campaign_id, item in by_id.items():
        assert item.calls == held[campaign_id]["calls"]
        assert item.voice_s == held[campaign_id]["voice_units"]
        assert item.sms == held[campaign_id]["sms_units"]
    spring_row = by_id[spring.id]
    assert (spring_row.calls, spring_row.voice_s, spring_row.sms) == (2, 120, 3)
    assert (spring_row.minutes, spring_row.unique_users) == (Decimal("2.00"), 2)
    assert (spring_row.name, spring_row.owner_id, spring_row.status) == (
        "spring", world.org.id, "running",
    )  # fmt: skip
    assert (by_id[summer.id].calls, by_id[summer.id].voice_s) == (1, 120)  # 60/60 to the UK
    assert (by_id[idle.id].calls, by_id[idle.id].voice_s, by_id[idle.id].unique_users) == (0, 0, 0)
    assert (by_id[None].calls, by_id[None].voice_s, by_id[None].name) == (1, 45, None)
    whole = counters.period_counters(world.db, world.org.id, now=NOW)
    assert whole.calls == sum(i.calls for i in breakdown.items) == 4
    assert whole.voice_s == sum(i.voice_s for i in breakdown.items)
    assert whole.sms == sum(i.sms for i in breakdown.items)
    assert whole.unique_users == 2


def test_a_campaigns_own_counters_follow_its_charges_and_the_month_asked(
    world: World, tmp_path: Path, bob: accounts.Account
) -> None:
    spring = campaigns.start_campaign(world.db, world.org.id, "spring", clock=world.clock)
    post(world, tmp_path, [
        line("a1", 90, "spring"), line("a2", 30, "spring", user="bob"), line("a3", 20),
        line("feb", 600, "spring", at=START - timedelta(days=10)),
    ])  # fmt: skip
    march = counters.campaign_counters(world.db, spring.id, now=NOW)
    assert (march.period, march.calls, march.voice_s, march.unique_users) == ("2026-03", 2, 120, 2)
    february = counters.campaign_counters(world.db, spring.id, now=NOW, month="2026-02")
    assert (february.period, february.calls, february.voice_s) == ("2026-02", 1, 600)
    # A user's breakdown holds only that user's calls for the organisation's campaign.
    of_bob = counters.campaign_breakdown(world.db, bob.id, now=NOW)
    assert [(i.campaign_id, i.calls, i.voice_s) for i in of_bob.items] == [(spring.id, 1, 30)]
    used = counters.counters_by_campaign(world.db, [spring.id])
    assert (used[spring.id].calls, used[spring.id].voice_s) == (3, 720)


def test_a_rerated_campaign_call_counts_once_with_its_billed_seconds_once(
    world: World, tmp_path: Path
) -> None:
    spring = campaigns.start_campaign(world.db, world.org.id, "spring", clock=world.clock)
    post(world, tmp_path, [line("a1", 61, "spring", to="+447700900123")])
    add_tariff(world.db, "cheap-uk", retail_rows(uk_rate="0.30"), START - timedelta(days=1))
    period = {"start": START - timedelta(hours=1), "end": START + timedelta(hours=1)}
    rerating.rerate(world.db, world.org.id, clock=world.clock, tariff="cheap-uk", **period)
    with world.db.engine.connect() as conn:
        revisions = conn.execute(
            sa.select(charges.c.revision, charges.c.billed_units).order_by(charges.c.revision)
        ).all()
    assert [tuple(r) for r in revisions] == [(0, 120), (1, 120)]  # the rerating repeats units
    found = counters.campaign_counters(world.db, spring.id, now=NOW)
    assert (found.calls, found.voice_s) == (1, 120)
    whole = counters.period_counters(world.db, world.org.id, now=NOW)
    assert (whole.calls, whole.voice_s) == (1, 120)
    breakdown = counters.campaign_breakdown(world.db, world.org.id, now=NOW)
    assert [(i.campaign_id, i.calls, i.voice_s) for i in breakdown.items] == [(spring.id, 1, 120)]


def test_unknown_campaign_or_bad_month_is_refused(world: World) -> None:
    with pytest.raises(NotFound):
        counters.campaign_counters(world.db, 999_999, now=NOW)
    with pytest.raises(NotFound):
        counters.campaign_owner(world.db, 999_999)
    with pytest.raises(InvalidInput):
        counters.campaign_breakdown(world.db, world.org.id, now=NOW, month="2026-13")
    with pytest.raises(NotFound):
        counters.campaign_breakdown(world.db, 999_999, now=NOW)
