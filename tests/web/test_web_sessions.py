"""Dashboard log-in: API keys of the API's roles, server-side sessions, CSRF on every POST."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from web_world import LOGIN_TOKEN, WebWorld, log_in

from telbill.adapters.db.web_tables import web_sessions
from telbill.services import wallets
from telbill.services.auth import Role, create_api_key, revoke_api_key

# The seeded business is built once per module: keep the module on one xdist worker.
pytestmark = pytest.mark.xdist_group("web_sessions")


def paid(world: WebWorld, who: str) -> Decimal:
    balances = wallets.get_balances(world.db, world.ids[who], clock=world.clock)
    return sum((b.balance for b in balances.unit("USD").buckets if b.kind == "paid"), Decimal(0))


def session_rows(world: WebWorld) -> int:
    with world.db.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar_one())


def test_log_in_with_an_api_key_sets_an_httponly_samesite_cookie_holding_no_key(web_world, client):
    form = client.get("/login")
    token = LOGIN_TOKEN.search(form.text).group(1)
    response = client.post(
        "/login",
        data={"api_key": web_world.keys["alpha"], "login_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/accounts/{web_world.ids['alpha']}/balance"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "telbill_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over http in this test
    assert web_world.keys["alpha"] not in cookie
    assert client.get(f"/accounts/{web_world.ids['alpha']}/balance").status_code == 200


def test_provider_admin_lands_on_the_accounts_tree(web_world, client):
    log_in(client, web_world.keys["acme"])
    response = client.get("/", follow_redirects=False)
    assert response.headers["location"] == f"/provider/{web_world.ids['acme']}/accounts"


def test_cookies_are_secure_when_served_over_https(web_world, client):
    client.base_url = "https://testserver"
    token = LOGIN_TOKEN.search(client.get("/login").text).group(1)
    response = client.post(
        "/login",
        data={"api_key": web_world.keys["alpha"], "login_token": token},
        follow_redirects=False,
    )
    cookie = next(c for c in response.headers.get_list("set-cookie") if "telbill_session=" in c)
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_unknown_key_and_switch_key_cannot_log_in(web_world, client):
    for key, message in (
        ("tb_not-a-real-key-at-all-000000", "not valid"),
        (web_world.keys["alpha_switch"], "switch key cannot log in"),
    ):
        token = LOGIN_TOKEN.search(client.get("/login").text).group(1)
        before = session_rows(web_world)
        response = client.post("/login", data={"api_key": key, "login_token": token})
        assert response.status_code == 401 and message in response.text
        assert session_rows(web_world) == before
        assert "telbill_session" not in client.cookies


def test_log_in_form_posted_without_its_token_is_refused(web_world, client):
    client.get("/login")
    response = client.post(
        "/login", data={"api_key": web_world.keys["alpha"], "login_token": "forged"}
    )
    assert response.status_code == 403
    assert "telbill_session" not in client.cookies


def test_pages_without_a_session_redirect_to_the_log_in(web_world, client):
    response = client.get(f"/accounts/{web_world.ids['alpha']}/usage", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/accounts/{web_world.ids['alpha']}/usage"
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_log_in_returns_to_the_page_asked_for_but_never_to_another_site(web_world, client):
    calls = f"/accounts/{web_world.ids['alpha']}/calls"
    home = f"/accounts/{web_world.ids['alpha']}/balance"
    for target, expected in ((calls, calls), ("//evil.example/", home),
                             ("https://evil.example/", home)):  # fmt: skip
        token = LOGIN_TOKEN.search(client.get("/login").text).group(1)
        response = client.post(
            "/login",
            data={"api_key": web_world.keys["alpha"], "login_token": token, "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == expected


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(web_world, client):
    csrf = log_in(client, web_world.keys["acme"])
    alpha = web_world.ids["alpha"]
    before = paid(web_world, "alpha")
    form = {"amount": "10.00", "provider": "bank_transfer", "reference": "TR-1"}
    missing = client.post(f"/accounts/{alpha}/topups", data=form)
    wrong = client.post(f"/accounts/{alpha}/topups", data={**form, "csrf_token": csrf + "x"})
    assert missing.status_code == wrong.status_code == 403
    assert "security token" in missing.text
    assert paid(web_world, "alpha") == before
    ok = client.post(f"/accounts/{alpha}/topups", data={**form, "csrf_token": csrf})
    assert ok.status_code == 200 and paid(web_world, "alpha") == before + Decimal("10.00")


def test_csrf_token_of_another_session_is_refused(web_world, client):
    other = log_in(client, web_world.keys["bravo"])
    log_in(client, web_world.keys["alpha"])
    response = client.post(
        f"/accounts/{web_world.ids['alpha']}/notifications/read", data={"csrf_token": other}
    )
    assert response.status_code == 403


def test_log_out_deletes_the_session_row_and_the_old_cookie_stops_working(web_world, client):
    csrf = log_in(client, web_world.keys["alpha"])
    cookie = client.cookies.get("telbill_session")
    before = session_rows(web_world)
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert session_rows(web_world) == before - 1
    client.cookies.set("telbill_session", cookie)
    page = client.get(f"/accounts/{web_world.ids['alpha']}/balance", follow_redirects=False)
    assert page.status_code == 303


def test_log_out_needs_the_csrf_token(web_world, client):
    log_in(client, web_world.keys["alpha"])
    before = session_rows(web_world)
    assert client.post("/logout").status_code == 403
    assert session_rows(web_world) == before


def test_a_session_expires_after_eight_hours(web_world, client):
    log_in(client, web_world.keys["alpha"])
    balance = f"/accounts/{web_world.ids['alpha']}/balance"
    web_world.clock.advance(timedelta(hours=8, seconds=1))
    try:
        assert client.get(balance, follow_redirects=False).status_code == 303
    finally:
        web_world.clock.advance(timedelta(hours=-8, seconds=-1))


def test_revoking_the_key_ends_its_sessions_at_once(web_world, client):
    created = create_api_key(
        web_world.db, account_id=web_world.ids["bob"], role=Role.USER, name="bob-laptop",
        clock=web_world.clock,
    )  # fmt: skip
    log_in(client, created.secret)
    page = f"/accounts/{web_world.ids['bob']}/usage"
    assert client.get(page).status_code == 200
    revoke_api_key(web_world.db, created.key.id, clock=web_world.clock)
    assert client.get(page, follow_redirects=False).status_code == 303


def test_pages_forbid_framing_scripts_and_other_sites_assets(web_world, client):
    for path in ("/login", f"/accounts/{web_world.ids['alpha']}/balance"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'none'" in policy
        assert "default-src 'self'" in policy and headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        log_in(client, web_world.keys["alpha"])


def test_over_https_the_session_cookie_has_the_host_prefix_secure_path_and_no_domain(
    web_world, client
):
    client.base_url = "https://testserver"
    token = LOGIN_TOKEN.search(client.get("/login").text).group(1)
    response = client.post(
        "/login",
        data={"api_key": web_world.keys["alpha"], "login_token": token},
        follow_redirects=False,
    )
    (cookie,) = [c for c in response.headers.get_list("set-cookie") if "telbill_session=" in c]
    assert cookie.startswith("__Host-telbill_session=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "path"} <= attributes and "domain" not in attributes
    assert "Path=/;" in cookie or cookie.rstrip().endswith("Path=/")
    home = f"/accounts/{web_world.ids['alpha']}/balance"
    assert client.get(home, follow_redirects=False).status_code == 200
    # Over https a session cookie without the prefix (planted by a sibling subdomain) is
    # not read.
    stolen = client.cookies.get("__Host-telbill_session")
    client.cookies.clear()
    client.cookies.set("telbill_session", stolen)
    assert client.get(home, follow_redirects=False).status_code == 303


def test_secure_cookies_forced_by_the_operator_use_the_host_prefix_too(
    web_world, client, monkeypatch
):
    monkeypatch.setenv("TELBILL_SECURE_COOKIES", "1")
    client.base_url = "https://testserver"
    cookie_name = log_in_cookie_name(client, web_world.keys["alpha"])
    assert cookie_name == "__Host-telbill_session"


def log_in_cookie_name(client, key: str) -> str:
    token = LOGIN_TOKEN.search(client.get("/login").text).group(1)
    response = client.post(
        "/login", data={"api_key": key, "login_token": token}, follow_redirects=False
    )
    (cookie,) = [c for c in response.headers.get_list("set-cookie") if "telbill_session=" in c]
    return cookie.split("=", 1)[0]
