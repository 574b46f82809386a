"""Rate limiting per API key: a token bucket per key, in each worker process.

Each key owns a bucket of `burst` tokens that refills at `rate_per_s` tokens a second; a
request takes one token, and a request that finds the bucket empty is refused with a 429
problem and ``Retry-After`` (whole seconds until a token is back). Nothing is written.

The buckets live in the worker's memory, not in the database or Redis: the limit costs no
round trip on the real-time path (a switch authorises calls through it), and it keeps working
while the database restarts. With W workers a key gets up to W x the limit, so the operator
sets the per-worker figure (see `telbill serve --rate-limit`, the README's architecture
notes). Settings come from the environment, so every worker process of `telbill serve` sees
the same ones: ``TELBILL_RATE_LIMIT`` (requests a second per key, 0 disables) and
``TELBILL_RATE_BURST`` (tokens a bucket holds).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from telbill.errors import InvalidInput, TelbillError

# High enough for a switch's session traffic (authorize + updates + end per call) of a few
# hundred calls a second per worker; low enough to stop a runaway client from starving the rest.
DEFAULT_RATE_PER_S = 500.0
DEFAULT_BURST = 1000
RATE_ENV = "TELBILL_RATE_LIMIT"
BURST_ENV = "TELBILL_RATE_BURST"
# Buckets kept per worker; the least recently used is dropped first (it was idle, so it was
# probably full anyway). Bounded because keys come and go.
MAX_BUCKETS = 100_000


class RateLimited(TelbillError):
    """Too many requests with one API key; retry after `retry_after_s` seconds."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Token buckets keyed by API key id. Thread-safe (sync routes run in a thread pool)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        if not rate_per_s > 0 or not math.isfinite(rate_per_s):
            raise InvalidInput(f"rate limit must be a positive number, got {rate_per_s!r}")
        if burst < 1:
            raise InvalidInput(f"rate limit burst must be at least 1, got {burst!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, key_id: int) -> float:
        """Take a token for `key_id`: 0.0 when granted, else the seconds until one is back."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
            wait_s = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait_s = (1.0 - tokens) / self.rate_per_s
            self._buckets[key_id] = (tokens, now)
            if len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
            return wait_s

    def check(self, key_id: int) -> None:
        """Take a token for `key_id` or raise `RateLimited`."""
        wait_s = self.take(key_id)
        if wait_s > 0:
            retry_after_s = max(1, math.ceil(wait_s))
            raise RateLimited(
                f"too many requests with this API key (limit {self.rate_per_s:g}/s, burst "
                f"{self.burst}); retry after {retry_after_s} s",
                retry_after_s=retry_after_s,
            )


def limiter_from_env(environ: dict[str, str] | None = None) -> RateLimiter | None:
    """The limiter the environment asks for; None when ``TELBILL_RATE_LIMIT=0``."""
    env = os.environ if environ is None else environ
    try:
        rate = float(env.get(RATE_ENV) or DEFAULT_RATE_PER_S)
        burst = int(env.get(BURST_ENV) or DEFAULT_BURST)
    except ValueError:
        raise InvalidInput(f"{RATE_ENV} must be a number and {BURST_ENV} a whole number") from None
    if rate == 0:
        return None
    return RateLimiter(rate, burst)


__all__ = [
    "BURST_ENV",
    "DEFAULT_BURST",
    "DEFAULT_RATE_PER_S",
    "RATE_ENV",
    "RateLimited",
    "RateLimiter",
    "limiter_from_env",
]
