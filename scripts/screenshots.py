"""Screenshots of the dashboard's main pages for the README (docs/screenshots/*.png).

    PYTHONPATH=src python scripts/screenshots.py [--out docs/screenshots]

Seeds a small telephony business into a temporary SQLite file through the services (a
month of calls, numbers, campaigns, two versions of a retail tariff and the ASTPP carrier
deck from ../shared/data when it is there), serves it with uvicorn on a free loopback port
and photographs the pages with Playwright driving Debian's Chromium (/usr/bin/chromium).
Deterministic data (a seeded random generator); dates are relative to today so the spend
chart has its 30 days.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from telbill.adapters.db.engine import Database, migrate  # noqa: E402
from telbill.adapters.formats.cdrs import read_cdr_file  # noqa: E402
from telbill.adapters.formats.inventory_csv import read_inventory_text  # noqa: E402
from telbill.adapters.formats.tariff_csv import read_tariff_csv  # noqa: E402
from telbill.adapters.formats.tariff_fields import ParsedRow  # noqa: E402
from telbill.domain.tariffs import Increment, TariffSettings  # noqa: E402
from telbill.services import (  # noqa: E402
    accounts,
    campaigns,
    numbers,
    payments,
    plans,
    tariffs,
    thresholds,
    wallets,
)
from telbill.services.auth import Role, create_api_key  # noqa: E402
from telbill.services.charging import post_cdrs  # noqa: E402
from telbill.services.clock import FixedClock  # noqa: E402

RETAIL_V1 = """prefix,destination,rate,increment
1,United States,0.0120,6/6
1212,United States New York,0.0110,6/6
44,United Kingdom,0.0250,6/6
447,United Kingdom Mobile,0.0600,6/6
49,Germany,0.0280,6/6
33,France,0.0300,6/6
34,Spain,0.0320,6/6
91,India,0.0450,6/6
"""
RETAIL_V2 = (
    RETAIL_V1.replace("44,United Kingdom,0.0250", "44,United Kingdom,0.0220").replace(
        "34,Spain,0.0320,6/6\n", ""
    )
    + "61,Australia,0.0350,6/6\n"
)
DESTINATIONS = ["+12125550", "+13105550", "+44207946", "+447700900", "+4930123", "+3314000",
                "+9122400"]  # fmt: skip
ASTPP = ROOT.parent.parent / "shared" / "data" / "astpp-outbound-rates.csv"
ASTPP_MAP = {"rate": "rate_per_minute", "increment": "increment_seconds",
             "free_seconds": "included_seconds"}  # fmt: skip
PAGES = (
    ("balance", "org", "/accounts/{org}/balance"),
    ("usage", "org", "/accounts/{org}/usage"),
    ("call-report", "org", "/accounts/{org}/calls"),
    ("numbers", "org", "/accounts/{org}/numbers?country=US"),
    ("provider-accounts", "provider", "/provider/{provider}/accounts"),
    ("provider-tariffs", "provider", "/provider/{provider}/tariffs"),
    ("provider-tariff-diff", "provider", "/provider/{provider}/tariffs/retail?from=1&to=2"),
    ("provider-revenue", "provider", "/provider/{provider}/revenue"),
)


def _rows(items):  # type: ignore[no-untyped-def]
    for item in items:
        yield (
            (item.row if item.values is None else item.values)
            if isinstance(item, ParsedRow)
            else item
        )


def seed(url: str, work: Path) -> dict[str, object]:
    migrate(url)
    db = Database(url)
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now - timedelta(days=40))
    keys = iter(range(1, 10_000))

    def key() -> str:
        return f"shots-{next(keys)}"

    def account(name: str, kind: str, parent: int | None, **kw: object) -> int:
        return accounts.create_account(db, kind=kind, name=name, parent_id=parent,
                                       idempotency_key=key(), clock=clock, **kw).id  # type: ignore[arg-type]  # fmt: skip

    provider = account("Northwind Telecom", "provider", None, currency="USD", vat_rate="0.2",
                       vat_country="GB", timezone="Europe/London")  # fmt: skip
    org = account("Acme Contact Centre", "organisation", provider)
    users = [account(n, "user", org) for n in ("alice", "bob", "carol")]
    globex = account("Globex Voicebots", "organisation", provider, billing_mode="postpaid",
                     credit_limit="500")  # fmt: skip
    account("voicebot-1", "user", globex)
    initech = account("Initech", "organisation", provider)
    account("peter", "user", initech)
    admin = create_api_key(db, account_id=provider, role=Role.PROVIDER_ADMIN, name="admin",
                           clock=clock).secret  # fmt: skip
    org_key = create_api_key(db, account_id=org, role=Role.ORG_ADMIN, name="acme admin",
                             clock=clock).secret  # fmt: skip
    for amount, ref in (("250.00", "card-4242"), ("120.00", "bank-transfer:ACME-0042")):
        payments.record_top_up(db, org, amount, payment_ref=ref, idempotency_key=key(),
                               clock=clock)  # fmt: skip
    payments.record_top_up(db, globex, "80.00", payment_ref="sepa-0001", idempotency_key=key(),
                           clock=clock)  # fmt: skip
    wallets.grant_credit(db, org, "5.00", kind="trial", expires_at=now + timedelta(days=20),
                         idempotency_key=key(), clock=clock)  # fmt: skip
    wallets.grant_credit(db, org, "600", kind="package", unit="s:call", label="10 free minutes",
                         expires_at=now + timedelta(days=12), idempotency_key=key(),
                         clock=clock)  # fmt: skip
    thresholds.set_settings(db, org, fixed_levels=["50", "10", "0"], spend_days=5,
                            spend_window_days=7, now=clock.now())  # fmt: skip
    settings = TariffSettings(currency="USD", default_increment=Increment(6, 6))
    for version, text in ((1, RETAIL_V1), (2, RETAIL_V2)):
        tariffs.import_tariff(
            db, "retail", _rows(read_tariff_csv(io.StringIO(text), source="retail.csv")),
            settings, tariffs.TariffSource(f"retail-v{version}.csv", "", "native"),
            now=clock.now() + timedelta(minutes=version),
        )  # fmt: skip
    if ASTPP.exists():
        with ASTPP.open(newline="", encoding="utf-8") as handle:
            tariffs.import_tariff(
                db, "carrier-astpp", _rows(read_tariff_csv(handle, column_map=ASTPP_MAP)),
                settings, tariffs.TariffSource(ASTPP.name, "", "native"), now=clock.now(),
            )  # fmt: skip
    plans.create_plan(db, "retail", tariff="retail", clock=clock)
    plans.assign_plan(db, provider, "retail", clock=clock)
    inventory, _ = read_inventory_text(
        "number,country,type,locality,area_code,monthly_price,setup_price\n"
        + "".join(f"+1617555{n:04d},US,local,Boston,617,1.00,0.50\n" for n in range(100, 106))
        + "".join(f"+1212555{n:04d},US,local,New York,212,1.50,0.50\n" for n in range(200, 203))
        + "+18005550199,US,toll_free,,800,3.00,1.00\n"
    )
    numbers.import_inventory(db, provider, inventory, clock=clock)
    for number in ("+16175550100", "+12125550200"):
        numbers.buy_number(db, org, number, idempotency_key=key(), clock=clock)
    generator = random.Random(7)
    lines = ["id,account,user,direction,from,to,start,answer,end,service,segments\n"]
    for n in range(260):
        start = now - timedelta(days=29) + timedelta(minutes=generator.randint(0, 29 * 24 * 60))
        user = generator.choice(["alice", "bob", "carol"])
        to = generator.choice(DESTINATIONS) + f"{generator.randint(100, 999)}"
        seconds = generator.choice([14, 38, 61, 95, 130, 240, 410])
        answer, end = start + timedelta(seconds=3), start + timedelta(seconds=3 + seconds)
        lines.append(
            f"c{n},Acme Contact Centre,{user},outbound,+16175550100,{to},"
            f"{start.isoformat()},{answer.isoformat()},{end.isoformat()},voice,\n"
        )
    path = work / "calls.csv"
    path.write_text("".join(lines), encoding="utf-8")
    post_cdrs(db, read_cdr_file(path, "native"), clock=FixedClock(now), source="calls.csv")
    live = FixedClock(now - timedelta(days=6))
    campaigns.start_campaign(db, users[2], "Spring renewals", clock=live)
    paused = campaigns.start_campaign(db, users[1], "Survey follow-up", clock=live)
    campaigns.pause_campaign(db, paused.id, clock=live)
    accounts.set_status(db, initech, "suspended", idempotency_key=key(), clock=clock)
    db.dispose()
    return {"admin": admin, "org_key": org_key, "org": org, "provider": provider,
            "balance": Decimal(0)}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shoot(base: str, seeded: dict[str, object], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    taken = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        for role, key in (("org", seeded["org_key"]), ("provider", seeded["admin"])):
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.goto(f"{base}/login")
            page.get_by_label("API key", exact=True).fill(str(key))
            page.get_by_role("button", name="Log in", exact=True).click()
            page.wait_for_load_state()
            for name, who, path in PAGES:
                if who != role:
                    continue
                page.goto(base + path.format(**{k: seeded[k] for k in ("org", "provider")}))
                target = out / f"{name}.png"
                height = min(int(page.evaluate("document.body.scrollHeight")), 1400)
                page.screenshot(path=str(target), full_page=True,
                                clip={"x": 0, "y": 0, "width": 1280, "height": height})  # fmt: skip
                taken.append(target)
            if role == "org":
                context.close()
                mobile = browser.new_context(viewport={"width": 390, "height": 844},
                                             device_scale_factor=1)  # fmt: skip
                phone = mobile.new_page()
                phone.goto(f"{base}/login")
                phone.get_by_label("API key", exact=True).fill(str(key))
                phone.get_by_role("button", name="Log in", exact=True).click()
                phone.wait_for_load_state()
                target = out / "balance-mobile.png"
                phone.screenshot(path=str(target), full_page=False)
                taken.append(target)
                mobile.close()
            else:
                context.close()
        browser.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="telbill-shots-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'shots.db'}"
        seeded = seed(url, work)
        port = free_port()
        python_path = f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        env = {**os.environ, "TELBILL_DATABASE_URL": url, "PYTHONPATH": python_path}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "telbill.api.app:app_from_env", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            for path in shoot(base, seeded, args.out):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
