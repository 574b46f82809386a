"""The dashboard's lists read one index range per page: the usage page of a wallet with a
million charges costs what it costs on a new one (plans checked, not timed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from telbill.adapters.db.engine import Database, migrate
from telbill.web import queries

pytestmark = pytest.mark.xdist_group("web_queries")

CURSOR = "2026-03-05T10:00:00+00:00~40"


def plan_of(db: Database, query: object) -> str:
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET enable_seqscan = off"))  # ask which index serves it
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
            rows = conn.execute(sa.text(f"EXPLAIN {compiled}")).scalars().all()
        else:
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
            rows = [r[-1] for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}"))]
    return "\n".join(str(r) for r in rows)


@pytest.mark.parametrize(
    ("has_wallet", "index"),
    [(True, "ix_charges_payer_id_occurred_at"), (False, "ix_charges_account_id_occurred_at")],
)
def test_a_usage_page_seeks_an_index_in_page_order_without_sorting(db_url, has_wallet, index):
    migrate(db_url)
    db = Database(db_url)
    try:
        for cursor in (None, CURSOR):
            query = queries.usage_query(
                7, has_wallet=has_wallet, cursor=cursor,
                since=datetime(2026, 3, 1, tzinfo=UTC), service="voice",
            )  # fmt: skip
            plan = plan_of(db, query)
            # (On SQLite a two-column index ends in the rowid, which is the id: either serves.)
            assert index in plan, plan
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    finally:
        db.dispose()


def test_a_bad_cursor_is_refused(db_url):
    migrate(db_url)
    db = Database(db_url)
    try:
        for cursor in ("yesterday~1", "2026-03-05T10:00:00~1", "2026-03-05T10:00:00+00:00~x"):
            with pytest.raises(queries.InvalidInput):
                queries.usage_page(db, 1, has_wallet=True, cursor=cursor)
    finally:
        db.dispose()


def test_keyset_pages_cover_charges_of_the_same_second_once_each(db_url):
    """Charges of one instant straddle page ends: the (time, id) cursor neither skips nor
    repeats one."""
    from telbill.adapters.db.charging_tables import charges
    from telbill.services import accounts
    from telbill.services.clock import FixedClock

    migrate(db_url)
    db = Database(db_url)
    clock = FixedClock(datetime(2026, 3, 1, tzinfo=UTC))
    try:
        provider = accounts.create_account(
            db, kind="provider", name="P", currency="USD", idempotency_key="p", clock=clock
        )
        org = accounts.create_account(
            db, kind="organisation", name="O", parent_id=provider.id, idempotency_key="o",
            clock=clock,
        )  # fmt: skip
        moments = [datetime(2026, 3, 2, 10, 0, s // 3, tzinfo=UTC) for s in range(9)]
        with db.transaction() as conn:
            conn.execute(charges.insert(), [
                {"cdr_id": f"c{n}", "leg": "caller", "revision": 0, "account_id": org.id,
                 "payer_id": org.id, "service": "voice", "direction": "outbound",
                 "amount_micros": 1000, "currency": "USD", "unit": "s:call", "billed_units": 1,
                 "package_units": 0, "explanation": {}, "occurred_at": at, "created_at": at}
                for n, at in enumerate(moments)
            ])  # fmt: skip
        for has_wallet in (True, False):
            seen, cursor = [], None
            while True:
                page = queries.usage_page(db, org.id, has_wallet=has_wallet, cursor=cursor, limit=2)
                seen.extend((r.occurred_at, r.charge_id) for r in page.items)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert len(seen) == 9 and seen == sorted(set(seen), reverse=True)
    finally:
        db.dispose()
