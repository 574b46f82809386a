"""The provider's revenue page and margin report: cost, margin and margin % per destination
where the carrier cost is known, charges of unknown cost counted apart; only the provider's
admins see them, and only for their own subtree (dashboard and API)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from web_world import CDR_HEADER, WebWorld, log_in

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.domain.tariffs import Increment, RateRow, TariffSettings
from telbill.services import plans
from telbill.services.charging import get_charge, post_cdrs
from telbill.services.tariffs import import_tariff

pytestmark = pytest.mark.xdist_group("web_margin")

APRIL = datetime(2026, 4, 2, 10, 0, tzinfo=UTC)


def _post_april_calls(world: WebWorld, tmp_dir: Path, tag: str, count: int) -> None:
    """`count` 60 s calls of alice to the US in April (0.12 each at retail)."""
    lines = []
    for n in range(count):
        start = APRIL + timedelta(days=n, minutes=len(tag))
        answer, end = start + timedelta(seconds=1), start + timedelta(seconds=61)
        lines.append(
            f"{tag}-{n},alpha,alice,outbound,+15550001,+1555123{n:04d},"
            f"{start.isoformat()},{answer.isoformat()},{end.isoformat()},voice,\n"
        )
    path = tmp_dir / f"april-{tag}.csv"
    path.write_text(CDR_HEADER + "".join(lines), encoding="utf-8")
    summary = post_cdrs(world.db, read_cdr_file(path, "native"), clock=world.clock, source=tag)
    assert summary.posted == count, summary


@pytest.fixture(scope="module")
def april(web_world: WebWorld, tmp_path_factory: pytest.TempPathFactory) -> WebWorld:
    """Two April calls before "retail" had a cost tariff (cost unknown), three after it got
    the carrier's deck (US 0.05/min per second): revenue 0.60, of which 0.36 costed at
    0.15, margin 0.21 (58.3 %); 0.24 of unknown cost."""
    tmp = tmp_path_factory.mktemp("april")
    web_world.clock.set(datetime(2026, 4, 20, 12, 0, tzinfo=UTC))
    _post_april_calls(web_world, tmp, "before", 2)
    import_tariff(
        web_world.db, "carrier",
        [RateRow("1", "United States", Decimal("0.05"), increment=Increment(1, 1))],
        TariffSettings(currency="USD"), now=datetime(2026, 2, 1, tzinfo=UTC),
    )  # fmt: skip
    plans.set_cost_tariff(web_world.db, "retail", "carrier")
    _post_april_calls(web_world, tmp, "after", 3)
    return web_world


def test_revenue_page_shows_cost_margin_and_unknown_cost_apart(april, client):
    log_in(client, april.keys["acme"])
    html = client.get(f"/provider/{april.ids['acme']}/revenue?month=2026-04").text
    assert re.search(r'id="revenue-total">0\.60 USD', html)
    total = html[html.index('id="margin-total"') :]
    assert '<span class="margin">0.21 USD</span>' in total
    assert '<span class="margin-percent">58.3 %</span>' in total
    assert '<span class="unknown-cost">2 charges, 0.24 USD</span>' in total
    row = re.search(r"<tr><td>United States</td>.*?</tr>", html)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
    # destination, prefix, service, tariff, charges, units, revenue, cost, margin, %, unknown
    assert cells[4:] == ["5", "300", "0.60 USD", "0.15", "0.21", "58.3 %", "2 (0.24)"]


def test_a_month_without_any_known_cost_says_so_and_shows_no_margin(april, client):
    log_in(client, april.keys["acme"])
    html = client.get(f"/provider/{april.ids['acme']}/revenue?month=2026-03").text
    assert "no charge with a known cost" in html and "cost unknown" in html
    assert 'class="margin"' not in html


def test_margin_is_for_the_providers_admins_only(april, client):
    acme = april.ids["acme"]
    log_in(client, april.keys["alpha"])
    assert client.get(f"/provider/{acme}/revenue?month=2026-04").status_code == 404
    log_in(client, april.keys["zeta"])
    foreign = client.get(f"/provider/{acme}/revenue?month=2026-04")
    assert foreign.status_code == 404 and "0.21" not in foreign.text
    own = client.get(f"/provider/{april.ids['zeta']}/revenue?month=2026-04").text
    assert "No usage charged" in own and "United States" not in own


def _api(client, world: WebWorld, who: str, path: str):
    return client.get(path, headers={"Authorization": f"Bearer {world.keys[who]}"})


def test_margin_report_api_gives_the_figures_to_the_provider_admin_only(april, client):
    acme = april.ids["acme"]
    path = f"/v1/accounts/{acme}/reports/margin?month=2026-04"
    body = _api(client, april, "acme", path).json()
    assert body["totals"] == [
        {
            "currency": "USD", "charges": 5, "billed_units": 300, "revenue": "0.600000",
            "costed_revenue": "0.360000", "cost": "0.150000", "margin": "0.210000",
            "margin_percent": "58.3", "unknown_cost_charges": 2,
            "unknown_cost_revenue": "0.240000",
        }
    ]  # fmt: skip
    assert [item["destination"] for item in body["items"]] == ["United States"]
    csv_text = _api(client, april, "acme", path.replace("margin?", "margin.csv?")).text
    assert csv_text.splitlines()[1] == (
        "United States,1,voice,retail,USD,5,300,0.600000,0.150000,0.210000,58.3,2,0.240000"
    )
    for who in ("alpha", "alice", "zeta"):
        assert _api(client, april, who, path).status_code in (403, 404), who
    alpha = _api(client, april, "alpha", f"/v1/accounts/{april.ids['alpha']}/reports/margin")
    assert alpha.status_code == 403  # an organisation's admin does not see carrier costs


def test_explain_api_does_not_show_customers_the_carrier_cost(april, client):
    with april.db.read() as conn:
        charge_id = conn.execute(
            sa.select(charges.c.id).where(charges.c.cdr_id == "after-0")
        ).scalar_one()
    assert get_charge(april.db, charge_id).cost == Decimal("0.05")
    body = _api(client, april, "alpha", f"/v1/charges/{charge_id}/explain").json()
    assert body["amount"] == "0.120000" and "cost" not in body


def test_plans_page_names_where_a_plans_cost_comes_from(april, client):
    log_in(client, april.keys["acme"])
    html = client.get(f"/provider/{april.ids['acme']}/plans").text
    row = re.search(r"<tr><td>retail</td>.*?</tr>", html)
    assert row is not None and "<td>carrier</td>" in row.group(0)


def test_the_revenue_page_exports_its_rows_as_csv_for_the_providers_admins_only(april, client):
    acme = april.ids["acme"]
    log_in(client, april.keys["acme"])
    page = client.get(f"/provider/{acme}/revenue?month=2026-04").text
    assert f'href="/provider/{acme}/revenue.csv?month=2026-04"' in page
    exported = client.get(f"/provider/{acme}/revenue.csv?month=2026-04")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "revenue-" in exported.headers["content-disposition"]
    header, *rows = exported.text.splitlines()
    assert "revenue" in header and len(rows) == 1
    assert rows[0].startswith("United States,1,voice,retail,USD,5,300,0.600000")
    log_in(client, april.keys["alpha"])
    assert client.get(f"/provider/{acme}/revenue.csv?month=2026-04").status_code == 404
