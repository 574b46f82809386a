"""The lean real-time routes (`api.routes_sessions`) answer as the documented ones: the same
checks in the same order, the same problems, a revoked key refused at once."""

from __future__ import annotations

from typing import Any

from telbill.services.auth import authenticate, revoke_api_key

World = Any  # tests/e2e/conftest.py's World


def test_an_invalid_body_is_the_same_problem_on_the_lean_and_the_documented_route(
    world: World,
) -> None:
    body = b'{"account_id": 1, "direction": "sideways"}'
    lean = world.client.post(
        "/v1/sessions/authorize", content=body,
        headers={**world.headers("alpha_switch"), "Content-Type": "application/json"},
    )  # fmt: skip
    documented = world.client.post(  # not JSON by its type: the lean route leaves it
        "/v1/sessions/authorize", content=body,
        headers={**world.headers("alpha_switch"), "Content-Type": "application/vnd.api+json"},
    )  # fmt: skip
    for answer in (lean, documented):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    fields = [{e["field"] for e in a.json()["errors"]} for a in (lean, documented)]
    assert fields[0] == fields[1] and {"to", "direction"} <= fields[0]


def test_a_missing_key_is_refused_before_the_body_is_read(world: World) -> None:
    answer = world.client.post(
        "/v1/sessions/authorize", content=b"not json",
        headers={"Authorization": "Bearer tb_nope_nope_nope", "Idempotency-Key": "k",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert answer.status_code == 401


def test_a_key_revoked_in_this_process_is_refused_at_once_on_the_lean_route(
    world: World,
) -> None:
    body = {"account_id": world.ids["alice"], "to": "+447700900123"}
    first = world.client.post("/v1/sessions/authorize", json=body,
                              headers=world.headers("alpha_switch"))  # fmt: skip
    assert first.status_code != 401  # the key is valid (and now cached)
    served = world.client.app.state.db  # the serving process's database (its key cache)
    switch_key = authenticate(served, world.keys["alpha_switch"])
    revoke_api_key(served, switch_key.key_id, clock=world.clock)
    again = world.client.post("/v1/sessions/authorize", json=body,
                              headers=world.headers("alpha_switch"))  # fmt: skip
    assert again.status_code == 401
