"""Bad input through the API gets a clear RFC 9457 problem and writes nothing."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def post_topup(world, body, *, who="acme", account="alpha", idempotency_key="auto"):
    return world.client.post(
        f"/v1/accounts/{world.ids.get(account, 987654)}/topups",
        json=body,
        headers=world.headers(who, idempotency_key=idempotency_key),
    )


BAD_TOP_UPS = [
    ({"amount": "-5.00"}, "positive"),
    ({"amount": "0"}, "positive"),
    ({"amount": "abc"}, "not a decimal number"),
    ({"amount": "1e3"}, "not a decimal number"),
    ({"amount": "1.0000001"}, "decimals"),
    ({"amount": 10.5}, "decimal strings"),
    ({"amount": 10}, "decimal strings"),
    ({"amount": "10", "currency": "EUR"}, "wrong currency"),
    ({"amount": "10", "currency": "XXX1"}, "unknown currency"),
    ({}, "amount"),
    ({"amount": "10", "surprise": True}, "surprise"),
]


def test_bad_top_up_is_a_clear_problem_and_writes_nothing(world):
    before = world.snapshot()
    for body, reason in BAD_TOP_UPS:
        response = post_topup(world, body)
        assert response.status_code in (400, 422), (body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        problem = response.json()
        assert {"type", "title", "status", "detail", "instance"} <= set(problem)
        assert problem["status"] == response.status_code
        assert problem["type"].startswith("https://telbill.dev/problems/")
        assert reason in problem["detail"], (body, problem)
    assert world.snapshot() == before


def test_unknown_account_is_404_and_writes_nothing(world):
    before = world.snapshot()
    response = post_topup(world, {"amount": "10"}, who="acme", account="nobody")
    assert response.status_code == 404
    assert response.json()["type"] == "https://telbill.dev/problems/not_found"
    assert world.snapshot() == before


def test_missing_idempotency_key_is_400_and_writes_nothing(world):
    before = world.snapshot()
    response = post_topup(world, {"amount": "10"}, idempotency_key=None)
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"] == "https://telbill.dev/problems/idempotency_key_missing"
    assert "Idempotency-Key" in problem["detail"]
    assert world.snapshot() == before


def test_every_post_endpoint_requires_an_idempotency_key(world):
    spec = world.client.get("/openapi.json").json()
    # A payment provider's signed callback carries its own key: the event id it signs.
    posts = [
        p for p, ops in spec["paths"].items() if "post" in ops and "payment-callbacks" not in p
    ]
    assert posts
    for path in posts:
        response = world.client.post(
            path.replace("{account_id}", str(world.ids["alpha"])),
            json={},
            headers=world.headers("acme", idempotency_key=None),
        )
        assert response.status_code == 400, (path, response.text)


def test_refund_larger_than_the_balance_is_refused_with_insufficient_balance(world):
    before = world.snapshot()
    response = world.client.post(
        f"/v1/accounts/{world.ids['alpha']}/refunds",
        json={"amount": "100.01", "reason": "too much"},
        headers=world.headers("acme"),
    )
    assert response.status_code == 402
    assert response.json()["type"] == "https://telbill.dev/problems/insufficient_balance"
    assert world.snapshot() == before


def test_malformed_json_is_a_problem_not_a_crash(world):
    response = world.client.post(
        f"/v1/accounts/{world.ids['alpha']}/topups",
        content=b"{not json",
        headers=world.headers("alpha") | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)


def test_unknown_route_is_a_problem(world):
    response = world.client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)


def test_history_with_a_forged_cursor_is_refused(world):
    response = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/history",
        params={"cursor": "'; drop table"},
        headers=world.headers("alpha"),
    )
    assert response.status_code == 422
    assert "cursor" in response.json()["detail"]
