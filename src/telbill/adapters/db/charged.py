"""Which CDRs of an account are already charged: the idempotency lookup of CDR posting.

A large file grows `charges` by millions of rows while it posts, and the lookup runs once
per chunk, so its plan must not depend on table statistics. On PostgreSQL an
``account_id = ? AND cdr_id IN (...)`` query on a table never analysed since it was
empty (autovacuum off, or not yet run) was planned as an index scan on ``account_id``
alone with ``cdr_id`` as a filter: every charge of the account read per chunk, so a
1,000,000-CDR file slowed down chunk after chunk. Here each wanted id is one probe of the
unique (account, CDR id, leg, revision) index, from an ``unnest``ed array joined
``LATERAL`` (``OFFSET 0`` keeps the subquery from being flattened into a join the planner
could turn into a hash join over all the account's rows): the cost is per id wanted, not
per row stored, whatever the statistics say. SQLite plans the ``IN`` query on that index.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, String, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY

from telbill.adapters.db.charging_tables import charges

_PG_CHARGED = text(
    "SELECT found.cdr_id, found.usage_hash"
    " FROM unnest(:cdr_ids) AS wanted(cdr_id)"
    " CROSS JOIN LATERAL ("
    "  SELECT charges.cdr_id, charges.usage_hash FROM charges"
    "  WHERE charges.account_id = :account_id AND charges.cdr_id = wanted.cdr_id"
    "  AND charges.revision = 0 OFFSET 0"
    " ) AS found"
).bindparams(bindparam("cdr_ids", type_=ARRAY(String)))

_SQLITE_BATCH = 500  # bound parameters per statement, well under SQLite's limit


def charged_usage_hashes(
    conn: Connection, account_id: int, cdr_ids: Sequence[str]
) -> dict[str, str | None]:
    """The usage hash of each CDR of `cdr_ids` already charged to leaf `account_id`."""
    found: dict[str, str | None] = {}
    if not cdr_ids:
        return found
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_PG_CHARGED, {"cdr_ids": list(cdr_ids), "account_id": account_id})
        found.update((cdr_id, hashed) for cdr_id, hashed in rows)
        return found
    for start in range(0, len(cdr_ids), _SQLITE_BATCH):
        rows = conn.execute(
            select(charges.c.cdr_id, charges.c.usage_hash).where(
                charges.c.account_id == account_id,
                charges.c.cdr_id.in_(cdr_ids[start : start + _SQLITE_BATCH]),
                charges.c.revision == 0,
            )
        )
        found.update((cdr_id, hashed) for cdr_id, hashed in rows)
    return found


__all__ = ["charged_usage_hashes"]
