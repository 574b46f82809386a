"""A durable pull consumer of CDRs on NATS JetStream: several workers share one stream.

Each message is one CDR as a JSON object with the native CDR columns (``id``, ``account``,
``to``, ``start``...; see `adapters/formats/cdr_native.py`). A worker fetches a batch, rates
and posts it in one database transaction (`services.charging.post_chunk`), and acks the
messages only after the commit. A worker that dies before acking leaves its messages to be
redelivered (after `ack_wait_s`) to another worker; the CDR id is the idempotency key, so a
redelivered CDR is charged once: at-least-once delivery, exactly-once effect.

`publish_cdrs` puts CDR records on the stream (tests, benchmarks, bridges from a switch).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from telbill.adapters.db.engine import Database
from telbill.adapters.formats.cdr_native import NATIVE_COLUMNS, read_native_cdrs
from telbill.errors import InvalidInput
from telbill.services.charging import AccountResolver, PostSummary, post_chunk
from telbill.services.clock import Clock
from telbill.services.plans import TariffCache


def stream_name(subject: str) -> str:
    """The JetStream stream that carries `subject` (one stream per subject)."""
    return "TELBILL_" + "".join(c if c.isalnum() else "_" for c in subject).upper()

DEFAULT_BATCH = 500


def records_from_messages(payloads: Sequence[bytes]) -> list[Any]:
    """Parse JSON CDR messages into reader records (a bad message becomes a RowError)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=NATIVE_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for payload in payloads:
        try:
            data = json.loads(payload)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            data = {"id": "", "to": "", "start": "", "text": payload[:200].decode(errors="replace")}
        writer.writerow({k: "" if v is None else str(v) for k, v in data.items()})
    text.seek(0)
    return list(read_native_cdrs(text))


async def _ensure_stream(js: Any, stream: str, subject: str) -> None:
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(name=stream, subjects=[subject])


async def _consume(
    db: Database,
    url: str,
    *,
    subject: str,
    durable: str,
    stream: str,
    clock: Clock,
    batch: int,
    idle_exit_s: float | None,
    ack_wait_s: float,
) -> PostSummary:
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import ConsumerConfig

    connection = await nats.connect(url)
    total = PostSummary()
    cache = TariffCache(db)
    resolver = AccountResolver()
    try:
        js = connection.jetstream()
        await _ensure_stream(js, stream, subject)
        subscription = await js.pull_subscribe(
            subject, durable=durable, stream=stream,
            config=ConsumerConfig(ack_wait=ack_wait_s, max_ack_pending=batch * 20),
        )  # fmt: skip
        idle_since = time.monotonic()
        while True:
            try:
                messages = await subscription.fetch(batch, timeout=1)
            except (TimeoutError, NatsTimeout):
                messages = []
            if not messages:
                if idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                    break
                continue
            idle_since = time.monotonic()
            records = records_from_messages([m.data for m in messages])
            summary = await asyncio.to_thread(
                post_chunk, db, records, cache=cache, clock=clock, source=f"nats:{subject}",
                resolver=resolver,
            )  # fmt: skip
            for message in messages:  # only after the commit
                await message.ack()
            await connection.flush()
            total.add(summary)
    finally:
        await connection.close()
    return total


def consume(
    db: Database,
    url: str,
    *,
    subject: str = "telbill.cdrs",
    durable: str = "telbill-charging",
    clock: Clock,
    batch: int = DEFAULT_BATCH,
    idle_exit_s: float | None = None,
    ack_wait_s: float = 10.0,
    fmt: str = "native",
) -> PostSummary:
    """Post CDRs from `subject` until stopped (or idle for `idle_exit_s`)."""
    if fmt != "native":
        raise InvalidInput("stream messages are native CDR records as JSON objects")
    if not url.startswith(("nats://", "tls://")):
        raise InvalidInput(f"--stream expects a nats:// URL, got {url!r}")
    return asyncio.run(
        _consume(
            db, url, subject=subject, durable=durable, stream=stream_name(subject), clock=clock,
            batch=batch,
            idle_exit_s=idle_exit_s, ack_wait_s=ack_wait_s,
        )  # fmt: skip
    )


async def _publish(
    url: str, records: Iterable[Mapping[str, Any]], subject: str, stream: str
) -> int:
    import nats

    connection = await nats.connect(url)
    count = 0
    try:
        js = connection.jetstream()
        await _ensure_stream(js, stream, subject)
        pending = []
        for record in records:
            pending.append(js.publish(subject, json.dumps(dict(record)).encode()))
            count += 1
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await connection.drain()
    return count


def publish_cdrs(
    url: str,
    records: Iterable[Mapping[str, Any]],
    *,
    subject: str = "telbill.cdrs",
) -> int:
    """Publish CDR records (native columns) to the stream; returns how many."""
    return asyncio.run(_publish(url, records, subject, stream_name(subject)))


__all__ = ["consume", "publish_cdrs", "records_from_messages", "stream_name"]
