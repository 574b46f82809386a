"""A real server and a real browser for the dashboard's browser tests.

The browser is Debian's Chromium at /usr/bin/chromium driven by Playwright (never a
downloaded browser build). Without it the tests skip with the reason; under CI=true they
fail, since `make test` installs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path(os.environ.get("TELBILL_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SRC = Path(__file__).resolve().parents[2] / "src"


def require_chromium() -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (make test installs Debian's chromium package)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install -e '.[dev]')"
    if reason:
        if IN_CI:
            pytest.fail(reason + " (CI=true: browser tests must run)")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(database_url: str, log_path: Path) -> Iterator[str]:
    """`telbill`'s app under uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "TELBILL_DATABASE_URL": database_url,
           "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "telbill.api.app:app_from_env", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            # Generous: a loaded CI machine may take a while to import and start the app.
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def launch_browser():  # type: ignore[no-untyped-def]
    """(playwright, browser): stop both with `browser.close(); playwright.stop()`."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
    except Exception:
        playwright.stop()
        raise
    return playwright, browser


def log_in(page, base: str, key: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_load_state()
