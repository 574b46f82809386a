"""Dashboard users with a password: created by the operator (`telbill admin user add`),
stored as a salted scrypt hash, logged in with email and password, same roles and scope
as an API key."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner
from web_world import LOGIN_TOKEN

from telbill.adapters.db.web_tables import web_users
from telbill.cli.main import app
from telbill.errors import Conflict, InvalidInput
from telbill.services.auth import create_web_user, hash_password, verify_password

pytestmark = pytest.mark.xdist_group("web_users")
PASSWORD = "correct horse battery"


def test_password_hash_is_salted_scrypt_and_checks_only_the_right_password():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + "!", first)
    assert not verify_password(PASSWORD, "md5$abc") and not verify_password(PASSWORD, "garbage")


def post_login(client, **fields: str):
    token = LOGIN_TOKEN.search(client.get("/login").text).group(1)
    return client.post("/login", data={"login_token": token, **fields}, follow_redirects=False)


def test_operator_adds_a_user_who_logs_in_with_email_and_password(web_world, client):
    result = CliRunner().invoke(
        app,
        ["admin", "user", "add", "--email", "Dana@Alpha.example", "--account",
         str(web_world.ids["alpha"]), "--role", "org_admin", "--password-stdin",
         "--database", web_world.url],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with web_world.db.engine.connect() as conn:
        stored = conn.execute(
            sa.select(web_users.c.password_hash).where(web_users.c.email == "dana@alpha.example")
        ).scalar_one()
    assert PASSWORD not in stored and verify_password(PASSWORD, stored)
    response = post_login(client, email="dana@ALPHA.example", password=PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == f"/accounts/{web_world.ids['alpha']}/balance"
    page = client.get(response.headers["location"])
    assert "dana@alpha.example" in page.text and re.search(r'name="csrf_token"', page.text)
    # Same scope as an org_admin key: another organisation is not found.
    assert client.get(f"/accounts/{web_world.ids['bravo']}/balance").status_code == 404


def test_wrong_password_and_unknown_email_get_the_same_answer(web_world, client):
    create_web_user(
        web_world.db, email="erin@bravo.example", password=PASSWORD, role="user",
        account_id=web_world.ids["bob"], clock=web_world.clock,
    )  # fmt: skip
    wrong = post_login(client, email="erin@bravo.example", password="not the password")
    unknown = post_login(client, email="nobody@bravo.example", password=PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email or password." in wrong.text and "Wrong email or password." in unknown.text
    assert "telbill_session" not in client.cookies


@pytest.mark.parametrize(
    ("email", "password", "role", "who", "error"),
    [
        ("frank@example.com", "short", "user", "alice", InvalidInput),
        ("not-an-email", PASSWORD, "user", "alice", InvalidInput),
        ("gina@example.com", PASSWORD, "switch", "alpha", InvalidInput),
        ("hank@example.com", PASSWORD, "provider_admin", "alpha", InvalidInput),
    ],
)
def test_bad_users_are_refused(web_world, email, password, role, who, error):
    with pytest.raises(error):
        create_web_user(web_world.db, email=email, password=password, role=role,
                        account_id=web_world.ids[who], clock=web_world.clock)  # fmt: skip


def test_an_email_is_one_user(web_world):
    create_web_user(web_world.db, email="ivy@alpha.example", password=PASSWORD, role="user",
                    account_id=web_world.ids["alice"], clock=web_world.clock)  # fmt: skip
    with pytest.raises(Conflict):
        create_web_user(
            web_world.db, email="IVY@alpha.example", password=PASSWORD, role="user",
            account_id=web_world.ids["alice"], clock=web_world.clock,
        )  # fmt: skip


def test_cli_refuses_a_bad_user_with_one_line(web_world):
    result = CliRunner().invoke(
        app,
        ["admin", "user", "add", "--email", "x@example.com", "--account", "999999",
         "--role", "user", "--password-stdin", "--database", web_world.url],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 1 and "not found" in result.output


def test_a_disabled_user_cannot_log_in_and_their_open_session_ends_at_once(web_world, client):
    create_web_user(web_world.db, email="jo@alpha.example", password=PASSWORD, role="org_admin",
                    account_id=web_world.ids["alpha"], clock=web_world.clock)  # fmt: skip
    home = post_login(client, email="jo@alpha.example", password=PASSWORD).headers["location"]
    assert client.get(home).status_code == 200

    def cli(*args: str):
        return CliRunner().invoke(app, ["admin", "user", *args, "--database", web_world.url])

    result = cli("disable", "--email", "JO@alpha.example")
    assert result.exit_code == 0 and "disabled at" in result.output, result.output
    assert client.get(home, follow_redirects=False).status_code in (303, 401)
    again = post_login(client, email="jo@alpha.example", password=PASSWORD)
    assert again.status_code == 401
    listed = cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    (jo,) = [user for user in json.loads(listed.stdout) if user["email"] == "jo@alpha.example"]
    assert jo["role"] == "org_admin" and jo["disabled_at"] is not None
    assert cli("disable", "--email", "nobody@alpha.example").exit_code == 1
