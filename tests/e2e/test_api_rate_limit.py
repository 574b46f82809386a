"""Rate limiting per API key: a token bucket per key; past it, a 429 problem with
Retry-After that writes nothing; other keys are not slowed down; the bucket refills with
time; `telbill serve` passes its settings to every worker through the environment."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from telbill.api.ratelimit import (
    BURST_ENV,
    DEFAULT_BURST,
    DEFAULT_RATE_PER_S,
    RATE_ENV,
    RateLimited,
    RateLimiter,
    limiter_from_env,
)
from telbill.errors import InvalidInput

PROBLEM = "application/problem+json"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limit(world: Any, rate: float, burst: int) -> FakeMonotonic:
    clock = FakeMonotonic()
    world.client.app.state.rate_limiter = RateLimiter(rate, burst, clock=clock)
    return clock


def _balance(world: Any) -> Any:
    return world.client.get(f"/v1/accounts/{world.ids['alpha']}", headers=world.headers("alpha"))


def test_a_key_past_its_burst_gets_a_429_problem_with_retry_after_and_nothing_is_written(
    world: Any,
) -> None:
    _limit(world, rate=0.5, burst=3)
    for _ in range(3):
        assert _balance(world).status_code == 200
    before = world.snapshot()
    refused = world.client.post(
        f"/v1/accounts/{world.ids['alpha']}/topups", json={"amount": "5.00"},
        headers=world.headers("alpha"),
    )  # fmt: skip
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert refused.headers["Retry-After"] == "2"  # one token at 0.5/s
    body = refused.json()
    assert (body["code"], body["status"], body["retry_after_s"]) == ("rate_limited", 429, 2)
    assert world.snapshot() == before


def test_the_bucket_refills_with_time(world: Any) -> None:
    clock = _limit(world, rate=2, burst=2)
    assert [_balance(world).status_code for _ in range(3)] == [200, 200, 429]
    clock.now += 0.5  # one token back at 2/s
    assert [_balance(world).status_code for _ in range(2)] == [200, 429]
    clock.now += 60  # never more than the burst
    assert [_balance(world).status_code for _ in range(3)] == [200, 200, 429]


def test_one_busy_key_does_not_slow_down_another(world: Any) -> None:
    _limit(world, rate=1, burst=2)
    while _balance(world).status_code != 429:
        pass
    other = world.client.get(f"/v1/accounts/{world.ids['acme']}", headers=world.headers("acme"))
    assert other.status_code == 200


def test_unauthenticated_requests_are_refused_before_any_bucket_is_used(world: Any) -> None:
    _limit(world, rate=1, burst=1)
    for _ in range(3):
        response = world.client.get(f"/v1/accounts/{world.ids['alpha']}")
        assert response.status_code == 401
    assert _balance(world).status_code == 200


def test_the_limiter_comes_from_the_environment_and_zero_disables_it() -> None:
    default = limiter_from_env({})
    assert default is not None
    assert (default.rate_per_s, default.burst) == (DEFAULT_RATE_PER_S, DEFAULT_BURST)
    set_ = limiter_from_env({RATE_ENV: "20", BURST_ENV: "40"})
    assert set_ is not None and (set_.rate_per_s, set_.burst) == (20, 40)
    assert limiter_from_env({RATE_ENV: "0"}) is None
    for bad in ({RATE_ENV: "fast"}, {RATE_ENV: "-1"}, {BURST_ENV: "0"}, {RATE_ENV: "nan"}):
        with pytest.raises(InvalidInput):
            limiter_from_env(bad)


def test_retry_after_is_the_whole_seconds_until_a_token_is_back() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(0.25, 1, clock=clock)
    limiter.check(7)
    with pytest.raises(RateLimited) as refused:
        limiter.check(7)
    assert refused.value.retry_after_s == 4
    clock.now += 3.5
    with pytest.raises(RateLimited) as refused:
        limiter.check(7)
    assert refused.value.retry_after_s == 1  # 0.5 s rounds up, never 0
    clock.now += 0.5
    limiter.check(7)


def test_idle_buckets_beyond_the_cap_are_forgotten_least_recent_first() -> None:
    limiter = RateLimiter(1, 1, clock=FakeMonotonic(), max_buckets=2)
    for key_id in (1, 2, 3):
        limiter.check(key_id)
    limiter.check(1)  # forgotten when 3 came: a fresh, full bucket
    with pytest.raises(RateLimited):
        limiter.check(3)


def test_serve_passes_its_rate_limit_to_the_workers_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from telbill.cli import server
    from telbill.cli.main import app

    seen: dict[str, str | None] = {}
    monkeypatch.delenv(RATE_ENV, raising=False)
    monkeypatch.delenv(BURST_ENV, raising=False)
    monkeypatch.setattr(
        server, "run_server",
        lambda **_: seen.update({k: server.os.environ.get(k) for k in (RATE_ENV, BURST_ENV)}),
    )  # fmt: skip
    result = CliRunner().invoke(
        app,
        [
            "serve",
            "--tick-every",
            "0",
            "--push-every",
            "0",
            "--rate-limit",
            "50",
            "--rate-burst",
            "80",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen == {RATE_ENV: "50", BURST_ENV: "80"}
