"""A webhook receiver's check, `verify_signature(secret, body, header, now, tolerance_s)`:
genuine deliveries pass within the tolerance window; a replay outside it, a tampered body,
another secret or a malformed header is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telbill.adapters.notify.webhooks import (
    DEFAULT_TOLERANCE_S,
    InvalidSignature,
    event_body,
    sign,
    verify_signature,
)

SECRET = "whsec_receiver-test-secret-0123456789"
SENT_AT = 1_800_000_000
BODY = event_body({"id": 42, "type": "balance.low", "account_id": 7})
HEADER = sign(SECRET, SENT_AT, BODY)


def test_a_genuine_delivery_verifies_and_returns_its_timestamp() -> None:
    assert verify_signature(SECRET, BODY, HEADER, SENT_AT + 3) == SENT_AT


def test_the_clock_may_be_an_aware_datetime() -> None:
    now = datetime.fromtimestamp(SENT_AT + 10, tz=UTC)
    assert verify_signature(SECRET, BODY, HEADER, now) == SENT_AT


@pytest.mark.parametrize("offset_s", [-DEFAULT_TOLERANCE_S, 0, DEFAULT_TOLERANCE_S])
def test_timestamps_within_the_window_either_way_are_accepted(offset_s: int) -> None:
    assert verify_signature(SECRET, BODY, HEADER, SENT_AT + offset_s) == SENT_AT


@pytest.mark.parametrize("offset_s", [DEFAULT_TOLERANCE_S + 1, 3600, -(DEFAULT_TOLERANCE_S + 1)])
def test_a_replay_outside_the_window_is_refused_though_its_signature_is_genuine(
    offset_s: int,
) -> None:
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify_signature(SECRET, BODY, HEADER, SENT_AT + offset_s)


def test_the_window_is_the_receivers_choice() -> None:
    verify_signature(SECRET, BODY, HEADER, SENT_AT + 500, tolerance_s=600)
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, BODY, HEADER, SENT_AT + 31, tolerance_s=30)


def test_a_replay_with_a_fresh_timestamp_but_the_old_signature_is_refused() -> None:
    old_mac = HEADER.split("v1=")[1]
    forged = f"t={SENT_AT + 1000},v1={old_mac}"
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(SECRET, BODY, forged, SENT_AT + 1000)


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        ("whsec_another-secret-0000000000000", BODY, HEADER),
        (SECRET, BODY.replace(b"42", b"43"), HEADER),
        (SECRET, BODY + b" ", HEADER),
        (SECRET, BODY, HEADER.replace("v1=", "v0=")),
        (SECRET, BODY, f"v1={HEADER.split('v1=')[1]}"),
        (SECRET, BODY, "t=soon," + HEADER.split(",")[1]),
        (SECRET, BODY, ""),
        (SECRET, BODY, None),
    ],
)
def test_tampered_bodies_other_secrets_and_malformed_headers_are_refused(
    secret: str, body: bytes, header: str | None
) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(secret, body, header, SENT_AT)


def test_one_matching_signature_among_several_is_enough_for_secret_rotation() -> None:
    new_secret = "whsec_rotated-secret-99999999999999"
    rotated = sign(new_secret, SENT_AT, BODY).split("v1=")[1]
    header = f"{HEADER},v1={rotated}"
    assert verify_signature(new_secret, BODY, header, SENT_AT) == SENT_AT
    assert verify_signature(SECRET, BODY, header, SENT_AT) == SENT_AT
