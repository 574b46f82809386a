"""`telbill demo` points a newcomer at the dashboard with a key that logs in to it."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from typer.testing import CliRunner
from web_world import log_in

from telbill.api.app import create_app
from telbill.cli.main import app


def test_demo_prints_the_dashboard_url_and_a_key_that_logs_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--port", "8123"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/login" in result.stdout
    key = re.search(r"log in with the org_admin key of account (\d+): (tb_\S+)", result.stdout)
    assert key, result.stdout
    with TestClient(create_app(f"sqlite:///{tmp_path / 'telbill-demo.db'}")) as client:
        log_in(client, key.group(2))
        page = client.get(f"/accounts/{key.group(1)}/balance")
        assert page.status_code == 200 and "Acme Contact Centre" in page.text
