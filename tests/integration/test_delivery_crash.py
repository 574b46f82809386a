"""A webhook sender killed (SIGKILL) in the middle of a delivery, then restarted: every
event reaches the receiver, and none that was acknowledged is sent again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ledger_support import manual_clock, migrated_db  # noqa: F401 (fixtures)
from notify_support import funded_org

from telbill.adapters.db.engine import Database
from telbill.adapters.notify.webhooks import EVENT_ID_HEADER, HttpWebhookSender
from telbill.services import notifications
from telbill.services.clock import FixedClock, ManualClock
from telbill.services.events import emit

SRC = Path(__file__).resolve().parents[2] / "src"
EVENTS = 20
BLOCK_AT = 8  # the receiver holds the 8th request until the sender has been killed

SENDER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from telbill.adapters.db.engine import Database
    from telbill.adapters.notify.webhooks import HttpWebhookSender
    from telbill.services.clock import SystemClock
    from telbill.services.notifications import ChannelSender, deliver_due

    sender = ChannelSender(webhook=HttpWebhookSender(timeout_s=60), email=object())
    deliver_due(Database(sys.argv[1]), SystemClock(), sender, batch=3, lease_s=600)
    """
)


def test_sender_killed_mid_delivery_then_restarted_delivers_each_event_once_acknowledged(
    db: Database, clock: ManualClock, db_url: str
):
    org = funded_org(db, clock, "0")
    requests: list[tuple[str, int]] = []  # (phase, event id)
    phase = {"now": "first"}
    in_flight = threading.Event()
    killed = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            event_id = int(self.headers[EVENT_ID_HEADER])
            assert json.loads(body)["id"] == event_id
            requests.append((phase["now"], event_id))
            if phase["now"] == "first" and len(requests) == BLOCK_AT:
                in_flight.set()
                killed.wait(timeout=60)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        notifications.add_endpoint(db, org.id, kind="webhook", target=url, now=clock.now())
        for n in range(EVENTS):
            db.run(lambda c, n=n: emit(
                c, "number.released", account_id=org.id, payload={"n": n},
                dedupe_key=f"crash-{n}", now=clock.now()))  # fmt: skip
        child = subprocess.Popen([sys.executable, "-c", SENDER, db_url, str(SRC)])
        try:
            assert in_flight.wait(timeout=60), "the sender never reached the blocking request"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
            killed.set()
        acknowledged = {
            d.event_id for d in notifications.list_deliveries(db) if d.status == "delivered"
        }
        assert len(acknowledged) == BLOCK_AT - 1
        # Restarted after the claim's lease ran out.
        phase["now"] = "restart"
        later = FixedClock(datetime.now(UTC) + timedelta(hours=1))
        sender = notifications.ChannelSender(webhook=HttpWebhookSender(timeout_s=10), email=None)
        report = notifications.deliver_due(db, later, sender, batch=3)
    finally:
        server.shutdown()
        server.server_close()
    all_ids = {d.event_id for d in notifications.list_deliveries(db)}
    assert len(all_ids) == EVENTS
    assert {event_id for _, event_id in requests} == all_ids
    resent = [event_id for p, event_id in requests if p == "restart"]
    assert not acknowledged & set(resent)
    # Only the request in flight at the kill reaches the receiver twice (it drops it by id).
    first = [event_id for p, event_id in requests if p == "first"]
    assert len(resent) + len(first) == EVENTS + 1
    assert report.delivered == EVENTS - len(acknowledged)
    assert {d.status for d in notifications.list_deliveries(db)} == {"delivered"}
