"""The charging API as a switch and an admin use it: CDR batches, sessions, campaigns,
explanations, with roles and Idempotency-Key honoured."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from telbill.services import plans
from telbill.services.tariffs import import_tariff

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from charging_support import retail_rows  # noqa: E402

World = Any  # tests/e2e/conftest.py's World (conftest modules are not imported by name)

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def charging_world(world: World) -> World:
    from telbill.domain.tariffs import TariffSettings

    import_tariff(world.db, "retail", retail_rows(), TariffSettings(currency="USD"),
                  now=START - timedelta(days=1))  # fmt: skip
    plans.create_plan(world.db, "retail", tariff="retail", clock=world.clock)
    plans.assign_plan(world.db, world.ids["acme"], "retail", clock=world.clock)
    return world


def cdr(cdr_id: str, seconds: int, account: str = "alice") -> dict[str, str]:
    answer = START + timedelta(seconds=1)
    return {
        "id": cdr_id, "account": account, "to": "+447700900123", "start": START.isoformat(),
        "answer": answer.isoformat(), "end": (answer + timedelta(seconds=seconds)).isoformat(),
    }  # fmt: skip


def test_switch_posts_a_cdr_batch_and_a_retry_with_the_same_key_changes_nothing(
    charging_world: World,
) -> None:
    w = charging_world
    headers = w.headers("alpha_switch", idempotency_key="batch-1")
    body = {"source": "fs1", "cdrs": [cdr("c1", 61), cdr("c2", 30)]}
    first = w.client.post("/v1/cdrs", json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["posted"] == 2
    again = w.client.post("/v1/cdrs", json=body, headers=headers)
    assert again.json() == first.json()
    other_key = w.client.post("/v1/cdrs", json=body, headers=w.headers("alpha_switch"))
    assert other_key.json()["duplicates"] == 2


def test_cdrs_of_accounts_outside_the_callers_subtree_are_quarantined(
    charging_world: World,
) -> None:
    w = charging_world
    body = {"cdrs": [cdr("c1", 61, account="bob")]}
    result = w.client.post("/v1/cdrs", json=body, headers=w.headers("alpha_switch")).json()
    assert (result["posted"], result["quarantined"]) == (0, 1)
    listed = w.client.get("/v1/cdrs/quarantine", headers=w.headers("acme", idempotency_key=None))
    assert listed.json()["items"][0]["reason"].startswith("not_found")


def test_switch_authorizes_and_ends_a_call_then_the_user_reads_its_explanation(
    charging_world: World,
) -> None:
    w = charging_world
    answer = w.client.post(
        "/v1/sessions/authorize", json={"account_id": w.ids["alice"], "to": "+447700900123"},
        headers=w.headers("alpha_switch"),
    ).json()  # fmt: skip
    assert answer["allowed"] and answer["max_seconds"] == 3600
    session = answer["session_id"]
    update = w.client.post(f"/v1/sessions/{session}/update", json={"elapsed_s": 30},
                           headers=w.headers("alpha_switch"))  # fmt: skip
    assert update.json()["disconnect"] is False
    ended = w.client.post(f"/v1/sessions/{session}/end", json={"duration_s": 61},
                          headers=w.headers("alpha_switch")).json()  # fmt: skip
    assert ended["charged"] == "1.200000"
    explained = w.client.get(f"/v1/charges/{ended['charge_id']}/explain",
                             headers=w.headers("alice", idempotency_key=None))  # fmt: skip
    assert explained.status_code == 200
    assert "matched prefix 44" in explained.json()["text"]


def test_switch_may_not_manage_campaigns_but_an_org_admin_may(charging_world: World) -> None:
    w = charging_world
    body = {"account_id": w.ids["alice"], "name": "spring"}
    refused = w.client.post("/v1/campaigns", json=body, headers=w.headers("alpha_switch"))
    assert refused.status_code == 403
    created = w.client.post("/v1/campaigns", json=body, headers=w.headers("alpha"))
    assert created.status_code == 201 and created.json()["status"] == "running"
    paused = w.client.post(f"/v1/campaigns/{created.json()['id']}/pause",
                           headers=w.headers("alpha"))  # fmt: skip
    assert paused.json()["status"] == "paused"


def test_a_user_key_may_not_authorize_calls_and_other_tenants_do_not_exist(
    charging_world: World,
) -> None:
    w = charging_world
    body = {"account_id": w.ids["alice"], "to": "+447700900123"}
    user = w.client.post("/v1/sessions/authorize", json=body, headers=w.headers("alice"))
    assert user.status_code == 403
    outsider = w.client.post("/v1/sessions/authorize", json=body, headers=w.headers("zeta"))
    assert outsider.status_code == 404


def test_session_calls_need_an_idempotency_key(charging_world: World) -> None:
    w = charging_world
    body = {"account_id": w.ids["alice"], "to": "+447700900123"}
    missing = w.client.post(
        "/v1/sessions/authorize", json=body, headers=w.headers("alpha_switch", idempotency_key=None)
    )
    assert missing.status_code == 400


def test_other_tenants_cannot_touch_sessions_campaigns_or_charges(charging_world: World) -> None:
    w = charging_world
    answer = w.client.post(
        "/v1/sessions/authorize", json={"account_id": w.ids["alice"], "to": "+447700900123"},
        headers=w.headers("alpha_switch"),
    ).json()  # fmt: skip
    session = answer["session_id"]
    campaign = w.client.post("/v1/campaigns", json={"account_id": w.ids["alice"], "name": "c"},
                             headers=w.headers("alpha")).json()["id"]  # fmt: skip
    for who in ("bravo", "zeta"):
        for path, body in [
            (f"/v1/sessions/{session}/update", {"elapsed_s": 1}),
            (f"/v1/sessions/{session}/end", {"duration_s": 1}),
            (f"/v1/campaigns/{campaign}/stop", None),
        ]:
            assert w.client.post(path, json=body, headers=w.headers(who)).status_code == 404
    ended = w.client.post(f"/v1/sessions/{session}/end", json={"duration_s": 5},
                          headers=w.headers("alpha_switch")).json()  # fmt: skip
    explain = f"/v1/charges/{ended['charge_id']}/explain"
    assert w.client.get(explain, headers=w.headers("bob", idempotency_key=None)).status_code == 404
    switch_reads = w.client.get(explain, headers=w.headers("alpha_switch", idempotency_key=None))
    assert switch_reads.status_code == 403


def test_a_tenant_fixes_and_reposts_its_own_quarantined_cdr(charging_world: World) -> None:
    w = charging_world
    no_rate = {**cdr("q1", 61), "to": "+81312345678"}  # the retail tariff has no +81 row
    posted = w.client.post("/v1/cdrs", json={"cdrs": [no_rate]},
                           headers=w.headers("alpha_switch")).json()  # fmt: skip
    assert posted["quarantined"] == 1
    listed = w.client.get("/v1/cdrs/quarantine", headers=w.headers("alpha", idempotency_key=None))
    (item,) = listed.json()["items"]
    assert item["reason"].startswith("no_rate") and item["account_id"] == w.ids["alice"]

    def listed_by(who: str) -> list[Any]:
        read = w.client.get("/v1/cdrs/quarantine", headers=w.headers(who, idempotency_key=None))
        items: list[Any] = read.json()["items"]
        return items

    assert listed_by("bravo") == [] and listed_by("alice") != []
    path = f"/v1/cdrs/quarantine/{item['id']}/repost"
    for bad in ({"segments": "many"}, {"call_segments": "x"}, {"start": "yesterday"}):
        refused = w.client.post(path, json={"fixes": bad}, headers=w.headers("alpha_switch"))
        assert refused.status_code == 422, refused.text
    fixed = w.client.post(path, json={"fixes": {"to": "+447700900123"}},
                          headers=w.headers("alpha_switch"))  # fmt: skip
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["posted"] == 1
    reposted = w.client.get(
        "/v1/cdrs/quarantine?status=reposted", headers=w.headers("acme", idempotency_key=None)
    ).json()["items"]
    assert [r["id"] for r in reposted] == [item["id"]]


def test_an_interim_update_near_the_limit_answers_the_extended_max_seconds(
    charging_world: World,
) -> None:
    w = charging_world

    def authorize() -> dict[str, Any]:
        answer: dict[str, Any] = w.client.post(
            "/v1/sessions/authorize", json={"account_id": w.ids["alice"], "to": "+447700900123"},
            headers=w.headers("alpha_switch"),
        ).json()  # fmt: skip
        return answer

    first, second, third = authorize(), authorize(), authorize()  # 36.00 + 36.00 + 28.00 held
    assert (first["max_seconds"], second["max_seconds"], third["max_seconds"]) == (3600, 3600, 2760)
    ended = w.client.post(f"/v1/sessions/{first['session_id']}/end", json={"duration_s": 60},
                          headers=w.headers("alpha_switch"))  # fmt: skip
    assert ended.json()["charged"] == "0.600000"
    update = w.client.post(
        f"/v1/sessions/{third['session_id']}/update", json={"elapsed_s": 2730},
        headers=w.headers("alpha_switch"),
    ).json()  # fmt: skip
    assert update["max_seconds"] == 3600 and update["disconnect"] is False
