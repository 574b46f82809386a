"""Reports over HTTP: the call-cost report as JSON and CSV, the counters, and a user who
sees only their own calls."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.domain.tariffs import Increment, RateRow, TariffSettings
from telbill.services import plans, wallets
from telbill.services.charging import post_cdrs
from telbill.services.tariffs import import_tariff

AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
HEADER = "id,account,user,direction,from,to,start,answer,end,service,segments\n"


def post_calls(world, tmp_path: Path, calls: list[tuple[str, str, int]]) -> None:
    import_tariff(
        world.db, "retail",
        [RateRow("1", "United States", Decimal("0.12"), increment=Increment(1, 1))],
        TariffSettings(currency="USD"), now=AT - timedelta(days=1),
    )  # fmt: skip
    plans.create_plan(world.db, "retail", tariff="retail", clock=world.clock)
    plans.assign_plan(world.db, world.ids["alpha"], "retail", clock=world.clock)
    lines = []
    for n, (user, to, seconds) in enumerate(calls):
        start = AT + timedelta(minutes=n)
        answer, end = start + timedelta(seconds=1), start + timedelta(seconds=1 + seconds)
        lines.append(f"r{n},alpha,{user},outbound,+15550001,{to},{start.isoformat()},"
                     f"{answer.isoformat()},{end.isoformat()},voice,\n")  # fmt: skip
    path = tmp_path / "cdrs.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    events = read_cdr_file(path, "native")
    assert post_cdrs(world.db, events, clock=world.clock, source="t").posted == len(calls)


def paid(world, who: str) -> Decimal:
    balances = wallets.get_balances(world.db, world.ids[who], clock=world.clock)
    return sum((b.balance for b in balances.unit("USD").buckets), Decimal(0))


def test_organisation_report_totals_equal_its_wallet_debits_and_csv_matches(world, tmp_path):
    before = paid(world, "alpha")
    post_calls(world, tmp_path, [("alice", "+15551234567", 100), ("alice", "+15557654321", 50)])
    url = f"/v1/accounts/{world.ids['alpha']}/reports/calls?month=2026-03"
    body = world.client.get(url, headers=world.headers("alpha")).json()
    (total,) = body["totals"]
    assert Decimal(total["cost"]) == before - paid(world, "alpha")
    assert [i["duration_s"] for i in body["items"]] == [100, 50]
    assert body["items"][0]["destination"] == "United States"
    csv_url = f"/v1/accounts/{world.ids['alpha']}/reports/calls.csv?month=2026-03"
    response = world.client.get(csv_url, headers=world.headers("alpha"))
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal(total["cost"])
    counters = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/counters", headers=world.headers("alpha")
    ).json()
    assert (counters["calls"], counters["voice_s"], counters["unique_users"]) == (2, 150, 1)


def test_user_reads_their_own_report_but_not_the_organisations(world, tmp_path):
    post_calls(world, tmp_path, [("alice", "+15551234567", 30)])
    own = world.client.get(
        f"/v1/accounts/{world.ids['alice']}/reports/calls?month=2026-03",
        headers=world.headers("alice"),
    )
    assert own.status_code == 200 and len(own.json()["items"]) == 1
    org = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/reports/calls?month=2026-03",
        headers=world.headers("alice"),
    )
    assert org.status_code == 404
    foreign = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/reports/calls.csv", headers=world.headers("bob")
    )
    assert foreign.status_code == 404


def test_bad_month_is_refused_with_a_problem(world):
    response = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/reports/calls?month=2026-3",
        headers=world.headers("alpha"),
    )
    assert response.status_code in (400, 422)


def post_campaign_calls(world, tmp_path: Path, calls: list[tuple[str, int, str]]) -> None:
    """Calls of Alpha's users, each naming a campaign (by id or name) or none ("")."""
    import_tariff(
        world.db, "retail",
        [RateRow("1", "United States", Decimal("0.12"), increment=Increment(1, 1))],
        TariffSettings(currency="USD"), now=AT - timedelta(days=1),
    )  # fmt: skip
    plans.create_plan(world.db, "retail", tariff="retail", clock=world.clock)
    plans.assign_plan(world.db, world.ids["alpha"], "retail", clock=world.clock)
    lines = []
    for n, (user, seconds, campaign) in enumerate(calls):
        start = AT + timedelta(minutes=n)
        answer, end = start + timedelta(seconds=1), start + timedelta(seconds=1 + seconds)
        lines.append(f"k{n},alpha,{user},outbound,+15550001,+15551234567,{start.isoformat()},"
                     f"{answer.isoformat()},{end.isoformat()},voice,,{campaign}\n")  # fmt: skip
    path = tmp_path / "campaign-cdrs.csv"
    path.write_text(HEADER.rstrip("\n") + ",campaign\n" + "".join(lines), encoding="utf-8")
    events = read_cdr_file(path, "native")
    assert post_cdrs(world.db, events, clock=world.clock, source="t").posted == len(calls)


