"""Signed webhooks: HMAC-SHA256 over ``timestamp.body``, sent with httpx.

Each request carries

* ``Telbill-Signature: t=<unix seconds>,v1=<hex hmac>``: receivers check it with
  `verify_signature` (constant-time compare, timestamp within a tolerance against replays);
* ``Telbill-Event-Id``: the event id, the receiver's idempotency key. Delivery is at least
  once (a sender that dies after the receiver answered but before recording it sends again),
  so receivers drop an event id they have already processed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
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


class HttpWebhookSender:
    """POSTs a signed event to a URL; raises DeliveryFailed unless the answer is 2xx."""

    def __init__(self, client: httpx.Client | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.client = client or httpx.Client(timeout=timeout_s)

    def send(self, url: str, secret: str, event: Mapping[str, Any], *, timestamp: int) -> None:
        body = event_body(event)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            EVENT_ID_HEADER: str(event["id"]),
            EVENT_TYPE_HEADER: str(event["type"]),
        }
        try:
            response = self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")

    def close(self) -> None:
        self.client.close()


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryFailed",
    "HttpWebhookSender",
    "InvalidSignature",
    "event_body",
    "new_secret",
    "sign",
    "verify_signature",
]
