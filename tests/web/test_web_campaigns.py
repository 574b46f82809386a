"""The dashboard's campaigns page reads the counters service: the minutes of a campaign are
the billed seconds of the calls that named it (not every call of its account)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from web_world import WebWorld, log_in

from telbill.adapters.db.charging_tables import campaigns as campaigns_table
from telbill.adapters.db.charging_tables import charges
from telbill.adapters.formats.cdrs import read_cdr_file
from telbill.services.charging import post_cdrs

pytestmark = pytest.mark.xdist_group("web_campaigns")


def minutes_shown(html: str, name: str) -> str:
    row = re.search(rf"<tr><td>{name}</td>.*?</tr>", html, re.S)
    assert row is not None, html
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(0))
    return cells[0]


def test_campaigns_page_shows_the_seconds_billed_to_calls_naming_the_campaign(
    web_world: WebWorld, client, tmp_dir
):
    alpha = web_world.ids["alpha"]
    with web_world.db.engine.connect() as conn:
        campaign_id = conn.execute(
            sa.select(campaigns_table.c.id).where(campaigns_table.c.name == "Spring outreach")
        ).scalar_one()
    log_in(client, web_world.keys["alpha"])
    before = minutes_shown(client.get(f"/accounts/{alpha}/campaigns").text, "Spring outreach")
    start = web_world.clock.now() + timedelta(minutes=5)
    lines = "".join(
        f"camp-{n},alpha,alice,+15551234567,{start.isoformat()},{start.isoformat()},"
        f"{(start + timedelta(seconds=seconds)).isoformat()},{campaign}\n"
        for n, (seconds, campaign) in enumerate(((90, campaign_id), (45, campaign_id), (600, "")))
    )
    path = tmp_dir / "campaign-calls.csv"
    path.write_text("id,account,user,to,start,answer,end,campaign\n" + lines, encoding="utf-8")
    summary = post_cdrs(web_world.db, read_cdr_file(path, "native"), clock=web_world.clock,
                        source="web-campaigns")  # fmt: skip
    assert summary.posted == 3, summary
    with web_world.db.engine.connect() as conn:
        billed = int(
            conn.execute(
                sa.select(sa.func.sum(charges.c.billed_units)).where(
                    charges.c.campaign_id == campaign_id, charges.c.revision == 0
                )
            ).scalar_one()
        )
    html = client.get(f"/accounts/{alpha}/campaigns").text
    assert before == "0:00"
    assert minutes_shown(html, "Spring outreach") == "2:15" == f"{billed // 60}:{billed % 60:02d}"


def test_a_customer_buys_a_package_on_the_campaigns_page(web_world: WebWorld, client):
    alpha = web_world.ids["alpha"]
    csrf = log_in(client, web_world.keys["alpha"])
    page = client.get(f"/accounts/{alpha}/campaigns").text
    packages = page[page.index('id="packages"') :]
    assert "SMS 100" in packages and "2.00 USD" in packages
    before = re.search(r'id="package-left">Left: [^·]*· (\d+) SMS', page)
    assert before is not None
    form = {"csrf_token": csrf, "idem": "buy-sms100"}
    bought = client.post(f"/accounts/{alpha}/packages/sms100/buy", data=form,
                         follow_redirects=False)  # fmt: skip
    assert bought.status_code == 303, bought.text
    after = client.get(bought.headers["location"]).text
    assert "Package bought" in after
    left = re.search(r'id="package-left">Left: [^·]*· (\d+) SMS', after)
    assert left is not None and int(left.group(1)) == int(before.group(1)) + 100
    again = client.post(f"/accounts/{alpha}/packages/sms100/buy", data=form,
                        follow_redirects=False)  # fmt: skip
    assert again.status_code == 303
    twice = client.get(f"/accounts/{alpha}/campaigns").text
    assert re.search(r'id="package-left">Left: [^·]*· (\d+) SMS', twice).group(1) == left.group(1)
    zeta_csrf = log_in(client, web_world.keys["zeta"])
    foreign = client.post(f"/accounts/{alpha}/packages/sms100/buy",
                          data={"csrf_token": zeta_csrf, "idem": "z"})  # fmt: skip
    assert foreign.status_code == 404
