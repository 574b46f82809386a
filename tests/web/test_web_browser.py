"""The dashboard in a real browser (Playwright + Debian's Chromium) against a real server:
log-in, top-up, the call report of a month, buying and releasing a number, and one
organisation never seeing another's data. SQLite for all of it; PostgreSQL for log-in and
top-up. One browser per module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from browser_support import launch_browser, log_in, require_chromium, running_server
from web_world import WebWorld, build_web_world, drop_pg_database, new_pg_database

from telbill.services import wallets
from telbill.services.auth import create_web_user
from telbill.web.core import format_money

# A real server and browser take tens of seconds to start on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("web_browser")]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    require_chromium()
    playwright, launched = launch_browser()
    try:
        yield launched
    finally:
        launched.close()
        playwright.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebWorld, str]]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser")
    world = build_web_world(f"sqlite:///{tmp / 'site.db'}", tmp)
    try:
        with running_server(world.url, tmp / "server.log") as base:
            yield world, base
    finally:
        world.db.dispose()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


def paid(world: WebWorld, who: str) -> Decimal:
    balances = wallets.get_balances(world.db, world.ids[who], clock=world.clock)
    return sum((b.balance for b in balances.unit("USD").buckets if b.kind == "paid"), Decimal(0))


def top_up_in_browser(page, base: str, world: WebWorld) -> None:  # type: ignore[no-untyped-def]
    """The customer asks (a bank transfer books nothing), the provider confirms: booked."""
    log_in(page, base, world.keys["alpha"])
    alpha = world.ids["alpha"]
    assert page.url.endswith(f"/accounts/{alpha}/balance")
    before = paid(world, "alpha")
    page.get_by_label("Amount").fill("12.34")
    page.get_by_label("Bank transfer reference").fill("BT-browser")
    page.get_by_role("button", name="Send request").click()
    page.get_by_text("Top-up request sent").wait_for()
    assert paid(world, "alpha") == before
    assert "pending" in page.locator("#topup-requests").inner_text()
    page.get_by_role("button", name="Log out").click()
    log_in(page, base, world.keys["acme"])
    page.get_by_role("link", name="Top-up requests").click()
    page.get_by_role("button", name="Confirm").first.click()
    page.get_by_text("Payment confirmed").wait_for()
    assert paid(world, "alpha") == before + Decimal("12.34")
    page.goto(f"{base}/accounts/{alpha}/balance")
    shown = page.locator("#paid-balance").inner_text()
    assert shown == f"{format_money(before + Decimal('12.34'))} USD"
    assert "bank-transfer:BT-browser" in page.locator("#latest-receipts").inner_text()


def test_log_in_and_top_up(site, page):
    world, base = site
    page.goto(f"{base}/")
    assert page.url.endswith("/login")
    page.get_by_label("API key", exact=True).fill("tb_wrong-key-000000000000")
    page.get_by_role("button", name="Log in", exact=True).click()
    assert "not valid" in page.locator("#login-error").inner_text()
    top_up_in_browser(page, base, world)
    page.get_by_role("button", name="Log out").click()
    assert page.url.endswith("/login")


def test_call_report_for_a_month(site, page):
    world, base = site
    log_in(page, base, world.keys["alpha"])
    page.get_by_role("link", name="Call reports").click()
    page.get_by_label("Month", exact=True).fill("2026-03")
    page.get_by_role("button", name="Show").click()
    assert re.match(r"6 calls · 6:15 billed · 0\.75 USD", page.locator("#calls-total").inner_text())
    assert page.locator("#calls-table tbody tr").count() == 6
    with page.expect_download() as download:
        page.locator("#calls-csv").click()
    assert download.value.suggested_filename == f"calls-{world.ids['alpha']}-2026-03.csv"


def test_buy_and_release_a_number(site, page):
    world, base = site
    log_in(page, base, world.keys["bravo"])
    page.get_by_role("link", name="Numbers").click()
    page.get_by_label("Country (ISO)").fill("US")
    page.get_by_label("City (US/CA)").fill("Boston")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("button", name="Buy +16175550100").click()
    page.get_by_text("Number bought.").wait_for()
    assert "+16175550100" in page.locator("#rentals").inner_text()
    page.get_by_role("button", name="Release +16175550100").click()
    page.get_by_text("Number released.").wait_for()
    assert "+16175550100" not in page.locator("#rentals").inner_text()


def test_one_organisation_never_sees_anothers_data(site, page):
    world, base = site
    log_in(page, base, world.keys["bravo"])
    alpha = world.ids["alpha"]
    for path in ("balance", "usage", "calls?month=2026-03", "numbers", "receipts"):
        response = page.goto(f"{base}/accounts/{alpha}/{path}")
        assert response.status == 404, path
        assert page.get_by_role("heading", name="Not found").is_visible()
        assert "+1555123" not in page.content() and "BT-browser" not in page.content()
    page.goto(f"{base}/accounts/{world.ids['bravo']}/usage")
    assert "+1555123" not in page.locator("#usage-table").inner_text()  # alpha's calls


@pytest.mark.postgres
def test_log_in_and_top_up_on_postgresql(browser, tmp_path: Path):
    name, url = new_pg_database()
    world = build_web_world(url, tmp_path, calls=1)
    try:
        with running_server(url, tmp_path / "server.log") as base:
            context = browser.new_context()
            try:
                tab = context.new_page()
                tab.set_default_timeout(10_000)
                top_up_in_browser(tab, base, world)
            finally:
                context.close()
    finally:
        world.db.dispose()
        drop_pg_database(name)


def test_log_in_with_email_and_password(site, page):
    world, base = site
    create_web_user(
        world.db, email="dana@alpha.example", password="correct horse battery",
        role="org_admin", account_id=world.ids["alpha"], clock=world.clock,
    )  # fmt: skip
    page.goto(f"{base}/login")
    page.get_by_label("Email", exact=True).fill("dana@alpha.example")
    page.get_by_label("Password", exact=True).fill("correct horse battery")
    page.get_by_role("button", name="Log in with password").click()
    page.get_by_role("heading", name="Balance", exact=True).wait_for()
    assert "dana@alpha.example" in page.locator("header").inner_text()


def test_the_api_documentation_renders_with_no_internet(site, page):
    _, base = site
    foreign: list[str] = []

    def only_local(route):  # type: ignore[no-untyped-def]
        if route.request.url.startswith(base):
            route.continue_()
        else:  # refused: the pages must draw without them (ReDoc's footer logo is an image)
            if route.request.resource_type != "image":
                foreign.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{base}/docs")
    page.get_by_text("/v1/sessions/authorize").first.wait_for()  # Swagger UI drew the routes
    page.goto(f"{base}/redoc")
    page.get_by_text("Idempotency-Key").first.wait_for()  # ReDoc drew the document
    assert foreign == []


@pytest.mark.parametrize("width", [1280, 360])
def test_the_login_card_holds_its_inputs_on_a_desktop_and_a_phone(site, browser, width):
    _, base = site
    context = browser.new_context(viewport={"width": width, "height": 800})
    try:
        tab = context.new_page()
        tab.goto(f"{base}/login")
        card = tab.locator("section.card").bounding_box()
        assert card is not None
        assert card["width"] >= min(400, width - 40)  # not squeezed to its content
        for field in ("#email", "#password", "#api_key"):
            box = tab.locator(field).bounding_box()
            assert box is not None
            assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card["width"]
            assert box["x"] + box["width"] <= width
    finally:
        context.close()


def test_a_provider_admin_opens_and_filters_a_tariffs_rates(site, page):
    world, base = site
    log_in(page, base, world.keys["acme"])
    page.get_by_role("link", name="Tariffs", exact=True).click()
    page.get_by_role("link", name="Rates of retail").click()
    rows = page.locator("#rates tbody tr")
    assert rows.count() == 2
    page.get_by_label("Prefix starts with").fill("+44")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r"prefix="))
    assert rows.count() == 1
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[:7] == ["44", "United Kingdom", "voice", "outbound", "0.30", "0.00", "1/1"]


def test_the_balance_and_usage_pages_show_one_balance_string(site, page):
    world, base = site
    alpha = world.ids["alpha"]
    wallets.top_up(world.db, alpha, "0.0056", idempotency_key="browser-odd-cents",
                   clock=world.clock)  # fmt: skip
    log_in(page, base, world.keys["alpha"])
    page.goto(f"{base}/accounts/{alpha}/balance")
    on_balance = page.locator("#paid-balance").inner_text()
    page.get_by_role("link", name="Usage", exact=True).click()
    assert page.locator("#usage-balance").inner_text() == on_balance
    assert re.fullmatch(r"[\d,]+\.\d{4} USD", on_balance), on_balance
