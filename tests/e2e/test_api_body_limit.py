"""A request body over the limit is a 413 problem and writes nothing, whether its size is
declared (Content-Length) or only known as it streams in (chunked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from telbill.api.body_limit import DEFAULT_MAX_BODY_BYTES, MAX_BODY_ENV, max_body_bytes_from_env
from telbill.errors import InvalidInput

PROBLEM = "application/problem+json"
SQLITE_ONLY = pytest.mark.parametrize("world", ["sqlite"], indirect=True)
LIMIT = 2_000


def _cdr_batch(size: int) -> bytes:
    body = {"source": "x" * 100, "cdrs": []}
    text = json.dumps(body).encode()
    return text[:-2] + b" " * (size - len(text)) + text[-2:]


def _assert_refused(response: Any) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert (problem["code"], problem["status"]) == ("payload_too_large", 413)
    assert str(LIMIT) in problem["detail"]


@SQLITE_ONLY
def test_a_declared_body_over_the_limit_is_a_413_problem_and_writes_nothing(world: Any) -> None:
    world.client.app.state.max_body_bytes = LIMIT
    before = world.snapshot()
    headers = world.headers("alpha_switch") | {"Content-Type": "application/json"}
    _assert_refused(world.client.post("/v1/cdrs", content=_cdr_batch(LIMIT + 1), headers=headers))
    assert world.snapshot() == before
    at_limit = world.client.post("/v1/cdrs", content=_cdr_batch(LIMIT), headers=headers)
    assert at_limit.status_code == 200, at_limit.text


@SQLITE_ONLY
def test_a_chunked_body_is_refused_when_it_crosses_the_limit(world: Any) -> None:
    world.client.app.state.max_body_bytes = LIMIT
    before = world.snapshot()
    body = _cdr_batch(LIMIT * 3)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    headers = world.headers("alpha_switch") | {"Content-Type": "application/json"}
    _assert_refused(world.client.post("/v1/cdrs", content=chunks(), headers=headers))
    assert world.snapshot() == before


def test_the_limit_comes_from_the_environment() -> None:
    assert max_body_bytes_from_env({}) == DEFAULT_MAX_BODY_BYTES
    assert max_body_bytes_from_env({MAX_BODY_ENV: "1024"}) == 1024
    for bad in ("0", "-1", "1e6", "lots"):
        with pytest.raises(InvalidInput):
            max_body_bytes_from_env({MAX_BODY_ENV: bad})
