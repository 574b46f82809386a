"""Signed webhooks: HMAC-SHA256 over ``timestamp.body``, sent with httpx.

Each request carries

* ``Telbill-Signature: t=<unix seconds>,v1=<hex hmac>``: receivers check it with
  `verify_signature` (constant-time compare, timestamp within a tolerance against replays);
* ``Telbill-Event-Id``: the event id, the receiver's idempotency key. Delivery is at least
  once (a sender that dies after the receiver answered but before recording it sends again),
  so receivers drop an event id they have already processed.

Targets must be public addresses (against SSRF: a tenant pointing its webhook at an internal
service). The sender resolves the host itself, refuses the request when any address is not
globally routable (loopback, private, link-local such as cloud metadata, CGNAT, multicast,
reserved), and connects to the address it checked (TLS still verifies the certificate
against the URL's name through SNI), so a DNS answer that changes between check and connect
cannot slip through. Redirects are not followed. `TELBILL_WEBHOOK_ALLOW_PRIVATE=1` lifts the
rule for a private deployment (receivers on the same host or LAN).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import socket
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

SIGNATURE_HEADER = "Telbill-Signature"
EVENT_ID_HEADER = "Telbill-Event-Id"
EVENT_TYPE_HEADER = "Telbill-Event-Type"
DEFAULT_TIMEOUT_S = 10.0
# How old (or how far in the future) a signed timestamp a receiver accepts: 5 minutes.
DEFAULT_TOLERANCE_S = 300
ALLOW_PRIVATE_ENV = "TELBILL_WEBHOOK_ALLOW_PRIVATE"


class DeliveryFailed(Exception):
    """The receiver did not acknowledge (network error, timeout, non-2xx answer)."""


class InvalidSignature(Exception):
    """A webhook whose signature header is missing, malformed, wrong or too old."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    now: float | datetime | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a ``Telbill-Signature`` header as a webhook receiver; returns its timestamp.

    Args:
        secret: the endpoint's secret (``whsec_...``), shown once when it was registered.
        body: the raw request body, byte for byte as received (not re-serialised JSON).
        header: the ``Telbill-Signature`` header value: ``t=<unix seconds>,v1=<hex>``; several
            ``v1`` values are accepted (one matching is enough), for secret rotation.
        now: the receiver's clock (unix seconds or an aware datetime); default: the system's.
        tolerance_s: how far the timestamp may be from `now`, either way. A request replayed
            later than this is refused even though its signature is genuine.

    Raises:
        InvalidSignature: header missing or malformed, timestamp outside the tolerance, or no
            signature matches (compared in constant time).
    """
    parts: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(name, []).append(value.strip())
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("signature header has no timestamp") from None
    if isinstance(now, datetime):
        current = now.timestamp()
    else:
        current = time.time() if now is None else float(now)
    if not abs(current - timestamp) <= tolerance_s:
        raise InvalidSignature("signature timestamp outside the tolerance")
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    # Compare every candidate: the time taken does not tell which one (or how much) matched.
    matches = [hmac.compare_digest(expected, given) for given in parts.get("v1", [])]
    if not any(matches):
        raise InvalidSignature("signature does not match")
    return timestamp


def event_body(event: Mapping[str, Any]) -> bytes:
    """The JSON body of a webhook: the event, keys sorted, compact."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode()


def private_targets_allowed() -> bool:
    """Whether the operator allowed webhooks to private addresses (`ALLOW_PRIVATE_ENV`)."""
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in {"1", "true", "yes"}


def non_public_reason(address: str) -> str | None:
    """Why `address` (an IP literal) is not a public target, or None when it is one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return None
    kinds = [
        name
        for name, flag in (
            ("loopback", ip.is_loopback),
            ("unspecified", ip.is_unspecified),
            ("link-local", ip.is_link_local),
            ("multicast", ip.is_multicast),
            ("private", ip.is_private),
            ("reserved", ip.is_reserved),
        )
        if flag
    ]
    return f"{address} is a {kinds[0] if kinds else 'non-public'} address"


class TargetRefused(Exception):
    """A webhook target that is not a public address (or cannot be resolved)."""


def public_target(url: str) -> tuple[httpx.URL, list[str]]:
    """The one rule for webhook targets, applied at registration and at every delivery.

    Returns the parsed URL and the addresses its host resolves to, every one of them public.
    The host is resolved by the system's resolver exactly as a connection would resolve it,
    so every spelling of an address counts as that address: ``127.1``, ``0x7f000001``,
    ``2130706433`` and ``0`` are loopback or unspecified like ``127.0.0.1`` and
    ``0.0.0.0``; ``localhost``, ``localhost.`` and ``*.localhost`` are loopback names.

    Raises:
        TargetRefused: a loopback name, a name that does not resolve, or any address that
            is not globally routable (`non_public_reason`).
    """
    parsed = httpx.URL(url)
    host = parsed.host
    name = host.rstrip(".").lower()
    if not name:
        raise TargetRefused("the URL has no host")
    if name == "localhost" or name.endswith(".localhost"):
        raise TargetRefused(f"{host} is a loopback name")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = non_public_reason(address)
        if reason is not None:
            raise TargetRefused(f"{host} resolves to {reason}")
    return parsed, addresses


def target_problem(url: str) -> str | None:
    """At registration: why `url` is not an acceptable webhook target, or None.

    The same rule as delivery (`public_target`), lifted by `ALLOW_PRIVATE_ENV` exactly as
    there.
    """
    if private_targets_allowed():
        return None
    try:
        public_target(url)
    except TargetRefused as exc:
        return str(exc)
    return None


class HttpWebhookSender:
    """POSTs a signed event to a URL; raises DeliveryFailed unless the answer is 2xx.

    `allow_private`: None reads `TELBILL_WEBHOOK_ALLOW_PRIVATE` (default: public targets only).
    """

    def __init__(
        self,
        client: httpx.Client | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        *,
        allow_private: bool | None = None,
    ):
        self.client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self.allow_private = private_targets_allowed() if allow_private is None else allow_private

    def _pinned(self, url: str) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """The URL to connect to (the checked address), the Host header and TLS extensions."""
        if self.allow_private:
            return httpx.URL(url), {}, {}
        try:
            parsed, addresses = public_target(url)
        except TargetRefused as exc:
            raise DeliveryFailed(
                f"refused: {exc} ({ALLOW_PRIVATE_ENV}=1 allows private targets)"
            ) from exc
        host = parsed.host
        extensions: dict[str, Any] = {"sni_hostname": host} if parsed.scheme == "https" else {}
        host_header = parsed.netloc.decode("ascii")  # name[:port], brackets for IPv6
        return parsed.copy_with(host=addresses[0]), {"Host": host_header}, extensions

    def send(self, url: str, secret: str, event: Mapping[str, Any], *, timestamp: int) -> None:
        body = event_body(event)
        target, host_header, extensions = self._pinned(url)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            EVENT_ID_HEADER: str(event["id"]),
            EVENT_TYPE_HEADER: str(event["type"]),
            **host_header,
        }
        try:
            response = self.client.post(
                target, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")

    def close(self) -> None:
        self.client.close()


__all__ = [
    "ALLOW_PRIVATE_ENV",
    "DEFAULT_TOLERANCE_S",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryFailed",
    "HttpWebhookSender",
    "InvalidSignature",
    "event_body",
    "TargetRefused",
    "public_target",
    "target_problem",
    "new_secret",
    "non_public_reason",
    "private_targets_allowed",
    "sign",
    "verify_signature",
]
