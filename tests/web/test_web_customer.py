"""Customer pages: each renders the services' data for its organisation (or user), its forms
act through the same services as the API, and no organisation ever sees another's data."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from web_world import WebWorld, log_in

from telbill.adapters.db.charging_tables import campaigns as campaigns_table
from telbill.adapters.db.tables import receipts as receipts_table
from telbill.services import accounts, events, notifications, numbers, wallets
from telbill.web import queries
from telbill.web.core import format_money

PAGES = ("balance", "usage", "calls", "numbers", "campaigns", "notifications", "receipts", "rates")

# The seeded business is built once per module: keep the module on one xdist worker.
pytestmark = pytest.mark.xdist_group("web_customer")


def paid(world: WebWorld, who: str) -> Decimal:
    balances = wallets.get_balances(world.db, world.ids[who], clock=world.clock)
    return sum((b.balance for b in balances.unit("USD").buckets if b.kind == "paid"), Decimal(0))


def form_post(client, path: str, csrf: str, **fields: str):
    return client.post(path, data={"csrf_token": csrf, **fields}, follow_redirects=False)


def test_every_customer_page_renders_for_the_organisation_admin(web_world, client):
    log_in(client, web_world.keys["alpha"])
    alpha = web_world.ids["alpha"]
    for page in PAGES:
        response = client.get(f"/accounts/{alpha}/{page}")
        assert response.status_code == 200, (page, response.text)
        assert '<main id="main"' in response.text and 'name="viewport"' in response.text
        assert 'aria-current="page"' in response.text


def test_balance_page_shows_paid_balance_held_and_a_daily_spend_chart(web_world, client):
    log_in(client, web_world.keys["alpha"])
    alpha = web_world.ids["alpha"]
    html = client.get(f"/accounts/{alpha}/balance").text
    balance = re.search(r'id="paid-balance">([^<]+)<', html).group(1)
    assert balance.strip() == f"{format_money(paid(web_world, 'alpha'))} USD"
    assert f'src="/accounts/{alpha}/spend.svg"' in html and "alt=" in html
    chart = client.get(f"/accounts/{alpha}/spend.svg")
    assert chart.headers["content-type"].startswith("image/svg+xml")
    spent = sum(
        d.amount
        for d in queries.daily_spend(
            web_world.db, alpha, has_wallet=True, now=web_world.clock.now()
        )
    )
    assert spent > 0 and f"{format_money(spent)} USD in total" in chart.text  # its own title
    assert chart.text.count("<rect") == 30
    log_in(client, web_world.keys["bravo"])
    assert client.get(f"/accounts/{alpha}/spend.svg").status_code == 404


def test_a_provider_admin_records_a_bank_transfer_with_its_reference_once(web_world, client):
    csrf = log_in(client, web_world.keys["acme"])
    alpha = web_world.ids["alpha"]
    before = paid(web_world, "alpha")
    fields = {"amount": "24.00", "provider": "bank_transfer", "reference": "BT-777",
              "idem": "form-1"}  # fmt: skip
    first = form_post(client, f"/accounts/{alpha}/topups", csrf, **fields)
    again = form_post(client, f"/accounts/{alpha}/topups", csrf, **fields)  # double click
    assert first.status_code == again.status_code == 303
    assert paid(web_world, "alpha") == before + Decimal("24.00")
    with web_world.db.engine.connect() as conn:
        refs = (
            conn.execute(
                sa.select(receipts_table.c.payment_ref).where(receipts_table.c.account_id == alpha)
            )
            .scalars()
            .all()
        )
    assert refs.count("bank-transfer:BT-777") == 1
    page = client.get(first.headers["location"]).text
    assert "Payment recorded" in page and "bank-transfer:BT-777" in page


def test_a_bad_top_up_amount_is_a_readable_error_and_records_nothing(web_world, client):
    before = paid(web_world, "alpha")
    for who, form in (("acme", "topups"), ("alpha", "topup-requests")):
        csrf = log_in(client, web_world.keys[who])
        for amount in ("-5", "abc", "1e3"):
            response = form_post(client, f"/accounts/{web_world.ids['alpha']}/{form}", csrf,
                                 amount=amount, reference="x")  # fmt: skip
            assert response.status_code in (400, 422), response.text
            assert 'class="error"' in response.text
    assert paid(web_world, "alpha") == before


def test_a_user_sees_their_pages_but_may_not_top_up(web_world, client):
    csrf = log_in(client, web_world.keys["alice"])
    alice = web_world.ids["alice"]
    html = client.get(f"/accounts/{alice}/balance").text
    assert "Record payment" not in html
    before = paid(web_world, "alpha")
    response = form_post(client, f"/accounts/{alice}/topups", csrf, amount="5", reference="r")
    assert response.status_code == 403 and paid(web_world, "alpha") == before
    assert client.get(f"/accounts/{web_world.ids['alpha']}/usage").status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_another_organisations_page_is_not_found(web_world, client, page):
    log_in(client, web_world.keys["bravo"])
    response = client.get(f"/accounts/{web_world.ids['alpha']}/{page}")
    assert response.status_code == 404
    assert "Alpha" not in response.text and "alpha" not in response.text.lower().replace(
        "alphabet", ""
    )


def test_another_organisations_exports_receipts_and_forms_are_not_found(web_world, client):
    alpha = web_world.ids["alpha"]
    with web_world.db.engine.connect() as conn:
        receipt_id = (
            conn.execute(sa.select(receipts_table.c.id).where(receipts_table.c.account_id == alpha))
            .scalars()
            .first()
        )
    csrf = log_in(client, web_world.keys["bravo"])
    bravo = web_world.ids["bravo"]
    for path in (f"/accounts/{alpha}/usage.csv", f"/accounts/{alpha}/calls.csv?month=2026-03",
                 f"/accounts/{alpha}/receipts/{receipt_id}.pdf",
                 f"/accounts/{bravo}/receipts/{receipt_id}.pdf",
                 f"/accounts/{alpha}/calls/user?user={web_world.ids['alice']}"):  # fmt: skip
        assert client.get(path).status_code == 404, path
    before = paid(web_world, "alpha")
    for path, fields in (
        (f"/accounts/{alpha}/topups", {"amount": "5", "reference": "x"}),
        (f"/accounts/{alpha}/numbers/buy", {"number": "+16175550101"}),
        (f"/accounts/{alpha}/notifications/read", {}),
        (f"/accounts/{alpha}/thresholds", {"levels": "1"}),
    ):
        assert form_post(client, path, csrf, **fields).status_code == 404, path
    assert paid(web_world, "alpha") == before


def test_usage_lists_every_charge_filters_by_service_and_date_and_exports_csv(web_world, client):
    log_in(client, web_world.keys["alpha"])
    alpha = web_world.ids["alpha"]
    html = client.get(f"/accounts/{alpha}/usage").text
    assert html.count("+1555123") == 6
    assert "+1555123" not in client.get(f"/accounts/{alpha}/usage?service=sms").text
    one_day = client.get(f"/accounts/{alpha}/usage?from=2026-03-03&to=2026-03-03").text
    assert one_day.count("+1555123") == 1 and "+15551230001" in one_day
    exported = client.get(f"/accounts/{alpha}/usage.csv?from=2026-03-03&to=2026-03-04")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["number"] for r in rows] == ["+15551230002", "+15551230001"]
    assert client.get(f"/accounts/{alpha}/usage?from=yesterday").status_code == 422


def test_usage_keyset_pages_cover_every_charge_once_newest_first(web_world):
    seen, cursor = [], None
    while True:
        page = queries.usage_page(
            web_world.db, web_world.ids["alpha"], has_wallet=True, cursor=cursor, limit=4
        )
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len({r.charge_id for r in seen}) == 6
    assert [r.occurred_at for r in seen] == sorted((r.occurred_at for r in seen), reverse=True)


def test_call_report_for_a_month_shows_totals_equal_to_the_csv(web_world, client):
    log_in(client, web_world.keys["alpha"])
    alpha = web_world.ids["alpha"]
    html = client.get(f"/accounts/{alpha}/calls?month=2026-03").text
    total = re.search(r'id="calls-total">([^<]+)<', html).group(1)
    assert total.startswith("6 calls")
    exported = client.get(f"/accounts/{alpha}/calls.csv?month=2026-03")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 6
    assert f"{sum(Decimal(r['cost']) for r in rows):,.2f}" in total
    assert "No calls" in client.get(f"/accounts/{alpha}/calls?month=2026-02").text
    assert client.get(f"/accounts/{alpha}/calls?month=2026-13").status_code == 422


def test_call_report_per_user(web_world, client):
    log_in(client, web_world.keys["alpha"])
    response = client.get(
        f"/accounts/{web_world.ids['alpha']}/calls/user?user={web_world.ids['alice']}&month=2026-03"
    )
    assert str(response.url).endswith(f"/accounts/{web_world.ids['alice']}/calls?month=2026-03")
    assert re.search(r'id="calls-total">6 calls', response.text)


def test_buy_a_number_then_release_it(web_world, client):
    csrf = log_in(client, web_world.keys["bravo"])
    bravo = web_world.ids["bravo"]
    html = client.get(f"/accounts/{bravo}/numbers?country=US&locality=Boston").text
    assert "+16175550101" in html
    before = paid(web_world, "bravo")
    bought = form_post(client, f"/accounts/{bravo}/numbers/buy", csrf, number="+16175550101",
                       idem="buy-1")  # fmt: skip
    assert bought.status_code == 303
    assert paid(web_world, "bravo") == before - Decimal("1.50")  # setup 0.50 + first month
    page = client.get(f"/accounts/{bravo}/numbers").text
    assert "+16175550101" in page and "Release" in page
    released = form_post(client, f"/accounts/{bravo}/numbers/release", csrf,
                         number="+16175550101", idem="rel-1")  # fmt: skip
    assert released.status_code == 303
    assert [r.number for r in numbers.list_numbers(web_world.db, bravo)] == []


def test_campaign_pause_and_resume(web_world, client):
    csrf = log_in(client, web_world.keys["alpha"])
    alpha = web_world.ids["alpha"]
    with web_world.db.engine.connect() as conn:
        campaign_id = conn.execute(sa.select(campaigns_table.c.id)).scalar_one()
    html = client.get(f"/accounts/{alpha}/campaigns").text
    assert "Spring outreach" in html and "running" in html
    path = f"/accounts/{alpha}/campaigns/{campaign_id}"
    assert form_post(client, f"{path}/pause", csrf).status_code == 303
    assert "paused" in client.get(f"/accounts/{alpha}/campaigns").text
    assert form_post(client, f"{path}/resume", csrf).status_code == 303
    assert form_post(client, f"{path}/stop", csrf).status_code == 404
    csrf_bravo = log_in(client, web_world.keys["bravo"])
    bravo = web_world.ids["bravo"]
    foreign = form_post(client, f"/accounts/{bravo}/campaigns/{campaign_id}/pause", csrf_bravo)
    assert foreign.status_code == 404


def test_notifications_list_and_mark_read(web_world, client):
    alpha = web_world.ids["alpha"]
    with web_world.db.transaction() as conn:
        events.emit(conn, "balance.low", account_id=alpha, payload={"level": "5"},
                    dedupe_key=f"web-test-low-{alpha}", now=web_world.clock.now())  # fmt: skip
    csrf = log_in(client, web_world.keys["alpha"])
    html = client.get(f"/accounts/{alpha}/notifications?unread=true").text
    assert "balance.low" in html
    assert form_post(client, f"/accounts/{alpha}/notifications/read", csrf).status_code == 303
    unread = notifications.list_notifications(web_world.db, alpha, unread_only=True)
    assert unread == []


def test_receipts_list_and_pdf_download(web_world, client):
    log_in(client, web_world.keys["alpha"])
    alpha = web_world.ids["alpha"]
    html = client.get(f"/accounts/{alpha}/receipts").text
    link = re.search(rf'href="(/accounts/{alpha}/receipts/\d+\.pdf)"', html).group(1)
    pdf = client.get(link)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_rates_page_prices_a_number_with_the_accounts_plan(web_world, client):
    log_in(client, web_world.keys["alpha"])
    alpha = web_world.ids["alpha"]
    html = client.get(f"/accounts/{alpha}/rates?to=%2B447700900123").text
    assert "United Kingdom" in html and re.search(r'id="price">0\.3', html)
    missing = client.get(f"/accounts/{alpha}/rates?to=%2B81312345678").text
    assert 'class="error"' in missing


def test_low_balance_warnings_are_saved_through_the_thresholds_service(web_world, client):
    csrf = log_in(client, web_world.keys["bravo"])
    bravo = web_world.ids["bravo"]
    response = form_post(client, f"/accounts/{bravo}/thresholds", csrf, levels="10, 2.5")
    assert response.status_code == 303
    html = client.get(f"/accounts/{bravo}/balance").text
    assert re.search(r'id="levels">10\.00, 2\.50<', html)
    bad = form_post(client, f"/accounts/{bravo}/thresholds", csrf, levels="ten")
    assert bad.status_code in (400, 422)


def test_low_balance_warning_mode_is_kept_by_the_thresholds_form(web_world, client):
    csrf = log_in(client, web_world.keys["bravo"])
    bravo = web_world.ids["bravo"]
    levels = "10:at_or_below, 2.5"
    saved = form_post(client, f"/accounts/{bravo}/thresholds", csrf, levels=levels)
    assert saved.status_code == 303
    html = client.get(f"/accounts/{bravo}/balance").text
    assert 'value="10.00:at_or_below, 2.50"' in html


# ------------------------------------------------------------------ money shown one way


def test_balance_and_usage_pages_show_the_same_balance_string(web_world, client):
    gamma = accounts.create_account(
        web_world.db, kind="organisation", name="gamma", parent_id=web_world.ids["acme"],
        idempotency_key="web-test-gamma", clock=web_world.clock,
    ).id  # fmt: skip
    wallets.top_up(web_world.db, gamma, "12.3456", idempotency_key="web-test-gamma-topup",
                   clock=web_world.clock)  # fmt: skip
    log_in(client, web_world.keys["acme"])
    balance_html = client.get(f"/accounts/{gamma}/balance").text
    usage_html = client.get(f"/accounts/{gamma}/usage").text
    on_balance = re.search(r'id="paid-balance">([^<]+)<', balance_html).group(1).strip()
    on_usage = re.search(r'id="usage-balance">([^<]+)<', usage_html).group(1).strip()
    assert on_balance == on_usage == "12.3456 USD"


def test_a_user_sees_its_organisations_balance_on_the_usage_page(web_world, client):
    log_in(client, web_world.keys["alice"])
    html = client.get(f"/accounts/{web_world.ids['alice']}/usage").text
    shown = re.search(r'id="usage-balance">([^<]+)<', html).group(1).strip()
    assert shown == f"{format_money(paid(web_world, 'alpha'))} USD"


def test_quoted_prices_and_notification_amounts_use_the_money_format(web_world, client):
    alpha = web_world.ids["alpha"]
    log_in(client, web_world.keys["alpha"])
    quoted = client.get(f"/accounts/{alpha}/rates?to=%2B447700900123").text
    assert 'id="price">0.30 USD' in quoted  # not the tariff's six decimals (0.300000)
    with web_world.db.transaction() as conn:
        events.emit(
            conn, "balance.low", account_id=alpha, dedupe_key=f"web-test-money-{alpha}",
            payload={"level": "5", "balance": "4.1", "average_daily_spend": "0.3333333333",
                     "balance_micros": 1_234_500},
            now=web_world.clock.now(),
        )  # fmt: skip
    html = client.get(f"/accounts/{alpha}/notifications?unread=true").text
    for shown in ("level: 5.00", "balance: 4.10", "average_daily_spend: 0.333333",
                  "balance: 1.2345"):  # fmt: skip
        assert shown in html, shown
    assert "balance_micros" not in html
