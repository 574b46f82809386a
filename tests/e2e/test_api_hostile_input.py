"""Hostile input through the API (issue 15, finding 5): each of these answered 500. Now each
is a 422 problem that names the field, and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

PROBLEM = "application/problem+json"
NUL = "a\x00b"
SURROGATE = "a\ud800b"
CDR = {"id": "c1", "user": "alice", "to": "+15551230000", "start": "2026-03-01T08:00:00Z",
       "answer": "2026-03-01T08:00:00Z", "end": "2026-03-01T08:01:01Z"}  # fmt: skip


A = "/v1/accounts/{alpha}"
EARLY = "0001-01-01T00:00:00+14:00"
LATE = "9999-12-31T23:59:59-14:00"
TO = "+447700900123"


def _cdrs(**fields: str) -> dict[str, Any]:
    return {"cdrs": [CDR | fields]}


# (method, path template, who, body or query, the field the problem must name)
CASES: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("POST", A + "/topups", "acme", {"amount": "1", "payment_ref": NUL}, "payment_ref"),
    ("POST", A + "/topups", "acme", {"amount": "1", "payment_ref": SURROGATE}, "payment_ref"),
    ("POST", A + "/topups", "acme", {"amount": "1", "memo": NUL}, "memo"),
    ("POST", A + "/topups", "acme", {"amount": "1" * 10_001}, "amount"),
    ("POST", A + "/topups", "acme", {"amount": " 10.00"}, "amount"),
    ("POST", A + "/topups", "acme", {"amount": "10.00\n"}, "amount"),
    ("POST", A + "/topups", "acme", {"amount": "10", "currency": "usd"}, "currency"),
    ("POST", A + "/topups", "acme", {"amount": "10", "currency": NUL}, "currency"),
    ("POST", A + "/adjustments", "acme", {"amount": "1", "reason": NUL}, "reason"),
    ("POST", A + "/refunds", "acme", {"amount": "1", "reason": NUL}, "reason"),
    (
        "POST",
        A + "/credit-grants",
        "acme",
        {"kind": "trial", "amount": "9223372036854.78"},
        "amount",
    ),
    (
        "POST",
        A + "/credit-grants",
        "acme",
        {"kind": "trial", "amount": "1", "expires_at": LATE},
        "expires_at",
    ),
    (
        "POST",
        A + "/credit-grants",
        "acme",
        {"kind": "trial", "amount": "1", "expires_at": EARLY},
        "expires_at",
    ),
    ("POST", A + "/credit-grants", "acme", {"kind": "trial", "amount": "1", "label": NUL}, "label"),
    ("POST", A + "/children", "alpha", {"kind": "user", "name": NUL}, "name"),
    (
        "POST",
        A + "/children",
        "alpha",
        {"kind": "user", "name": "x", "timezone": "A" * 300},
        "timezone",
    ),
    (
        "POST",
        A + "/children",
        "alpha",
        {"kind": "user", "name": "x", "timezone": "Europe/\x00"},
        "timezone",
    ),
    (
        "POST",
        A + "/children",
        "alpha",
        {"kind": "user", "name": "x", "timezone": "../../etc/passwd"},
        "timezone",
    ),
    ("POST", A + "/api-keys", "alpha", {"name": NUL, "role": "user"}, "name"),
    (
        "POST",
        "/v1/sessions/authorize",
        "alpha_switch",
        {"account_id": "{alice}", "to": TO, "call_id": NUL},
        "call_id",
    ),
    (
        "POST",
        "/v1/sessions/authorize",
        "alpha_switch",
        {"account_id": "{alice}", "to": TO, "at": EARLY},
        "at",
    ),
    ("POST", "/v1/campaigns", "alpha", {"account_id": "{alpha}", "name": NUL}, "name"),
    ("POST", "/v1/plans", "acme", {"code": NUL, "monthly_fee": "1"}, "code"),
    (
        "POST",
        "/v1/packages",
        "acme",
        {"code": "p", "name": NUL, "unit": "msg:sms", "amount": "1", "price": "1"},
        "name",
    ),
    ("POST", "/v1/quote", "alpha", {"tariff": NUL, "to": TO}, "tariff"),
    ("POST", "/v1/quote", "alpha", {"tariff": "retail", "to": TO, "at": LATE}, "at"),
    ("POST", "/v1/quote", "alpha", {"tariff": "retail", "to": TO, "at": EARLY}, "at"),
    ("GET", "/v1/quote", "alpha", {"tariff": NUL, "to": TO}, "tariff"),
    ("GET", "/v1/quote", "alpha", {"tariff": "retail", "to": TO, "at": EARLY}, "at"),
    ("POST", "/v1/sms/segments", "alpha", {"text": SURROGATE}, "text"),
    ("GET", A + "/reports/calls", "alpha", {"month": "0000-01"}, "month"),
    ("GET", A + "/reports/calls", "alpha", {"month": "9999-12"}, "month"),
    ("GET", A + "/reports/calls.csv", "alpha", {"month": "0000-01"}, "month"),
    ("GET", A + "/counters", "alpha", {"month": "2026-13"}, "month"),
    ("GET", A + "/counters/campaigns", "alpha", {"month": "9999-12"}, "month"),
    ("GET", A + "/reports/margin", "acme", {"month": "0000-01"}, "month"),
    ("GET", A + "/numbers/available", "alpha", {"locality": NUL}, "locality"),
    ("POST", A + "/numbers", "alpha", {"number": NUL}, "number"),
    ("POST", A + "/subscription", "alpha", {"plan": NUL}, "plan"),
    ("POST", A + "/webhooks", "alpha", {"url": "https://example.com/\x00"}, "url"),
    ("POST", "/v1/inventory/numbers", "acme", {"csv": "J\rr", "skip_bad": True}, "csv"),
    ("POST", "/v1/cdrs", "alpha_switch", {"source": NUL, "cdrs": []}, "source"),
]


def _fill(world: Any, value: Any) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return world.ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(world, v) for k, v in value.items()}
    return value


def _call(world: Any, method: str, path: str, who: str, data: dict[str, Any]) -> Any:
    url = path.format(**world.ids)
    data = _fill(world, data)
    if method == "GET":
        return world.client.get(url, params=data, headers=world.headers(who))
    # json.dumps escapes a lone surrogate as \ud800 (httpx's encoder cannot send it at all).
    headers = world.headers(who) | {"Content-Type": "application/json"}
    return world.client.post(url, content=json.dumps(data), headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "who", "data", "field"),
    CASES,
    ids=[f"{m} {p} {f} {i}" for i, (m, p, _, _, f) in enumerate(CASES)],
)
def test_hostile_input_is_a_422_problem_naming_the_field_and_writes_nothing(
    world: Any, method: str, path: str, who: str, data: dict[str, Any], field: str
) -> None:
    before = world.snapshot()
    response = _call(world, method, path, who, data)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert field in response.json()["detail"], response.text
    assert world.snapshot() == before