def start_campaign(world, who: str, name: str) -> int:
    response = world.client.post(
        "/v1/campaigns", json={"account_id": world.ids[who], "name": name},
        headers=world.headers(who),
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_counters_by_campaign_as_json_and_csv_and_a_campaigns_own(world, tmp_path):
    spring = start_campaign(world, "alpha", "spring")
    post_campaign_calls(world, tmp_path, [
        ("alice", 100, "spring"), ("alice", 50, str(spring)), ("alice", 30, ""),
    ])  # fmt: skip
    alpha = world.ids["alpha"]
    body = world.client.get(
        f"/v1/accounts/{alpha}/counters/campaigns?month=2026-03", headers=world.headers("alpha")
    ).json()
    assert body["period"] == "2026-03"
    rows = [(i["campaign_id"], i["name"], i["calls"], i["voice_s"], i["minutes"])
            for i in body["items"]]  # fmt: skip
    assert rows == [(spring, "spring", 2, 150, "2.50"), (None, None, 1, 30, "0.50")]
    whole = world.client.get(
        f"/v1/accounts/{alpha}/counters?month=2026-03", headers=world.headers("alpha")
    ).json()
    assert whole["calls"] == sum(i["calls"] for i in body["items"]) == 3
    response = world.client.get(
        f"/v1/accounts/{alpha}/counters/campaigns.csv?month=2026-03",
        headers=world.headers("alpha"),
    )
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["campaign_id"], r["calls"], r["voice_s"]) for r in table] == [
        (str(spring), "2", "150"), ("", "1", "30"),
    ]  # fmt: skip
    own = world.client.get(
        f"/v1/campaigns/{spring}/counters?month=2026-03", headers=world.headers("alpha")
    ).json()
    assert (own["calls"], own["voice_s"], own["unique_users"], own["owner_id"]) == (
        2, 150, 1, alpha,
    )  # fmt: skip


def test_another_organisations_campaign_counters_are_not_found(world):
    spring = start_campaign(world, "alpha", "spring")
    path = f"/v1/campaigns/{spring}/counters"
    assert world.client.get(path, headers=world.headers("alpha")).status_code == 200
    assert world.client.get(path, headers=world.headers("zeta")).status_code == 404
    for who in ("bravo", "bob", "alice"):  # alice: a user may not read her organisation
        foreign = world.client.get(path, headers=world.headers(who))
        assert foreign.status_code == 404, who
        assert foreign.json()["type"] == "https://telbill.dev/problems/not_found"
        assert "spring" not in foreign.text
    missing = world.client.get("/v1/campaigns/999999/counters", headers=world.headers("bravo"))
    assert missing.status_code == 404
    assert missing.json()["type"] == foreign.json()["type"]
    switch = world.client.get(path, headers=world.headers("alpha_switch"))
    assert switch.status_code == 403
    breakdown = f"/v1/accounts/{world.ids['alpha']}/counters/campaigns"
    assert world.client.get(breakdown, headers=world.headers("bravo")).status_code == 404
