"""A CDR batch through the API is taken item by item (issue 15, findings 3 and 5): a bad CDR
is quarantined with its index and reason, the others post; and a quarantined CDR holding
text that cannot be encoded (finding 4) never breaks the quarantine listing."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from telbill.adapters.db.charging_tables import cdr_quarantine
from telbill.domain.tariffs import TariffSettings
from telbill.services import plans
from telbill.services.tariffs import import_tariff

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from charging_support import retail_rows  # noqa: E402

CDR = {"user": "alice", "to": "+15551230000", "start": "2026-03-01T08:00:00Z",
       "answer": "2026-03-01T08:00:00Z", "end": "2026-03-01T08:01:01Z"}  # fmt: skip
BAD_ITEMS = [
    ({"start": "0001-01-01T00:00:00+14:00"}, "start"),
    ({"end": "9999-12-31T23:59:59-14:00"}, "end"),
    ({"id": "x" * 201}, "id"),
    ({"id": "n\x00ul"}, "id"),
    ({"id": "lone\ud800"}, "id"),
    ({"to": "+1555\x00"}, "to"),
    ({"service": "sms", "text": "a" * 1_000_000, "answer": "", "end": ""}, "text"),
    ({"service": "sms", "text": "bad \ud800 text", "answer": "", "end": ""}, "text"),
]


def _priced(world: Any) -> None:
    import_tariff(world.db, "retail", retail_rows(),
                  TariffSettings(currency="USD"), now=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    plans.create_plan(world.db, "retail", tariff="retail", clock=world.clock)
    plans.assign_plan(world.db, world.ids["alpha"], "retail", clock=world.clock)


def _post(world: Any, body: dict[str, Any]) -> Any:
    headers = world.headers("alpha_switch") | {"Content-Type": "application/json"}
    return world.client.post("/v1/cdrs", content=json.dumps(body), headers=headers)


def _balance(world: Any) -> str:
    response = world.client.get(
        f"/v1/accounts/{world.ids['alpha']}/balances", headers=world.headers("alpha")
    )
    return str(response.json())


@pytest.mark.parametrize(("fields", "field"), BAD_ITEMS, ids=[f for _, f in BAD_ITEMS])
def test_one_bad_cdr_in_a_batch_is_quarantined_by_index_and_the_others_post(
    world: Any, fields: dict[str, str], field: str
) -> None:
    _priced(world)
    cdrs = [CDR | {"id": "good-1"}, CDR | {"id": "bad"} | fields, CDR | {"id": "good-2"}]
    response = _post(world, {"cdrs": cdrs})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["posted"], answer["quarantined"]) == (2, 1), answer
    [bad] = answer["bad_items"]
    assert bad["index"] == 1 and field in bad["reason"], bad
    listed = world.client.get("/v1/cdrs/quarantine", headers=world.headers("alpha"))
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["items"]) == 1


def test_a_quarantined_row_with_a_lone_surrogate_is_listed_escaped(world: Any) -> None:
    now = world.clock.now()
    # As a row stored before the rules: only its JSON could hold what UTF-8 cannot encode.
    with world.db.engine.begin() as conn:
        conn.execute(
            sa.insert(cdr_quarantine).values(
                source="api", line=2, cdr_id="c1", reason="bad",
                raw={"id": "c\ud800", "to": "+1\x00"}, status="open", dedupe_key="k1",
                created_at=now, updated_at=now, account_id=world.ids["alpha"],
                provider_id=world.ids["acme"],
            )
        )  # fmt: skip
    listed = world.client.get("/v1/cdrs/quarantine", headers=world.headers("alpha"))
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["raw"] == {"id": "c\\ud800", "to": "+1\\x00"}
