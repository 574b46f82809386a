"""The real-time engine decides many requests in one transaction (`services.session_batch`)
with the money rules of one request at a time: SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from threading import Event
from typing import TypeVar

from charging_support import World, build_world, key, paid, world_fixture  # noqa: F401
from sqlalchemy import Connection, func, select

from telbill.adapters.db.charging_tables import charges
from telbill.adapters.db.engine import Database
from telbill.adapters.db.tables import holds as holds_table
from telbill.errors import Conflict, IdempotencyConflict
from telbill.services import session_batch, sessions, wallets
from telbill.services.plans import TariffCache
from telbill.services.reconcile import reconcile

T = TypeVar("T")
UK = "+447700900123"  # 0.60 a minute, 60/60
US = "+15551234567"  # 0.12 a minute


def prepared_authorization(
    world: World, to: str = UK, idempotency_key: str | None = None
) -> session_batch.AuthorizeRequest:
    return sessions.prepare_authorize(
        world.db, TariffCache(world.db), account_id=world.user.id, to_number=to,
        idempotency_key=idempotency_key or key("auth"), clock=world.clock,
    )  # fmt: skip


def prepared_end(
    world: World, session_id: int, duration_s: int, idempotency_key: str | None = None
) -> session_batch.EndRequest:
    return sessions.prepare_end(
        world.db, TariffCache(world.db), session_id, idempotency_key=idempotency_key or key(),
        clock=world.clock, duration_s=duration_s,
    )  # fmt: skip


def run(world: World, requests: list[session_batch.Request]) -> list[object]:
    return world.db.run(lambda conn: session_batch.run_batch(conn, requests))


def count(world: World, table: object) -> int:
    with world.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_authorizations_in_one_batch_never_hold_more_than_the_wallet_has(world: World) -> None:
    # 10.00 in the wallet: the first UK call holds 9.60 (16 min), the second the 0.40 left
    # (200 s to the US), the third nothing: as if they had come one after another.
    answers = run(world, [prepared_authorization(world, UK), prepared_authorization(world, US),
                          prepared_authorization(world, US)])  # fmt: skip
    first, second, third = (dict(a) for a in answers)  # type: ignore[call-overload]
    assert (first["max_seconds"], first["held_micros"]) == (960, 9_600_000)
    assert (second["max_seconds"], second["held_micros"]) == (200, 400_000)
    assert third["allowed"] is False and third["reason"] == "insufficient_balance"
    assert count(world, holds_table) == 2
    assert reconcile(world.db).ok


def test_a_key_twice_in_one_batch_is_performed_once_and_another_body_is_refused(
    world: World,
) -> None:
    same = "twice"
    answers = run(world, [
        prepared_authorization(world, UK, same), prepared_authorization(world, UK, same),
        prepared_authorization(world, US, same),
    ])  # fmt: skip
    assert answers[0] == answers[1] and isinstance(answers[0], dict)
    assert isinstance(answers[2], IdempotencyConflict)
    assert count(world, holds_table) == 1
    replay = run(world, [prepared_authorization(world, UK, same)])[0]
    assert replay == answers[0]


def test_ends_in_one_batch_settle_each_call_once_and_the_wallet_exactly(world: World) -> None:
    wallets.top_up(world.db, world.org.id, "20", idempotency_key=key(), clock=world.clock)
    ids = []  # three US calls of an hour: 7.20 held each
    for answer in run(world, [prepared_authorization(world, US) for _ in range(3)]):
        assert isinstance(answer, dict) and answer["allowed"]
        ids.append(int(answer["session_id"]))
    ended = run(world, [
        prepared_end(world, ids[0], 60), prepared_end(world, ids[1], 30, "end-1"),
        prepared_end(world, ids[1], 30, "end-1"), prepared_end(world, ids[2], 90),
        prepared_end(world, ids[2], 10),
    ])  # fmt: skip
    views = [e for e in ended if isinstance(e, sessions.SessionView)]
    assert [v.charged for v in views] == [
        Decimal("0.12"),
        Decimal("0.06"),
        Decimal("0.06"),
        Decimal("0.18"),
    ]
    assert views[1] == views[2]  # the same key twice: one charge, the same answer
    assert isinstance(ended[4], Conflict)  # a second end with another key
    assert paid(world) == Decimal("30.00") - Decimal("0.36")
    assert count(world, charges) == 3 and reconcile(world.db).ok


def test_an_authorization_after_an_end_in_one_batch_sees_the_released_hold(
    world: World,
) -> None:
    first = run(world, [prepared_authorization(world, UK)])[0]
    assert isinstance(first, dict)
    answers = run(world, [prepared_end(world, int(first["session_id"]), 60),
                          prepared_authorization(world, UK)])  # fmt: skip
    second = answers[1]
    assert isinstance(second, dict)
    # 10.00 - 0.60 charged = 9.40: 15 whole minutes at 0.60.
    assert second["max_seconds"] == 15 * 60 and second["held_micros"] == 9_000_000


class HeldFirstBatch(Database):
    """The database of `world`, whose first batch waits until released (the others queue)."""

    def __init__(self, world: World) -> None:
        super().__init__(world.db.engine)
        self.entered, self.release = Event(), Event()

    def run(self, fn: Callable[[Connection], T], *, attempts: int = 12) -> T:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)
        return super().run(fn, attempts=attempts)


def test_requests_arriving_while_a_batch_runs_are_decided_together_in_the_next(
    world: World,
) -> None:
    db, engine = HeldFirstBatch(world), session_batch.GroupCommit()
    requests = [prepared_authorization(world, US) for _ in range(12)]
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(engine.submit, db, requests[0])
        assert db.entered.wait(30)
        rest = [pool.submit(engine.submit, db, r) for r in requests[1:]]
        while len(engine._queue) < 11:
            time.sleep(0.005)
        db.release.set()
        answers = [first.result(), *(f.result() for f in rest)]
    assert engine.batches == 2  # one request alone, then the eleven that queued behind it
    held = sum(a["held_micros"] for a in answers if a["allowed"])
    assert held <= 10_000_000 and count(world, holds_table) == len(
        [a for a in answers if a["allowed"]]
    )
    assert reconcile(world.db).ok
