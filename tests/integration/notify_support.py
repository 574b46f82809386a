"""Helpers shared by the notification tests (imported by them, not a conftest)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ledger_support import key, organisation, provider

from telbill.adapters.db.engine import Database
from telbill.services import thresholds, wallets
from telbill.services.accounts import Account
from telbill.services.clock import ManualClock


def funded_org(db: Database, clock: ManualClock, amount: str = "10.00") -> Account:
    """An organisation with a prepaid wallet holding `amount` (0% VAT provider)."""
    p = provider(db, clock, vat_rate="0")
    org = organisation(db, clock, p)
    if amount != "0":
        top_up(db, clock, org.id, amount)
    return org


def top_up(db: Database, clock: ManualClock, account_id: int, amount: str) -> None:
    """A top-up followed by the threshold hook, as the top-up path will call it."""
    wallets.top_up(db, account_id, amount, idempotency_key=key("t"), clock=clock)
    db.run(lambda conn: thresholds.after_balance_change(conn, account_id, clock.now()))


def spend(db: Database, clock: ManualClock, account_id: int, amount: str) -> None:
    """A usage debit followed by the threshold hook, as the charging path will call it."""
    wallets.debit(db, account_id, amount, service="voice", idempotency_key=key("d"), clock=clock)
    db.run(lambda conn: thresholds.after_balance_change(conn, account_id, clock.now()))


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: fails the first `failures` requests with 503."""

    failures: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


@contextmanager
def webhook_receiver(failures: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(failures=failures)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                failing = receiver.failures > 0
                if failing:
                    receiver.failures -= 1
            self.send_response(503 if failing else 204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
