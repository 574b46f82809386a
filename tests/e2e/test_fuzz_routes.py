"""Every route of the API, called with hostile strings (NUL, lone surrogates, huge text,
overflowing dates and numbers, lone CRs) in its path, query and body fields: never a 500,
and a refused request is an RFC 9457 problem that changed nothing (issue 15).

The routes and their fields come from the OpenAPI document, so a route added later is
fuzzed too. Bounded by TELBILL_FUZZ_EXAMPLES per route (derandomised in CI; `make fuzz`
draws fresh ones).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from telbill.domain.tariffs import TariffSettings
from telbill.services import plans
from telbill.services.tariffs import import_tariff

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from charging_support import retail_rows  # noqa: E402

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]
PROBLEM = "application/problem+json"
EXAMPLES = max(1, int(os.environ.get("TELBILL_FUZZ_EXAMPLES", "40")) // 4)
CALLERS = ["acme", "alpha", "alpha_switch"]

HOSTILE = [
    "\x00", "a\x00b", "\ud800", "x\udfff", "\udc80abc", "J\rr", "\r\n", "a" * 100_000,
    "9" * 10_001, "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0000-01",
    "9999-12", "2026-13", "-9223372036854775809", "9223372036854.78", " 10.00", "10.00\n",
    "1e308", "NaN", "usd", "../../etc/passwd", "A" * 300, "%00", "", " ",
]  # fmt: skip
# Mostly the known-hostile strings (each drawn where a field expects text), then any text.
hostile_text = st.sampled_from(HOSTILE) | st.sampled_from(HOSTILE) | st.text(max_size=30)
hostile_number = st.sampled_from([-1, 0, 2**63, -(2**63) - 1, 10**30]) | st.integers()
# URLs: httpx refuses one over 64 KiB before it is sent; 2,000 characters is huge enough.
url_text = hostile_text.map(lambda text: text[:2_000])
url_value = url_text | hostile_number | st.none() | st.booleans()
value = st.one_of(
    hostile_text, hostile_text, hostile_text, hostile_text, hostile_number, st.none(),
    st.booleans(), st.lists(hostile_text, max_size=2),
    st.dictionaries(hostile_text, hostile_text, max_size=2),
)  # fmt: skip


# A plausible value per field name (else per JSON type): a body of these reaches the business
# rules, so that the one or two hostile fields it carries are met where they do harm.
CDR = {"id": "c1", "user": "alice", "to": "+15551230000", "start": "2026-03-01T08:00:00Z",
       "answer": "2026-03-01T08:00:00Z", "end": "2026-03-01T08:01:01Z"}  # fmt: skip
PLAUSIBLE: dict[str, Any] = {
    "amount": "1.00", "price": "1.00", "monthly_fee": "1.00", "trial_credit": "1.00",
    "credit_limit": "10", "vat_rate": "0.2", "currency": "USD", "kind": "trial",
    "name": "spring", "code": "c1", "to": "+447700900123", "from": "+15550001",
    "number": "+16175550100", "tariff": "retail", "plan": "team", "package": "sms100",
    "unit": "msg:sms", "timezone": "Europe/London", "month": "2026-03", "role": "user",
    "method": "bank_transfer", "reason": "goodwill", "url": "https://example.com/h",
    "csv": "number,country,type,monthly_price\n+16175550199,US,local,1.00\n",
    "at": "2026-03-01T09:00:00Z", "expires_at": "2026-06-01T00:00:00Z",
    "answer": "2026-03-01T09:00:00Z", "end": "2026-03-01T09:01:00Z", "cdrs": [CDR],
    "text": "hello", "source": "api", "service": "voice", "direction": "outbound",
    "description": "credit", "billing_mode": "prepaid", "vat_country": "GB",
}  # fmt: skip
BY_TYPE: dict[str, Any] = {"string": "x", "integer": 1, "number": 1, "boolean": False,
                           "array": [], "object": {}}  # fmt: skip


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path.startswith("/v1/")
    ]


def _body_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    schema: dict[str, Any] = next(iter(content.values()), {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref:
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def _plausible(world: Any, name: str, schema: dict[str, Any]) -> Any:
    if name in PLAUSIBLE:
        return PLAUSIBLE[name]
    if name.endswith("account_id"):
        return world.ids["alpha"]
    kinds = [schema.get("type")] + [option.get("type") for option in schema.get("anyOf", [])]
    return next((BY_TYPE[kind] for kind in kinds if kind in BY_TYPE), "x")


def _hostile_fields(
    data: st.DataObject, world: Any, names: list[str], schemas: dict[str, Any],
    required: set[str], label: str,
) -> dict[str, Any]:  # fmt: skip
    """Plausible values for the required fields (and some optional ones), then one or two
    fields (or a stranger) replaced by hostile values."""
    fields = {
        name: _plausible(world, name, schemas.get(name, {}))
        for name in names
        if name in required or data.draw(st.booleans(), label=f"{label} has {name}")
    }
    targets = data.draw(
        st.lists(st.sampled_from(names) | url_text, min_size=1, max_size=2)
        if names
        else st.lists(url_text, max_size=1),
        label=f"{label} hostile fields",
    )
    for name in targets:
        hostile = data.draw(value if label == "body" else url_value, label=f"{label}.{name}")
        if name == "cdrs":  # a hostile field inside a CDR of the batch
            field = data.draw(st.sampled_from(sorted(CDR)) | url_text, label="cdr field")
            hostile = [CDR | {"id": "c2", field: hostile}]
        fields[name] = hostile
    return fields


def _path_value(world: Any, name: str) -> st.SearchStrategy[Any]:
    known = sorted(world.ids.values()) if name == "account_id" else [1, 2]
    return st.sampled_from(known) | st.sampled_from(known) | hostile_number | url_text


def _url(path: str, values: dict[str, Any]) -> str:
    from urllib.parse import quote

    for name, item in values.items():
        raw = str(item).encode("utf-8", "surrogatepass")
        path = path.replace("{" + name + "}", quote(raw, safe=""))
    return path


def _query(values: dict[str, Any]) -> str:
    from urllib.parse import quote

    parts = []
    for name, item in values.items():
        text = item if isinstance(item, str) else json.dumps(item)
        raw = text.encode("utf-8", "surrogatepass")
        key = name.encode("utf-8", "surrogatepass")
        parts.append(f"{quote(key, safe='')}={quote(raw, safe='')}")
    return "&".join(parts)


def _fuzz_operation(world: Any, document: dict[str, Any], method: str, path: str, op: Any) -> None:
    parameters = op.get("parameters", [])
    path_names = [p["name"] for p in parameters if p["in"] == "path"]
    query = {p["name"]: p.get("schema", {}) for p in parameters if p["in"] == "query"}
    query_required = {p["name"] for p in parameters if p["in"] == "query" and p.get("required")}
    body_schema = _body_schema(document, op)
    body_fields = body_schema.get("properties", {})

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(CALLERS), label="caller")
        path_values = {name: data.draw(_path_value(world, name), label=name) for name in path_names}
        params = _hostile_fields(
            data, world, sorted(query), query, query_required, "query"
        )  # fmt: skip
        body: Any = (
            _hostile_fields(
                data,
                world,
                sorted(body_fields),
                body_fields,
                set(body_schema.get("required", [])),
                "body",
            )  # fmt: skip
            if body_fields or method in ("POST", "PUT")
            else None
        )
        url = _url(path, path_values)
        if params:
            url += "?" + _query(params)
        headers = world.headers(who) | {"Content-Type": "application/json"}
        before = world.snapshot()
        # json.dumps escapes lone surrogates (\ud800): the bytes are valid UTF-8 JSON.
        content = None if body is None else json.dumps(body)
        response = world.client.request(method, url, content=content, headers=headers)
        assert response.status_code < 500, (method, url, body, response.text[:500])
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith(PROBLEM), response.headers
            assert world.snapshot() == before, (method, url, body, response.text[:500])

    run()


def test_no_hostile_input_on_any_route_answers_a_500_and_refused_ones_change_nothing(
    world: Any,
) -> None:
    import_tariff(world.db, "retail", retail_rows(), TariffSettings(currency="USD"),
                  now=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    plans.create_plan(world.db, "retail", tariff="retail", clock=world.clock)
    plans.assign_plan(world.db, world.ids["alpha"], "retail", clock=world.clock)
    document = world.client.get("/openapi.json").json()
    operations = _operations(document)
    assert len(operations) >= 50, "every operation of the document is fuzzed"
    for method, path, operation in operations:
        _fuzz_operation(world, document, method, path, operation)
