"""`telbill demo`, `telbill init` and `telbill serve` as a newcomer runs them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from telbill.api.app import create_app
from telbill.cli import demo as demo_module
from telbill.cli.main import app

SRC = Path(__file__).resolve().parents[2] / "src"
runner = CliRunner()


def test_demo_seeds_a_fresh_database_that_reconciles_and_prints_a_working_key(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "telbill-demo.db").write_text("stale file from an earlier run")
    result = runner.invoke(app, ["demo", "--no-serve"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "the ledger adds up" in result.stdout
    assert (tmp_path / "telbill-demo.db").exists()
    admin_key = re.search(
        r"provider admin \(provider_admin, account \d+\): (tb_\S+)", result.stdout
    )
    assert admin_key, result.stdout
    url = f"sqlite:///{tmp_path / 'telbill-demo.db'}"
    with TestClient(create_app(url)) as client:
        headers = {"Authorization": f"Bearer {admin_key.group(1)}"}
        report = client.get("/v1/reconcile", headers=headers).json()
        assert report["problems"] == [] and report["transactions"] > 0
    # Running it again starts from scratch: same seeded state, not twice the data.
    again = runner.invoke(app, ["demo", "--no-serve"], terminal_width=200)
    assert again.exit_code == 0
    with TestClient(create_app(url)) as client:
        key = re.search(r"provider admin \(provider_admin, account \d+\): (tb_\S+)", again.stdout)
        assert key
        second = client.get("/v1/reconcile", headers={"Authorization": f"Bearer {key.group(1)}"})
        assert second.json()["transactions"] == report["transactions"]


def test_demo_runs_every_registered_seeding_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen: list[str] = []

    def extra_step(ctx: demo_module.DemoContext) -> None:
        seen.append(sorted(ctx.accounts)[0])
        ctx.report("extra", "a step added by another area")

    monkeypatch.setattr(sys.modules[__name__], "extra_step", extra_step, raising=False)
    monkeypatch.setattr(
        demo_module, "SEED_STEPS", (*demo_module.SEED_STEPS, f"{__name__}:extra_step")
    )
    result = runner.invoke(app, ["demo", "--no-serve"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert seen and "a step added by another area" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_init_then_serve_answers_over_http(tmp_path):
    url = f"sqlite:///{tmp_path / 'served.db'}"
    env = {**os.environ, "PYTHONPATH": str(SRC), "TELBILL_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "telbill", "init"], env=env, check=True, capture_output=True
    )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "telbill", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        response = httpx.get(f"{base}/v1/reconcile")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_runs_the_scheduler_in_the_background(tmp_path, monkeypatch):
    import threading

    from telbill.cli import server
    from telbill.services import scheduler

    monkeypatch.setenv("TELBILL_DATABASE_URL", f"sqlite:///{tmp_path / 'ticks.db'}")
    ticked = threading.Event()
    monkeypatch.setattr(scheduler, "tick", lambda db, until=None, *, clock: ticked.set())
    stop = server.start_scheduler(0.05)
    try:
        assert ticked.wait(timeout=10)
    finally:
        stop.set()


def test_serve_passes_the_access_log_choice_to_uvicorn(tmp_path, monkeypatch):
    import uvicorn

    monkeypatch.setenv("TELBILL_DATABASE_URL", f"sqlite:///{tmp_path / 'log.db'}")
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    for flags in ([], ["--no-access-log"]):
        result = runner.invoke(app, ["serve", "--tick-every", "0", "--push-every", "0", *flags])
        assert result.exit_code == 0, result.output
    assert [call["access_log"] for call in calls] == [True, False]
    assert all(call["factory"] and call["log_level"] == "info" for call in calls)


def test_the_demo_posts_real_cdrs_so_reports_counters_and_margin_show_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["demo", "--no-serve"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "120 CDRs of the last month posted" in result.stdout
    url = f"sqlite:///{tmp_path / 'telbill-demo.db'}"
    acme = re.search(r"org_admin, account (\d+)", result.stdout)
    assert acme
    calls = runner.invoke(app, ["report", "calls", acme.group(1), "--database", url, "--json"])
    assert calls.exit_code == 0, calls.output
    assert json.loads(calls.stdout)["rows"], "the month's call report is empty"
    counters = runner.invoke(
        app, ["report", "counters", acme.group(1), "--database", url, "--json"]
    )
    assert counters.exit_code == 0, counters.output
    assert json.loads(counters.stdout)["calls"] > 0
    # The demo's own CLI lines name the virtual environment's telbill, runnable as printed.
    assert f"TELBILL_DATABASE_URL={url} .venv/bin/telbill balance" in result.stdout


def test_serve_passes_the_worker_health_check_timeout_to_uvicorn(tmp_path, monkeypatch):
    import uvicorn

    from telbill.cli.server import DEFAULT_WORKER_HEALTHCHECK_S

    monkeypatch.setenv("TELBILL_DATABASE_URL", f"sqlite:///{tmp_path / 'hc.db'}")
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    for flags in ([], ["--timeout-worker-healthcheck", "90"]):
        result = runner.invoke(
            app, ["serve", "--tick-every", "0", "--push-every", "0", "--workers", "4", *flags]
        )
        assert result.exit_code == 0, result.output
    assert [call["timeout_worker_healthcheck"] for call in calls] == [
        DEFAULT_WORKER_HEALTHCHECK_S,
        90,
    ]
    assert DEFAULT_WORKER_HEALTHCHECK_S > 5  # uvicorn's own default killed busy workers
    refused = runner.invoke(
        app, ["serve", "--push-every", "0", "--timeout-worker-healthcheck", "0"]
    )
    assert refused.exit_code != 0 and len(calls) == 2
