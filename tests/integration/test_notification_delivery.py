"""Notification channels on a real database: in-app read marks, signed webhooks from the
outbox with retries and backoff, email over SMTP to a local aiosmtpd server."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from ledger_support import manual_clock, migrated_db, user  # noqa: F401
from notify_support import funded_org, spend, webhook_receiver

from telbill.adapters.db.engine import Database
from telbill.adapters.notify.email import SmtpEmailSender, SmtpSettings
from telbill.adapters.notify.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    HttpWebhookSender,
    InvalidSignature,
    sign,
    verify_signature,
)
from telbill.errors import InvalidInput, NotFound
from telbill.services import notifications
from telbill.services.clock import ManualClock
from telbill.services.events import emit


def webhook_sender() -> notifications.ChannelSender:
    return notifications.ChannelSender(webhook=HttpWebhookSender(timeout_s=5), email=object())


def test_in_app_notifications_are_listed_unread_and_marked_read(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "1.00")
    spend(db, clock, org.id, "1.00")
    listed = notifications.list_notifications(db, org.id)
    assert len(listed) >= 2 and all(n.read_at is None for n in listed)
    first = listed[0].event_id
    assert notifications.mark_read(db, org.id, [first], now=clock.now()) == 1
    assert notifications.mark_read(db, org.id, [first], now=clock.now()) == 0
    unread = notifications.list_notifications(db, org.id, unread_only=True)
    assert [n.event_id for n in unread] == [n.event_id for n in listed[1:]]
    assert notifications.mark_read(db, org.id, None, now=clock.now()) == len(listed) - 1
    assert notifications.list_notifications(db, org.id, unread_only=True) == []


def test_marking_another_accounts_notification_read_is_not_found(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "1.00")
    spend(db, clock, org.id, "1.00")
    other = funded_org(db, clock, "5.00")
    event_id = notifications.list_notifications(db, org.id)[0].event_id
    with pytest.raises(NotFound):
        notifications.mark_read(db, other.id, [event_id], now=clock.now())
    assert notifications.list_notifications(db, org.id, unread_only=True)[0].event_id == event_id


def test_webhook_signature_verifies_and_rejects_tampering_and_old_timestamps():
    body = b'{"id":1}'
    header = sign("whsec_0123456789abcdef", 1_700_000_000, body)
    assert verify_signature("whsec_0123456789abcdef", body, header, now=1_700_000_100) == (
        1_700_000_000
    )
    for secret, hdr, payload, now in [
        ("whsec_wrong-secret-000000", header, body, 1_700_000_000),
        ("whsec_0123456789abcdef", header, b'{"id":2}', 1_700_000_000),
        ("whsec_0123456789abcdef", header, body, 1_700_000_301),
        ("whsec_0123456789abcdef", "v1=abc", body, 1_700_000_000),
    ]:
        with pytest.raises(InvalidSignature):
            verify_signature(secret, payload, hdr, now=now)


def test_bad_endpoints_are_refused(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "1.00")
    for kind, target, types in [
        ("webhook", "ftp://example.com", None),
        ("email", "not-an-address", None),
        ("webhook", "https://example.com/h", ["balance.nope"]),
        ("sms", "+15550100", None),
    ]:
        with pytest.raises(InvalidInput):
            notifications.add_endpoint(
                db, org.id, kind=kind, target=target, event_types=types, now=clock.now()
            )
    assert notifications.list_endpoints(db, org.id) == []


def test_webhook_to_a_private_address_is_refused_unless_the_operator_allows_it(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
):
    org = funded_org(db, clock, "1.00")
    monkeypatch.delenv("TELBILL_WEBHOOK_ALLOW_PRIVATE")
    for target in ["http://127.0.0.1:9/h", "https://localhost/h", "http://169.254.169.254/x",
                   "https://[::1]:8443/h", "http://10.0.0.7/h", "http://127.1/h",
                   "http://0x7f000001/h", "http://2130706433/h", "http://0/h",
                   "http://localhost./h"]:  # fmt: skip
        with pytest.raises(InvalidInput, match="public address"):
            notifications.add_endpoint(db, org.id, kind="webhook", target=target, now=clock.now())
    assert notifications.list_endpoints(db, org.id) == []
    monkeypatch.setenv("TELBILL_WEBHOOK_ALLOW_PRIVATE", "1")
    added = notifications.add_endpoint(
        db, org.id, kind="webhook", target="http://127.0.0.1:9/h", now=clock.now()
    )
    assert [e.id for e in notifications.list_endpoints(db, org.id)] == [added.id]


def test_outbox_survives_a_receiver_that_fails_three_times_then_succeeds(
    db: Database, clock: ManualClock
):
    org = funded_org(db, clock, "1.00")
    with webhook_receiver(failures=3) as receiver:
        endpoint = notifications.add_endpoint(
            db, org.id, kind="webhook", target=receiver.url, now=clock.now()
        )
        spend(db, clock, org.id, "0.60")  # one balance.low
        sender = webhook_sender()
        delays = []
        for attempt in range(1, 4):
            report = notifications.deliver_due(db, clock, sender, base_delay_s=10)
            assert (report.delivered, report.retried) == (0, 1), attempt
            [row] = notifications.list_deliveries(db, endpoint_id=endpoint.id)
            delays.append(row.next_attempt_at - clock.now())
            # Not due yet: nothing is sent before the backoff has passed.
            assert notifications.deliver_due(db, clock, sender).retried == 0
            clock.advance(row.next_attempt_at - clock.now())
        report = notifications.deliver_due(db, clock, sender, base_delay_s=10)
        assert report.delivered == 1
        clock.advance(days=1)
        assert notifications.deliver_due(db, clock, sender).delivered == 0
    # Exponential backoff: 10 s, 20 s, 40 s.
    assert delays == [timedelta(seconds=s) for s in (10, 20, 40)]
    [row] = notifications.list_deliveries(db, endpoint_id=endpoint.id)
    assert (row.status, row.attempts) == ("delivered", 4)
    assert len(receiver.requests) == 4
    last = receiver.requests[-1]
    event = json.loads(last["body"])
    assert event["type"] == "balance.low" and event["account_id"] == org.id
    assert last["headers"][EVENT_ID_HEADER] == str(event["id"])
    verify_signature(endpoint.secret or "", last["body"], last["headers"][SIGNATURE_HEADER])


def test_delivery_gives_up_after_max_attempts(db: Database, clock: ManualClock):
    org = funded_org(db, clock, "1.00")
    with webhook_receiver(failures=100) as receiver:
        endpoint = notifications.add_endpoint(
            db, org.id, kind="webhook", target=receiver.url, now=clock.now()
        )
        spend(db, clock, org.id, "0.60")
        dead = 0
        for _ in range(5):
            dead += notifications.deliver_due(
                db, clock, webhook_sender(), max_attempts=3, max_delay_s=60
            ).dead
            clock.advance(minutes=5)
    [row] = notifications.list_deliveries(db, endpoint_id=endpoint.id)
    assert (dead, row.status, row.attempts, len(receiver.requests)) == (1, "dead", 3, 3)


def test_backoff_doubles_up_to_its_cap():
    assert [notifications.backoff_delay_s(n, 30, 300) for n in range(1, 7)] == [
        30, 60, 120, 240, 300, 300,
    ]  # fmt: skip


def test_endpoint_receives_only_its_tree_and_chosen_types_from_its_creation(
    db: Database, clock: ManualClock
):
    org = funded_org(db, clock, "1.00")
    other = funded_org(db, clock, "1.00")
    alice = user(db, clock, org)
    now = clock.now()
    db.run(
        lambda c: emit(
            c, "number.released", account_id=org.id, payload={}, dedupe_key="before", now=now
        )
    )
    endpoint = notifications.add_endpoint(
        db,
        org.id,
        kind="webhook",
        target="https://example.com/h",
        event_types=["number.released", "balance.low"],
        now=now,
    )
    for name, account in [("mine", org.id), ("child", alice.id), ("foreign", other.id)]:
        db.run(
            lambda c, n=name, a=account: emit(
                c, "number.released", account_id=a, payload={}, dedupe_key=n, now=now
            )
        )
    db.run(
        lambda c: emit(c, "number.renewed", account_id=org.id, payload={}, dedupe_key="t", now=now)
    )
    sent = []
    notifications.deliver_due(db, clock, lambda out: sent.append(out.event["account_id"]))
    assert sorted(sent) == sorted([org.id, alice.id])
    assert {d.endpoint_id for d in notifications.list_deliveries(db)} == {endpoint.id}


def test_email_notification_is_received_by_smtp_server_with_subject_and_body(
    db: Database, clock: ManualClock
):
    aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.handlers import Sink

    received = []

    class Collect(Sink):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            received.append((envelope.rcpt_tos, envelope.content))
            return "250 OK"

    with socket.socket() as probe:  # a free ephemeral port (aiosmtpd needs a number)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = aiosmtpd_controller.Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = SmtpSettings.from_env(
            {"TELBILL_SMTP_HOST": "127.0.0.1", "TELBILL_SMTP_PORT": str(port),
             "TELBILL_SMTP_FROM": "billing@acme.example"}
        )  # fmt: skip
        org = funded_org(db, clock, "1.00")
        notifications.add_endpoint(
            db, org.id, kind="email", target="ops@alpha.example",
            event_types=["balance.low"], now=clock.now(),
        )  # fmt: skip
        spend(db, clock, org.id, "0.60")
        sender = notifications.ChannelSender(webhook=object(), email=SmtpEmailSender(settings))
        report = notifications.deliver_due(db, clock, sender)
    finally:
        controller.stop()
    assert report.delivered == 1, report.errors
    [(rcpt, content)] = received
    message = message_from_bytes(content, policy=default_policy)
    assert rcpt == ["ops@alpha.example"]
    assert message["From"] == "billing@acme.example"
    assert message["Subject"] == "Low balance on Org: 0.40 USD"
    body = message.get_content()
    assert "The balance of Org is 0.40 USD." in body
    assert "warning threshold of 0.50 USD" in body
    assert message["Message-ID"] and message["Date"]


def test_two_senders_at_once_deliver_every_event_exactly_once(db: Database, clock: ManualClock):
    import threading

    org = funded_org(db, clock, "1.00")
    notifications.add_endpoint(
        db, org.id, kind="webhook", target="https://example.com/h", now=clock.now()
    )
    for n in range(30):
        db.run(lambda c, n=n: emit(
            c, "number.released", account_id=org.id, payload={}, dedupe_key=f"c{n}",
            now=clock.now()))  # fmt: skip
    sent: list[int] = []
    lock = threading.Lock()

    def sender(outgoing: notifications.OutgoingEvent) -> None:
        with lock:
            sent.append(int(outgoing.event["id"]))

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            notifications.deliver_due(db, clock, sender, batch=3)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert len(sent) == len(set(sent)) == 30
    assert {d.status for d in notifications.list_deliveries(db)} == {"delivered"}
