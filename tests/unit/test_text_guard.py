"""The text guard of the API (api/text_guard.py): a NUL or a lone surrogate anywhere in a
request (JSON body, form body, query string) is a 422 problem naming the field; harmless
look-alikes (an escaped backslash, a surrogate pair) pass."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import FastAPI, Form, Request
from fastapi.testclient import TestClient

from telbill.api.problems import install_problem_handlers
from telbill.api.text_guard import TextGuard, bad_text


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(TextGuard)

    @app.post("/json")
    async def take_json(request: Request) -> dict[str, Any]:
        return {"got": await request.json()}

    @app.post("/form")
    def take_form(name: str = Form()) -> dict[str, Any]:
        return {"got": name}

    @app.get("/query")
    def take_query(q: str = "") -> dict[str, Any]:
        return {"got": q}

    @app.post("/v1/cdrs")
    async def take_cdrs(request: Request) -> dict[str, Any]:
        return {"got": len((await request.json())["cdrs"])}

    return app


CLIENT = TestClient(_app())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"outer": {"inner": ["ok", "\ud800"]}}, "outer.inner.1"),
        ({"bad\udfffkey": 1}, "bad\\udfffkey"),
        ("\x00", "body"),
    ],
)
def test_a_nul_or_lone_surrogate_in_json_is_a_422_naming_the_field(body: Any, field: str) -> None:
    response = CLIENT.post("/json", content=json.dumps(body))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"].startswith(f"{field}: ")
    assert "must not contain" in response.json()["detail"]


@pytest.mark.parametrize("text", ["\\u0000 as text", "\U0001f600 a pair", "plain"])
def test_escaped_backslashes_and_surrogate_pairs_pass(text: str) -> None:
    response = CLIENT.post("/json", content=json.dumps({"name": text}))
    assert response.status_code == 200 and response.json() == {"got": {"name": text}}


def test_a_nul_in_a_form_body_or_a_query_is_a_422_naming_the_field() -> None:
    form = CLIENT.post(
        "/form",
        content=b"name=a%00b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 422 and form.json()["detail"].startswith("name: ")
    query = CLIENT.get("/query?q=a%00b")
    assert query.status_code == 422 and query.json()["detail"].startswith("q: ")
    assert CLIENT.get("/query?q=a%2500b").json() == {"got": "a%00b"}


def test_the_items_of_a_cdr_batch_are_left_to_the_route_but_their_keys_are_not() -> None:
    values = CLIENT.post("/v1/cdrs", content=json.dumps({"cdrs": [{"id": "\x00"}, {"id": "ok"}]}))
    assert values.status_code == 200 and values.json() == {"got": 2}
    keys = CLIENT.post("/v1/cdrs", content=json.dumps({"cdrs": [{"i\x00d": "x"}]}))
    assert keys.status_code == 422


def test_an_escape_cut_between_two_chunks_of_a_body_is_found() -> None:
    body = json.dumps({"name": "a\x00b"}).encode()
    cut = body.index(b"\\u0000") + 3
    chunks = [body[:cut], body[cut:]]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = _app()
    scope = {
        "type": "http", "method": "POST", "path": "/json", "raw_path": b"/json",
        "query_string": b"", "headers": [(b"content-type", b"application/json")],
        "app": app, "http_version": "1.1", "scheme": "http", "server": ("t", 80),
        "client": ("c", 1), "root_path": "",
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 422


def test_bad_text_walks_keys_values_and_lists() -> None:
    found = list(bad_text({"a": ["x", {"b": "\x00"}], "c\ud800": "ok"}))
    assert [field for field, _ in found] == ["a.1.b", "c\\ud800"]
