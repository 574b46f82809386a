"""Random JSON bodies against the mutating money endpoints: never a 500, and a 4xx answer is
an RFC 9457 problem that changed nothing (every table's row count and every balance)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz  # `make fuzz`: fresh seeds, larger budgets (tests/conftest.py)
PROBLEM = "application/problem+json"
API_FUZZ = settings(
    max_examples=int(os.environ.get("TELBILL_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
SQLITE_ONLY = pytest.mark.parametrize("world", ["sqlite"], indirect=True)

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20
) | st.sampled_from(
    ["", "0", "-5.00", "1e3", "NaN", "Infinity", "9" * 40, "10.00", "0.0000001", "+447700900123",
     "2026-03-01T09:00:00Z", "2026-13-45", "outbound", "inbound", "sms", "USD", "EUR", "🙂"]
)  # fmt: skip
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), text,
)  # fmt: skip
any_json = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def fields(names: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Dicts of known field names (plus the odd stranger) with arbitrary values."""
    return st.dictionaries(st.sampled_from(names) | text, values, max_size=len(names) + 1)


CDR_FIELDS = ["id", "account", "user", "direction", "from", "to", "start", "answer", "end",
              "duration", "service", "text", "segments", "speech_seconds"]  # fmt: skip


def check(world: Any, method_path: str, body: Any, who: str) -> None:
    before = world.snapshot()
    headers = world.headers(who) | {"Content-Type": "application/json"}
    # json.dumps writes NaN/Infinity as bare words: the server must refuse them, not crash.
    response = world.client.post(method_path, content=json.dumps(body), headers=headers)
    event(f"HTTP {response.status_code}")  # see --hypothesis-show-statistics
    assert response.status_code < 500, (method_path, body, response.text)
    if 400 <= response.status_code < 500:
        assert response.headers["content-type"].startswith(PROBLEM), response.headers
        assert response.json()["status"] == response.status_code
        assert world.snapshot() == before, (method_path, body, response.text)


@SQLITE_ONLY
@API_FUZZ
@given(
    body=any_json
    | fields(["amount", "currency", "note", "reference"], any_json | text)
    | st.fixed_dictionaries(
        {
            "amount": (st.decimals(-(10**7), 10**7, places=2) | st.decimals(-1, 1, places=8)).map(
                str
            )
            | text
        },
        optional={"currency": st.sampled_from(["USD", "EUR", "usd", "", "XXX"]) | text},
    )
)
def test_random_top_up_bodies_never_crash_and_bad_ones_change_nothing(
    world: Any, body: Any
) -> None:
    check(world, f"/v1/accounts/{world.ids['alpha']}/topups", body, "alpha")


@SQLITE_ONLY
@API_FUZZ
@given(
    body=any_json
    | fields(["source", "cdrs"], any_json)
    | st.fixed_dictionaries({"cdrs": st.lists(fields(CDR_FIELDS, text | scalar), max_size=3)})
    | st.fixed_dictionaries({"cdrs": st.lists(fields(CDR_FIELDS, text), max_size=3)})
)
def test_random_cdr_batches_never_crash_and_bad_ones_change_nothing(world: Any, body: Any) -> None:
    check(world, "/v1/cdrs", body, "alpha_switch")


@SQLITE_ONLY
@API_FUZZ
@given(
    body=any_json | fields(["account_id", "to", "from", "direction", "at", "call_id"], scalar),
    near_valid=st.fixed_dictionaries(
        {
            "account_id": st.sampled_from(["alice", "alpha", "bob", "zeta"])
            | st.integers(-(2**70), 2**70),
            "to": st.sampled_from(["+447700900123", "+15550001", "+999", "44"]) | text,
        },
        optional={
            "direction": st.sampled_from(["outbound", "inbound", "sideways"]),
            "at": st.sampled_from(["2026-03-01T09:00:00Z", "2026-03-01T09:00:00", "1e9"]),
            "call_id": text,
            "from": text,
        },
    ),
    pick=st.booleans(),
)
def test_random_authorize_bodies_never_crash_and_bad_ones_change_nothing(
    world: Any, body: Any, near_valid: dict[str, Any], pick: bool
) -> None:
    if pick:
        body = near_valid
        body["account_id"] = world.ids.get(body["account_id"], body["account_id"])
    check(world, "/v1/sessions/authorize", body, "alpha_switch")


# ---------------------------------------------------------------- regressions found by fuzzing


def test_account_id_beyond_the_databases_integers_is_a_422_problem_not_a_crash(world: Any) -> None:
    huge = 2**63
    for path, body in [
        ("/v1/sessions/authorize", {"account_id": huge, "to": "+447700900123"}),
        (f"/v1/accounts/{huge}/topups", {"amount": "10.00"}),
    ]:
        before = world.snapshot()
        response = world.client.post(path, json=body, headers=world.headers("acme"))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        assert "out of range" in response.json()["detail"]
        assert world.snapshot() == before
