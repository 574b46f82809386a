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
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.parametrize("world", ["sqlite"], indirect=True),
]
PROBLEM = "application/problem+json"
EXAMPLES = max(1, int(os.environ.get("TELBILL_FUZZ_EXAMPLES", "40")) // 4)
CALLERS = ["acme", "alpha", "alpha_switch"]

HOSTILE = [
    "\x00", "a\x00b", "\ud800", "x\udfff", "\udc80abc", "J\rr", "\r\n", "a" * 100_000,
    "9" * 10_001, "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0000-01",
    "9999-12", "2026-13", "-9223372036854775809", "9223372036854.78", " 10.00", "10.00\n",
    "1e308", "NaN", "usd", "../../etc/passwd", "A" * 300, "%00", "", " ",
]  # fmt: skip
hostile_text = st.sampled_from(HOSTILE) | st.text(max_size=30)
hostile_number = st.sampled_from([-1, 0, 2**63, -(2**63) - 1, 10**30]) | st.integers()
# URLs: httpx refuses one over 64 KiB before it is sent; 2,000 characters is huge enough.
url_text = hostile_text.map(lambda text: text[:2_000])
url_value = url_text | hostile_number | st.none() | st.booleans()
value = st.one_of(
    hostile_text, hostile_text, hostile_number, st.none(), st.booleans(),
    st.lists(hostile_text, max_size=2), st.dictionaries(hostile_text, hostile_text, max_size=2),
)  # fmt: skip


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path.startswith("/v1/")
    ]


def _body_fields(document: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = next(iter(content.values()), {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref:
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return sorted(schema.get("properties", {}))


def _path_value(world: Any, name: str) -> st.SearchStrategy[Any]:
    known = sorted(world.ids.values()) if name == "account_id" else [1, 2]
    return st.sampled_from(known) | hostile_number | url_text


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
    query_names = [p["name"] for p in parameters if p["in"] == "query"]
    body_names = _body_fields(document, op)

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
        query = data.draw(
            st.dictionaries(st.sampled_from(query_names) if query_names else url_text,
                            url_value, max_size=3), label="query",
        )  # fmt: skip
        body: Any = data.draw(
            st.dictionaries(st.sampled_from(body_names) | hostile_text, value, max_size=4)
            if body_names
            else value,
            label="body",
        )
        url = _url(path, path_values)
        if query:
            url += "?" + _query(query)
        headers = world.headers(who) | {"Content-Type": "application/json"}
        before = world.snapshot()
        # json.dumps escapes lone surrogates (\ud800): the bytes are valid UTF-8 JSON.
        response = world.client.request(method, url, content=json.dumps(body), headers=headers)
        assert response.status_code < 500, (method, url, body, response.text[:500])
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith(PROBLEM), response.headers
            assert world.snapshot() == before, (method, url, body, response.text[:500])

    run()


def test_no_hostile_input_on_any_route_answers_a_500_and_refused_ones_change_nothing(
    world: Any,
) -> None:
    document = world.client.get("/openapi.json").json()
    operations = _operations(document)
    assert len(operations) >= 50, "every operation of the document is fuzzed"
    for method, path, operation in operations:
        _fuzz_operation(world, document, method, path, operation)
