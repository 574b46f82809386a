"""The webhook sender reaches public addresses only (SSRF guard): it resolves the name itself,
refuses any non-public answer and connects to the address it checked, with the URL's name in
the Host header and in TLS (SNI), so DNS cannot change the target between check and connect."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from telbill.adapters.notify import webhooks
from telbill.adapters.notify.webhooks import DeliveryFailed, HttpWebhookSender

EVENT = {"id": "evt_1", "type": "balance.low", "data": {"balance": "0.40"}}


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"), ("192.168.0.10", "private"), ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"), ("fe80::1%eth0", "link-local"),
        ("100.64.0.1", "non-public"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
        ("fc00::1", "private"),
    ],
)  # fmt: skip
def test_non_public_addresses_are_named_with_their_kind(address: str, kind: str):
    assert webhooks.non_public_reason(address) == f"{address} is a {kind} address"


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2001:4860:4860::8888"])
def test_public_addresses_pass(address: str):
    assert webhooks.non_public_reason(address) is None


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", getaddrinfo)


def recording_sender(seen: list[httpx.Request]) -> HttpWebhookSender:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    return HttpWebhookSender(httpx.Client(transport=httpx.MockTransport(handler)),
                             allow_private=False)  # fmt: skip


def test_the_sender_connects_to_the_address_it_checked_with_the_name_in_host_and_sni(
    monkeypatch: pytest.MonkeyPatch,
):
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    seen: list[httpx.Request] = []
    recording_sender(seen).send("https://hooks.example.com:8443/in?x=1", "s" * 20, EVENT,
                                timestamp=1_700_000_000)  # fmt: skip
    (request,) = seen
    assert request.url.host == "93.184.216.34" and request.url.port == 8443
    assert request.url.raw_path == b"/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    body = webhooks.event_body(EVENT)
    assert request.content == body
    webhooks.verify_signature("s" * 20, body, request.headers[webhooks.SIGNATURE_HEADER],
                              now=1_700_000_000)  # fmt: skip


@pytest.mark.parametrize(
    "answers",
    [["127.0.0.1"], ["93.184.216.34", "10.0.0.5"], ["169.254.169.254"], ["::1"]],
)
def test_a_name_with_any_non_public_address_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, answers: list[str]
):
    fake_dns(monkeypatch, {"rebind.example.com": answers})
    seen: list[httpx.Request] = []
    with pytest.raises(DeliveryFailed, match="refused: rebind.example.com resolves to"):
        recording_sender(seen).send("https://rebind.example.com/h", "s" * 20, EVENT,
                                    timestamp=1)  # fmt: skip
    assert seen == []


def test_an_unresolvable_name_is_a_failed_delivery(monkeypatch: pytest.MonkeyPatch):
    fake_dns(monkeypatch, {})
    with pytest.raises(DeliveryFailed, match="cannot resolve"):
        recording_sender([]).send("https://nowhere.invalid/h", "s" * 20, EVENT, timestamp=1)


class Receiver(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.hits.append(self.headers["Host"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_real_local_receiver_is_refused_by_default_and_reached_when_allowed(
    monkeypatch: pytest.MonkeyPatch,
):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://localhost:{server.server_port}/hook"
    try:
        monkeypatch.delenv(webhooks.ALLOW_PRIVATE_ENV, raising=False)
        with pytest.raises(DeliveryFailed, match="loopback"):
            HttpWebhookSender(timeout_s=5).send(url, "s" * 20, EVENT, timestamp=1)
        assert Receiver.hits == []
        monkeypatch.setenv(webhooks.ALLOW_PRIVATE_ENV, "1")
        HttpWebhookSender(timeout_s=5).send(url, "s" * 20, EVENT, timestamp=1)
        assert Receiver.hits == [f"localhost:{server.server_port}"]
    finally:
        server.shutdown()


# Every spelling of a loopback, unspecified or private address, and loopback names: refused
# at registration by the very function every delivery applies (`webhooks.public_target`).
OTHER_SPELLINGS = [
    "http://127.1/h", "http://0x7f000001/h", "http://2130706433/h", "http://0/h",
    "http://localhost./h", "https://LOCALHOST/h", "http://api.localhost/h",
    "http://017700000001/h", "http://10.1/h", "http://192.168.1.1/h", "http://[::1]/h",
    "http://[::ffff:7f00:1]/h", "http://169.254.169.254/latest/meta-data",
]  # fmt: skip


@pytest.mark.parametrize("url", OTHER_SPELLINGS)
def test_registration_and_delivery_refuse_every_spelling_of_a_non_public_target(
    monkeypatch: pytest.MonkeyPatch, url: str
):
    monkeypatch.delenv(webhooks.ALLOW_PRIVATE_ENV, raising=False)
    problem = webhooks.target_problem(url)
    assert problem is not None
    seen: list[httpx.Request] = []
    with pytest.raises(DeliveryFailed) as refused:
        recording_sender(seen).send(url, "s" * 20, EVENT, timestamp=1)
    assert seen == []
    assert problem in str(refused.value)  # one rule, one reason


def test_registration_accepts_what_delivery_accepts(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(webhooks.ALLOW_PRIVATE_ENV, raising=False)
    public = ["93.184.216.34"]
    fake_dns(monkeypatch, {"hooks.example.com": public, "93.184.216.34": public})
    assert webhooks.target_problem("https://hooks.example.com/in") is None
    assert webhooks.target_problem("http://93.184.216.34/in") is None
    fake_dns(monkeypatch, {})
    assert "cannot resolve" in (webhooks.target_problem("https://hooks.example.com/in") or "")


def test_the_operator_switch_lifts_the_rule_at_registration_as_at_delivery(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv(webhooks.ALLOW_PRIVATE_ENV, "1")
    assert all(webhooks.target_problem(url) is None for url in OTHER_SPELLINGS)
