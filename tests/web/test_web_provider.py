"""Provider pages: for the provider's admins only (an organisation admin gets 403 on its own
account and 404 on its provider's, another provider's admin 404), over the tariff, number
and account services."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from web_world import log_in

from telbill.services import accounts, tariffs
from telbill.services.accounts import AccountStatus
from telbill.web.core import format_money

PROVIDER_PAGES = ("accounts", "plans", "tariffs", "inventory", "suspended", "revenue")

# The seeded business is built once per module: keep the module on one xdist worker.
pytestmark = pytest.mark.xdist_group("web_provider")


@pytest.mark.parametrize("page", PROVIDER_PAGES)
def test_provider_page_is_for_its_admins_only(web_world, client, page):
    acme = web_world.ids["acme"]
    log_in(client, web_world.keys["acme"])
    response = client.get(f"/provider/{acme}/{page}")
    assert response.status_code == 200 and 'aria-current="page"' in response.text
    log_in(client, web_world.keys["alpha"])
    assert client.get(f"/provider/{web_world.ids['alpha']}/{page}").status_code == 403
    assert client.get(f"/provider/{acme}/{page}").status_code == 404
    log_in(client, web_world.keys["zeta"])
    foreign = client.get(f"/provider/{acme}/{page}")
    assert foreign.status_code == 404 and "acme" not in foreign.text.lower()


def test_accounts_tree_is_browsed_one_level_at_a_time(web_world, client):
    log_in(client, web_world.keys["acme"])
    acme = web_world.ids["acme"]
    top = client.get(f"/provider/{acme}/accounts").text
    assert "alpha" in top and "bravo" in top and "alice" not in top
    below = client.get(f"/provider/{acme}/accounts?parent={web_world.ids['alpha']}").text
    assert "alice" in below and "bob" not in below
    zeta = client.get(f"/provider/{acme}/accounts?parent={web_world.ids['zeta']}")
    assert zeta.status_code == 404


def test_accounts_are_found_by_name_or_id_kind_and_status_in_the_whole_tree(web_world, client):
    log_in(client, web_world.keys["acme"])
    acme = web_world.ids["acme"]

    def found(query: str) -> list[str]:
        html = client.get(f"/provider/{acme}/accounts?{query}").text
        table = html[html.index('id="accounts"') :]
        return re.findall(r"<tr><td>\d+</td><td>(?:<a [^>]*>)?([^<]+)", table)

    assert found("q=ALI") == ["alice"]  # any case, below its organisation
    assert found(f"q={web_world.ids['bob']}") == ["bob"]
    assert set(found("kind=user")) >= {"alice", "bob"} and "alpha" not in found("kind=user")
    assert "zeta" not in found("q=e")  # another provider is never in the tree
    assert client.get(f"/provider/{acme}/accounts?kind=provider").status_code == 422


def test_a_provider_admin_creates_an_account_from_the_accounts_page(web_world, client):
    csrf = log_in(client, web_world.keys["acme"])
    acme, alpha = web_world.ids["acme"], web_world.ids["alpha"]
    form = {"csrf_token": csrf, "name": "carol-web", "kind": "user", "parent": str(alpha),
            "idem": "new-carol"}  # fmt: skip
    created = client.post(f"/provider/{acme}/accounts", data=form, follow_redirects=False)
    assert created.status_code == 303, created.text
    page = client.get(created.headers["location"]).text
    assert "Account created." in page and "carol-web" in page
    again = client.post(f"/provider/{acme}/accounts", data=form, follow_redirects=False)
    assert again.status_code == 303  # the same form twice creates one account
    assert [a.name for a in accounts.list_subtree(web_world.db, alpha)].count("carol-web") == 1
    no_csrf = client.post(f"/provider/{acme}/accounts", data={**form, "csrf_token": "x"})
    assert no_csrf.status_code == 403
    zeta_csrf = log_in(client, web_world.keys["zeta"])
    foreign = client.post(f"/provider/{acme}/accounts",
                          data={**form, "csrf_token": zeta_csrf, "idem": "z"})  # fmt: skip
    assert foreign.status_code == 404


def test_a_provider_admin_opens_a_customers_pages_but_not_a_competitors(web_world, client):
    log_in(client, web_world.keys["acme"])
    assert client.get(f"/accounts/{web_world.ids['alpha']}/usage").status_code == 200
    log_in(client, web_world.keys["zeta"])
    assert client.get(f"/accounts/{web_world.ids['alpha']}/usage").status_code == 404


def test_suspended_accounts_lists_only_suspended_ones_of_the_subtree(web_world, client):
    bob = web_world.ids["bob"]
    accounts.set_status(web_world.db, bob, AccountStatus.SUSPENDED, idempotency_key="web-s1",
                        clock=web_world.clock)  # fmt: skip
    try:
        log_in(client, web_world.keys["acme"])
        html = client.get(f"/provider/{web_world.ids['acme']}/suspended").text
        assert "bob" in html and "alice" not in html
    finally:
        accounts.set_status(web_world.db, bob, AccountStatus.ACTIVE, idempotency_key="web-s2",
                            clock=web_world.clock)  # fmt: skip


def test_inventory_filters_by_status(web_world, client):
    log_in(client, web_world.keys["acme"])
    acme = web_world.ids["acme"]
    html = client.get(f"/provider/{acme}/inventory?status=available").text
    assert "+16175550100" in html
    assert "+16175550100" not in client.get(f"/provider/{acme}/inventory?status=rented").text


def test_revenue_by_destination_sums_the_months_usage_charges(web_world, client):
    log_in(client, web_world.keys["acme"])
    html = client.get(f"/provider/{web_world.ids['acme']}/revenue?month=2026-03").text
    assert "United States" in html
    # alice's six calls of 60..65 s at 0.12/min, per second: 0.12 * (60+...+65) / 60
    expected = Decimal("0.12") * sum(range(60, 66)) / 60
    assert re.search(r'id="revenue-total">' + re.escape(format_money(expected)) + " USD", html)
    assert "cost unknown" in html  # the seeded plan has no cost tariff
    empty = client.get(f"/provider/{web_world.ids['acme']}/revenue?month=2026-01").text
    assert "No usage charged" in empty


def test_tariff_import_streams_progress_then_versions_and_diff(web_world, client):
    csrf = log_in(client, web_world.keys["acme"])
    acme = web_world.ids["acme"]
    deck_v1 = "prefix,destination,rate\n49,Germany,0.05\n33,France,0.04\n"
    deck_v2 = "prefix,destination,rate\n49,Germany,0.06\n34,Spain,0.03\n"
    for deck in (deck_v1, deck_v2):
        response = client.post(
            f"/provider/{acme}/tariffs/import",
            data={"csrf_token": csrf, "name": "europe", "currency": "EUR", "increment": "60/60"},
            files={"file": ("europe.csv", deck.encode(), "text/csv")},
        )
        assert response.status_code == 200 and 'id="import-done"' in response.text
        assert "<progress" in response.text
    mine = tariffs.Viewer.owner(acme)  # the import went into Acme's own catalogue
    assert [v.version for v in tariffs.list_versions(web_world.db, "europe", mine)] == [1, 2]
    html = client.get(f"/provider/{acme}/tariffs/europe?from=1&to=2").text
    assert re.search(r'id="diff-summary">1 added · 1 removed · 1 changed', html)
    assert "Spain" in html and "France" in html


def test_a_deck_with_a_bad_row_imports_nothing_and_names_the_line(web_world, client):
    csrf = log_in(client, web_world.keys["acme"])
    acme = web_world.ids["acme"]
    response = client.post(
        f"/provider/{acme}/tariffs/import",
        data={"csrf_token": csrf, "name": "broken", "currency": "USD"},
        files={"file": ("bad.csv", b"prefix,destination,rate\n1,US,0.01\n44,UK,cheap\n")},
    )
    assert 'id="import-failed"' in response.text and "line 3" in response.text
    viewer = tariffs.Viewer(acme)
    assert "broken" not in [t.name for t in tariffs.list_tariffs(web_world.db, viewer)]


def test_tariff_import_needs_csrf_and_a_provider_admin(web_world, client):
    acme = web_world.ids["acme"]
    files = {"file": ("x.csv", b"prefix,destination,rate\n1,US,0.01\n")}
    log_in(client, web_world.keys["acme"])
    refused = client.post(f"/provider/{acme}/tariffs/import", data={"name": "nocsrf"},
                          files=files)  # fmt: skip
    assert refused.status_code == 403
    csrf = log_in(client, web_world.keys["alpha"])
    denied = client.post(f"/provider/{web_world.ids['alpha']}/tariffs/import",
                         data={"name": "org", "csrf_token": csrf}, files=files)  # fmt: skip
    assert denied.status_code == 403
    names = [t.name for t in tariffs.list_tariffs(web_world.db, tariffs.Viewer(acme))]
    assert "nocsrf" not in names and "org" not in names


# ------------------------------------------------------------------ tariffs per provider


def upload(client, csrf: str, provider: int, name: str, deck: str, **fields: str):
    return client.post(
        f"/provider/{provider}/tariffs/import",
        data={"csrf_token": csrf, "name": name, "currency": "EUR", **fields},
        files={"file": (f"{name}.csv", deck.encode(), "text/csv")},
    )


def test_a_competitor_uploading_a_tariff_named_retail_does_not_change_our_prices(
    web_world, client
):
    alpha, zeta = web_world.ids["alpha"], web_world.ids["zeta"]
    log_in(client, web_world.keys["alpha"])
    before = client.get(f"/accounts/{alpha}/rates?to=%2B447700900123").text
    assert re.search(r'id="price">0\.3', before)
    csrf = log_in(client, web_world.keys["zeta"])
    deck = "prefix,destination,rate\n44,United Kingdom,9.99\n1,United States,0\n"
    done = upload(client, csrf, zeta, "retail", deck)
    assert 'id="import-done"' in done.text and "version 1" in done.text  # its own tariff
    log_in(client, web_world.keys["alpha"])
    after = client.get(f"/accounts/{alpha}/rates?to=%2B447700900123").text
    assert re.search(r'id="price">0\.3', after) and "9.99" not in after
    shared = tariffs.get_version(web_world.db, "retail")  # the operator's, untouched
    assert (shared.version, shared.currency) == (1, "USD")


def test_a_provider_never_lists_or_opens_a_competitors_tariffs(web_world, client):
    acme, zeta = web_world.ids["acme"], web_world.ids["zeta"]
    csrf = log_in(client, web_world.keys["zeta"])
    deck = "prefix,destination,rate\n33,Zeta France,0.02\n"
    assert 'id="import-done"' in upload(client, csrf, zeta, "zeta-secret", deck).text
    cost = upload(client, csrf, zeta, "zeta-carrier", deck, purpose="cost")
    assert 'id="import-done"' in cost.text
    listed = client.get(f"/provider/{zeta}/tariffs").text
    assert "zeta-secret" in listed and "zeta-carrier" in listed and "cost deck" in listed
    assert "retail" in listed  # the operator's shared retail tariff
    log_in(client, web_world.keys["acme"])
    page = client.get(f"/provider/{acme}/tariffs").text
    assert "zeta-secret" not in page and "zeta-carrier" not in page
    for name in ("zeta-secret", "zeta-carrier"):
        opened = client.get(f"/provider/{acme}/tariffs/{name}")
        assert opened.status_code == 404 and "Zeta France" not in opened.text
        assert client.get(f"/provider/{zeta}/tariffs/{name}").status_code == 404


def test_an_upload_into_another_providers_catalogue_is_refused_and_changes_nothing(
    web_world, client
):
    acme = web_world.ids["acme"]
    csrf = log_in(client, web_world.keys["zeta"])
    before = tariffs.list_tariffs(web_world.db, tariffs.Viewer(acme))
    refused = upload(client, csrf, acme, "retail", "prefix,destination,rate\n44,UK,9.99\n")
    assert refused.status_code == 404
    assert tariffs.list_tariffs(web_world.db, tariffs.Viewer(acme)) == before


# --------------------------------------------------------------------- a version's rates


def rate_rows(html: str) -> list[str]:
    """The prefixes of the rates table, in page order."""
    table = html.split('id="rates"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr><td>([^<]*)</td>", table)


def test_a_provider_admin_sees_a_versions_rates_from_the_tariffs_page(web_world, client):
    acme = web_world.ids["acme"]
    csrf = log_in(client, web_world.keys["acme"])
    deck = ("prefix,destination,rate,connect_fee,increment,min_seconds\n"
            "4420,UK London,0.0123456,0.05,30/6,30\n4477,UK Mobile,0.2,0,,0\n")  # fmt: skip
    assert 'id="import-done"' in upload(client, csrf, acme, "seen", deck).text
    listing = client.get(f"/provider/{acme}/tariffs").text
    link = f"/provider/{acme}/tariffs/seen/versions/1"
    assert link in listing and link in client.get(f"/provider/{acme}/tariffs/seen").text
    html = client.get(link).text
    assert rate_rows(html) == ["4420", "4477"]
    london = html.split("<tr><td>4420</td>", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", london)
    assert cells[:7] == ["UK London", "voice", "outbound", "0.0123456", "0.05", "30/6", "30"]
    mobile = html.split("<tr><td>4477</td>", 1)[1].split("</tr>", 1)[0]
    assert "60/60" in mobile and "(default)" in mobile and ">0.20<" in mobile


def test_the_rates_page_filters_by_prefix_start_or_destination_text(web_world, client):
    acme = web_world.ids["acme"]
    csrf = log_in(client, web_world.keys["acme"])
    deck = ("prefix,destination,rate\n44,United Kingdom,0.1\n4477,UK Mobile,0.2\n"
            "49,Germany,0.05\n1,United States,0.01\n")  # fmt: skip
    assert 'id="import-done"' in upload(client, csrf, acme, "filtered", deck).text
    base = f"/provider/{acme}/tariffs/filtered/versions/1"
    assert rate_rows(client.get(f"{base}?prefix=%2B44").text) == ["44", "4477"]
    assert rate_rows(client.get(f"{base}?prefix=447").text) == ["4477"]
    assert rate_rows(client.get(f"{base}?destination=united").text) == ["44", "1"]
    assert rate_rows(client.get(f"{base}?destination=uk&prefix=44").text) == ["4477"]
    assert rate_rows(client.get(f"{base}?destination=50%25").text) == []  # % is literal
    assert "No rates match" in client.get(f"{base}?prefix=99").text
    for bad in (f"{base}?cursor=x", base[:-1] + "0", base[:-1] + "9" * 20):
        assert client.get(bad).status_code in (400, 422)  # an error page, nothing read


def test_the_rates_page_is_keyset_paged_fifty_rates_a_page(web_world, client):
    acme = web_world.ids["acme"]
    csrf = log_in(client, web_world.keys["acme"])
    prefixes = [str(3000 + n) for n in range(120)]
    deck = "prefix,destination,rate\n" + "".join(f"{p},Zone {p},0.01\n" for p in prefixes)
    assert 'id="import-done"' in upload(client, csrf, acme, "paged", deck).text
    seen: list[str] = []
    url: str | None = f"/provider/{acme}/tariffs/paged/versions/1?destination=zone"
    pages = 0
    while url:
        html = client.get(url).text
        rows = rate_rows(html)
        assert len(rows) == (50 if pages < 2 else 20)
        seen += rows
        pages += 1
        found = re.search(r'rel="next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
        assert url is None or "destination=zone" in url  # the filter stays on every page
    assert pages == 3 and seen == prefixes


def test_a_competitors_admin_gets_404_on_the_rates_page(web_world, client):
    acme, zeta = web_world.ids["acme"], web_world.ids["zeta"]
    csrf = log_in(client, web_world.keys["acme"])
    deck = "prefix,destination,rate\n3312,Acme Secret Paris,0.0777\n"
    assert 'id="import-done"' in upload(client, csrf, acme, "acme-only", deck).text
    assert client.get(f"/provider/{acme}/tariffs/acme-only/versions/1").status_code == 200
    shared = client.get(f"/provider/{acme}/tariffs/retail/versions/1")  # the operator's
    assert shared.status_code == 200 and rate_rows(shared.text) == ["1", "44"]
    log_in(client, web_world.keys["zeta"])
    for url in (f"/provider/{zeta}/tariffs/acme-only/versions/1",
                f"/provider/{acme}/tariffs/acme-only/versions/1"):  # fmt: skip
        opened = client.get(url)
        assert opened.status_code == 404 and "Acme Secret Paris" not in opened.text
    log_in(client, web_world.keys["alpha"])  # an organisation admin: not a provider page
    assert client.get(f"/provider/{acme}/tariffs/acme-only/versions/1").status_code == 404
